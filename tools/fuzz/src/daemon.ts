/**
 * Runs the built varstored daemon as a separate process on the guest-simulation transport with
 * the file backend, the way the fault tests, the daemon fuzz target and the benchmarks need it:
 * started, awaited until ready by the contract (the pidfile appears only once it serves), stopped
 * with SIGTERM or killed with SIGKILL.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/**
 * The daemon's entry point in a built checkout (apps/varstored/dist/cli.js), or VMSB_VARSTORED
 * when set (to measure or test another build of the daemon against this one's harness).
 */
export function varstoredEntry(): string {
  if (process.env.VMSB_VARSTORED) return process.env.VMSB_VARSTORED;
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('varstored/package.json')), 'dist', 'cli.js');
}

export interface DaemonOptions {
  /** Holds the socket, the pidfile and (by default) the NVRAM file. */
  readonly dir: string;
  /** The file backend's file. Default `<dir>/nvram.vars`. */
  readonly nvramPath?: string;
  /** First-boot auth files. Default `<dir>/auth` (absent: nothing is provisioned). */
  readonly authDir?: string;
  readonly secureBoot?: boolean;
  readonly authEnforce?: boolean;
  /** Words put before `node <daemon>`: `['prlimit', '--fsize=4096', '--']`, `['taskset', '-c', '0']`. */
  readonly wrapper?: readonly string[];
  readonly extraArgs?: readonly string[];
  /** Node options for the daemon's process (e.g. `--cpu-prof`). */
  readonly nodeArgs?: readonly string[];
  readonly logLevel?: 'error' | 'warn' | 'info' | 'debug';
  /** Give up waiting for readiness after this long (default 20 s). */
  readonly readyTimeoutMs?: number;
  readonly domid?: number;
}

export interface DaemonExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** Daemons still running, killed if this process exits first (a harness never leaves one behind). */
const live = new Set<ChildProcess>();
let exitHook = false;
function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
}

export class DaemonProcess {
  readonly socketPath: string;
  readonly pidfilePath: string;
  readonly nvramPath: string;
  /** Everything the daemon wrote, for diagnostics. */
  stdout = '';
  stderr = '';
  /** performance.now() when spawn was called and when readiness was seen. */
  spawnedAt = 0;
  readyAt = 0;
  readonly exited: Promise<DaemonExit>;
  private exitStatus: DaemonExit | undefined;

  private constructor(
    private readonly child: ChildProcess,
    options: DaemonOptions,
  ) {
    this.socketPath = join(options.dir, 'sock');
    this.pidfilePath = join(options.dir, 'varstored.pid');
    this.nvramPath = options.nvramPath ?? join(options.dir, 'nvram.vars');
    child.stdout?.setEncoding('utf8');
    child.stderr?.setEncoding('utf8');
    child.stdout?.on('data', (t: string) => {
      this.stdout = tail(this.stdout + t);
    });
    child.stderr?.on('data', (t: string) => {
      this.stderr = tail(this.stderr + t);
    });
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitStatus = { code, signal };
        resolve(this.exitStatus);
      });
    });
  }

  /** The daemon's pid (the wrapper's, which execs into it, when there is a wrapper). */
  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.exitStatus === undefined;
  }

  /** Spawns the daemon and resolves once it is ready; rejects with its output if it exits or times out first. */
  static async start(options: DaemonOptions): Promise<DaemonProcess> {
    const dir = options.dir;
    const args = [
      ...(options.nodeArgs ?? []),
      varstoredEntry(),
      '--domain',
      String(options.domid ?? 1),
      '--transport',
      `unix:${join(dir, 'sock')}`,
      '--backend',
      'file',
      '--arg',
      `path:${options.nvramPath ?? join(dir, 'nvram.vars')}`,
      '--arg',
      `auth-dir:${options.authDir ?? join(dir, 'auth')}`,
      '--pidfile',
      join(dir, 'varstored.pid'),
      '--platform',
      `secureboot=${options.secureBoot ?? true}`,
      '--platform',
      `auth-enforce=${options.authEnforce ?? true}`,
      '--log-level',
      options.logLevel ?? 'warn',
      ...(options.extraArgs ?? []),
    ];
    const wrapper = options.wrapper ?? [];
    const [command, ...rest] =
      wrapper.length > 0 ? [...wrapper, process.execPath, ...args] : [process.execPath, ...args];
    // Watch before spawning so that the pidfile's appearance cannot be missed.
    // A pidfile left by a daemon that was killed names another pid: only ours means ready.
    let expected = '';
    const ready = waitForFile(dir, 'varstored.pid', () => expected);
    const spawnedAt = performance.now();
    const child = spawn(command!, rest, { stdio: ['ignore', 'pipe', 'pipe'] });
    track(child);
    expected = `${child.pid}\n`;
    const daemon = new DaemonProcess(child, options);
    daemon.spawnedAt = spawnedAt;
    const timeout = options.readyTimeoutMs ?? 20_000;
    let timer: NodeJS.Timeout | undefined;
    try {
      const outcome = await Promise.race([
        ready.promise.then(() => 'ready' as const),
        daemon.exited.then(() => 'exited' as const),
        new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), timeout);
        }),
      ]);
      if (outcome === 'ready') {
        daemon.readyAt = ready.seenAt;
        return daemon;
      }
      if (outcome === 'exited') {
        const status = await daemon.exited;
        throw new Error(
          `varstored exited before it was ready (${status.code ?? status.signal}):\n${daemon.stderr}${daemon.stdout}`,
        );
      }
      child.kill('SIGKILL');
      throw new Error(`varstored was not ready after ${timeout} ms:\n${daemon.stderr}${daemon.stdout}`);
    } catch (e) {
      if (daemon.running) {
        child.kill('SIGKILL');
        await daemon.exited;
      }
      throw e;
    } finally {
      clearTimeout(timer);
      ready.close();
    }
  }

  /** SIGTERM (the daemon finishes the request in flight, then exits 0), then wait for the exit. */
  async stop(): Promise<DaemonExit> {
    if (this.running) this.child.kill('SIGTERM');
    return this.exited;
  }

  /** SIGKILL: the daemon gets no chance to finish anything. */
  async kill(): Promise<DaemonExit> {
    if (this.running) this.child.kill('SIGKILL');
    return this.exited;
  }

  /** VmRSS of the daemon in bytes (Linux), or undefined when it is gone. */
  async rss(): Promise<number | undefined> {
    const status = await readFile(`/proc/${this.pid}/status`, 'utf8').catch(() => undefined);
    const match = status?.match(/^VmRSS:\s+(\d+)\s+kB$/m);
    return match ? Number(match[1]) * 1024 : undefined;
  }
}

function tail(text: string): string {
  return text.length > 65536 ? text.slice(-65536) : text;
}

/** Resolves when `name` in `dir` holds `content()` (inotify, with a slow poll as a safety net). */
function waitForFile(
  dir: string,
  name: string,
  content: () => string,
): { promise: Promise<void>; seenAt: number; close(): void } {
  let watcher: FSWatcher | undefined;
  let poll: NodeJS.Timeout | undefined;
  const handle = {
    seenAt: 0,
    promise: undefined as unknown as Promise<void>,
    close: () => {
      watcher?.close();
      clearInterval(poll);
    },
  };
  handle.promise = new Promise<void>((resolve) => {
    let done = false;
    const check = (): void => {
      if (done) return;
      readFile(join(dir, name), 'utf8').then(
        (text) => {
          if (done || content() === '' || text !== content()) return;
          done = true;
          handle.seenAt = performance.now();
          handle.close();
          resolve();
        },
        () => undefined,
      );
    };
    try {
      watcher = watch(dir, (_event, file) => {
        if (file === name) check();
      });
    } catch {
      // No inotify: the poll below still finds it.
    }
    poll = setInterval(check, 25);
  });
  return handle;
}
