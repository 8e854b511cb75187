/**
 * The guest-simulation transport (DESIGN.md §4.2): a Unix stream socket where one client at a
 * time plays the guest. Each call is `u32 LE n` + n bytes (n <= 65536: the start of the guest's
 * 64 KiB buffer, the rest being zero), answered with `u32 LE m` + the first m bytes of the buffer
 * after handling. A frame longer than the buffer, or a connection that ends mid-frame, closes that
 * connection; the daemon keeps serving.
 */
import { chmod, lstat, rm } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { Limits } from '@vmsb/protocol';
import type { GuestHandler } from '../guest-handler.js';
import type { Logger } from '../log.js';

export interface UnixTransportOptions {
  readonly path: string;
  readonly handler: Pick<GuestHandler, 'handleCommand'>;
  readonly log: Logger;
}

export interface UnixTransport {
  readonly path: string;
  /** Stops accepting, lets the request in flight finish and its answer go out, then closes everything. */
  close(): Promise<void>;
}

const HEADER = 4;
const BUFFER_SIZE = Limits.BUFFER_SIZE;

/** Takes over `path` if nothing serves it (a socket left by a daemon that died); refuses anything else. */
async function claimPath(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = (await lstat(path)).isSocket();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new Error(`${path}: ${(e as Error).message}`);
  }
  if (!isSocket) throw new Error(`${path} exists and is not a socket; not replacing it`);
  const live = await new Promise<boolean>((done) => {
    const probe = createConnection(path);
    probe.once('connect', () => {
      probe.destroy();
      done(true);
    });
    probe.once('error', () => done(false));
  });
  if (live) throw new Error(`${path}: another process is serving this socket`);
  await rm(path, { force: true });
}

export async function startUnixTransport(options: UnixTransportOptions): Promise<UnixTransport> {
  const { path, handler, log } = options;
  await claimPath(path);

  let nextId = 1;
  let active: Connection | undefined;
  const waiting: Socket[] = [];
  let stopping = false;

  const activateNext = (): void => {
    active = undefined;
    if (stopping) return;
    while (waiting.length > 0) {
      const socket = waiting.shift()!;
      if (!socket.destroyed) {
        active = new Connection(socket, nextId++, handler, log, activateNext);
        return;
      }
    }
  };

  const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', (e) => log.debug(`guest-sim: connection error: ${e.message}`));
    if (stopping) {
      socket.destroy();
      return;
    }
    if (active === undefined) {
      active = new Connection(socket, nextId++, handler, log, activateNext);
    } else {
      // One guest at a time: the others wait, unread, until it is their turn.
      socket.pause();
      waiting.push(socket);
      socket.once('close', () => {
        const i = waiting.indexOf(socket);
        if (i !== -1) waiting.splice(i, 1);
      });
    }
  });
  server.on('error', (e) => log.error(`guest-sim: ${path}: ${e.message}`));

  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(path, () => {
      server.off('error', fail);
      ok();
    });
  });
  // The socket plays guest memory: only this user may connect.
  await chmod(path, 0o600);

  return {
    path,
    close: async () => {
      stopping = true;
      const closed = new Promise<void>((done) => server.close(() => done()));
      for (const socket of waiting.splice(0)) socket.destroy();
      if (active !== undefined) await active.finish();
      await closed;
      await rm(path, { force: true }).catch(() => undefined);
    },
  };
}

class Connection {
  private readonly chunks: Buffer[] = [];
  private buffered = 0;
  /** The guest buffer, private to this connection; requests are served one at a time. */
  private readonly request = new Uint8Array(BUFFER_SIZE);
  /** How much of `request` the last frame wrote (the rest is still zero). */
  private used = 0;
  /** Reading stopped because a whole frame is already waiting. */
  private held = false;
  private busy: Promise<void> | undefined;
  private ended = false;
  private done = false;
  private stopping = false;

  constructor(
    private readonly socket: Socket,
    private readonly id: number,
    private readonly handler: Pick<GuestHandler, 'handleCommand'>,
    private readonly log: Logger,
    private readonly onClosed: () => void,
  ) {
    log.debug(`guest-sim: client ${id} connected`);
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      // Never hold more than one frame beyond the one being served.
      if (this.buffered >= HEADER + BUFFER_SIZE && !this.held) {
        this.held = true;
        socket.pause();
      }
      this.pump();
    });
    socket.on('end', () => {
      this.ended = true;
      this.pump();
    });
    socket.on('close', () => {
      if (this.done) return;
      this.done = true;
      log.debug(`guest-sim: client ${id} disconnected`);
      onClosed();
    });
    socket.resume();
  }

  /** Waits for the request in flight (if any) and its answer, then closes the connection. */
  async finish(): Promise<void> {
    this.stopping = true;
    if (this.busy !== undefined) await this.busy;
    this.socket.destroySoon();
    // A client that stopped reading must not hold up the daemon's exit.
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  private close(): void {
    this.socket.destroy();
  }

  private peekLength(): number {
    const head = this.chunks[0]!.length >= HEADER ? this.chunks[0]! : Buffer.concat(this.chunks);
    return head.readUInt32LE(0);
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    this.chunks.length = 0;
    if (all.length > n) this.chunks.push(all.subarray(n));
    this.buffered -= n;
    return all.subarray(0, n);
  }

  private pump(): void {
    if (this.busy !== undefined || this.socket.destroyed || this.stopping) return;
    if (this.buffered >= HEADER) {
      const n = this.peekLength();
      if (n > BUFFER_SIZE) {
        this.log.warn(`guest-sim: client ${this.id} sent a ${n}-byte frame, larger than the ${BUFFER_SIZE}-byte guest buffer; closing the connection`);
        this.close();
        return;
      }
      if (this.buffered >= HEADER + n) {
        const frame = this.take(HEADER + n);
        // The guest buffer: what the client sent, then zeros, in memory of our own. Only the part
        // the previous frame wrote needs zeroing again.
        if (this.used > n) this.request.fill(0, n, this.used);
        this.request.set(frame.subarray(HEADER));
        this.used = n;
        this.busy = this.serve(this.request);
        return;
      }
    }
    if (this.ended) {
      if (this.buffered > 0) {
        const expected = this.buffered >= HEADER ? `${HEADER + this.peekLength()}` : `at least ${HEADER}`;
        this.log.warn(`guest-sim: client ${this.id} closed mid-frame (${this.buffered} of ${expected} bytes); dropping it`);
        this.close();
      } else {
        this.socket.end();
      }
    }
  }

  private async serve(request: Uint8Array): Promise<void> {
    try {
      const response = await this.handler.handleCommand(request);
      if (response.length > BUFFER_SIZE) throw new Error(`response of ${response.length} bytes exceeds the guest buffer`);
      const out = Buffer.allocUnsafe(HEADER + response.length);
      out.writeUInt32LE(response.length, 0);
      out.set(response, HEADER);
      if (!this.socket.destroyed) this.socket.write(out);
    } catch (e) {
      this.log.error(`guest-sim: client ${this.id}: ${(e as Error).message}; closing the connection`);
      this.close();
    } finally {
      this.busy = undefined;
      if (!this.socket.destroyed) {
        if (this.held && this.buffered < HEADER + BUFFER_SIZE) {
          this.held = false;
          this.socket.resume();
        }
        this.pump();
      }
    }
  }
}
