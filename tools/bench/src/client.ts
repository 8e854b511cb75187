/**
 * The guest side of the trace benchmarks: one connection, one request at a time (a vCPU waits for
 * its answer), every reply checked against the one expected. Kept lean so that the client costs
 * the same against the daemon and against the echo server.
 */
import { createConnection, type Socket } from 'node:net';

function connect(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/**
 * Sends `frames` in order and resolves to the milliseconds from the first send to the last reply.
 * `expected` holds the reply each frame must get; `'echo'` expects the frame itself back; `'any'`
 * accepts any reply (a second pass over a daemon whose state the first pass changed).
 */
export async function runTrace(
  path: string,
  frames: readonly Buffer[],
  expected: readonly Buffer[] | 'echo' | 'any',
): Promise<number> {
  const socket = await connect(path);
  try {
    return await new Promise<number>((resolve, reject) => {
      let i = 0;
      let buffered: Buffer = Buffer.alloc(0);
      let started = 0;
      socket.on('error', reject);
      socket.on('close', () =>
        reject(new Error(`the server closed the connection after ${i} of ${frames.length} frames`)),
      );
      socket.on('data', (chunk: Buffer) => {
        buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
        if (buffered.length < 4) return;
        const m = buffered.readUInt32LE(0);
        if (buffered.length < 4 + m) return;
        const reply = buffered.subarray(0, 4 + m);
        const want = expected === 'echo' ? frames[i]! : expected === 'any' ? reply : expected[i]!;
        if (!reply.equals(want)) {
          reject(
            new Error(
              `frame ${i}: got ${reply.subarray(4, 20).toString('hex')}… (${m} bytes), expected ${want.subarray(4, 20).toString('hex')}… (${want.length - 4} bytes)`,
            ),
          );
          return;
        }
        buffered = buffered.subarray(4 + m);
        if (++i === frames.length) {
          resolve(performance.now() - started);
          return;
        }
        socket.write(frames[i]!);
      });
      started = performance.now();
      socket.write(frames[0]!);
    });
  } finally {
    socket.destroy();
  }
}
