import {
  EfiStatus,
  Limits,
  concatBytes,
  copyBytes,
  decodeRequest,
  encodeResponse,
  encodeStatus,
  encodedResponseSize,
  fromUtf16le,
  statusName,
  type GetNextVariableNameRequest,
  type GetVariableRequest,
  type NotifySBFailureRequest,
  type QueryVariableInfoRequest,
  type Request,
  type Response,
} from '@vmsb/protocol';
import { ATTRIBUTES_MASK, Attr, formatAttributes } from './attributes.js';
import { AUTHENTICATION2_AUTHINFO_OFFSET, authentication2Length } from './authentication2.js';
import {
  MODE_BUILTINS,
  MOR_KEY_SIZE,
  MorLockState,
  Names,
  PPI_BUFFER_SIZE,
  PPI_FUNC_SIZE,
  PPI_REGION_SIZE,
  signatureSupportValue,
  type BuiltinName,
} from './builtins.js';
import { guidEquals, guidToText } from './guid.js';
import { secureBootValue } from './secure-boot.js';
import { laterEfiTimeBytes } from './time.js';
import type {
  AuthResult,
  Authenticator,
  DispatchOutcome,
  LogLevel,
  PendingChange,
  PlatformSettings,
  PpiWriteOutcome,
  RestoreOptions,
  SetOutcome,
  StoreOptions,
  StoreState,
  StoreView,
} from './types.js';
import { uefiVariableCheck } from './var-check.js';
import {
  SIGNER_DIGEST_SIZE,
  bytesEqual,
  makeVariable,
  nameProblem,
  variablesEqual,
  type Variable,
} from './variable.js';

/** sizeof(EFI_VARIABLE_AUTHENTICATION) of the deprecated counter-based scheme. */
const AUTHINFO_SIZE = 560;
/** MemoryOverwriteRequestControl may only carry these bits. */
const MOR_ACTION_VALID_MASK = 0x11;

type Key = string;

/** Map key of (name, guid): byte-exact, as UEFI matches variables. */
function keyOf(name: Uint8Array, guid: Uint8Array): Key {
  return charPerByte(guid) + charPerByte(name);
}

const KEY_CHUNK = 4096;

/** One char per byte (injective); cheap even before the JIT has warmed up, which a boot never waits for. */
function charPerByte(bytes: Uint8Array): string {
  // apply() takes the bytes as arguments: chunked, so that no length can overflow the stack.
  if (bytes.length <= KEY_CHUNK) return String.fromCharCode.apply(null, bytes as unknown as number[]);
  let s = '';
  for (let i = 0; i < bytes.length; i += KEY_CHUNK)
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + KEY_CHUNK) as unknown as number[]);
  return s;
}

function footprint(v: Variable | undefined): number {
  return v === undefined ? 0 : v.name.length + v.data.length + Limits.OVERHEAD;
}

function isNv(v: Variable | undefined): boolean {
  return v !== undefined && (v.attributes & Attr.NON_VOLATILE) !== 0;
}

function copyVariable(v: Variable): Variable {
  return makeVariable(v);
}

/** What a SetVariable did, before it is turned into a response. */
interface SetResult {
  readonly status: bigint;
  readonly reason?: string;
  /** The write changed non-volatile state (the owner must persist it). */
  readonly persist?: boolean;
}

interface Snapshot {
  readonly vars: Map<Key, Variable>;
  readonly morKey: Uint8Array;
  readonly ppiFunc: Uint8Array;
  readonly ppiIndex: number;
}

interface SetRequest {
  readonly name: Uint8Array;
  readonly guid: Uint8Array;
  readonly attributes: number;
  readonly data: Uint8Array;
}

const ok = (persist = false): SetResult => ({ status: EfiStatus.SUCCESS, persist });
const fail = (status: bigint, reason: string): SetResult => ({ status, reason });

/**
 * The UEFI variable store of one VM: GetVariable, SetVariable, GetNextVariableName and
 * QueryVariableInfo with edk2's semantics for OVMF, varstored's limits, the Secure Boot mode
 * variables, MOR and the TCG2 PPI area. Pure and synchronous: persistence, authentication and
 * alerts are ports the owner supplies.
 */
export class VariableStore {
  /** Every variable, in enumeration order (insertion order: a new name goes last). */
  private vars = new Map<Key, Variable>();
  /** Positions in `vars`, for GetNextVariableName; rebuilt after the set of names changes. */
  private order: { readonly keys: readonly Key[]; readonly at: ReadonlyMap<Key, number> } | undefined;
  private morKey: Uint8Array = new Uint8Array(MOR_KEY_SIZE);
  private ppiFunc: Uint8Array = new Uint8Array(PPI_FUNC_SIZE);
  private ppiIdx = 0;
  private runtime: boolean;
  private sbFailureNotified = false;
  private pendingOpen = false;
  private readonly platform: PlatformSettings;
  private readonly authenticator: Authenticator | undefined;
  private readonly log: (level: LogLevel, message: string) => void;

  private constructor(options: StoreOptions, runtime: boolean) {
    this.platform = {
      secureBoot: options.platform.secureBoot === true,
      authEnforce: options.platform.authEnforce !== false,
    };
    this.authenticator = options.authenticator;
    this.log = options.log ?? (() => undefined);
    this.runtime = runtime;
  }

  /** A store for a first boot: the builtins only. */
  static create(options: StoreOptions): VariableStore {
    return VariableStore.restore(
      { variables: [], morKey: new Uint8Array(MOR_KEY_SIZE), ppi: { index: 0, func: new Uint8Array(PPI_FUNC_SIZE) } },
      { ...options, resume: false },
    );
  }

  /**
   * A store from saved state. Throws RangeError when the state holds a variable this store could
   * never have produced (bad name, GUID or attributes, empty or oversized data, a duplicate).
   */
  static restore(state: StoreState, options: RestoreOptions): VariableStore {
    const store = new VariableStore(options, options.resume ? (options.atRuntime ?? state.atRuntime ?? false) : false);
    const loaded = new Map<Key, Variable>();
    for (const v of state.variables) {
      const variable = validateLoaded(v);
      const key = keyOf(variable.name, variable.guid);
      if (loaded.has(key)) throw new RangeError(`variable ${describe(variable.name, variable.guid)} appears twice`);
      loaded.set(key, variable);
    }
    store.morKey = fixedCopy(state.morKey, MOR_KEY_SIZE);
    store.ppiFunc = fixedCopy(state.ppi?.func, PPI_FUNC_SIZE);
    store.ppiIdx = Number(state.ppi?.index ?? 0) >>> 0;
    if (options.resume) {
      store.replaceVars(loaded);
      // A save file always holds the builtins; recreate any that are missing rather than run without them.
      for (const b of [
        ...MODE_BUILTINS,
        Names.MemoryOverwriteRequestControl,
        Names.MemoryOverwriteRequestControlLock,
        Names.PPIBuffer,
        Names.Tcg2PhysicalPresenceFlagsLock,
      ]) {
        if (!store.vars.has(keyOf(b.name, b.guid))) store.putInternal(b, store.initialBuiltinValue(b, loaded));
      }
    } else {
      // A new boot: volatile variables are gone and the builtins are computed afresh, first.
      for (const b of MODE_BUILTINS) store.putInternal(b, store.initialBuiltinValue(b, loaded));
      store.putInternal(Names.MemoryOverwriteRequestControl, Uint8Array.of(0));
      store.putInternal(Names.MemoryOverwriteRequestControlLock, Uint8Array.of(MorLockState.UNLOCKED));
      store.putInternal(Names.PPIBuffer, store.initialBuiltinValue(Names.PPIBuffer, loaded));
      store.putInternal(Names.Tcg2PhysicalPresenceFlagsLock, Uint8Array.of(0));
      for (const [key, v] of loaded) {
        if (store.vars.has(key) || !isNv(v)) continue;
        store.putVar(key, v);
      }
    }
    return store;
  }

  private initialBuiltinValue(b: BuiltinName, loaded: Map<Key, Variable>): Uint8Array {
    const pk = loaded.has(keyOf(Names.PK.name, Names.PK.guid));
    switch (b) {
      case Names.SignatureSupport:
        return signatureSupportValue();
      case Names.SetupMode:
        return Uint8Array.of(pk ? 0 : 1);
      case Names.DeployedMode:
        return Uint8Array.of(pk ? 1 : 0);
      case Names.SecureBoot:
        return Uint8Array.of(this.secureBootAtBoot(pk));
      case Names.VendorKeys:
        return Uint8Array.of(1);
      case Names.PPIBuffer: {
        const saved = loaded.get(keyOf(b.name, b.guid));
        return saved !== undefined && (saved.attributes & Attr.NON_VOLATILE) !== 0
          ? saved.data
          : new Uint8Array(PPI_BUFFER_SIZE);
      }
      default:
        return Uint8Array.of(0);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Introspection

  /** The variable (name, guid), unfiltered (a copy), or undefined. */
  getVariable(name: Uint8Array, guid: Uint8Array): Variable | undefined {
    const v = this.lookup(name, guid);
    return v === undefined ? undefined : copyVariable(v);
  }

  /** Every variable in enumeration order (copies). */
  variables(): readonly Variable[] {
    return [...this.vars.values()].map(copyVariable);
  }

  /** Everything the store holds, for a save file or (non-volatile part) for NVRAM. */
  state(): StoreState {
    return {
      variables: this.variables(),
      morKey: this.morKey.slice(),
      ppi: { index: this.ppiIdx, func: this.ppiFunc.slice() },
      atRuntime: this.runtime,
    };
  }

  /** No PK is enrolled. */
  get setupMode(): boolean {
    return this.lookup(Names.PK.name, Names.PK.guid) === undefined;
  }

  /** The value of the SecureBoot variable. */
  get secureBoot(): boolean {
    return this.lookup(Names.SecureBoot.name, Names.SecureBoot.guid)?.data[0] === 1;
  }

  /** The guest has made a runtime request (sticky). */
  get atRuntime(): boolean {
    return this.runtime;
  }

  /** Bytes used, counting 128 per variable, as QueryVariableInfo accounts them. */
  get usedStorage(): number {
    let total = 0;
    for (const v of this.vars.values()) total += footprint(v);
    return total;
  }

  // -------------------------------------------------------------------------------------------
  // The guest's requests

  /**
   * Handles one request from the guest buffer and returns the bytes to copy back; never throws.
   * `request` must be the private copy of guest memory the transport made (docs/architecture.md §1:
   * guest memory is copied once, by the transport), unchanged during the call. It is decoded in place, at most
   * its first 64 KiB, and nothing of it is kept: what the store keeps, it copies.
   */
  dispatch(request: Uint8Array): DispatchOutcome {
    if (!(request instanceof Uint8Array))
      return statusOutcome(EfiStatus.DEVICE_ERROR, 'the request is not a byte array');
    if (this.pendingOpen)
      return statusOutcome(EfiStatus.DEVICE_ERROR, 'a previous change is still waiting for commit or rollback');
    const decoded = decodeRequest(request);
    if (!decoded.ok) return statusOutcome(decoded.status, decoded.reason);
    const r = decoded.request;
    // Only SetVariable changes variables; reads need no undo point.
    const before = r.command === 'SetVariable' ? this.snapshot() : undefined;
    try {
      switch (r.command) {
        case 'GetVariable':
          return this.respond(r, this.handleGetVariable(r));
        case 'GetNextVariableName':
          return this.respond(r, this.handleGetNext(r));
        case 'QueryVariableInfo':
          return this.respond(r, this.handleQuery(r));
        case 'NotifySBFailure':
          return this.handleNotify(r);
        case 'SetVariable': {
          if (r.atRuntime) this.runtime = true;
          const result = this.set(r, this.runtime);
          const response = this.encode({ command: 'SetVariable', status: result.status });
          if (result.persist !== true)
            return withReason(
              { response, command: 'SetVariable', status: result.status, request: r },
              result.reason,
            );
          const pending = this.openPending(before!, () =>
            this.encode({ command: 'SetVariable', status: EfiStatus.DEVICE_ERROR }),
          );
          return withReason(
            { response, command: 'SetVariable', status: result.status, request: r, pending },
            result.reason,
          );
        }
      }
    } catch (e) {
      // Nothing a guest sends should get here; if it does, leave the store as it was.
      if (before !== undefined) this.restoreSnapshot(before);
      return {
        ...statusOutcome(EfiStatus.DEVICE_ERROR, `internal error: ${e instanceof Error ? e.message : String(e)}`),
        command: r.command,
        request: r,
      };
    }
  }

  /**
   * SetVariable from inside the host (first-boot provisioning, tools): the same rules as a guest
   * request at boot time (or at runtime when asked). Never throws.
   */
  setVariable(
    name: Uint8Array,
    guid: Uint8Array,
    attributes: number,
    data: Uint8Array,
    options: { atRuntime?: boolean } = {},
  ): SetOutcome {
    if (this.pendingOpen)
      return { status: EfiStatus.DEVICE_ERROR, reason: 'a previous change is still waiting for commit or rollback' };
    const before = this.snapshot();
    try {
      if (!(name instanceof Uint8Array) || !(guid instanceof Uint8Array) || !(data instanceof Uint8Array)) {
        return { status: EfiStatus.INVALID_PARAMETER, reason: 'name, guid and data must be byte arrays' };
      }
      const result = this.set({ name, guid, attributes: Number(attributes) >>> 0, data }, options.atRuntime === true);
      const outcome: SetOutcome =
        result.reason === undefined ? { status: result.status } : { status: result.status, reason: result.reason };
      return result.persist === true ? { ...outcome, pending: this.openPending(before, () => undefined) } : outcome;
    } catch (e) {
      this.restoreSnapshot(before);
      return {
        status: EfiStatus.DEVICE_ERROR,
        reason: `internal error: ${e instanceof Error ? e.message : String(e)}`,
      };
    }
  }

  // -------------------------------------------------------------------------------------------
  // TCG2 physical presence I/O region (ports 0x104 index / 0x108 data)

  /** The PPI index register (port 0x104). */
  get ppiIndex(): number {
    return this.ppiIdx;
  }

  set ppiIndex(value: number) {
    this.ppiIdx = Number(value) >>> 0;
  }

  /**
   * Reads `size` (1, 2 or 4) bytes little-endian at `index` of the PPI region: 0x000-0x0FF the
   * volatile function area, 0x100-0x12F PPIBuffer. Out of range → 0.
   */
  ppiRead(index: number, size: number): number {
    if (!validPpiAccess(index, size)) return 0;
    const buffer = this.lookup(Names.PPIBuffer.name, Names.PPIBuffer.guid)?.data;
    let value = 0;
    for (let i = size - 1; i >= 0; i--) {
      const at = index + i;
      const byte = at < PPI_FUNC_SIZE ? this.ppiFunc[at]! : (buffer?.[at - PPI_FUNC_SIZE] ?? 0);
      value = value * 256 + byte;
    }
    return value;
  }

  /**
   * Writes `size` (1, 2 or 4) bytes little-endian at `index` of the PPI region; out of range is
   * ignored. A write into PPIBuffer changes non-volatile state and returns it as pending.
   */
  ppiWrite(index: number, size: number, value: number): PpiWriteOutcome {
    if (this.pendingOpen || !validPpiAccess(index, size)) return {};
    const before = this.snapshot();
    const key = keyOf(Names.PPIBuffer.name, Names.PPIBuffer.guid);
    const existing = this.vars.get(key);
    const data = existing === undefined ? undefined : copyBytes(existing.data);
    let v = Number(value) >>> 0;
    for (let i = 0; i < size; i++, v = Math.floor(v / 256)) {
      const at = index + i;
      if (at < PPI_FUNC_SIZE) this.ppiFunc[at] = v & 0xff;
      else if (data !== undefined && at - PPI_FUNC_SIZE < data.length) data[at - PPI_FUNC_SIZE] = v & 0xff;
    }
    if (existing === undefined || data === undefined || bytesEqual(data, existing.data)) return {};
    this.putVar(key, makeVariable({ ...existing, data }));
    return { pending: this.openPending(before, () => undefined) };
  }

  // -------------------------------------------------------------------------------------------
  // GetVariable / GetNextVariableName / QueryVariableInfo / NotifySBFailure

  private handleGetVariable(r: GetVariableRequest): { response: Response; reason?: string } {
    if (r.atRuntime) this.runtime = true;
    const status = (s: bigint, reason: string) => ({
      response: { command: 'GetVariable' as const, status: s },
      reason,
    });
    if (r.name.length === 0) return status(EfiStatus.NOT_FOUND, 'empty name');
    if (r.name.length > Limits.NAME_MAX)
      return status(EfiStatus.DEVICE_ERROR, `name of ${r.name.length} bytes exceeds ${Limits.NAME_MAX}`);
    const v = this.lookup(r.name, r.guid);
    if (v === undefined || (this.runtime && (v.attributes & Attr.RUNTIME_ACCESS) === 0)) {
      // Probing for variables is most of a boot: a constant reason (the request names the variable).
      return status(
        EfiStatus.NOT_FOUND,
        v === undefined ? 'no such variable' : 'the variable is not visible at runtime',
      );
    }
    if (r.dataSize < v.data.length) {
      return { response: { command: 'GetVariable', status: EfiStatus.BUFFER_TOO_SMALL, requiredSize: v.data.length } };
    }
    return { response: { command: 'GetVariable', status: EfiStatus.SUCCESS, attributes: v.attributes, data: v.data } };
  }

  private handleGetNext(r: GetNextVariableNameRequest): { response: Response; reason?: string } {
    if (r.atRuntime) this.runtime = true;
    const status = (s: bigint, reason: string) => ({
      response: { command: 'GetNextVariableName' as const, status: s },
      reason,
    });
    if (r.name.length > Limits.NAME_MAX)
      return status(EfiStatus.DEVICE_ERROR, `name of ${r.name.length} bytes exceeds ${Limits.NAME_MAX}`);
    // The caller's buffer must hold the previous name and its terminator (edk2: NUL within VariableNameSize).
    if (r.nameSize < r.name.length + 2)
      return status(EfiStatus.INVALID_PARAMETER, `name buffer of ${r.nameSize} bytes cannot hold the previous name`);
    const visible = (v: Variable): boolean => !this.runtime || (v.attributes & Attr.RUNTIME_ACCESS) !== 0;
    let next: Variable | undefined;
    if (r.name.length === 0) {
      for (const v of this.vars.values()) {
        if (visible(v)) {
          next = v;
          break;
        }
      }
    } else {
      const key = keyOf(r.name, r.guid);
      const prev = this.vars.get(key);
      if (prev === undefined || !visible(prev))
        return status(EfiStatus.INVALID_PARAMETER, `previous variable ${describe(r.name, r.guid)} does not exist`);
      // An enumeration is n calls: finding the previous name by position keeps each one O(1).
      const { keys, at } = this.enumeration();
      for (let i = at.get(key)! + 1; i < keys.length; i++) {
        const v = this.vars.get(keys[i]!)!;
        if (visible(v)) {
          next = v;
          break;
        }
      }
    }
    if (next === undefined) return status(EfiStatus.NOT_FOUND, 'end of the enumeration');
    if (r.nameSize < next.name.length + 2) {
      return {
        response: {
          command: 'GetNextVariableName',
          status: EfiStatus.BUFFER_TOO_SMALL,
          requiredSize: next.name.length + 2,
        },
      };
    }
    return {
      response: { command: 'GetNextVariableName', status: EfiStatus.SUCCESS, name: next.name, guid: next.guid },
    };
  }

  private handleQuery(r: QueryVariableInfoRequest): { response: Response; reason?: string } {
    const a = r.attributes >>> 0;
    const status = (s: bigint, reason: string) => ({
      response: { command: 'QueryVariableInfo' as const, status: s },
      reason,
    });
    // edk2 VariableServiceQueryVariableInfo, in its order.
    if (a === 0) return status(EfiStatus.INVALID_PARAMETER, 'no attributes');
    if ((a & Attr.AUTHENTICATED_WRITE_ACCESS) !== 0)
      return status(EfiStatus.UNSUPPORTED, 'AUTHENTICATED_WRITE_ACCESS is deprecated');
    if ((a & ATTRIBUTES_MASK) === 0) return status(EfiStatus.UNSUPPORTED, 'no supported attribute');
    if ((a & ATTRIBUTES_MASK) === Attr.NON_VOLATILE) return status(EfiStatus.INVALID_PARAMETER, 'NON_VOLATILE alone');
    if ((a & (Attr.RUNTIME_ACCESS | Attr.BOOTSERVICE_ACCESS)) === Attr.RUNTIME_ACCESS)
      return status(EfiStatus.INVALID_PARAMETER, 'RUNTIME_ACCESS without BOOTSERVICE_ACCESS');
    if (this.runtime && (a & Attr.RUNTIME_ACCESS) === 0)
      return status(EfiStatus.INVALID_PARAMETER, 'at runtime RUNTIME_ACCESS is required');
    if ((a & (Attr.NON_VOLATILE | Attr.HARDWARE_ERROR_RECORD)) === Attr.HARDWARE_ERROR_RECORD)
      return status(EfiStatus.INVALID_PARAMETER, 'HARDWARE_ERROR_RECORD without NON_VOLATILE');
    // No hardware error record storage (OVMF's PcdHwErrStorageSize = 0), whatever else is set.
    if ((a & Attr.HARDWARE_ERROR_RECORD) !== 0)
      return status(EfiStatus.UNSUPPORTED, 'no hardware error record storage');
    const used = this.usedStorage;
    return {
      response: {
        command: 'QueryVariableInfo',
        status: EfiStatus.SUCCESS,
        maximumStorageSize: Limits.TOTAL_MAX,
        remainingStorageSize: Math.max(0, Limits.TOTAL_MAX - used),
        maximumVariableSize: Limits.DATA_MAX,
      },
    };
  }

  /**
   * The guest failed Secure Boot verification. One alert per store, as varstored raises one per daemon:
   * a guest must not flood the toolstack. Raising it is the owner's I/O (raiseSecureBootFailureAlert).
   */
  private handleNotify(r: NotifySBFailureRequest): DispatchOutcome {
    if (this.sbFailureNotified) {
      return {
        ...this.respond(r, { response: { command: 'NotifySBFailure', status: EfiStatus.ACCESS_DENIED } }),
        reason: 'the Secure Boot failure alert was already raised',
      };
    }
    this.sbFailureNotified = true;
    return {
      ...this.respond(r, { response: { command: 'NotifySBFailure', status: EfiStatus.SUCCESS } }),
      raiseSecureBootFailureAlert: true,
    };
  }

  // -------------------------------------------------------------------------------------------
  // SetVariable: edk2 VariableServiceSetVariable → VarCheckLib → AuthVariableLib → UpdateVariable,
  // with varstored's limits, MOR and PPI handling.

  private set(r: SetRequest, runtime: boolean): SetResult {
    const { name, guid, data } = r;
    const attributes = r.attributes >>> 0;
    // varstored's wire limits.
    if (name.length === 0) return fail(EfiStatus.INVALID_PARAMETER, 'empty name');
    if (name.length > Limits.NAME_MAX)
      return fail(EfiStatus.DEVICE_ERROR, `name of ${name.length} bytes exceeds ${Limits.NAME_MAX}`);
    const badName = nameProblem(name);
    if (badName !== undefined) return fail(EfiStatus.INVALID_PARAMETER, badName);
    if (guid.length !== 16) return fail(EfiStatus.INVALID_PARAMETER, 'a vendor GUID is 16 bytes');
    if (data.length > Limits.BUFFER_SIZE)
      return fail(
        EfiStatus.OUT_OF_RESOURCES,
        `data of ${data.length} bytes exceeds the ${Limits.BUFFER_SIZE}-byte buffer`,
      );
    const what = describe(name, guid);

    // Attribute combinations.
    const AW = Attr.AUTHENTICATED_WRITE_ACCESS;
    const AT = Attr.TIME_BASED_AUTHENTICATED_WRITE_ACCESS;
    const aw = (attributes & AW) !== 0;
    const at = (attributes & AT) !== 0;
    if ((attributes & ~(ATTRIBUTES_MASK | AW)) !== 0)
      return fail(EfiStatus.INVALID_PARAMETER, `reserved attribute bits in ${formatAttributes(attributes)}`);
    if ((attributes & (Attr.RUNTIME_ACCESS | Attr.BOOTSERVICE_ACCESS)) === Attr.RUNTIME_ACCESS) {
      return fail(
        aw ? EfiStatus.UNSUPPORTED : EfiStatus.INVALID_PARAMETER,
        'RUNTIME_ACCESS without BOOTSERVICE_ACCESS',
      );
    }
    if ((attributes & ATTRIBUTES_MASK) === Attr.NON_VOLATILE)
      return fail(aw ? EfiStatus.UNSUPPORTED : EfiStatus.INVALID_PARAMETER, 'NON_VOLATILE alone');
    if (!aw && !at && (attributes & Attr.HARDWARE_ERROR_RECORD) !== 0)
      return fail(EfiStatus.INVALID_PARAMETER, 'hardware error records are not supported');
    if (aw && at)
      return fail(EfiStatus.UNSUPPORTED, 'both AUTHENTICATED_WRITE_ACCESS and TIME_BASED_AUTHENTICATED_WRITE_ACCESS');

    // The payload: what would be stored.
    let payload: Uint8Array;
    if (aw) {
      if (data.length !== AUTHINFO_SIZE) return fail(EfiStatus.UNSUPPORTED, 'AUTHENTICATED_WRITE_ACCESS is deprecated');
      payload = data.subarray(data.length);
    } else if (at) {
      const dwLength = authentication2Length(data);
      if (dwLength === undefined)
        return fail(EfiStatus.SECURITY_VIOLATION, 'malformed EFI_VARIABLE_AUTHENTICATION_2 descriptor');
      payload = data.subarray(AUTHENTICATION2_AUTHINFO_OFFSET + dwLength);
    } else {
      payload = data;
    }
    if (payload.length > Limits.DATA_MAX)
      return fail(EfiStatus.OUT_OF_RESOURCES, `data of ${payload.length} bytes exceeds ${Limits.DATA_MAX}`);

    // MOR and MOR lock have their own rules (TCG Platform Reset Attack Mitigation, as varstored).
    if (this.is(Names.MemoryOverwriteRequestControl, name, guid)) return this.setMorControl(attributes, payload);
    if (this.is(Names.MemoryOverwriteRequestControlLock, name, guid)) return this.setMorLock(attributes, payload);

    const nameText = fromUtf16le(name);
    const check = uefiVariableCheck(nameText, guid, attributes, payload);
    if (check !== undefined) return check;

    const key = keyOf(name, guid);
    const existing = this.vars.get(key);
    if (existing !== undefined) {
      if (runtime && (existing.attributes & Attr.RUNTIME_ACCESS) === 0)
        return fail(EfiStatus.WRITE_PROTECTED, `${what} is not a runtime variable`);
      if (attributes !== 0 && (attributes & ~Attr.APPEND_WRITE) !== existing.attributes) {
        return fail(
          EfiStatus.INVALID_PARAMETER,
          `${what} has attributes ${formatAttributes(existing.attributes)}, not ${formatAttributes(attributes & ~Attr.APPEND_WRITE)}`,
        );
      }
      const ppi = this.checkPpiVariables(name, guid, payload);
      if (ppi !== undefined) return ppi;
    }

    // AuthVariableLibProcessVariable.
    const policyVariable = this.isPolicyVariable(name, guid);
    if (policyVariable) {
      if ((attributes & Attr.NON_VOLATILE) === 0 || !at)
        return fail(
          EfiStatus.INVALID_PARAMETER,
          `${nameText} must be written NV|BS|RT|AT with an authentication descriptor`,
        );
    } else if (aw) {
      return fail(EfiStatus.UNSUPPORTED, 'AUTHENTICATED_WRITE_ACCESS is deprecated');
    }
    if (at) return this.setAuthenticated(key, existing, { name, guid, attributes, data }, runtime);
    if (existing !== undefined && (existing.attributes & (AT | AW)) !== 0)
      return fail(EfiStatus.WRITE_PROTECTED, `${what} is authenticated: writes need a signed descriptor`);
    return this.update(key, existing, { name, guid, attributes, payload }, runtime);
  }

  private setAuthenticated(key: Key, existing: Variable | undefined, r: SetRequest, runtime: boolean): SetResult {
    if (this.authenticator === undefined)
      return fail(
        EfiStatus.SECURITY_VIOLATION,
        'authenticated writes cannot be verified: no authenticator is configured',
      );
    const append = (r.attributes & Attr.APPEND_WRITE) !== 0;
    const view: StoreView = {
      get: (n: Uint8Array, g: Uint8Array) => {
        const v = this.lookup(n, g);
        return v === undefined ? undefined : copyVariable(v);
      },
      setupMode: this.setupMode,
      authEnforce: this.platform.authEnforce,
    };
    let result: AuthResult;
    try {
      result = this.authenticator.verify(
        {
          name: copyBytes(r.name),
          guid: copyBytes(r.guid),
          attributes: r.attributes & ~Attr.APPEND_WRITE,
          append,
          data: copyBytes(r.data),
          ...(existing === undefined ? {} : { existing: copyVariable(existing) }),
        },
        view,
      );
    } catch (e) {
      return fail(
        EfiStatus.SECURITY_VIOLATION,
        `the authenticator failed: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
    if (result === null || typeof result !== 'object' || typeof result.status !== 'bigint')
      return fail(EfiStatus.SECURITY_VIOLATION, 'the authenticator returned no decision');
    if (result.status !== EfiStatus.SUCCESS) {
      return fail(result.status, result.reason ?? `authenticated write refused (${statusName(result.status)})`);
    }
    // Never store what was not explicitly approved.
    if (!(result.payload instanceof Uint8Array))
      return fail(EfiStatus.SECURITY_VIOLATION, 'the authenticator approved the write without a payload');
    if (
      result.timestamp !== undefined &&
      (!(result.timestamp instanceof Uint8Array) || result.timestamp.length !== 16)
    ) {
      return fail(EfiStatus.SECURITY_VIOLATION, 'the authenticator returned a malformed timestamp');
    }
    if (
      result.signerDigest !== undefined &&
      (!(result.signerDigest instanceof Uint8Array) || result.signerDigest.length !== SIGNER_DIGEST_SIZE)
    ) {
      return fail(EfiStatus.SECURITY_VIOLATION, 'the authenticator returned a malformed signer digest');
    }
    if (result.payload.length > Limits.DATA_MAX)
      return fail(EfiStatus.OUT_OF_RESOURCES, `data of ${result.payload.length} bytes exceeds ${Limits.DATA_MAX}`);
    const wasPk = this.is(Names.PK, r.name, r.guid);
    const outcome = this.update(
      key,
      existing,
      {
        name: r.name,
        guid: r.guid,
        attributes: r.attributes,
        payload: result.payload,
        timestamp: result.timestamp ?? new Uint8Array(16),
        ...(result.signerDigest === undefined ? {} : { signerDigest: result.signerDigest }),
      },
      runtime,
    );
    if (outcome.status === EfiStatus.SUCCESS && wasPk) this.refreshModes(runtime);
    return outcome;
  }

  /** edk2 UpdateVariable with varstored's limits: delete, append, replace or create. */
  private update(
    key: Key,
    existing: Variable | undefined,
    w: {
      name: Uint8Array;
      guid: Uint8Array;
      attributes: number;
      payload: Uint8Array;
      timestamp?: Uint8Array;
      signerDigest?: Uint8Array;
    },
    runtime: boolean,
  ): SetResult {
    const append = (w.attributes & Attr.APPEND_WRITE) !== 0;
    const stored = w.attributes & ~Attr.APPEND_WRITE;
    const what = describe(w.name, w.guid);
    let next: Variable | undefined;
    if (existing !== undefined) {
      if (runtime && (existing.attributes & Attr.NON_VOLATILE) === 0)
        return fail(EfiStatus.WRITE_PROTECTED, `${what} is volatile: read-only at runtime`);
      if (
        (!append && w.payload.length === 0) ||
        (w.attributes & (Attr.RUNTIME_ACCESS | Attr.BOOTSERVICE_ACCESS)) === 0
      ) {
        next = undefined;
      } else {
        const data = append ? concatBytes(existing.data, w.payload) : w.payload;
        if (data.length > Limits.DATA_MAX)
          return fail(
            EfiStatus.OUT_OF_RESOURCES,
            `${what} would hold ${data.length} bytes, more than ${Limits.DATA_MAX}`,
          );
        let timestamp = existing.timestamp;
        if (w.timestamp !== undefined)
          timestamp = append ? laterEfiTimeBytes(existing.timestamp, w.timestamp) : w.timestamp;
        next = makeVariable({
          name: existing.name,
          guid: existing.guid,
          attributes: existing.attributes,
          data,
          timestamp,
          signerDigest: w.signerDigest ?? existing.signerDigest,
        });
      }
    } else {
      if (append && w.payload.length === 0) return ok();
      if (w.payload.length === 0 || (w.attributes & (Attr.RUNTIME_ACCESS | Attr.BOOTSERVICE_ACCESS)) === 0)
        return fail(EfiStatus.NOT_FOUND, `no variable ${what} to delete`);
      if (runtime && ((stored & Attr.RUNTIME_ACCESS) === 0 || (stored & Attr.NON_VOLATILE) === 0)) {
        return fail(EfiStatus.INVALID_PARAMETER, 'at runtime only NV|BS|RT variables can be created');
      }
      next = makeVariable({
        name: w.name,
        guid: w.guid,
        attributes: stored,
        data: w.payload,
        ...(w.timestamp === undefined ? {} : { timestamp: w.timestamp }),
        ...(w.signerDigest === undefined ? {} : { signerDigest: w.signerDigest }),
      });
    }
    const used = this.usedStorage;
    const after = used - footprint(existing) + footprint(next);
    if (after > Limits.TOTAL_MAX && after > used)
      return fail(EfiStatus.OUT_OF_RESOURCES, `the store would hold ${after} bytes, more than ${Limits.TOTAL_MAX}`);
    if (next === undefined) this.removeVar(key);
    else this.putVar(key, next);
    const changed = existing === undefined || next === undefined || !variablesEqual(existing, next);
    return ok(changed && (isNv(existing) || isNv(next)));
  }

  private setMorControl(attributes: number, payload: Uint8Array): SetResult {
    const append = (attributes & Attr.APPEND_WRITE) !== 0;
    if (
      (attributes & ~Attr.APPEND_WRITE) !== Names.MemoryOverwriteRequestControl.attributes ||
      append ||
      payload.length !== 1
    ) {
      return fail(EfiStatus.INVALID_PARAMETER, 'MemoryOverwriteRequestControl takes one byte with attributes NV|BS|RT');
    }
    if ((payload[0]! & ~MOR_ACTION_VALID_MASK) !== 0)
      return fail(EfiStatus.INVALID_PARAMETER, 'MemoryOverwriteRequestControl has undefined bits');
    const lock = this.morLockState();
    if (lock === MorLockState.LOCKED_WITH_KEY || lock === MorLockState.LOCKED_WITHOUT_KEY)
      return fail(EfiStatus.WRITE_PROTECTED, 'MemoryOverwriteRequestControl is locked');
    this.putInternal(Names.MemoryOverwriteRequestControl, payload);
    // MOR is reset at every boot: nothing to make durable.
    return ok();
  }

  private setMorLock(attributes: number, payload: Uint8Array): SetResult {
    const attrs = attributes & ~Attr.APPEND_WRITE;
    const append = (attributes & Attr.APPEND_WRITE) !== 0;
    if (attrs === 0 || payload.length === 0)
      return fail(EfiStatus.WRITE_PROTECTED, 'MemoryOverwriteRequestControlLock cannot be deleted');
    if (
      attrs !== Names.MemoryOverwriteRequestControlLock.attributes ||
      append ||
      (payload.length !== 1 && payload.length !== MOR_KEY_SIZE)
    ) {
      return fail(
        EfiStatus.INVALID_PARAMETER,
        'MemoryOverwriteRequestControlLock takes 1 or 8 bytes with attributes NV|BS|RT',
      );
    }
    const state = this.morLockState();
    let nextState: number;
    if (payload.length === 1) {
      const v = payload[0]!;
      if (v === 0) {
        if (state === MorLockState.UNLOCKED) return ok();
        return fail(EfiStatus.ACCESS_DENIED, 'MOR is locked');
      } else if (v === 1) {
        if (state !== MorLockState.UNLOCKED) return fail(EfiStatus.ACCESS_DENIED, 'MOR is already locked');
        nextState = MorLockState.LOCKED_WITHOUT_KEY;
      } else {
        return fail(EfiStatus.INVALID_PARAMETER, 'MemoryOverwriteRequestControlLock takes 0 or 1');
      }
    } else if (state === MorLockState.UNLOCKED) {
      this.morKey = copyBytes(payload);
      nextState = MorLockState.LOCKED_WITH_KEY;
    } else if (state === MorLockState.LOCKED_WITHOUT_KEY) {
      return fail(EfiStatus.ACCESS_DENIED, 'MOR is locked without a key');
    } else if (!sameSecret(this.morKey, payload)) {
      // A wrong key locks MOR for good (until the next boot).
      this.putInternal(Names.MemoryOverwriteRequestControlLock, Uint8Array.of(MorLockState.LOCKED_WITHOUT_KEY));
      return fail(EfiStatus.ACCESS_DENIED, 'wrong MOR key');
    } else {
      nextState = MorLockState.UNLOCKED;
    }
    this.putInternal(Names.MemoryOverwriteRequestControlLock, Uint8Array.of(nextState));
    return ok();
  }

  private morLockState(): number {
    return (
      this.lookup(Names.MemoryOverwriteRequestControlLock.name, Names.MemoryOverwriteRequestControlLock.guid)
        ?.data[0] ?? MorLockState.UNLOCKED
    );
  }

  /** varstored's TCG2 physical-presence rules, for writes to existing variables. */
  private checkPpiVariables(name: Uint8Array, guid: Uint8Array, payload: Uint8Array): SetResult | undefined {
    if (this.is(Names.Tcg2PhysicalPresenceFlagsLock, name, guid)) {
      if (payload.length !== 1 || payload[0] !== 1)
        return fail(EfiStatus.INVALID_PARAMETER, 'Tcg2PhysicalPresenceFlagsLock can only be set to 1');
      return undefined;
    }
    if (this.is(Names.Tcg2PhysicalPresenceFlags, name, guid)) {
      const lock = this.lookup(Names.Tcg2PhysicalPresenceFlagsLock.name, Names.Tcg2PhysicalPresenceFlagsLock.guid);
      if (lock === undefined) return fail(EfiStatus.NOT_FOUND, 'Tcg2PhysicalPresenceFlagsLock is missing');
      if (lock.data.length !== 1 || lock.data[0] !== 0)
        return fail(EfiStatus.WRITE_PROTECTED, 'Tcg2PhysicalPresenceFlags is locked');
    }
    return undefined;
  }

  private secureBootAtBoot(pkEnrolled: boolean): 0 | 1 {
    return secureBootValue('varstored', { pkEnrolled, platformSecureBoot: this.platform.secureBoot });
  }

  /** SetupMode, DeployedMode and (before runtime) SecureBoot follow PK presence. */
  private refreshModes(runtime: boolean): void {
    const pk = !this.setupMode;
    const before = { setup: this.lookup(Names.SetupMode.name, Names.SetupMode.guid)?.data[0], sb: this.secureBoot };
    this.putInternal(Names.SetupMode, Uint8Array.of(pk ? 0 : 1));
    this.putInternal(Names.DeployedMode, Uint8Array.of(pk ? 1 : 0));
    // After ExitBootServices SecureBoot keeps describing the current boot (edk2).
    if (!runtime) this.putInternal(Names.SecureBoot, Uint8Array.of(this.secureBootAtBoot(pk)));
    if (before.setup !== (pk ? 0 : 1)) {
      this.log(
        'info',
        `${pk ? 'PK enrolled: user mode' : 'PK deleted: setup mode'}; SecureBoot=${this.secureBoot ? 1 : 0}`,
      );
    }
  }

  // -------------------------------------------------------------------------------------------
  // Helpers

  private isPolicyVariable(name: Uint8Array, guid: Uint8Array): boolean {
    return [Names.PK, Names.KEK, Names.db, Names.dbx, Names.dbt].some((b) => this.is(b, name, guid));
  }

  // Every change to `vars` goes through these three, which keep `order` in step.
  private putVar(key: Key, v: Variable): void {
    if (!this.vars.has(key)) this.order = undefined;
    this.vars.set(key, v);
  }

  private removeVar(key: Key): void {
    if (this.vars.delete(key)) this.order = undefined;
  }

  private replaceVars(vars: Map<Key, Variable>): void {
    this.vars = vars;
    this.order = undefined;
  }

  private enumeration(): { readonly keys: readonly Key[]; readonly at: ReadonlyMap<Key, number> } {
    if (this.order === undefined) {
      const keys = [...this.vars.keys()];
      this.order = { keys, at: new Map(keys.map((k, i) => [k, i])) };
    }
    return this.order;
  }

  private is(b: BuiltinName, name: Uint8Array, guid: Uint8Array): boolean {
    return guidEquals(b.guid, guid) && bytesEqual(b.name, name);
  }

  private lookup(name: Uint8Array, guid: Uint8Array): Variable | undefined {
    if (!(name instanceof Uint8Array) || !(guid instanceof Uint8Array) || guid.length !== 16) return undefined;
    return this.vars.get(keyOf(name, guid));
  }

  /** Sets a store-managed variable, bypassing guest rules; keeps its place in the enumeration. */
  private putInternal(b: BuiltinName, data: Uint8Array): void {
    const key = keyOf(b.name, b.guid);
    const existing = this.vars.get(key);
    this.putVar(
      key,
      makeVariable({
        name: b.name,
        guid: b.guid,
        attributes: existing?.attributes ?? b.attributes,
        data,
        ...(existing === undefined ? {} : { timestamp: existing.timestamp, signerDigest: existing.signerDigest }),
      }),
    );
  }

  private snapshot(): Snapshot {
    return {
      vars: new Map(this.vars),
      morKey: this.morKey.slice(),
      ppiFunc: this.ppiFunc.slice(),
      ppiIndex: this.ppiIdx,
    };
  }

  private restoreSnapshot(s: Snapshot): void {
    this.replaceVars(new Map(s.vars));
    this.morKey = s.morKey.slice();
    this.ppiFunc = s.ppiFunc.slice();
    this.ppiIdx = s.ppiIndex;
  }

  private openPending<R>(before: Snapshot, onRollback: () => R): PendingChange<R> {
    this.pendingOpen = true;
    let settled = false;
    // The store's own records, not copies: they are frozen and replaced, never changed in place, so
    // a write costs one list of references instead of a copy of every variable.
    const state: StoreState = {
      variables: [...this.vars.values()],
      morKey: this.morKey.slice(),
      ppi: { index: this.ppiIdx, func: this.ppiFunc.slice() },
      atRuntime: this.runtime,
    };
    return {
      state,
      commit: () => {
        if (settled) return;
        settled = true;
        this.pendingOpen = false;
      },
      rollback: () => {
        if (!settled) {
          settled = true;
          this.restoreSnapshot(before);
          this.pendingOpen = false;
        }
        return onRollback();
      },
    };
  }

  private encode(response: Response): Uint8Array {
    const out = new Uint8Array(encodedResponseSize(response));
    encodeResponse(response, out);
    return out;
  }

  private respond(request: Request, r: { response: Response; reason?: string }): DispatchOutcome {
    return withReason(
      { response: this.encode(r.response), command: r.response.command, status: r.response.status, request },
      r.reason,
    );
  }
}

function withReason(outcome: DispatchOutcome, reason: string | undefined): DispatchOutcome {
  return reason === undefined || outcome.status === EfiStatus.SUCCESS ? outcome : { ...outcome, reason };
}

function statusOutcome(status: bigint, reason: string): DispatchOutcome {
  const response = new Uint8Array(8);
  encodeStatus(status, response);
  return { response, status, reason };
}

function validPpiAccess(index: number, size: number): boolean {
  return (
    Number.isInteger(index) && index >= 0 && (size === 1 || size === 2 || size === 4) && index + size <= PPI_REGION_SIZE
  );
}

function fixedCopy(bytes: Uint8Array | undefined, size: number): Uint8Array {
  const out = new Uint8Array(size);
  if (bytes instanceof Uint8Array) out.set(bytes.subarray(0, size));
  return out;
}

/** Compares secrets without an early exit. */
function sameSecret(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

function describe(name: Uint8Array, guid: Uint8Array): string {
  const text = fromUtf16le(name.subarray(0, 256));
  return `${guid.length === 16 ? guidToText(guid) : '?'}:${text}${name.length > 256 ? '…' : ''}`;
}

/** A private copy of a loaded variable, or RangeError naming what is wrong. */
function validateLoaded(v: Variable): Variable {
  if (v === null || typeof v !== 'object' || !(v.name instanceof Uint8Array))
    throw new RangeError('a variable without a name');
  let name = v.name;
  // Old stores kept the terminator; a name is compared without it.
  while (name.length >= 2 && name[name.length - 2] === 0 && name[name.length - 1] === 0)
    name = name.subarray(0, name.length - 2);
  const label = v.guid instanceof Uint8Array && v.guid.length === 16 ? describe(name, v.guid) : 'a variable';
  const problem = nameProblem(name);
  if (problem !== undefined) throw new RangeError(`${label}: ${problem}`);
  if (name.length > Limits.NAME_MAX) throw new RangeError(`${label}: the name exceeds ${Limits.NAME_MAX} bytes`);
  if (!(v.guid instanceof Uint8Array) || v.guid.length !== 16)
    throw new RangeError(`${label}: the GUID is not 16 bytes`);
  if (!(v.data instanceof Uint8Array) || v.data.length === 0) throw new RangeError(`${label}: no data`);
  if (v.data.length > Limits.DATA_MAX)
    throw new RangeError(`${label}: ${v.data.length} bytes of data exceed ${Limits.DATA_MAX}`);
  const attributes = Number(v.attributes) >>> 0;
  const storable =
    Attr.NON_VOLATILE | Attr.BOOTSERVICE_ACCESS | Attr.RUNTIME_ACCESS | Attr.TIME_BASED_AUTHENTICATED_WRITE_ACCESS;
  if ((attributes & ~storable) !== 0 || (attributes & (Attr.BOOTSERVICE_ACCESS | Attr.RUNTIME_ACCESS)) === 0) {
    throw new RangeError(`${label}: attributes ${formatAttributes(attributes)} cannot be stored`);
  }
  return makeVariable({
    name,
    guid: v.guid,
    attributes,
    data: v.data,
    timestamp: v.timestamp,
    signerDigest: v.signerDigest,
  });
}
