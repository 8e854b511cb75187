/** Severity of a diagnostic; the daemon decides what to print. */
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

/**
 * What a transport (Xen ioreq server, guest-simulation socket) hands each guest access to. Calls are
 * never concurrent: one at a time, in arrival order, and the vCPU that made a request stays blocked
 * until its call settles.
 */
export interface GuestHandler {
  /**
   * `request` is a private 65536-byte copy of the guest's buffer, taken once, valid until the
   * returned promise settles (a transport may reuse it for the next request); with a synchronous
   * answer, until it returns. The bytes to write back from offset 0 (at most 65536), returned
   * directly when no I/O was needed, else as a promise. Never throws or rejects; if it does, or
   * answers something else, the guest gets EFI_DEVICE_ERROR.
   */
  handleCommand(request: Uint8Array): Uint8Array | Promise<Uint8Array>;
  /** A 1-, 2- or 4-byte read of the TPM PPI data port (0x108) at `index` (the PPI index register plus the byte offset within the port). */
  ppiRead(index: number, size: number): number;
  /** A 1-, 2- or 4-byte write of the TPM PPI data port (0x108) at `index`. */
  ppiWrite(index: number, size: number, value: number): Promise<void>;
}
