// A process that enters varstored's sandbox through the production host binding (dist/host.js), then
// does one thing the test asks and reports on stdout, one JSON line per step. Started through
// build/Release/vmsb-launch with --depriv, as the daemon is, so it also runs in new namespaces.
//   vmsb-launch <node> sandbox-child.mjs --depriv   (VMSB_SANDBOX_CHILD='{"hostUrl","options","action","file"}')
import { spawnSync } from 'node:child_process';
import { pbkdf2 } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';

const { hostUrl, options, action, file } = JSON.parse(process.env.VMSB_SANDBOX_CHILD);
const host = await import(hostUrl);
const say = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);

// As the daemon: libuv's pool exists before the drop (RLIMIT_NPROC = 0 forbids new threads after it).
await stat('/');
host.enterSandbox(options);
say({ entered: true, namespaces: process.env[host.DEPRIV_NAMESPACES_ENV] ?? null });

const work = {
  // Stay alive for the test to look at /proc/<pid>.
  wait: () => new Promise(() => setInterval(() => {}, 1000)),
  // libuv's pool and the crypto thread pool still do work concurrently.
  threads: async () => {
    const digests = await Promise.all(
      Array.from(
        { length: 8 },
        (_, i) =>
          new Promise((ok, fail) =>
            pbkdf2('pw', `salt${i}`, 1000, 32, 'sha256', (e, k) => (e ? fail(e) : ok(k.length))),
          ),
      ),
    );
    await stat('/');
    return { digests };
  },
  // A thread created after the filter: clone3 answers ENOSYS, glibc falls back to clone(CLONE_THREAD).
  worker: () =>
    new Promise((ok, fail) => {
      const w = new Worker('require("node:worker_threads").parentPort.postMessage(6 * 7)', { eval: true });
      w.once('message', (m) => ok({ worker: m }));
      w.once('error', fail);
    }),
  // A new process (libuv forks before it execs): the filter ends this process.
  spawn: () => ({ spawned: spawnSync('/bin/true').error?.code ?? 'ran' }),
  setuid: () => {
    process.setuid(0);
    return { setuid: 'returned' };
  },
  setgid: () => {
    process.setgid(0);
    return { setgid: 'returned' };
  },
  // Give memory back under the filter: garbage (JavaScript objects and malloc'd buffers), then, each
  // on the test's SIGUSR2 once it has read /proc/<pid>, trimMemory() and a last wait.
  trim: async () => {
    // The handler is in place before the test is told to signal (SIGUSR2 would otherwise end the
    // process); the interval keeps the event loop alive, which a signal handler alone does not.
    let signals = 0;
    let wake = () => {};
    process.on('SIGUSR2', () => {
      signals++;
      wake();
    });
    const alive = setInterval(() => {}, 1000);
    const signalled = (n) =>
      new Promise((ok) => {
        wake = () => signals >= n && ok();
        wake();
      });
    let garbage = Array.from({ length: 20000 }, (_, i) => ({ i, text: `entry ${i}`, bytes: Buffer.alloc(512, i) }));
    say({ allocated: garbage.length });
    garbage = undefined;
    await signalled(1);
    const trim = host.trimMemory();
    say({ trimmed: trim.mallocReleased, heapShrank: trim.heapAfter < trim.heapBefore });
    await signalled(2);
    clearInterval(alive);
    return { survived: true };
  },
  // Grow a file past RLIMIT_FSIZE: EFBIG, and the process survives (SIGXFSZ is ignored).
  fsize: () => {
    const size = options.fileSizeLimit + 1;
    try {
      writeFileSync(file, Buffer.alloc(size, 1));
      return { fsize: 'written' };
    } catch (e) {
      return { fsize: e.code, kept: readFileSync(file).length };
    }
  },
  // Exactly at the limit: allowed.
  fsizeAtLimit: () => {
    writeFileSync(file, Buffer.alloc(options.fileSizeLimit, 1));
    return { fsize: readFileSync(file).length };
  },
};

say({ done: action, result: await work[action]() });
process.exit(0);
