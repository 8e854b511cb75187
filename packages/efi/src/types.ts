import type { LogLevel, Request } from '@vmsb/protocol';
import type { Variable } from './variable.js';

/** Per-VM platform settings (xenstore `platform/secureboot`, `platform/auth-enforce`, or `--platform`). */
export interface PlatformSettings {
  /** SecureBoot reads 1 only when this is on and a PK is enrolled. */
  readonly secureBoot: boolean;
  /** false = permissive (varstored's `auth-enforce=false`): the authenticator skips signature checks. */
  readonly authEnforce: boolean;
}

/** A TIME_BASED_AUTHENTICATED_WRITE_ACCESS SetVariable handed to the authenticator. */
export interface AuthenticatedWrite {
  /** UTF-16LE, no terminator. */
  readonly name: Uint8Array;
  readonly guid: Uint8Array;
  /** As requested, without APPEND_WRITE (so it includes TIME_BASED_AUTHENTICATED_WRITE_ACCESS). */
  readonly attributes: number;
  /** APPEND_WRITE was set (the signed attributes value then includes 0x40). */
  readonly append: boolean;
  /** EFI_VARIABLE_AUTHENTICATION_2 descriptor followed by the payload, exactly as sent. */
  readonly data: Uint8Array;
  /** The variable as stored now, when it exists. */
  readonly existing?: Variable;
}

/** What the authenticator may read of the store while it decides. */
export interface StoreView {
  /** The variable (name, guid), or undefined. */
  get(name: Uint8Array, guid: Uint8Array): Variable | undefined;
  /** No PK is enrolled. */
  readonly setupMode: boolean;
  readonly authEnforce: boolean;
}

/** The authenticator's decision. */
export interface AuthResult {
  /** EfiStatus.SUCCESS, or the EFI error the guest receives. */
  readonly status: bigint;
  /**
   * On SUCCESS: the bytes to store (for an append: the bytes to add after the existing value, already
   * de-duplicated). Empty on a non-append write means delete.
   */
  readonly payload?: Uint8Array;
  /** On SUCCESS: the descriptor's EFI_TIME (16 bytes); the store keeps the later one on append. */
  readonly timestamp?: Uint8Array;
  /** On SUCCESS: the 32-byte signer binding to store (private authenticated variables). */
  readonly signerDigest?: Uint8Array;
  /** Why, for administrators (never sent to the guest). */
  readonly reason?: string;
}

/** Verifies time-based authenticated writes; implemented by @vmsb/auth. Must not throw; must not mutate its inputs. */
export interface Authenticator {
  verify(request: AuthenticatedWrite, view: StoreView): AuthResult;
}

/** Everything the store holds: what a save file carries. */
export interface StoreState {
  /** All variables (volatile ones too), in enumeration order. */
  readonly variables: readonly Variable[];
  /** MemoryOverwriteRequestControlLock key (8 bytes). */
  readonly morKey: Uint8Array;
  /** TCG2 PPI: the index register and the 256 volatile function bytes. */
  readonly ppi: { readonly index: number; readonly func: Uint8Array };
  /** The guest has made a runtime request (sticky until the daemon restarts). */
  readonly atRuntime?: boolean;
}

export type { LogLevel };

export interface StoreOptions {
  readonly platform: PlatformSettings;
  /** Verifies TIME_BASED writes; without one every such write is refused with SECURITY_VIOLATION. */
  readonly authenticator?: Authenticator;
  /** Restore the sticky runtime flag (e.g. after --resume); overrides StoreState.atRuntime. */
  readonly atRuntime?: boolean;
  /** Diagnostics (refused writes and their reasons, mode changes). */
  readonly log?: (level: LogLevel, message: string) => void;
}

export interface RestoreOptions extends StoreOptions {
  /**
   * true: the state is a save file of this very boot: keep builtins, MOR and PPI as saved.
   * false: a new boot: recompute builtins, reset MOR control and lock, create PPIBuffer if missing,
   * reset Tcg2PhysicalPresenceFlagsLock, drop volatile variables.
   */
  readonly resume: boolean;
}

/** A change the owner must make durable before the answer goes out. */
export interface PendingChange<R> {
  /**
   * The complete new state (volatile variables included; persist what your medium keeps). Read-only:
   * its variables are the store's own records, shared rather than copied.
   */
  readonly state: StoreState;
  /** The change is durable: keep it. */
  commit(): void;
  /** The change could not be made durable: restore the previous in-memory state. */
  rollback(): R;
}

export interface DispatchOutcome {
  /** Exact bytes to copy back to the guest buffer from offset 0 (at most 65536). */
  readonly response: Uint8Array;
  /** The command when it could be decoded. */
  readonly command?: 'GetVariable' | 'SetVariable' | 'GetNextVariableName' | 'QueryVariableInfo' | 'NotifySBFailure';
  /** The EFI status in `response`. */
  readonly status: bigint;
  /** Why a request failed, for logs. */
  readonly reason?: string;
  /**
   * The request as decoded, when it could be: what a log line describes (command, name, vendor GUID,
   * attributes, sizes), so that nobody decodes the buffer again. Its byte fields are views into the
   * request: read them before the request buffer is reused for another request.
   */
  readonly request?: Request;
  /**
   * Set on the first NotifySBFailure a store receives (later ones are answered ACCESS_DENIED): the guest
   * failed Secure Boot verification, and the owner raises the toolstack's alert, then answers `response`
   * (SUCCESS), or EFI_DEVICE_ERROR when the alert could not be raised. The store decides; the owner
   * does the I/O.
   */
  readonly raiseSecureBootFailureAlert?: true;
  /**
   * Present iff the request changed non-volatile state. Persist `state` (await what you must), then
   * call commit(), or on failure rollback(), which restores the previous in-memory state and returns
   * the EFI_DEVICE_ERROR response to send instead. Dispatch nothing else in between.
   */
  readonly pending?: PendingChange<Uint8Array>;
}

export interface SetOutcome {
  readonly status: bigint;
  readonly reason?: string;
  /** As DispatchOutcome.pending; rollback() restores the previous state. */
  readonly pending?: PendingChange<void>;
}

export interface PpiWriteOutcome {
  /** Present iff the write changed PPIBuffer (non-volatile). */
  readonly pending?: PendingChange<void>;
}
