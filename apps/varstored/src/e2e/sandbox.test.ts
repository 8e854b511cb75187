/**
 * The daemon's sandbox and locks, end to end: the built daemon (bin/varstored, through its launcher)
 * started as the toolstack starts it, checked from outside in /proc/<pid> while it serves a guest,
 * and the locks that keep one writer per NVRAM and per pidfile.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import {
  chmod,
  chown,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createHash } from 'node:crypto';
import { Attributes, runOvmfBoot, VendorGuids } from '@vmsb/guest-sim';
import { decodeVarsBlob, VarsBlob } from '@vmsb/nvram';
import { EfiStatus, fromUtf16le, Limits } from '@vmsb/protocol';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEPRIV_FILE_SIZE_LIMIT } from '../main.js';
import { Daemon, guest, readPidfile, temporariesOf, watchPidfile } from './harness.js';

const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;
const OWNER = '77fa9abd-0359-4d32-bd60-28f4e78f784b';
const hostModule = join(dirname(createRequire(import.meta.url).resolve('@vmsb/xen/package.json')), 'dist', 'host.js');

let dir: string;
let keys: string;
const daemons: Daemon[] = [];
const children: ChildProcess[] = [];

beforeAll(async () => {
  keys = await mkdtemp(join(tmpdir(), 'vmsb-sandbox-keys-'));
});
afterAll(async () => {
  await rm(keys, { recursive: true, force: true });
});
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmsb-sandbox-'));
});
afterEach(async () => {
  for (const d of daemons.splice(0)) await d.stop('SIGKILL');
  for (const c of children.splice(0)) c.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

/** A self-signed key and its ESL, and `variable` set to `esl` signed by `signer`, as efitools writes an .auth. */
function makeKey(name: string): void {
  const base = join(keys, name);
  execFileSync(
    'openssl',
    [
      'req',
      '-new',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-sha256',
      '-days',
      '3650',
      '-subj',
      `/CN=vmsb sandbox ${name}/`,
      '-keyout',
      `${base}.key`,
      '-out',
      `${base}.crt`,
    ],
    { stdio: 'ignore' },
  );
  execFileSync('cert-to-efi-sig-list', ['-g', OWNER, `${base}.crt`, `${base}.esl`], { stdio: 'ignore' });
}

function signed(variable: string, esl: string, signer: string): Uint8Array {
  const out = join(keys, `${variable}-${esl}-by-${signer}.auth`);
  execFileSync(
    'sign-efi-sig-list',
    [
      '-g',
      OWNER,
      '-k',
      join(keys, `${signer}.key`),
      '-c',
      join(keys, `${signer}.crt`),
      variable,
      join(keys, `${esl}.esl`),
      out,
    ],
    { stdio: 'ignore' },
  );
  return new Uint8Array(readFileSync(out));
}

function field(status: string, name: string): string {
  return new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)?.[1]?.trim().replace(/\s+/g, ' ') ?? '';
}

function limit(limits: string, name: string): string {
  const line = limits.split('\n').find((l) => l.startsWith(name));
  return line ? line.slice(name.length).trim().split(/\s+/).slice(0, 2).join(' ') : '';
}

function fileArgs(
  extra: string[],
  nvram = join(dir, 'nvram.vars'),
  pidfile = join(dir, 'varstored.pid'),
  socket = join(dir, 'sock'),
): string[] {
  return [
    '--domain',
    '7',
    '--transport',
    `unix:${socket}`,
    '--backend',
    'file',
    '--arg',
    `path:${nvram}`,
    '--pidfile',
    pidfile,
    '--arg',
    `auth-dir:${join(dir, 'auth')}`,
    ...extra,
  ];
}

async function start(args: string[], pidfile = join(dir, 'varstored.pid')): Promise<Daemon> {
  const d = Daemon.spawn(args);
  daemons.push(d);
  await d.ready(pidfile);
  return d;
}

/** Another process holding an exclusive lockf() lock on `path` through the host binding. */
async function holdLock(path: string): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const h = await import(${JSON.stringify(hostModule)}); const a = h.lockFile(${JSON.stringify(path)}, { create: true }); console.log(a.ok); setInterval(() => {}, 1000);`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  children.push(child);
  const line = await new Promise<string>((ok) => child.stdout!.once('data', (d: Buffer) => ok(d.toString().trim())));
  expect(line).toBe('true');
  return child;
}

describe.skipIf(!isRoot)('--depriv --chroot --uid --gid (root only: namespaces, chroot and set*id need root)', () => {
  beforeAll(() => {
    for (const name of ['PK', 'KEK', 'stranger']) makeKey(name);
  });

  /** A chroot owned by nobody, and a sticky world-writable directory (as /tmp) for the pidfile. */
  async function sandboxDirs(): Promise<{ root: string; pidfile: string }> {
    const root = join(dir, 'root');
    await mkdir(root, { mode: 0o755 });
    await chown(root, NOBODY, NOBODY);
    const run = join(dir, 'run');
    await mkdir(run);
    await chmod(run, 0o1777);
    return { root, pidfile: join(run, 'varstored.pid') };
  }

  const sandboxed = (root: string) => ['--chroot', root, '--uid', String(NOBODY), '--gid', String(NOBODY), '--depriv'];

  it('the pidfile appears by a rename after the drop, once the socket accepts, holding "<pid>\\n"; no host directory stays open; a second daemon is refused; SIGTERM empties it from inside the chroot', async () => {
    const { root, pidfile } = await sandboxDirs();
    const socket = join(dir, 'sock');
    const d = Daemon.spawn(fileArgs(sandboxed(root), '/nvram.vars', pidfile, socket));
    daemons.push(d);
    const { sights, acceptedAtFirstSight } = await watchPidfile(d, pidfile, socket);
    expect(sights).toEqual([{ absent: true }, `${d.pid}\n`]);
    expect(acceptedAtFirstSight).toBe(true);
    await d.logged('Ready');
    expect(readFileSync(`/proc/${d.pid}/status`, 'utf8')).toMatch(/^Seccomp:\s+2$/m);
    expect(temporariesOf(pidfile)).toEqual([]);
    // Created by root before the drop, handed to nobody so that it may rename it in the sticky directory.
    const st = await stat(pidfile);
    expect([st.uid, st.gid, st.mode & 0o777]).toEqual([NOBODY, NOBODY, 0o600]);

    const second = Daemon.spawn(fileArgs([], join(dir, 'other.vars'), pidfile, join(dir, 'sock2')));
    daemons.push(second);
    expect(await second.waitExit()).toEqual({ code: 1, signal: null });
    expect(second.stderr).toBe(
      `error: Failed to lock pidfile '${pidfile}': it is held by another varstored (pid ${d.pid})\n`,
    );
    expect(await readPidfile(pidfile)).toBe(`${d.pid}\n`);
    // A descriptor of a directory outside the chroot would undo it (openat(fd, "..")).
    const fds = await readdir(`/proc/${d.pid}/fd`);
    const targets = await Promise.all(fds.map((fd) => readlink(`/proc/${d.pid}/fd/${fd}`).catch(() => '')));
    expect(targets).not.toContain(dirname(pidfile));

    expect(await d.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    // The host path is out of reach inside the chroot: emptied, so no stale pid reads as ready.
    expect(await readFile(pidfile, 'utf8')).toBe('');
    expect(temporariesOf(pidfile)).toEqual([]);
  });

  it('replaces a stale pidfile under the sandbox, and removes the temporary file when the start fails after the drop', async () => {
    const { root, pidfile } = await sandboxDirs();
    const socket = join(dir, 'sock');
    await writeFile(pidfile, '4194304\n');
    const d = Daemon.spawn(fileArgs(sandboxed(root), '/nvram.vars', pidfile, socket));
    daemons.push(d);
    const { sights, acceptedAtFirstSight } = await watchPidfile(d, pidfile, socket);
    // Absent in between (the stale one is removed at start), unless the watcher was not scheduled then.
    expect(sights.filter((s) => typeof s === 'string')).toEqual(['4194304\n', `${d.pid}\n`]);
    expect(acceptedAtFirstSight).toBe(true);
    expect(await d.stop('SIGTERM')).toEqual({ code: 0, signal: null });

    // An NVRAM file the daemon cannot decode: it fails after the drop, inside the chroot.
    await writeFile(join(root, 'nvram.vars'), 'not a VARS blob');
    const failed = Daemon.spawn(fileArgs(sandboxed(root), '/nvram.vars', pidfile, socket));
    daemons.push(failed);
    expect(await failed.waitExit()).toEqual({ code: 1, signal: null });
    expect(failed.stdout).toMatch(/^info: Privileges dropped/m);
    await expect(stat(pidfile)).rejects.toThrow(/ENOENT/);
    expect(temporariesOf(pidfile)).toEqual([]);
  });

  it('refuses --transport unix: with a pidfile in a directory the dropped ids cannot write, saying so', async () => {
    const { root } = await sandboxDirs();
    const pidfile = join(dir, 'varstored.pid');
    const d = Daemon.spawn(fileArgs(sandboxed(root), '/nvram.vars', pidfile));
    daemons.push(d);
    expect(await d.waitExit()).toEqual({ code: 1, signal: null });
    expect(d.stderr).toBe(
      `error: --pidfile ${pidfile}: its directory is not writable by uid ${NOBODY} gid ${NOBODY}, which the daemon runs as after the drop, so the pidfile could not appear at readiness; put it in a directory they may write (a sticky one such as /tmp works)\n`,
    );
    expect(readdirSync(dir).filter((n) => n.includes('.pid'))).toEqual([]);
  });

  it('serves a boot and authenticated writes inside the sandbox, as /proc/<pid> shows from outside, and saves on SIGTERM', async () => {
    const { root, pidfile } = await sandboxDirs();
    const d = await start(
      fileArgs(
        [
          '--chroot',
          root,
          '--uid',
          String(NOBODY),
          '--gid',
          String(NOBODY),
          '--depriv',
          '--arg',
          'save:/save.dat',
          '--platform',
          'secureboot=true',
        ],
        '/nvram.vars',
        pidfile,
      ),
      pidfile,
    );
    // Readiness comes once the sandbox is in place: everything below holds from the first request.
    const pid = d.pid;
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    expect({
      seccomp: field(status, 'Seccomp'),
      noNewPrivs: field(status, 'NoNewPrivs'),
      uid: field(status, 'Uid'),
      gid: field(status, 'Gid'),
      groups: field(status, 'Groups'),
      capEff: field(status, 'CapEff'),
      capPrm: field(status, 'CapPrm'),
    }).toEqual({
      seccomp: '2',
      noNewPrivs: '1',
      uid: `${NOBODY} ${NOBODY} ${NOBODY} ${NOBODY}`,
      gid: `${NOBODY} ${NOBODY} ${NOBODY} ${NOBODY}`,
      groups: String(NOBODY),
      capEff: '0000000000000000',
      capPrm: '0000000000000000',
    });
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const t = readFileSync(`/proc/${pid}/task/${task}/status`, 'utf8');
      expect({ task, seccomp: field(t, 'Seccomp'), noNewPrivs: field(t, 'NoNewPrivs') }).toEqual({
        task,
        seccomp: '2',
        noNewPrivs: '1',
      });
    }
    for (const ns of ['net', 'ipc', 'uts', 'mnt']) {
      expect({ ns, daemon: readlinkSync(`/proc/${pid}/ns/${ns}`) }).not.toEqual({
        ns,
        daemon: readlinkSync(`/proc/self/ns/${ns}`),
      });
    }
    const limits = readFileSync(`/proc/${pid}/limits`, 'utf8');
    expect({
      fsize: limit(limits, 'Max file size'),
      nproc: limit(limits, 'Max processes'),
      core: limit(limits, 'Max core file size'),
    }).toEqual({ fsize: `${DEPRIV_FILE_SIZE_LIMIT} ${DEPRIV_FILE_SIZE_LIMIT}`, nproc: '0 0', core: '0 0' });
    expect(readlinkSync(`/proc/${pid}/root`)).toBe(root);

    // Normal work: an OVMF boot, then Secure Boot enrolment with real signatures (efitools).
    const g = await guest(join(dir, 'sock'));
    const boot = await runOvmfBoot(g.fw);
    expect(boot.setupMode).toBe(1);
    const global = (name: string) => ({ name, guid: VendorGuids.GLOBAL });
    const TIME_BASED = 0x27;
    expect(await g.fw.setVariable(global('PK'), TIME_BASED, signed('PK', 'PK', 'PK'))).toBe(EfiStatus.SUCCESS);
    expect(await g.fw.setVariable(global('KEK'), TIME_BASED, signed('KEK', 'KEK', 'PK'))).toBe(EfiStatus.SUCCESS);
    const db = { name: 'db', guid: VendorGuids.IMAGE_SECURITY_DATABASE };
    expect(await g.fw.setVariable(db, TIME_BASED, signed('db', 'stranger', 'stranger'))).toBe(
      EfiStatus.SECURITY_VIOLATION,
    );
    expect(await g.fw.setVariable(db, TIME_BASED, signed('db', 'stranger', 'KEK'))).toBe(EfiStatus.SUCCESS);
    expect((await g.fw.queryVariableInfo(Attributes.NV_BS_RT)).status).toBe(EfiStatus.SUCCESS);
    await g.close();

    expect(await d.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    const nvram = await stat(join(root, 'nvram.vars'));
    expect([nvram.uid, nvram.gid]).toEqual([NOBODY, NOBODY]);
    const saved = decodeVarsBlob(new Uint8Array(await readFile(join(root, 'save.dat'))));
    expect(saved.ok && saved.state.variables.map((v) => fromUtf16le(v.name))).toEqual(
      expect.arrayContaining(['PK', 'KEK', 'db', 'BootOrder']),
    );
    expect(d.stdout).toMatch(/^info: Privileges dropped \(--chroot, --uid, --gid, --depriv\)$/m);
    expect(d.stderr).not.toMatch(/^error:/m);
    expect(d.stderr).toMatch(/SECURITY_VIOLATION \(db .* signed by "CN=vmsb sandbox stranger"/);
  });

  it('(root only) under --chroot the verifier is evaluated at the first authenticated write, from the bundle, and verifies real signatures', async () => {
    // xenopsd always passes --chroot: nothing outside the root can be read once it is entered, so the
    // verifier must come from the daemon's own bundle (apps/varstored/src/authenticator.ts).
    const { root, pidfile } = await sandboxDirs();
    const d = await start(fileArgs([...sandboxed(root), '--log-level', 'debug'], '/nvram.vars', pidfile), pidfile);
    const g = await guest(join(dir, 'sock'));
    await runOvmfBoot(g.fw);
    expect(d.output).not.toContain('verifier loaded');
    const global = (name: string) => ({ name, guid: VendorGuids.GLOBAL });
    const TIME_BASED = 0x27;
    expect(await g.fw.setVariable(global('PK'), TIME_BASED, signed('PK', 'PK', 'PK'))).toBe(EfiStatus.SUCCESS);
    await d.logged('authenticated variables: verifier loaded');
    expect(await g.fw.setVariable(global('KEK'), TIME_BASED, signed('KEK', 'KEK', 'stranger'))).toBe(
      EfiStatus.SECURITY_VIOLATION,
    );
    expect(await g.fw.setVariable(global('KEK'), TIME_BASED, signed('KEK', 'KEK', 'PK'))).toBe(EfiStatus.SUCCESS);
    await g.close();
    expect(await d.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    const output = d.output;
    expect(output.match(/verifier loaded/g)).toHaveLength(1);
    expect(output).not.toMatch(/cannot be loaded|unavailable/);
    expect(output.indexOf('Privileges dropped')).toBeLessThan(output.indexOf('verifier loaded'));
  });

  it('refuses --depriv when not started through the launcher (no namespaces): never runs weaker', async () => {
    const cli = join(dirname(createRequire(import.meta.url).resolve('varstored/package.json')), 'dist', 'cli.js');
    const child = spawn(process.execPath, [cli, ...fileArgs(['--depriv'])], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let stderr = '';
    child.stderr!.on('data', (t: Buffer) => (stderr += t.toString()));
    const code = await new Promise<number | null>((ok) => child.once('exit', ok));
    expect(code).toBe(1);
    expect(stderr).toMatch(/--depriv: not in the private namespaces the launcher creates/);
    await expect(stat(join(dir, 'sock'))).rejects.toThrow(/ENOENT/);
  });
});

describe('one writer per NVRAM and per pidfile', () => {
  it('a second daemon on the same NVRAM file refuses to start and names the first one', async () => {
    const first = await start(fileArgs([]));
    const second = Daemon.spawn(fileArgs([], join(dir, 'nvram.vars'), join(dir, 'second.pid'), join(dir, 'sock2')));
    daemons.push(second);
    expect(await second.waitExit()).toEqual({ code: 1, signal: null });
    expect(second.stderr).toBe(
      `error: Failed to lock the NVRAM file '${join(dir, 'nvram.vars')}': it is in use by another process (pid ${first.pid}), another varstored serving this VM or varstore writing it (lock ${join(dir, 'nvram.vars.lock')})\n`,
    );
    // The first keeps its lock across its own writes, which replace the file (a new inode each time).
    const g = await guest(join(dir, 'sock'));
    const vendor = { name: 'Written', guid: VendorGuids.MTC };
    expect(await g.fw.setVariable(vendor, Attributes.NV_BS_RT, Uint8Array.of(1))).toBe(EfiStatus.SUCCESS);
    expect(await g.fw.setVariable(vendor, Attributes.NV_BS_RT, Uint8Array.of(2))).toBe(EfiStatus.SUCCESS);
    await g.close();
    const third = Daemon.spawn(fileArgs([], join(dir, 'nvram.vars'), join(dir, 'third.pid'), join(dir, 'sock3')));
    daemons.push(third);
    expect(await third.waitExit()).toEqual({ code: 1, signal: null });
    expect(third.stderr).toMatch(/in use by another process \(pid \d+\)/);
    await first.stop();
  });

  it('the pidfile is locked with lockf: a holder of that lock is named, and nobody can squat an abstract socket name', async () => {
    const pidfile = join(dir, 'varstored.pid');
    // The abstract socket name the daemon once used as its lock: anyone could bind it first.
    const squatted = `\0vmsb-varstored-pidfile-${createHash('sha256').update(pidfile).digest('hex').slice(0, 48)}`;
    const squatter: Server = createServer();
    await new Promise<void>((ok) => squatter.listen(squatted, ok));
    try {
      const d = await start(fileArgs([]));
      expect(await readPidfile(pidfile)).toBe(`${d.pid}\n`);
      await d.stop();
    } finally {
      squatter.close();
    }

    const holder = await holdLock(pidfile);
    const refused = Daemon.spawn(fileArgs([]));
    daemons.push(refused);
    expect(await refused.waitExit()).toEqual({ code: 1, signal: null });
    expect(refused.stderr).toBe(
      `error: Failed to lock pidfile '${pidfile}': it is held by another varstored (pid ${holder.pid})\n`,
    );
  });

  it('refuses a symbolic link as the NVRAM path, naming its target, and leaves the link alone', async () => {
    const target = join(dir, 'real.vars');
    const link = join(dir, 'nvram.vars');
    await symlink(target, link);
    const d = Daemon.spawn(fileArgs([]));
    daemons.push(d);
    expect(await d.waitExit()).toEqual({ code: 1, signal: null });
    expect(d.stderr).toBe(
      `error: ${link} is a symbolic link (to ${target}): the NVRAM file is replaced on every write, which would turn the link into a file; give the target's path instead\n`,
    );
    expect((await lstat(link)).isSymbolicLink()).toBe(true);
    await expect(stat(join(dir, 'varstored.pid'))).rejects.toThrow(/ENOENT/);
  });
});

describe('RLIMIT_FSIZE under --depriv', () => {
  it('is above the largest VARS blob of a store within its quota (what the daemon writes)', () => {
    // Per variable the blob spends RECORD_OVERHEAD besides name and data; the quota counts OVERHEAD.
    expect(VarsBlob.RECORD_OVERHEAD).toBeLessThanOrEqual(Limits.OVERHEAD);
    const largest = VarsBlob.HEADER_SIZE + VarsBlob.ANCILLARY_SIZE + Limits.TOTAL_MAX;
    expect(DEPRIV_FILE_SIZE_LIMIT).toBeGreaterThan(largest);
    expect(DEPRIV_FILE_SIZE_LIMIT).toBe(256 * 1024);
  });
});
