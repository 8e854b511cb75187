/** Severity of a message from the ioreq server; the daemon decides what to print. */
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

export type Logger = (level: LogLevel, message: string) => void;

/**
 * What the guest's requests are handed to. Calls are never concurrent: the server runs one at a time,
 * in arrival order, and the vCPU that made a request stays blocked until its call settles.
 */
export interface GuestHandler {
  /**
   * `request` is a private 65536-byte copy of the guest's buffer, taken once when the guest wrote the
   * buffer's frame number to port 0x100. The bytes to write back from offset 0 (at most 65536),
   * returned directly (the request is then completed before this poll wake-up returns) or as a
   * promise. Should never throw or reject; if it does, or answers something else, the guest gets
   * EFI_DEVICE_ERROR.
   */
  handleCommand(request: Uint8Array): Uint8Array | Promise<Uint8Array>;
  /** A 1-, 2- or 4-byte read of the TPM PPI data port (0x108) at `index` (the PPI index register plus the byte offset within the port). */
  ppiRead(index: number, size: number): number;
  /** A 1-, 2- or 4-byte write of the TPM PPI data port (0x108) at `index`. */
  ppiWrite(index: number, size: number, value: number): Promise<void>;
}

export interface StartIoreqServerOptions {
  /** The HVM guest, 1..32751. */
  domid: number;
  handler: GuestHandler;
  log?: Logger;
}

/** A running ioreq server serving ports 0x100-0x10B of one domain. */
export interface IoreqServer {
  /** vCPUs of the domain, one event channel each. */
  readonly vcpus: number;
  /**
   * Stops taking requests, answers every request already raised (through the handler, in order),
   * then unclaims the ports and destroys the server. Idempotent.
   */
  close(): Promise<void>;
}

export interface DropPrivilegesOptions {
  /** Directory to chroot into (the working directory becomes its root). */
  chroot?: string;
  /** User to become; 0 or absent leaves it unchanged (as varstored's --uid 0). */
  uid?: number;
  /** Group to become, and the only supplementary group; 0 or absent leaves it unchanged. */
  gid?: number;
  /** varstored's --depriv: rlimits, PR_SET_NO_NEW_PRIVS and the seccomp filter (see `@vmsb/xen/host`). */
  depriv: boolean;
  /** RLIMIT_FSIZE under depriv, in bytes: the largest file the process writes. */
  fileSizeLimit?: number;
}

export type Availability = { ok: true } | { ok: false; reason: string };
