/** Test support: runs the built daemon (bin/varstored) as a child process, as a toolstack would. */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { basename, dirname } from 'node:path';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Firmware, GuestConnection } from '@vmsb/guest-sim';

export const VARSTORED = fileURLToPath(new URL('../../bin/varstored', import.meta.url));

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** Long enough for any start on a loaded machine; only there so a broken daemon fails the test instead of hanging it. */
const PATIENCE_MS = 20_000;

export class Daemon {
  stdout = '';
  stderr = '';
  readonly exited: Promise<Exit>;
  private exit: Exit | undefined;

  private constructor(
    readonly child: ChildProcess,
    /** Whether the daemon logs at info level, so that it announces "Ready". */
    private readonly logsInfo = true,
  ) {
    child.stdout!.setEncoding('utf8').on('data', (t: string) => (this.stdout += t));
    child.stderr!.setEncoding('utf8').on('data', (t: string) => (this.stderr += t));
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
  }

  static spawn(args: readonly string[]): Daemon {
    const level = args.includes('--log-level') ? args[args.indexOf('--log-level') + 1] : 'info';
    const logsInfo = level === 'info' || level === 'debug';
    return new Daemon(spawn(VARSTORED, args, { stdio: ['ignore', 'pipe', 'pipe'] }), logsInfo);
  }

  get pid(): number {
    return this.child.pid!;
  }

  get output(): string {
    return this.stdout + this.stderr;
  }

  /**
   * Resolves once `pidfile` holds this daemon's pid (the readiness signal) and, when it logs at info
   * level, its "Ready" line has arrived (so what it logged before readiness can be checked); rejects
   * if the daemon exits first.
   */
  async ready(pidfile: string): Promise<void> {
    const deadline = Date.now() + PATIENCE_MS;
    while (
      !existsSync(pidfile) ||
      readFileSync(pidfile, 'utf8') !== `${this.pid}\n` ||
      (this.logsInfo && !this.stdout.includes('info: Ready: serving'))
    ) {
      if (this.exit)
        throw new Error(`varstored exited (${JSON.stringify(this.exit)}) before it was ready:\n${this.output}`);
      if (Date.now() > deadline) throw new Error(`varstored did not become ready:\n${this.output}`);
      await sleep(5);
    }
  }

  /** Resolves once the daemon has logged `text`; rejects, with its output, if it exits first. */
  async logged(text: string): Promise<void> {
    const deadline = Date.now() + PATIENCE_MS;
    while (!this.output.includes(text)) {
      if (this.exit)
        throw new Error(
          `varstored exited (${JSON.stringify(this.exit)}) before logging ${JSON.stringify(text)}:\n${this.output}`,
        );
      if (Date.now() > deadline) throw new Error(`varstored did not log ${JSON.stringify(text)}:\n${this.output}`);
      await sleep(5);
    }
  }

  /** Waits for the exit; kills the daemon if it overstays. */
  async waitExit(): Promise<Exit> {
    const timer = setTimeout(() => this.child.kill('SIGKILL'), PATIENCE_MS);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<Exit> {
    if (this.exit) return this.exit;
    this.child.kill(signal);
    return this.waitExit();
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Resolves when `condition()` holds (polling); rejects after PATIENCE_MS so a bug cannot hang the run. */
export async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + PATIENCE_MS;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await sleep(2);
  }
}

export async function readPidfile(path: string): Promise<string> {
  return readFile(path, 'utf8');
}

/** Connects a guest to the daemon's socket and plays the firmware. */
export async function guest(
  socket: string,
): Promise<{ connection: GuestConnection; fw: Firmware; close(): Promise<void> }> {
  const connection = await GuestConnection.connect(socket);
  return { connection, fw: new Firmware(connection), close: () => connection.close() };
}

/** What a watcher of the pidfile saw at one moment: its content, or `absent`. */
export type PidfileSight = string | { absent: true };

/**
 * Watches `pidfile` as a toolstack waiting for readiness would, polling as fast as the event loop
 * allows while `daemon` starts: records every distinct state of the pidfile (absent, or its content)
 * until it holds the daemon's pid, and whether `socket` accepted a connection at that first sight.
 * Also notes any file other than the pidfile that appeared beside it and is still there at the end.
 */
export async function watchPidfile(
  daemon: Daemon,
  pidfile: string,
  socket: string,
): Promise<{ sights: PidfileSight[]; acceptedAtFirstSight: boolean | undefined }> {
  const deadline = Date.now() + PATIENCE_MS;
  const sights: PidfileSight[] = [];
  let acceptedAtFirstSight: boolean | undefined;
  const note = (sight: PidfileSight) => {
    const last = sights[sights.length - 1];
    if (JSON.stringify(last) !== JSON.stringify(sight)) sights.push(sight);
  };
  for (;;) {
    let sight: PidfileSight;
    try {
      sight = readFileSync(pidfile, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      sight = { absent: true };
    }
    note(sight);
    if (typeof sight === 'string' && acceptedAtFirstSight === undefined && sight !== sights[0]) {
      // The first sight of a pidfile this daemon made: the socket must already accept connections.
      acceptedAtFirstSight = await accepts(socket);
    }
    if (sight === `${daemon.pid}\n`) return { sights, acceptedAtFirstSight };
    if (Date.now() > deadline) throw new Error(`the pidfile never held the daemon's pid:\n${daemon.output}`);
    await new Promise((r) => setImmediate(r));
  }
}

/** Whether a Unix socket accepts a connection (closed at once). */
export function accepts(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(socket);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

/** Files beside `pidfile` whose names start with its own preceded by a dot (its temporary files). */
export function temporariesOf(pidfile: string): string[] {
  return readdirSync(dirname(pidfile)).filter((n) => n.startsWith(`.${basename(pidfile)}.`));
}
