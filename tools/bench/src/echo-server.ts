/**
 * The baseline of the trace benchmarks: a trivial server speaking the guest-simulation framing
 * (`u32 LE n` + n bytes in, the same frame back). With `--durable <file> --size <bytes>`, a frame
 * that is a non-volatile SetVariable is answered only after a raw durable replace of a file of
 * that size (write, fsync, rename, directory fsync): the least any persistent store must do.
 *   node echo-server.js <socket> [--durable <file> --size <bytes>]
 * Prints "ready" once it listens.
 */
import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { dirname } from 'node:path';

const [path, ...rest] = process.argv.slice(2);
if (path === undefined) {
  process.stderr.write('usage: echo-server <socket> [--durable <file> --size <bytes>]\n');
  process.exit(2);
}
const durableAt = rest.indexOf('--durable');
const durable = durableAt === -1 ? undefined : rest[durableAt + 1];
const size = Number(rest[rest.indexOf('--size') + 1] ?? 0);
const blob = new Uint8Array(size).fill(0x5a);

/** Whether the frame is SetVariable with NON_VOLATILE (the only field parsed: its attributes). */
function isNonVolatileSet(frame: Buffer): boolean {
  if (frame.length < 8 || frame.readUInt32LE(0) !== 1 || frame.readUInt32LE(4) !== 1) return false;
  let at = 8;
  if (at + 8 > frame.length) return false;
  at += 8 + Number(frame.readBigUInt64LE(at)) + 16;
  if (at + 8 > frame.length) return false;
  at += 8 + Number(frame.readBigUInt64LE(at));
  return at + 4 <= frame.length && (frame.readUInt32LE(at) & 1) !== 0;
}

function replaceDurably(file: string): void {
  const temp = `${file}.tmp`;
  const fd = openSync(temp, 'w', 0o600);
  writeSync(fd, blob);
  fsyncSync(fd);
  closeSync(fd);
  renameSync(temp, file);
  const dir = openSync(dirname(file), 'r');
  fsyncSync(dir);
  closeSync(dir);
}

function serve(socket: Socket): void {
  let buffered: Buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    while (buffered.length >= 4) {
      const n = buffered.readUInt32LE(0);
      if (buffered.length < 4 + n) break;
      const frame = buffered.subarray(0, 4 + n);
      buffered = buffered.subarray(4 + n);
      if (durable !== undefined && isNonVolatileSet(frame.subarray(4))) replaceDurably(durable);
      socket.write(frame);
    }
  });
  socket.on('error', () => undefined);
}

const server = createServer(serve);
server.listen(path, () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
