/** What a transport calls for each guest access; see docs/architecture.md §1 and §3.2. */
export interface GuestHandler {
  /**
   * request: a private 65536-byte copy of the guest buffer, valid until the returned promise
   * settles (a transport may reuse it for the next request); with a synchronous answer, until it
   * returns. The bytes to write back from offset 0 (<= 65536), returned directly when no I/O was
   * needed, else as a promise. Never throws or rejects.
   */
  handleCommand(request: Uint8Array): Uint8Array | Promise<Uint8Array>;
  ppiRead(index: number, size: number): number;
  ppiWrite(index: number, size: number, value: number): Promise<void>;
}
