/** Test support: runs the built daemon (bin/varstored) as a child process, as a toolstack would. */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
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
