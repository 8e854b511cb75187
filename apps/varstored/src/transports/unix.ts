/**
 * The guest-simulation transport (docs/architecture.md §3.2): a Unix stream socket where one client at a
 * time plays the guest. Each call is `u32 LE n` + n bytes (n <= 65536: the start of the guest's
 * 64 KiB buffer, the rest being zero), answered with `u32 LE m` + the first m bytes of the buffer
 * after handling. A frame longer than the buffer, or a connection that ends mid-frame, closes that
 * connection; the daemon keeps serving.
 */
import { writeSync } from 'node:fs';
import { chmod, lstat, rm } from 'node:fs/promises';
import { createConnection, createServer, Socket, type Server } from 'node:net';
import { Limits } from '@vmsb/protocol';
import type { GuestHandler } from '@vmsb/protocol';
import type { Logger } from '../log.js';

export interface UnixTransportOptions {
  readonly path: string;
  readonly handler: Pick<GuestHandler, 'handleCommand'>;
  readonly log: Logger;
}

export interface UnixTransport {
  readonly path: string;
  /**
   * What the connection being served holds in memory: replies written but not yet taken by the
   * kernel, and request bytes read ahead of the one being served. Bounded by backpressure to about
   * two frames each, whatever the client does (tests read it; undefined when no client is served).
   */
  queued(): { readonly replyBytes: number; readonly requestBytes: number } | undefined;
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

  /** Serves `socket` as the guest; false (the socket closed, and logged) if it cannot be read. */
  const activate = (socket: Socket): boolean => {
    const id = nextId++;
    try {
      active = new Connection(socket, id, handler, log, activateNext);
      return true;
    } catch (e) {
      log.error(`guest-sim: client ${id}: cannot serve the connection: ${(e as Error).message}`);
      socket.destroy();
      return false;
    }
  };

  const activateNext = (): void => {
    active = undefined;
    if (stopping) return;
    while (waiting.length > 0) {
      const socket = waiting.shift()!;
      if (!socket.destroyed && activate(socket)) return;
    }
  };

  // Accepted sockets start paused: a waiting client is not read until its turn, and the active one
  // is read through Connection's own buffer.
  const server: Server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
    socket.on('error', (e) => log.debug(`guest-sim: connection error: ${e.message}`));
    if (stopping) {
      socket.destroy();
      return;
    }
    if (active === undefined) {
      activate(socket);
    } else {
      // One guest at a time: the others wait, unread, until it is their turn.
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
    queued: () => active?.queued(),
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

/**
 * Re-wraps an accepted socket so that reads land in `buffer` (Node's `onread` option) instead of a
 * fresh allocation per read pushed through the stream machinery: that machinery was the largest
 * cost per request. net.Server has no `onread` option, so this takes the accepted socket's handle
 * (`_handle`, undocumented but unchanged since Node 12) and detaches the original from it; the
 * original is then destroyed, which releases the server's count of it without closing anything.
 */
function adoptWithReadBuffer(
  socket: Socket,
  buffer: Uint8Array,
  onRead: (bytes: number) => boolean,
): { socket: Socket; fd: number | undefined } {
  const original = socket as unknown as { _handle: object | null };
  const handle = original._handle;
  if (handle === null || typeof handle !== 'object')
    throw new Error('this Node.js version gives accepted sockets no handle to read from');
  const adopted = new Socket({
    handle,
    allowHalfOpen: true,
    readable: true,
    writable: true,
    // Every reply the kernel does not take at once makes write() return false and 'drain' follow.
    writableHighWaterMark: 1,
    onread: { buffer, callback: onRead },
  } as ConstructorParameters<typeof Socket>[0]);
  original._handle = null;
  socket.destroy();
  // The descriptor, for replies written directly (see Connection.reply); a handle without one is
  // written through the stream only.
  const fd = (handle as { fd?: unknown }).fd;
  return { socket: adopted, fd: typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : undefined };
}

class Connection {
  private readonly socket: Socket;
  /** The socket's descriptor, for replies written with one write(2); undefined: through the stream. */
  private fd: number | undefined;
  /** A reply's frame (length, then the response), reused: a reply written directly is not kept. */
  private readonly replyBuffer = Buffer.allocUnsafe(HEADER + BUFFER_SIZE);
  /** Where the kernel's bytes land, one read at a time; parsed at once into `request`. */
  private readonly readBuffer = Buffer.allocUnsafe(HEADER + BUFFER_SIZE);
  /** The guest buffer, private to this connection; requests are served one at a time. */
  private readonly request = new Uint8Array(BUFFER_SIZE);
  /** How much of `request` the last frame wrote (the rest is still zero). */
  private used = 0;
  /** The frame being received: header bytes so far, then its length and body bytes so far. */
  private readonly header = Buffer.alloc(HEADER);
  private headerHave = 0;
  private frameLength = 0;
  private bodyHave = 0;
  /** Bytes that arrived while a request was in flight, kept (copied) until it is answered. */
  private readonly held: Buffer[] = [];
  private heldBytes = 0;
  private busy: Promise<void> | undefined;
  /** A reply is waiting in the socket for the client to read it: no more requests are served until it drains. */
  private draining = false;
  private ended = false;
  private done = false;
  private stopping = false;

  constructor(
    accepted: Socket,
    private readonly id: number,
    private readonly handler: Pick<GuestHandler, 'handleCommand'>,
    private readonly log: Logger,
    onClosed: () => void,
  ) {
    log.debug(`guest-sim: client ${id} connected`);
    const adopted = adoptWithReadBuffer(accepted, this.readBuffer, (n) => this.onRead(n));
    this.socket = adopted.socket;
    this.fd = adopted.fd;
    this.socket.on('error', (e) => log.debug(`guest-sim: connection error: ${e.message}`));
    this.socket.on('end', () => {
      this.ended = true;
      this.atRest();
    });
    this.socket.on('close', () => {
      if (this.done) return;
      this.done = true;
      log.debug(`guest-sim: client ${id} disconnected`);
      onClosed();
    });
    // Flowing, so that 'end' is emitted; the data itself only ever reaches onRead.
    this.socket.resume();
  }

  queued(): { readonly replyBytes: number; readonly requestBytes: number } {
    return { replyBytes: this.socket.writableLength, requestBytes: this.heldBytes };
  }

  /** Whether the next frame must wait: a request in flight, or a reply the client has not read yet. */
  private get blocked(): boolean {
    return this.busy !== undefined || this.draining;
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

  /** `n` new bytes at the start of readBuffer; returning false stops reading until resumed. */
  private onRead(n: number): boolean {
    const bytes = this.readBuffer.subarray(0, n);
    if (this.blocked || this.held.length > 0) {
      // Never hold more than one frame beyond the one being served.
      this.hold(bytes);
      return this.heldBytes < HEADER + BUFFER_SIZE;
    }
    const used = this.consume(bytes);
    // A request went asynchronous, or its reply waits for the client: keep what follows for later.
    if (used < bytes.length) this.hold(bytes.subarray(used));
    return this.heldBytes < HEADER + BUFFER_SIZE;
  }

  private hold(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.held.push(Buffer.from(bytes));
    this.heldBytes += bytes.length;
  }

  /**
   * Parses `bytes` into frames, serving each as it completes, until a request is in flight (or
   * the connection is closing); returns how many bytes it took.
   */
  private consume(bytes: Uint8Array): number {
    let at = 0;
    while (at < bytes.length) {
      if (this.blocked || this.socket.destroyed || this.stopping) return at;
      if (this.headerHave < HEADER) {
        let n: number;
        if (this.headerHave === 0 && bytes.length - at >= HEADER) {
          // The usual case, a whole header in this read: no staging through `header`.
          n = (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0;
          this.headerHave = HEADER;
          at += HEADER;
        } else {
          const take = Math.min(HEADER - this.headerHave, bytes.length - at);
          this.header.set(bytes.subarray(at, at + take), this.headerHave);
          this.headerHave += take;
          at += take;
          if (this.headerHave < HEADER) return at;
          n = this.header.readUInt32LE(0);
        }
        if (n > BUFFER_SIZE) {
          this.log.warn(
            `guest-sim: client ${this.id} sent a ${n}-byte frame, larger than the ${BUFFER_SIZE}-byte guest buffer; closing the connection`,
          );
          this.close();
          return at;
        }
        // The guest buffer: what the client sends, then zeros. Only the part the previous frame
        // wrote needs zeroing again.
        if (this.used > n) this.request.fill(0, n, this.used);
        this.used = n;
        this.frameLength = n;
        this.bodyHave = 0;
      } else {
        const take = Math.min(this.frameLength - this.bodyHave, bytes.length - at);
        this.request.set(bytes.subarray(at, at + take), this.bodyHave);
        this.bodyHave += take;
        at += take;
      }
      if (this.bodyHave === this.frameLength) {
        this.headerHave = 0;
        this.serve(this.request);
      }
    }
    return at;
  }

  /** Answers `request`: at once when the handler answers synchronously, else when its promise settles. */
  private serve(request: Uint8Array): void {
    let result: Uint8Array | Promise<Uint8Array>;
    try {
      result = this.handler.handleCommand(request);
    } catch (e) {
      this.fail(e);
      return;
    }
    if (!(result instanceof Promise)) {
      this.reply(result);
      return;
    }
    this.busy = result
      .then(
        (response) => this.reply(response),
        (e: unknown) => this.fail(e),
      )
      .finally(() => {
        this.busy = undefined;
        if (!this.draining) this.resumeHeld();
      });
  }

  /** After an asynchronous answer or a drained reply: parses what arrived meanwhile, then reads again. */
  private resumeHeld(): void {
    while (this.held.length > 0 && !this.blocked && !this.socket.destroyed && !this.stopping) {
      const chunk = this.held[0]!;
      const used = this.consume(chunk);
      this.heldBytes -= used;
      if (used < chunk.length) this.held[0] = chunk.subarray(used);
      else this.held.shift();
    }
    if (this.blocked || this.socket.destroyed || this.stopping) return;
    this.socket.resume();
    this.atRest();
  }

  /** Once nothing is buffered or in flight: a client that has ended gets its side closed too. */
  private atRest(): void {
    if (!this.ended || this.blocked || this.held.length > 0 || this.socket.destroyed || this.stopping) return;
    if (this.headerHave > 0) {
      const expected = this.headerHave < HEADER ? `at least ${HEADER}` : `${HEADER + this.frameLength}`;
      const have = this.headerHave < HEADER ? this.headerHave : HEADER + this.bodyHave;
      this.log.warn(`guest-sim: client ${this.id} closed mid-frame (${have} of ${expected} bytes); dropping it`);
      this.close();
    } else {
      this.socket.end();
    }
  }

  private reply(response: Uint8Array): void {
    if (response.length > BUFFER_SIZE) {
      this.fail(new Error(`response of ${response.length} bytes exceeds the guest buffer`));
      return;
    }
    if (this.socket.destroyed) return;
    const out = this.replyBuffer;
    out.writeUInt32LE(response.length, 0);
    out.set(response, HEADER);
    const length = HEADER + response.length;
    // One write(2) straight to the socket when nothing is queued in the stream before it: the
    // stream's machinery (a write request, then a tick to finish it) cost more than the write itself
    // per reply (BENCHMARKS.md, read-trace). What the kernel does not take at once (a full socket
    // buffer: EAGAIN or a short write) goes through the stream, as a copy, with backpressure below.
    let written = 0;
    if (this.fd !== undefined && this.socket.writableLength === 0) {
      try {
        written = writeSync(this.fd, out, 0, length);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'EAGAIN' && code !== 'EWOULDBLOCK') {
          this.log.debug(`guest-sim: client ${this.id}: cannot write a reply: ${(e as Error).message}`);
          this.close();
          return;
        }
      }
    }
    if (written === length) return;
    // Backpressure: a reply the kernel could not take at once waits in the socket; serve nothing
    // more (and, once a frame is held, read nothing more) until the client has read enough for
    // the socket to drain. With a high-water mark of one byte, any write left pending emits 'drain'.
    this.socket.write(Buffer.from(out.subarray(written, length)));
    if (this.socket.writableLength > 0 && !this.draining) {
      this.draining = true;
      const drained = (): void => {
        this.socket.off('drain', drained);
        this.socket.off('close', drained);
        this.draining = false;
        if (this.busy === undefined) this.resumeHeld();
      };
      this.socket.on('drain', drained);
      this.socket.on('close', drained);
    }
  }

  private fail(e: unknown): void {
    this.log.error(`guest-sim: client ${this.id}: ${(e as Error).message}; closing the connection`);
    this.close();
  }
}
