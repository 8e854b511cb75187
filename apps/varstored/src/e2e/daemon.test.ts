/**
 * End-to-end: the built daemon, started as a toolstack would, driven over its guest-simulation
 * socket by the firmware side of @vmsb/protocol (tools/guest-sim).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeVarsBlob, encodeVarsBlob } from '@vmsb/nvram';
import { Attributes, type Firmware, runOvmfBoot } from '@vmsb/guest-sim';
import { decodeResponse, EfiStatus, fromUtf16le, guidFromText, guidToText, utf16le } from '@vmsb/protocol';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Daemon, guest, readPidfile, temporariesOf, VARSTORED, watchPidfile } from './harness.js';

const VENDOR = guidFromText('3f8e1a52-6b2d-4c1e-9f0a-7d4b5c6e8a90')!;
const ref = (name: string, guid = VENDOR) => ({ name, guid });

let dir: string;
const daemons: Daemon[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmsb-varstored-'));
});
afterEach(async () => {
  for (const d of daemons.splice(0)) await d.stop('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

interface Paths {
  socket: string;
  pidfile: string;
  nvram: string;
  save: string;
  auth: string;
}

function paths(tag = ''): Paths {
  return {
    socket: join(dir, `sock${tag}`),
    pidfile: join(dir, `varstored${tag}.pid`),
    nvram: join(dir, 'nvram.vars'),
    save: join(dir, 'save.dat'),
    auth: join(dir, 'auth'),
  };
}

function fileArgs(p: Paths, ...extra: string[]): string[] {
  return [
    '--domain',
    '1',
    '--transport',
    `unix:${p.socket}`,
    '--backend',
    'file',
    '--arg',
    `path:${p.nvram}`,
    '--pidfile',
    p.pidfile,
    '--arg',
    `auth-dir:${p.auth}`,
    ...extra,
  ];
}

async function start(args: string[], pidfile: string): Promise<Daemon> {
  const d = Daemon.spawn(args);
  daemons.push(d);
  await d.ready(pidfile);
  return d;
}

/** Every variable the firmware can see (boot time), with attributes and data. */
async function snapshot(fw: Firmware): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const r of await fw.enumerate()) {
    const value = await fw.readVariable(r);
    out.set(
      `${guidToText(r.guid)} ${r.name}`,
      `0x${value!.attributes.toString(16)} ${Buffer.from(value!.data).toString('hex')}`,
    );
  }
  return out;
}

describe('varstored over the guest-simulation socket', () => {
  it('serves every command as OVMF expects', async () => {
    const p = paths();
    const d = await start(fileArgs(p), p.pidfile);
    const g = await guest(p.socket);
    const { fw, connection } = g;

    const info = await fw.queryVariableInfo(Attributes.NV_BS_RT);
    expect(info).toMatchObject({ status: EfiStatus.SUCCESS, maximumStorageSize: 131072, maximumVariableSize: 57344 });
    expect(info.remainingStorageSize).toBeLessThan(131072);
    expect((await fw.queryVariableInfo(0x8 | Attributes.NV_BS_RT)).status).not.toBe(EfiStatus.SUCCESS);

    expect(await fw.setVariable(ref('Alpha'), Attributes.NV_BS_RT, Uint8Array.from([1, 2, 3]))).toBe(EfiStatus.SUCCESS);
    const small = await fw.getVariable(ref('Alpha'), 2);
    expect(small).toMatchObject({ status: EfiStatus.BUFFER_TOO_SMALL, requiredSize: 3 });
    const got = await fw.getVariable(ref('Alpha'), 3);
    expect(got.status).toBe(EfiStatus.SUCCESS);
    expect([...got.data!]).toEqual([1, 2, 3]);
    expect(got.attributes).toBe(7);
    expect((await fw.getVariable(ref('Missing'), 10)).status).toBe(EfiStatus.NOT_FOUND);

    const names = (await fw.enumerate(4)).map((r) => `${guidToText(r.guid)} ${r.name}`);
    expect(names).toContain(`${guidToText(VENDOR)} Alpha`);
    expect(names).toContain('8be4df61-93ca-11d2-aa0d-00e098032b8c SetupMode');
    const unknown = await connection.call({
      command: 'GetNextVariableName',
      nameSize: 64,
      name: utf16le('Nope'),
      guid: VENDOR,
      atRuntime: false,
    });
    expect(unknown.ok && unknown.response.status).toBe(EfiStatus.INVALID_PARAMETER);

    expect(await fw.setVariable(ref('Alpha'), Attributes.NV_BS_RT, new Uint8Array(0))).toBe(EfiStatus.SUCCESS);
    expect((await fw.getVariable(ref('Alpha'), 10)).status).toBe(EfiStatus.NOT_FOUND);

    expect(await fw.notifySBFailure()).toBe(EfiStatus.SUCCESS);
    expect(await fw.notifySBFailure()).toBe(EfiStatus.ACCESS_DENIED);

    // Not OVMF: a wrong protocol version and an unknown command still get an answer.
    const badVersion = await connection.exchange(Uint8Array.from([2, 0, 0, 0, 0, 0, 0, 0]));
    expect(decodeResponse('GetVariable', badVersion)).toMatchObject({
      ok: true,
      response: { status: EfiStatus.UNSUPPORTED },
    });
    const badCommand = await connection.exchange(Uint8Array.from([1, 0, 0, 0, 9, 0, 0, 0]));
    expect(decodeResponse('GetVariable', badCommand)).toMatchObject({
      ok: true,
      response: { status: EfiStatus.UNSUPPORTED },
    });
    await g.close();

    expect(await d.stop()).toEqual({ code: 0, signal: null });
    expect(d.stderr).toMatch(/^warn: NotifySBFailure: the guest failed to pass Secure Boot verification$/m);
    expect(d.stderr).toMatch(/^warn: undecodable request: UNSUPPORTED \(unknown command 9\)$/m);
  });

  it('closes a connection with an oversized frame and keeps serving', async () => {
    const p = paths();
    const d = await start(fileArgs(p), p.pidfile);
    const bad = await guest(p.socket);
    await expect(bad.connection.exchange(new Uint8Array(8), 70000)).rejects.toThrow(/closed the connection/);
    const g = await guest(p.socket);
    expect((await g.fw.queryVariableInfo(Attributes.NV_BS_RT)).status).toBe(EfiStatus.SUCCESS);
    await g.close();
    await d.stop();
    expect(d.stderr).toMatch(/70000-byte frame, larger than the 65536-byte guest buffer/);
  });

  it('answers every frame a hostile guest sends, and keeps running', async () => {
    const p = paths();
    const d = await start(fileArgs(p, '--log-level', 'error'), p.pidfile);
    const g = await guest(p.socket);
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: 5 }),
        fc.uint8Array({ maxLength: 200 }),
        fc.nat({ max: 4096 }),
        async (command, body, padding) => {
          const frame = new Uint8Array(8 + body.length + padding);
          frame.set([1, 0, 0, 0, command, 0, 0, 0]);
          frame.set(body, 8);
          const reply = await g.connection.exchange(frame);
          expect(reply.length).toBeGreaterThanOrEqual(8);
        },
      ),
      { numRuns: 300 },
    );
    expect((await g.fw.queryVariableInfo(Attributes.NV_BS_RT)).status).toBe(EfiStatus.SUCCESS);
    await g.close();
    expect(await d.stop()).toEqual({ code: 0, signal: null });
  });

  it('runs an OVMF boot, and the variables survive a restart', async () => {
    const p = paths();
    let d = await start(fileArgs(p, '--platform', 'secureboot=true'), p.pidfile);
    let g = await guest(p.socket);
    const first = await runOvmfBoot(g.fw);
    await g.close();
    expect(first.monotonicCounter).toBe(1);
    expect(first.created).toEqual(
      expect.arrayContaining([
        'MTC',
        'MemoryTypeInformation',
        'Boot0000',
        'Boot0001',
        'BootOrder',
        'ConOut',
        'Lang',
        'PlatformLang',
        'Timeout',
      ]),
    );
    expect(first.setupMode).toBe(1);
    expect(first.secureBoot).toBe(0);
    expect(await d.stop()).toEqual({ code: 0, signal: null });

    d = await start(fileArgs(p, '--platform', 'secureboot=true'), p.pidfile);
    g = await guest(p.socket);
    const second = await runOvmfBoot(g.fw);
    await g.close();
    await d.stop();
    expect(second.monotonicCounter).toBe(2);
    // Only the volatile variables are created again; the non-volatile ones were kept.
    expect(second.created).toEqual([
      'OsIndicationsSupported',
      'BootOptionSupport',
      'PlatformLangCodes',
      'LangCodes',
      'ConOutDev',
      'ConInDev',
      'BootCurrent',
    ]);
    expect(second.bootOrder).toEqual(first.bootOrder);
    expect(d.stdout).toMatch(/^info: Loaded \d+ variables$/m);
  });
});

describe('readiness and the pidfile', () => {
  it('writes "<pid>\\n" once ready, refuses a second daemon on the same pidfile, removes it on exit', async () => {
    const p = paths();
    const d = await start(fileArgs(p), p.pidfile);
    expect(await readPidfile(p.pidfile)).toBe(`${d.pid}\n`);
    const g = await guest(p.socket);
    expect((await g.fw.queryVariableInfo(Attributes.NV_BS_RT)).status).toBe(EfiStatus.SUCCESS);
    await g.close();

    const other = paths('2');
    const second = Daemon.spawn(fileArgs({ ...other, pidfile: p.pidfile }));
    daemons.push(second);
    expect(await second.waitExit()).toEqual({ code: 1, signal: null });
    expect(second.stderr).toBe(
      `error: Failed to lock pidfile '${p.pidfile}': it is held by another varstored (pid ${d.pid})\n`,
    );
    expect(await readPidfile(p.pidfile)).toBe(`${d.pid}\n`);
    await expect(stat(other.socket)).rejects.toThrow(/ENOENT/);

    expect(await d.stop('SIGINT')).toEqual({ code: 0, signal: null });
    await expect(stat(p.pidfile)).rejects.toThrow(/ENOENT/);
    await expect(stat(p.socket)).rejects.toThrow(/ENOENT/);
  });

  it('the pidfile appears only once the socket accepts connections, holding "<pid>\\n" from its first moment', async () => {
    const p = paths();
    const d = Daemon.spawn(fileArgs(p));
    daemons.push(d);
    const { sights, acceptedAtFirstSight } = await watchPidfile(d, p.pidfile, p.socket);
    expect(sights).toEqual([{ absent: true }, `${d.pid}\n`]);
    expect(acceptedAtFirstSight).toBe(true);
    expect(temporariesOf(p.pidfile)).toEqual([]);
    expect(await d.stop()).toEqual({ code: 0, signal: null });
    await expect(stat(p.pidfile)).rejects.toThrow(/ENOENT/);
  });

  it('a stale pidfile (nobody holds its lock) is removed at start and replaced at readiness', async () => {
    const p = paths();
    await writeFile(p.pidfile, '4194304\n');
    const d = Daemon.spawn(fileArgs(p));
    daemons.push(d);
    const { sights, acceptedAtFirstSight } = await watchPidfile(d, p.pidfile, p.socket);
    // Never an empty file, never a pidfile before the socket listens.
    // Absent in between (the stale one is removed at start), unless the watcher was not scheduled then.
    expect(sights.filter((s) => typeof s === 'string')).toEqual(['4194304\n', `${d.pid}\n`]);
    expect(acceptedAtFirstSight).toBe(true);
    expect(await d.stop()).toEqual({ code: 0, signal: null });
    expect(existsSync(p.pidfile)).toBe(false);
  });

  it('a start that fails never shows a pidfile and leaves no temporary file behind', async () => {
    const p = paths();
    await writeFile(p.nvram, 'not a VARS blob');
    const d = Daemon.spawn(fileArgs(p));
    daemons.push(d);
    let exited = false;
    const exit = d.waitExit().finally(() => (exited = true));
    let appeared = false;
    while (!exited) {
      appeared ||= existsSync(p.pidfile);
      await new Promise((r) => setImmediate(r));
    }
    expect(await exit).toEqual({ code: 1, signal: null });
    expect(d.stderr).toMatch(/nvram\.vars/);
    expect(appeared).toBe(false);
    expect(existsSync(p.pidfile)).toBe(false);
    expect(temporariesOf(p.pidfile)).toEqual([]);
  });

  it('replaces a pidfile and socket left by a daemon killed with SIGKILL', async () => {
    const p = paths();
    const killed = await start(fileArgs(p), p.pidfile);
    expect(await killed.stop('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });
    expect(await readPidfile(p.pidfile)).toBe(`${killed.pid}\n`);
    const d = Daemon.spawn(fileArgs(p));
    daemons.push(d);
    // The stale pidfile disappears before the new daemon is ready, then comes back with its pid.
    await d.logged('Ready');
    expect(await readPidfile(p.pidfile)).toBe(`${d.pid}\n`);
    await d.stop();
  });
});

describe('durability', () => {
  it('keeps every answered write across SIGKILL in the middle of a stream of writes', async () => {
    const p = paths();
    const d = await start(fileArgs(p), p.pidfile);
    const g = await guest(p.socket);
    const answered = new Map<string, number>();
    const sent = new Map<string, number>();
    let count = 0;
    let stopped = false;
    const writer = (async () => {
      for (let i = 1; !stopped; i++) {
        const name = `Var${i % 7}`;
        sent.set(name, i);
        const status = await g.fw.setVariable(
          ref(name),
          Attributes.NV_BS_RT,
          Uint8Array.from([i & 0xff, (i >> 8) & 0xff, 0xee]),
        );
        expect(status).toBe(EfiStatus.SUCCESS);
        answered.set(name, i);
        if (++count === 60) d.child.kill('SIGKILL');
      }
    })().catch((e: Error) => {
      stopped = true;
      return e;
    });
    const error = await writer;
    expect(String(error)).toMatch(/closed the connection|ECONNRESET|EPIPE/);
    expect(await d.waitExit()).toEqual({ code: null, signal: 'SIGKILL' });
    expect(count).toBeGreaterThanOrEqual(60);

    const again = await start(fileArgs(p), p.pidfile);
    const h = await guest(p.socket);
    for (const [name, last] of answered) {
      const value = await h.fw.readVariable(ref(name));
      expect(value, name).toBeDefined();
      const stored = value!.data[0]! | (value!.data[1]! << 8);
      // The last answered value, or the one in flight at the kill if it reached the disk first.
      expect(
        stored === last || stored === sent.get(name),
        `${name}: stored ${stored}, answered ${last}, sent ${sent.get(name)}`,
      ).toBe(true);
    }
    await h.close();
    await again.stop();
  });

  it('SIGTERM writes the save file; --resume restores exactly those variables without first-boot setup', async () => {
    const p = paths();
    const d = await start(fileArgs(p, '--arg', `save:${p.save}`), p.pidfile);
    let g = await guest(p.socket);
    expect(await g.fw.setVariable(ref('Persistent'), Attributes.NV_BS_RT, Uint8Array.from([1]))).toBe(
      EfiStatus.SUCCESS,
    );
    expect(await g.fw.setVariable(ref('Volatile'), Attributes.BS_RT, Uint8Array.from([2]))).toBe(EfiStatus.SUCCESS);
    expect(await g.fw.setVariable(ref('BootOnly'), Attributes.BS, Uint8Array.from([3]))).toBe(EfiStatus.SUCCESS);
    const before = await snapshot(g.fw);
    await g.close();
    expect(await d.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    expect(d.stdout).toMatch(new RegExp(`^info: Saved \\d+ variables to ${p.save}$`, 'm'));
    const saved = decodeVarsBlob(new Uint8Array(await readFile(p.save)));
    expect(saved.ok && saved.version).toBe(2);
    const nvramBefore = await readFile(p.nvram);

    const resumed = await start(fileArgs(p, '--resume', '--arg', `resume:${p.save}`), p.pidfile);
    g = await guest(p.socket);
    expect(await snapshot(g.fw)).toEqual(before);
    await g.close();
    await resumed.stop();
    expect(resumed.stdout).toMatch(/^info: Resumed \d+ variables from /m);
    expect(resumed.output).not.toMatch(/first boot|Auth file/);
    expect(await readFile(p.nvram)).toEqual(nvramBefore);

    // A normal start from the NVRAM instead: the volatile variables are gone.
    const fresh = await start(fileArgs(p), p.pidfile);
    g = await guest(p.socket);
    const after = await snapshot(g.fw);
    await g.close();
    await fresh.stop();
    expect([...after.keys()].some((k) => k.endsWith(' Persistent'))).toBe(true);
    expect([...after.keys()].some((k) => k.endsWith(' Volatile') || k.endsWith(' BootOnly'))).toBe(false);
  });

  it('refuses a corrupt NVRAM file: clear error, exit 1, file untouched, never ready', async () => {
    const p = paths();
    const blob = encodeVarsBlob(
      {
        variables: [
          {
            name: utf16le('X'),
            guid: VENDOR,
            attributes: 7,
            data: Uint8Array.of(1),
            timestamp: new Uint8Array(16),
            signerDigest: new Uint8Array(32),
          },
        ],
        morKey: new Uint8Array(8),
        ppi: { index: 0, func: new Uint8Array(256) },
      },
      { nonVolatileOnly: true },
    );
    const corrupt = Buffer.concat([blob, Buffer.of(0)]);
    await writeFile(p.nvram, corrupt);
    const d = Daemon.spawn(fileArgs(p));
    daemons.push(d);
    expect(await d.waitExit()).toEqual({ code: 1, signal: null });
    expect(d.stderr).toBe(
      `error: ${p.nvram}: corrupt NVRAM (VARS blob): 1 unexpected bytes after the last of 1 variables (at byte 379)\n`,
    );
    expect(await readFile(p.nvram)).toEqual(corrupt);
    await expect(stat(p.pidfile)).rejects.toThrow(/ENOENT/);
    await expect(stat(p.socket)).rejects.toThrow(/ENOENT/);
  });

  it('--nonpersistent loads the NVRAM and never writes it', async () => {
    const p = paths();
    let d = await start(fileArgs(p), p.pidfile);
    let g = await guest(p.socket);
    await g.fw.setVariable(ref('Stored'), Attributes.NV_BS_RT, Uint8Array.from([1]));
    await g.close();
    await d.stop();
    const bytes = await readFile(p.nvram);
    const inode = (await stat(p.nvram)).ino;

    d = await start(fileArgs(p, '--nonpersistent'), p.pidfile);
    g = await guest(p.socket);
    expect([...(await g.fw.readVariable(ref('Stored')))!.data]).toEqual([1]);
    expect(await g.fw.setVariable(ref('Stored'), Attributes.NV_BS_RT, Uint8Array.from([2]))).toBe(EfiStatus.SUCCESS);
    expect(await g.fw.setVariable(ref('New'), Attributes.NV_BS_RT, Uint8Array.from([3]))).toBe(EfiStatus.SUCCESS);
    expect([...(await g.fw.readVariable(ref('Stored')))!.data]).toEqual([2]);
    await g.close();
    await d.stop();
    expect(await readFile(p.nvram)).toEqual(bytes);
    expect((await stat(p.nvram)).ino).toBe(inode);
  });

  it('answers DEVICE_ERROR and keeps the old value when the NVRAM file cannot be replaced', async () => {
    const p = paths();
    const d = await start(fileArgs(p), p.pidfile);
    const g = await guest(p.socket);
    expect(await g.fw.setVariable(ref('V'), Attributes.NV_BS_RT, Uint8Array.from([1]))).toBe(EfiStatus.SUCCESS);
    // Replace the file by a non-empty directory: the next rename fails.
    await rm(p.nvram);
    await mkdir(join(p.nvram, 'blocker'), { recursive: true });
    expect(await g.fw.setVariable(ref('V'), Attributes.NV_BS_RT, Uint8Array.from([2]))).toBe(EfiStatus.DEVICE_ERROR);
    expect([...(await g.fw.readVariable(ref('V')))!.data]).toEqual([1]);
    await g.close();
    await d.stop();
    expect(d.stderr).toMatch(
      /^error: SetVariable "V" .*: the NVRAM could not be saved \(.*cannot write.*\); change rolled back, answering DEVICE_ERROR$/m,
    );
  });
});

// A real NVRAM from a VM's XAPI record (GPL test data of another project: read in place, never copied into the repository).
const LEGACY = fileURLToPath(
  new URL('../../../../../shared/vectors/uefistored/nvram/legacy-payload-bin.dat', import.meta.url),
);

describe.skipIf(!existsSync(LEGACY))("a real VM's NVRAM (VARS v1, 32 variables)", () => {
  it('boots from it, in user mode since it holds a PK, and rewrites it as v2 keeping every variable', async () => {
    const p = paths();
    await copyFile(LEGACY, p.nvram);
    const original = decodeVarsBlob(new Uint8Array(await readFile(p.nvram)));
    if (!original.ok) throw new Error(original.error);
    const d = await start(fileArgs(p, '--platform', 'secureboot=true'), p.pidfile);
    expect(d.stdout).toMatch(/^info: Loaded 32 variables$/m);
    expect(d.stdout).toMatch(/^info: Secure Boot: enabled, user mode \(PK enrolled\)$/m);
    const g = await guest(p.socket);
    const report = await runOvmfBoot(g.fw);
    await g.close();
    await d.stop();
    expect(report.setupMode).toBe(0);
    const rewritten = decodeVarsBlob(new Uint8Array(await readFile(p.nvram)));
    if (!rewritten.ok) throw new Error(rewritten.error);
    expect(rewritten.version).toBe(2);
    const key = (v: { name: Uint8Array; guid: Uint8Array }) => `${guidToText(v.guid)} ${fromUtf16le(v.name)}`;
    const after = new Map(rewritten.state.variables.map((v) => [key(v), v]));
    for (const v of original.state.variables) {
      const kept = after.get(key(v));
      expect(kept, key(v)).toBeDefined();
      // Timestamps and signer digests travel unchanged.
      expect(kept!.timestamp).toEqual(v.timestamp);
      expect(kept!.signerDigest).toEqual(v.signerDigest);
    }
  });
});

describe.skipIf(process.getuid?.() !== 0)('privilege dropping (needs root)', () => {
  it('--chroot/--uid/--gid/--depriv: serves from inside the chroot as the unprivileged user', async () => {
    const root = join(dir, 'root');
    await mkdir(root, { mode: 0o777 });
    await chmod(root, 0o777);
    // The pidfile appears at readiness, after the drop: its directory must be writable by the uid.
    const run = join(dir, 'run');
    await mkdir(run);
    await chmod(run, 0o1777);
    const pidfile = join(run, 'varstored.pid');
    const d = Daemon.spawn([
      '--domain',
      '4',
      '--transport',
      `unix:${join(dir, 'sock')}`,
      '--backend',
      'file',
      '--arg',
      'path:/nvram.vars',
      '--arg',
      'save:/save.dat',
      '--pidfile',
      pidfile,
      '--chroot',
      root,
      '--uid',
      '65534',
      '--gid',
      '65534',
      '--depriv',
      '--arg',
      `auth-dir:${join(dir, 'auth')}`,
    ]);
    daemons.push(d);
    await d.logged('Ready');
    expect(await readPidfile(pidfile)).toBe(`${d.pid}\n`);
    // The socket is opened on the host before the drop; path: and save: are inside the chroot.
    const g = await guest(join(dir, 'sock'));
    expect(await g.fw.setVariable(ref('InChroot'), Attributes.NV_BS_RT, Uint8Array.of(1))).toBe(EfiStatus.SUCCESS);
    await g.close();
    expect(await d.stop()).toEqual({ code: 0, signal: null });
    const nvram = await stat(join(root, 'nvram.vars'));
    expect([nvram.uid, nvram.gid]).toEqual([65534, 65534]);
    const saved = decodeVarsBlob(new Uint8Array(await readFile(join(root, 'save.dat'))));
    expect(saved.ok && saved.state.variables.map((v) => fromUtf16le(v.name))).toContain('InChroot');
    expect(d.stdout).toMatch(/^info: Privileges dropped \(--chroot, --uid, --gid, --depriv\)$/m);
  });

  it('--chroot: the verifier is loaded by the first authenticated write, inside the chroot, not at start', async () => {
    const root = join(dir, 'root');
    await mkdir(root, { mode: 0o777 });
    await chmod(root, 0o777);
    const d = Daemon.spawn([
      '--domain',
      '4',
      '--transport',
      `unix:${join(dir, 'sock')}`,
      '--backend',
      'file',
      '--arg',
      'path:/nvram.vars',
      '--chroot',
      root,
      '--uid',
      '65534',
      '--gid',
      '65534',
      '--depriv',
      '--log-level',
      'debug',
      '--arg',
      `auth-dir:${join(dir, 'auth')}`,
    ]);
    daemons.push(d);
    await d.logged('Ready');
    expect(d.output).not.toContain('verifier loaded');
    const g = await guest(join(dir, 'sock'));
    // A time-based authenticated write whose signature is garbage: refused, by the loaded verifier.
    const status = await g.fw.setVariable(ref('Signed'), 0x27, new Uint8Array(64).fill(0x5a));
    expect([EfiStatus.SECURITY_VIOLATION, EfiStatus.INVALID_PARAMETER]).toContain(status);
    await d.logged('authenticated variables: verifier loaded');
    expect(d.output).not.toContain('cannot be loaded');
    await g.close();
    expect(await d.stop()).toEqual({ code: 0, signal: null });
  });
});

describe('the command line', () => {
  it('bin/varstored runs as an executable, with the node options it names', async () => {
    const run = spawnSync(VARSTORED, ['--help'], { encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/--domain <domid>/);
    const script = await readFile(join(VARSTORED, '..', 'node-flags'), 'utf8');
    const options = /^options='(.+)'$/m.exec(script)?.[1];
    expect(options).toBe('--lite-mode --no-expose-wasm');
    // V8 accepts them silently: nothing on stderr that a toolstack would log as a problem.
    const flags = spawnSync(
      process.execPath,
      [...options!.split(' '), '-p', "require('v8').getHeapStatistics().total_heap_size > 0"],
      { encoding: 'utf8' },
    );
    expect(flags.status, flags.stderr).toBe(0);
    expect(flags.stderr).toBe('');
  });

  it.each([
    [['--transport', 'unix:/tmp/x'], 'varstored: --domain <domid> is required (see --help)\n'],
    [['--domain', '1', '--backend', 'file'], "varstored: backend 'file' requires --arg path:<file> (see --help)\n"],
    [
      ['--domain', '1', '--arg', 'uuid:u', '--resume'],
      'varstored: --resume requires --arg resume:<file> (see --help)\n',
    ],
  ])('%j is a usage error: one line on stderr, exit 2', async (argv, message) => {
    const d = Daemon.spawn(argv);
    daemons.push(d);
    expect(await d.waitExit()).toEqual({ code: 2, signal: null });
    expect(d.stderr).toBe(message);
    expect(d.stdout).toBe('');
  });

  it.skipIf(existsSync('/dev/xen/privcmd'))('says plainly when the Xen transport is unavailable', async () => {
    const d = Daemon.spawn([
      '--domain',
      '1',
      '--backend',
      'file',
      '--arg',
      `path:${join(dir, 'nvram.vars')}`,
      '--arg',
      `auth-dir:${join(dir, 'auth')}`,
    ]);
    daemons.push(d);
    const exit = await d.waitExit();
    expect(exit).toEqual({ code: 1, signal: null });
    expect(d.stderr).toMatch(
      /^varstored: the Xen transport is unavailable: .+; use --transport unix:<path> to run without Xen\n$/m,
    );
  });
});
