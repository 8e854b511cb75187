/**
 * The guest's end of varstored's guest-simulation socket (`--transport unix:<path>`): each call
 * sends `u32 LE n` + the first n bytes of the 64 KiB buffer and reads back `u32 LE m` + m bytes.
 */
import { createConnection, type Socket } from 'node:net';
import {
  type AsyncRequestHandler,
  type DecodedResponse,
  FirmwareClient,
  Limits,
  ProtocolError,
  type Request,
} from '@vmsb/protocol';

export class GuestConnection {
  private readonly chunks: Buffer[] = [];
  private buffered = 0;
  private waiter: (() => void) | undefined;
  private ended = false;
  private failure: Error | undefined;
  private busy = false;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      this.wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', (e) => {
      this.failure = e;
      this.wake();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
  }

  /** Connects to the daemon's socket. */
  static connect(path: string): Promise<GuestConnection> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(path);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new GuestConnection(socket));
      });
      socket.once('error', reject);
    });
  }

  /**
   * Sends one raw frame: `payload` is what the guest put at the start of its buffer (at most
   * 65536 bytes; longer frames are sent as they are, to exercise the daemon's checks). Resolves to
   * the reply's bytes.
   */
  async exchange(payload: Uint8Array, declaredLength = payload.length): Promise<Uint8Array> {
    if (this.busy) throw new Error('one call at a time: the guest vCPU is blocked until the answer');
    this.busy = true;
    try {
      const header = Buffer.alloc(4);
      header.writeUInt32LE(declaredLength >>> 0, 0);
      this.socket.write(Buffer.concat([header, payload]));
      const head = await this.read(4);
      const length = head.readUInt32LE(0);
      if (length > Limits.BUFFER_SIZE)
        throw new Error(`the daemon answered ${length} bytes, more than the ${Limits.BUFFER_SIZE}-byte buffer`);
      return new Uint8Array(await this.read(length));
    } finally {
      this.busy = false;
    }
  }

  /** The transport of a FirmwareClient: the encoded request alone goes on the wire, as a frame. */
  readonly handler: AsyncRequestHandler = (buffer, length) => this.exchange(buffer.subarray(0, length));

  /** Encodes `request` as OVMF would, exchanges it, and decodes the answer for that command. */
  async call(request: Request): Promise<DecodedResponse> {
    try {
      return { ok: true, response: await new FirmwareClient(this.handler).call(request) };
    } catch (e) {
      if (e instanceof ProtocolError) return { ok: false, reason: e.message };
      throw e;
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed) {
        resolve();
        return;
      }
      this.socket.once('close', () => resolve());
      this.socket.end();
    });
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  private async read(n: number): Promise<Buffer> {
    while (this.buffered < n) {
      if (this.failure) throw this.failure;
      if (this.ended) throw new Error(`the daemon closed the connection (${this.buffered} of ${n} bytes received)`);
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
    const all = Buffer.concat(this.chunks);
    this.chunks.length = 0;
    if (all.length > n) this.chunks.push(all.subarray(n));
    this.buffered -= n;
    return all.subarray(0, n);
  }
}
