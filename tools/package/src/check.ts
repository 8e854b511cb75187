/**
 * `pnpm package --check` and the package test: unpack the tarball into an empty directory and run
 * its programs there with every system `node` made unreachable, as on a dom0 without Node.js.
 *
 * Hiding needs root: each program runs in a private mount namespace (unshare -m) where a stub is
 * bind-mounted over every `node` binary on the machine; the stub records that it was run. Only the
 * package under test runs in the namespace; the guest (the guest simulator) is this process.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  readlinkSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { type BootReport, Firmware, GuestConnection, runOvmfBoot } from '@vmsb/guest-sim';
import { PROGRAM_NAMES } from './bundle.js';

export interface CheckOptions {
  readonly tarball: string;
  /** Parent of the scratch directory (default: the system's temporary directory). */
  readonly workDir?: string;
  readonly keep?: boolean;
  readonly log?: (line: string) => void;
}

export interface CheckReport {
  readonly steps: string[];
  readonly boots: { readonly setupMode: BootReport; readonly enforcing: BootReport; readonly depriv: BootReport };
  readonly status: { readonly before: string; readonly after: unknown };
  readonly xen: { readonly code: number | null; readonly stderr: string };
}

/** Long enough for a start on a loaded machine; only there so that a broken package fails instead of hanging. */
const PATIENCE_MS = 30_000;

export class CheckFailed extends Error {}

/** The ids the sandboxed daemon runs as (nobody/nogroup on Debian). */
const NOBODY = 65534;

/** The `node` binaries a program could reach on this machine (PATH, the usual places, ours). */
export function systemNodes(): string[] {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/local/bin', '/bin', '/usr/sbin'];
  const found = new Set<string>();
  for (const dir of dirs) {
    if (!dir) continue;
    for (const name of ['node', 'nodejs']) {
      const file = join(dir, name);
      if (existsSync(file)) found.add(realpathSync(file));
    }
  }
  found.add(realpathSync(process.execPath));
  return [...found].sort();
}

/** Runs the package's programs. */
export interface Runner {
  run(command: readonly string[]): { code: number | null; stdout: string; stderr: string };
  spawn(command: readonly string[]): ChildProcess;
}

/** Runs commands as they are (for measurements; the check hides the system node). */
export class PlainRunner implements Runner {
  constructor(private readonly cwd: string) {}
  run(command: readonly string[]) {
    const r = spawnSync(command[0]!, command.slice(1), { cwd: this.cwd, encoding: 'utf8', timeout: PATIENCE_MS });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }
  spawn(command: readonly string[]): ChildProcess {
    return spawn(command[0]!, command.slice(1), { cwd: this.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  }
}

/** Runs commands from the unpacked tree with the system's node hidden. */
export class HiddenNode implements Runner {
  readonly marker: string;
  private readonly prelude: string;

  /** Commands run in `scratch` (a backup `varstore enroll` writes lands there). */
  constructor(private readonly scratch: string) {
    if (process.getuid?.() !== 0)
      throw new CheckFailed('hiding the system node needs root (a private mount namespace)');
    this.marker = join(scratch, 'system-node-was-run');
    const stub = join(scratch, 'hidden-node');
    writeFileSync(
      stub,
      `#!/bin/sh\necho "$0 $*" >>${shellQuote(this.marker)}\necho "system node used: $0" >&2\nexit 127\n`,
    );
    chmodSync(stub, 0o755);
    this.prelude = systemNodes()
      .map((n) => `mount --bind ${shellQuote(stub)} ${shellQuote(n)} || exit 125`)
      .join('\n');
  }

  private argv(command: readonly string[]): string[] {
    return [
      '--mount',
      '--propagation',
      'private',
      '--',
      '/bin/sh',
      '-c',
      `${this.prelude}\nexec "$@"`,
      'vmsb-check',
      ...command,
    ];
  }

  run(command: readonly string[]): { code: number | null; stdout: string; stderr: string } {
    const r = spawnSync('unshare', this.argv(command), { cwd: this.scratch, encoding: 'utf8', timeout: PATIENCE_MS });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  spawn(command: readonly string[]): ChildProcess {
    return spawn('unshare', this.argv(command), { cwd: this.scratch, stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** Whatever ran the stub, one line each. */
  used(): string {
    return existsSync(this.marker) ? readFileSync(this.marker, 'utf8') : '';
  }
}

export async function checkPackage(options: CheckOptions): Promise<CheckReport> {
  const log = options.log ?? (() => {});
  const scratch = mkdtempSync(join(options.workDir ?? tmpdir(), 'vmsb-check-'));
  const steps: string[] = [];
  const step = (s: string) => {
    steps.push(s);
    log(`check: ${s}`);
  };
  try {
    const root = join(scratch, 'root');
    mkdirSync(root);
    execFileSync('tar', ['-xzf', options.tarball, '-C', root]);
    const expected = PROGRAM_NAMES.map((p) => (p === 'varstored' ? `usr/sbin/${p}` : `usr/bin/${p}`));
    for (const e of [...expected, 'usr/lib/vmsb/bin/node']) {
      const file = join(root, e);
      if (!existsSync(file) || (statSync(file).mode & 0o111) === 0)
        throw new CheckFailed(`${e} is missing or not executable`);
    }
    const modules = findNamed(root, 'node_modules');
    if (modules.length > 0) throw new CheckFailed(`the package contains node_modules: ${modules.join(', ')}`);
    step(`unpacked ${expected.length} programs and the runtime into an empty directory`);

    const hidden = new HiddenNode(scratch);
    const control = hidden.run(['node', '-e', '0']);
    if (control.code === 0 || !hidden.used()) {
      throw new CheckFailed(`the system node is still reachable in the namespace (node -e 0 exited ${control.code})`);
    }
    rmSync(hidden.marker);
    step('the system node is hidden (node -e 0 runs the stub)');

    const bin = (p: string) => join(root, p === 'varstored' ? 'usr/sbin' : 'usr/bin', p);
    const nvram = join(scratch, 'nvram.vars');
    const authDir = join(scratch, 'no-auth');
    mkdirSync(authDir);

    const setupMode = await serveBoot(hidden, bin('varstored'), scratch, nvram, authDir, []);
    if (setupMode.setupMode !== 1 || setupMode.secureBoot !== 0) {
      throw new CheckFailed(`first boot: SetupMode=${setupMode.setupMode}, SecureBoot=${setupMode.secureBoot}`);
    }
    step(`varstored served a first boot over unix: (${setupMode.trace.length} calls, setup mode)`);

    // status exits 1 in setup mode (documented in varstore --help): Secure Boot cannot be enforced yet.
    const before = expectExit(hidden.run([bin('varstore'), 'status', nvram]), 1, 'varstore status (setup mode)');
    if (!/setup/.test(before)) throw new CheckFailed(`varstore status does not report setup mode:\n${before}`);
    step('varstore status read the NVRAM (setup mode)');

    const keys = join(scratch, 'keys');
    expectOk(
      hidden.run([bin('varstore'), 'keys', 'create', '--out', keys, '--cn', 'vmsb package check']),
      'varstore keys create',
    );
    for (const f of ['PK.auth', 'KEK.auth', 'db.auth']) {
      if (!existsSync(join(keys, f))) throw new CheckFailed(`varstore keys create did not write ${f}`);
    }
    expectOk(
      hidden.run([
        bin('varstore'),
        'enroll',
        nvram,
        '--pk',
        join(keys, 'PK.auth'),
        '--kek',
        join(keys, 'KEK.der'),
        '--db',
        join(keys, 'db.der'),
        '--microsoft-kek',
        'all',
        '--microsoft-db',
        'all',
        '--dbx',
        'bundled',
      ]),
      'varstore enroll',
    );
    const after = JSON.parse(
      expectOk(hidden.run([bin('varstore'), 'status', nvram, '--json']), 'varstore status --json'),
    ) as {
      mode?: string;
    };
    if (after.mode !== 'user') throw new CheckFailed(`after enroll, status says mode ${after.mode}`);
    step(
      'varstore keys create and enroll (its PK.auth, KEK and db certificates, Microsoft KEK/db, bundled dbx): user mode',
    );

    const enforcing = await serveBoot(hidden, bin('varstored'), scratch, nvram, authDir, [
      '--platform',
      'secureboot=true',
    ]);
    if (enforcing.secureBoot !== 1 || enforcing.setupMode !== 0) {
      throw new CheckFailed(
        `boot with Secure Boot on: SecureBoot=${enforcing.secureBoot}, SetupMode=${enforcing.setupMode}`,
      );
    }
    step(`varstored served a boot with Secure Boot enforcing (${enforcing.trace.length} calls)`);

    // The sandbox from the package: vmsb-launch's namespaces, chroot, ids, seccomp; every module
    // the daemon needs is in its bundle, since nothing outside the chroot is reachable afterwards.
    const jail = join(scratch, 'jail');
    mkdirSync(join(jail, 'vm'), { recursive: true });
    chownSync(join(jail, 'vm'), NOBODY, NOBODY);
    copyFileSync(nvram, join(jail, 'vm', 'nvram.vars'));
    chownSync(join(jail, 'vm', 'nvram.vars'), NOBODY, NOBODY);
    // The pidfile appears at readiness, after the drop: its directory must be writable by nobody.
    const run = join(scratch, 'run');
    mkdirSync(run);
    chmodSync(run, 0o1777);
    const sandboxed = await startDaemon(hidden, bin('varstored'), run, 'sandboxed', '/vm/nvram.vars', '/none', [
      ...['--platform', 'secureboot=true', '--depriv', '--chroot', jail],
      ...['--uid', String(NOBODY), '--gid', String(NOBODY)],
    ]);
    let depriv: BootReport;
    try {
      const pid = sandboxed.child.pid!;
      for (const ns of ['mnt', 'net', 'ipc', 'uts']) {
        if (readlinkSync(`/proc/${pid}/ns/${ns}`) === readlinkSync(`/proc/self/ns/${ns}`)) {
          throw new CheckFailed(`varstored --depriv runs in this process's ${ns} namespace`);
        }
      }
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      if (!new RegExp(`^Uid:\\s+${NOBODY}\\s`, 'm').test(status) || !/^Seccomp:\s+2/m.test(status)) {
        throw new CheckFailed(`varstored --depriv is not sandboxed:\n${status}`);
      }
      depriv = await sandboxed.boot();
      await sandboxed.stop();
    } finally {
      sandboxed.kill();
    }
    if (depriv.secureBoot !== 1) throw new CheckFailed(`sandboxed boot: SecureBoot=${depriv.secureBoot}`);
    step(
      `varstored --depriv --chroot --uid --gid served a Secure Boot boot from its namespaces, uid ${NOBODY} and seccomp (${depriv.trace.length} calls)`,
    );

    const xenRun = hidden.run([
      bin('varstored'),
      '--domain',
      '1',
      '--transport',
      'xen',
      '--backend',
      'file',
      '--arg',
      `path:${join(scratch, 'xen.vars')}`,
    ]);
    if (xenRun.code === 0 || xenRun.code === null || xenRun.code > 2) {
      throw new CheckFailed(`varstored --transport xen exited ${xenRun.code}:\n${xenRun.stderr}`);
    }
    if (!/Xen transport is unavailable/.test(xenRun.stderr) || /\n\s+at /.test(xenRun.stderr)) {
      throw new CheckFailed(`varstored --transport xen did not fail cleanly:\n${xenRun.stderr}`);
    }
    step(`varstored --transport xen failed cleanly (exit ${xenRun.code}: ${lastLine(xenRun.stderr)})`);

    for (const tool of PROGRAM_NAMES.filter((p) => p.startsWith('varstore-'))) {
      const r = hidden.run([bin(tool), '-h']);
      if (r.code !== 0 || !/usage/i.test(r.stdout + r.stderr)) {
        throw new CheckFailed(`${tool} -h exited ${r.code}:\n${r.stdout}${r.stderr}`);
      }
    }
    step('varstore-{ls,get,set,rm,sb-state} -h ran');

    const used = hidden.used();
    if (used) throw new CheckFailed(`a program ran the system node:\n${used}`);
    step('no program touched the system node');
    return {
      steps,
      boots: { setupMode, enforcing, depriv },
      status: { before, after },
      xen: { code: xenRun.code, stderr: xenRun.stderr },
    };
  } finally {
    if (!options.keep) rmSync(scratch, { recursive: true, force: true });
  }
}

/** Starts the packaged daemon on the file store and the guest-simulation socket, plays an OVMF boot, stops it. */
async function serveBoot(
  runner: Runner,
  varstored: string,
  scratch: string,
  nvram: string,
  authDir: string,
  extra: readonly string[],
): Promise<BootReport> {
  const daemon = await startDaemon(runner, varstored, scratch, 'varstored', nvram, authDir, extra);
  try {
    const report = await daemon.boot();
    await daemon.stop();
    return report;
  } finally {
    daemon.kill();
  }
}

export interface RunningDaemon {
  readonly child: ChildProcess;
  /** Spawn until the pidfile held the pid (its readiness signal), in ms. */
  readonly startMs: number;
  boot(): Promise<BootReport>;
  /** SIGTERM; rejects unless it exits 0. */
  stop(): Promise<void>;
  kill(): void;
}

/** Starts varstored (file backend, unix transport) and resolves once it is ready. */
export async function startDaemon(
  runner: Runner,
  varstored: string,
  dir: string,
  name: string,
  nvram: string,
  authDir: string,
  extra: readonly string[],
): Promise<RunningDaemon> {
  const socket = join(dir, `${name}.sock`);
  const pidfile = join(dir, `${name}.pid`);
  rmSync(pidfile, { force: true });
  const started = performance.now();
  const child = runner.spawn([
    varstored,
    '--domain',
    '1',
    '--transport',
    `unix:${socket}`,
    '--backend',
    'file',
    '--arg',
    `path:${nvram}`,
    '--arg',
    `auth-dir:${authDir}`,
    '--pidfile',
    pidfile,
    ...extra,
  ]);
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (t: string) => (output += t));
  child.stderr!.setEncoding('utf8').on('data', (t: string) => (output += t));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  void exited.then((e) => (exit = e));
  const deadline = Date.now() + PATIENCE_MS;
  try {
    while (!existsSync(pidfile) || readFileSync(pidfile, 'utf8') !== `${child.pid}\n`) {
      if (exit) throw new CheckFailed(`varstored exited (${JSON.stringify(exit)}) before it was ready:\n${output}`);
      if (Date.now() > deadline) throw new CheckFailed(`varstored did not become ready:\n${output}`);
      await new Promise((r) => setTimeout(r, 1));
    }
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  const startMs = performance.now() - started;
  return {
    child,
    startMs,
    async boot() {
      const connection = await GuestConnection.connect(socket);
      try {
        return await runOvmfBoot(new Firmware(connection));
      } finally {
        await connection.close();
      }
    },
    async stop() {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), PATIENCE_MS);
      const e = await exited;
      clearTimeout(timer);
      if (e.code !== 0)
        throw new CheckFailed(`varstored did not stop cleanly on SIGTERM (${JSON.stringify(e)}):\n${output}`);
    },
    kill() {
      if (!exit) child.kill('SIGKILL');
    },
  };
}

function expectOk(r: { code: number | null; stdout: string; stderr: string }, what: string): string {
  return expectExit(r, 0, what);
}

function expectExit(r: { code: number | null; stdout: string; stderr: string }, code: number, what: string): string {
  if (r.code !== code) throw new CheckFailed(`${what} exited ${r.code}, not ${code}:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

function lastLine(text: string): string {
  const lines = text.trim().split('\n');
  return lines[lines.length - 1] ?? '';
}

function findNamed(dir: string, name: string, base = dir): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const file = join(dir, entry.name);
    if (entry.name === name) found.push(file.slice(base.length + 1));
    if (entry.isDirectory()) found.push(...findNamed(file, name, base));
  }
  return found;
}

export function shellQuote(s: string): string {
  return `'${s.replaceAll("'", "'\\''")}'`;
}
