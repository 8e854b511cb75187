import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../log.js';
import { startUnixTransport, type UnixTransport } from './unix.js';

let dir: string;
let transport: UnixTransport | undefined;
const lines: string[] = [];
const log = createLogger('debug', {
  stdout: { write: (t: string) => lines.push(t) },
  stderr: { write: (t: string) => lines.push(t) },
});

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmsb-unix-'));
  lines.length = 0;
});
afterEach(async () => {
  await transport?.close();
  transport = undefined;
  await rm(dir, { recursive: true, force: true });
});

/** A handler that records each request and answers with its first `echo` bytes reversed. */
function echoHandler(echo = 16) {
  const requests: Uint8Array[] = [];
  let release: (() => void) | undefined;
  let hold = false;
  return {
    requests,
    holdNext: () => {
      hold = true;
    },
    release: () => release?.(),
    handler: {
      handleCommand: async (request: Uint8Array): Promise<Uint8Array> => {
        requests.push(request.slice()); // the transport reuses its buffer once the reply is out
        if (hold) {
          hold = false;
          await new Promise<void>((r) => {
            release = r;
          });
        }
        return request.slice(0, echo).reverse();
      },
    },
  };
}

class Client {
  private data = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closed = false;
  constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.data = Buffer.concat([this.data, d]);
      for (const w of this.waiters.splice(0)) w();
    });
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w();
    });
  }
  static connect(path: string): Promise<Client> {
    return new Promise((ok, fail) => {
      const s = createConnection(path, () => ok(new Client(s)));
      s.once('error', fail);
    });
  }
  frame(payload: Uint8Array, declared = payload.length): void {
    const head = Buffer.alloc(4);
    head.writeUInt32LE(declared, 0);
    this.socket.write(Buffer.concat([head, payload]));
  }
  async read(n: number): Promise<Buffer> {
    while (this.data.length < n) {
      if (this.closed) throw new Error(`closed after ${this.data.length} bytes`);
      await new Promise<void>((r) => this.waiters.push(r));
    }
    const out = this.data.subarray(0, n);
    this.data = this.data.subarray(n);
    return out;
  }
  async reply(): Promise<Buffer> {
    const head = await this.read(4);
    return this.read(head.readUInt32LE(0));
  }
  async waitClosed(): Promise<void> {
    while (!this.closed) await new Promise<void>((r) => this.waiters.push(r));
  }
  get received(): number {
    return this.data.length;
  }
}

describe('guest-simulation transport', () => {
  it('hands the handler a zero-filled 64 KiB copy and frames its answer exactly', async () => {
    const h = echoHandler(16);
    const path = join(dir, 'sock');
    transport = await startUnixTransport({ path, handler: h.handler, log });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const c = await Client.connect(path);
    c.frame(Uint8Array.from([1, 2, 3, 4, 5]));
    const reply = await c.reply();
    expect(h.requests[0]!.length).toBe(65536);
    expect([...h.requests[0]!.subarray(0, 6)]).toEqual([1, 2, 3, 4, 5, 0]);
    expect(h.requests[0]!.every((b, i) => i < 5 || b === 0)).toBe(true);
    expect([...reply]).toEqual([...new Array(11).fill(0), 5, 4, 3, 2, 1]);
    // A full 65536-byte frame and an empty one are both legal.
    c.frame(new Uint8Array(65536).fill(7));
    expect((await c.reply()).length).toBe(16);
    c.frame(new Uint8Array(0));
    expect([...(await c.reply())]).toEqual(new Array(16).fill(0));
    c.socket.destroy();
  });

  it('answers pipelined frames in order, one at a time', async () => {
    const h = echoHandler(1);
    const path = join(dir, 'sock');
    transport = await startUnixTransport({ path, handler: h.handler, log });
    const c = await Client.connect(path);
    for (let i = 1; i <= 50; i++) c.frame(Uint8Array.of(i));
    for (let i = 1; i <= 50; i++) expect([...(await c.reply())]).toEqual([i]);
    c.socket.destroy();
  });

  it('stops serving a client that does not read its replies, holding about one reply and one request', async () => {
    // A GetVariable of a 57 KiB variable, pipelined without reading: each answer is 60 KiB.
    const REPLY = 60 * 1024;
    const FRAMES = 300;
    let served = 0;
    let queuedWhenServing = 0;
    const handler = {
      handleCommand: (request: Uint8Array): Uint8Array => {
        served++;
        const q = transport!.queued()!;
        queuedWhenServing = Math.max(queuedWhenServing, q.replyBytes);
        const reply = new Uint8Array(REPLY).fill(request[0]!);
        return reply;
      },
    };
    const path = join(dir, 'sock');
    transport = await startUnixTransport({ path, handler, log });
    const c = await Client.connect(path);
    c.socket.pause();
    for (let i = 0; i < FRAMES; i++) c.frame(Uint8Array.of(i & 0xff, 1, 2, 3));
    // Until the daemon has a reply the kernel would not take, and a little longer.
    while ((transport.queued()?.replyBytes ?? 0) === 0) await new Promise((r) => setTimeout(r, 5));
    const stalledAt = served;
    await new Promise((r) => setTimeout(r, 100));
    expect(served).toBe(stalledAt);
    expect(served).toBeLessThan(FRAMES);
    const q = transport.queued()!;
    expect(q.replyBytes).toBeLessThanOrEqual(4 + REPLY);
    expect(q.requestBytes).toBeLessThanOrEqual(2 * (4 + 65536));
    // Every request was served with nothing of the previous replies left in the daemon.
    expect(queuedWhenServing).toBe(0);
    // Once the client reads, every request is answered, in order.
    c.socket.resume();
    for (let i = 0; i < FRAMES; i++) {
      const reply = await c.reply();
      expect(reply.length).toBe(REPLY);
      expect(reply[0]).toBe(i & 0xff);
      expect(reply[REPLY - 1]).toBe(i & 0xff);
    }
    expect(served).toBe(FRAMES);
    c.socket.destroy();
  });

  it('closes a connection that announces more than 65536 bytes, and keeps serving', async () => {
    const h = echoHandler();
    const path = join(dir, 'sock');
    transport = await startUnixTransport({ path, handler: h.handler, log });
    const bad = await Client.connect(path);
    bad.frame(new Uint8Array(0), 65537);
    await bad.waitClosed();
    expect(h.requests).toHaveLength(0);
    expect(lines.join('')).toMatch(
      /warn: guest-sim: client 1 sent a 65537-byte frame, larger than the 65536-byte guest buffer/,
    );
    // Lengths with the top bit set are as large as they look, whether the header arrives whole or in pieces.
    for (const [declared, split] of [
      [0x8000_0000, false],
      [0xffff_ffff, false],
      [0xffff_ffff, true],
    ] as const) {
      const huge = await Client.connect(path);
      const head = Buffer.alloc(4);
      head.writeUInt32LE(declared, 0);
      if (split) {
        huge.socket.write(head.subarray(0, 1));
        await new Promise((r) => setTimeout(r, 20));
        huge.socket.write(head.subarray(1));
      } else {
        huge.socket.write(Buffer.concat([head, Buffer.alloc(16)]));
      }
      await huge.waitClosed();
      expect(lines.join('')).toContain(`sent a ${declared}-byte frame, larger than the 65536-byte guest buffer`);
    }
    expect(h.requests).toHaveLength(0);
    const good = await Client.connect(path);
    good.frame(Uint8Array.of(9));
    expect((await good.reply())[15]).toBe(9);
    good.socket.destroy();
  });

  it('drops a connection that ends mid-frame without handling the partial request', async () => {
    const h = echoHandler();
    const path = join(dir, 'sock');
    transport = await startUnixTransport({ path, handler: h.handler, log });
    const c = await Client.connect(path);
    const head = Buffer.alloc(4);
    head.writeUInt32LE(100, 0);
    c.socket.end(Buffer.concat([head, Buffer.alloc(10)]));
    await c.waitClosed();
    expect(h.requests).toHaveLength(0);
    expect(lines.join('')).toMatch(/client 1 closed mid-frame \(14 of 104 bytes\)/);
  });

  it('answers a request whose sender has already shut down its side', async () => {
    const h = echoHandler(2);
    const path = join(dir, 'sock');
    transport = await startUnixTransport({ path, handler: h.handler, log });
    const c = await Client.connect(path);
    const head = Buffer.alloc(4);
    head.writeUInt32LE(2, 0);
    c.socket.end(Buffer.concat([head, Buffer.of(1, 2)]));
    expect([...(await c.reply())]).toEqual([2, 1]);
  });

  it('serves one client at a time; the next waits until the first leaves', async () => {
    const h = echoHandler(1);
    const path = join(dir, 'sock');
    transport = await startUnixTransport({ path, handler: h.handler, log });
    const first = await Client.connect(path);
    first.frame(Uint8Array.of(1));
    await first.reply();
    const second = await Client.connect(path);
    second.frame(Uint8Array.of(2));
    first.frame(Uint8Array.of(3));
    expect([...(await first.reply())]).toEqual([3]);
    expect(second.received).toBe(0);
    expect(h.requests.map((r) => r[0])).toEqual([1, 3]);
    first.socket.destroy();
    expect([...(await second.reply())]).toEqual([2]);
    second.socket.destroy();
  });

  it('on close, finishes the request in flight and delivers its answer first', async () => {
    const h = echoHandler(1);
    const path = join(dir, 'sock');
    const t = await startUnixTransport({ path, handler: h.handler, log });
    const c = await Client.connect(path);
    h.holdNext();
    c.frame(Uint8Array.of(42));
    while (h.requests.length === 0) await new Promise((r) => setTimeout(r, 1));
    const closing = t.close();
    h.release();
    expect([...(await c.reply())]).toEqual([42]);
    await closing;
    await c.waitClosed();
    await expect(stat(path)).rejects.toThrow(/ENOENT/);
  });

  it('reassembles frames however their bytes are split, answering synchronous and asynchronous handlers in order', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ maxLength: 200 }), { minLength: 1, maxLength: 10 }),
        fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 20 }),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 10 }),
        async (payloads, cuts, deferred) => {
          const seen: Uint8Array[] = [];
          const handler = {
            // Reads answer synchronously, writes being saved later: both kinds, in any mix.
            handleCommand: (request: Uint8Array): Uint8Array | Promise<Uint8Array> => {
              const later = deferred[seen.length % deferred.length]!;
              seen.push(request.slice());
              const reply = request.slice(0, 8);
              return later ? new Promise((r) => setImmediate(() => r(reply))) : reply;
            },
          };
          const t = await startUnixTransport({ path: join(dir, `sock${run++}`), handler, log });
          try {
            const c = await Client.connect(join(dir, `sock${run - 1}`));
            const stream = Buffer.concat(
              payloads.map((p) => Buffer.concat([Buffer.from(Uint32Array.of(p.length).buffer), p])),
            );
            for (let at = 0, i = 0; at < stream.length; i++) {
              const end = Math.min(stream.length, at + cuts[i % cuts.length]!);
              c.socket.write(stream.subarray(at, end));
              at = end;
              await new Promise((r) => setImmediate(r));
            }
            for (const p of payloads) {
              const want = new Uint8Array(8);
              want.set(p.subarray(0, 8));
              expect([...(await c.reply())]).toEqual([...want]);
            }
            expect(seen).toHaveLength(payloads.length);
            for (const [i, p] of payloads.entries()) {
              expect(Buffer.from(seen[i]!.subarray(0, p.length)).equals(p)).toBe(true);
              // The rest of the guest buffer is zero, whatever the frames before it held.
              expect(seen[i]!.subarray(p.length).every((b) => b === 0)).toBe(true);
            }
            c.socket.destroy();
          } finally {
            await t.close();
          }
        },
      ),
      { numRuns: 25 },
    );
  });

  it('takes over a socket left by a dead daemon, but not a live one or a regular file', async () => {
    const path = join(dir, 'sock');
    const first = await startUnixTransport({ path, handler: echoHandler().handler, log });
    await expect(startUnixTransport({ path, handler: echoHandler().handler, log })).rejects.toThrow(
      /another process is serving this socket/,
    );
    await first.close();
    // A stale socket file: its daemon was killed without cleaning up.
    spawnSync(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`,
    ]);
    expect((await stat(path)).isSocket()).toBe(true);
    await writeFile(join(dir, 'file'), 'x');
    await expect(startUnixTransport({ path: join(dir, 'file'), handler: echoHandler().handler, log })).rejects.toThrow(
      /exists and is not a socket/,
    );
    transport = await startUnixTransport({ path, handler: echoHandler().handler, log });
  });
});
