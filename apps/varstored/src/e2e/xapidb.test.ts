/**
 * The daemon with its default backend, xapidb, against a test double of xapi-guard's per-VM socket
 * (@vmsb/xapi/testing: a real HTTP/XML-RPC server on a Unix socket standing in for
 * xapi-guard and XAPI, which cannot run here).
 */
import { existsSync, readFileSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Attributes } from '@vmsb/guest-sim';
import { decodeVarsBlob } from '@vmsb/nvram';
import { EfiStatus, fromUtf16le, guidFromText } from '@vmsb/protocol';
import { type GuardDouble, startGuardDouble } from '@vmsb/xapi/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Daemon, guest, temporariesOf, until } from './harness.js';

const VENDOR = guidFromText('a1b2c3d4-0000-4000-8000-00000000abcd')!;
const ref = (name: string) => ({ name, guid: VENDOR });

let dir: string;
let xapi: GuardDouble;
const daemons: Daemon[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmsb-xapidb-'));
  xapi = await startGuardDouble({ socketPath: join(dir, 'xapi-depriv-socket') });
});
afterEach(async () => {
  for (const d of daemons.splice(0)) await d.stop('SIGKILL');
  await xapi.close();
  await rm(dir, { recursive: true, force: true });
});

const socket = () => join(dir, 'sock');
const pidfile = () => join(dir, 'varstored.pid');

function args(...extra: string[]): string[] {
  return [
    '--domain',
    '5',
    '--transport',
    `unix:${socket()}`,
    '--pidfile',
    pidfile(),
    '--arg',
    `uuid:${xapi.vmUuid}`,
    '--arg',
    `socket:${xapi.socketPath}`,
    '--arg',
    `auth-dir:${join(dir, 'auth')}`,
    ...extra,
  ];
}

async function start(...extra: string[]): Promise<Daemon> {
  const d = Daemon.spawn(args(...extra));
  daemons.push(d);
  await d.ready(pidfile());
  return d;
}

function storedNames(): string[] {
  const blob = xapi.nvram.get('EFI-variables');
  if (blob === undefined) return [];
  const decoded = decodeVarsBlob(new Uint8Array(Buffer.from(blob, 'base64')));
  if (!decoded.ok) throw new Error(decoded.error);
  return decoded.state.variables.map((v) => fromUtf16le(v.name));
}

describe('varstored with the xapidb backend (the default)', () => {
  it('writes each NV change to VM.NVRAM before answering, and loads it on the next start', async () => {
    let d = await start();
    expect(d.stdout).toMatch(/^info: No stored NVRAM: first boot$/m);
    let g = await guest(socket());
    expect(await g.fw.setVariable(ref('Written'), Attributes.NV_BS_RT, Uint8Array.of(1))).toBe(EfiStatus.SUCCESS);
    expect(storedNames()).toContain('Written');
    const writes = xapi.callsOf('VM.set_NVRAM_EFI_variables').length;
    // Volatile changes and unchanged rewrites do not reach XAPI.
    await g.fw.setVariable(ref('Volatile'), Attributes.BS_RT, Uint8Array.of(1));
    await g.fw.setVariable(ref('Written'), Attributes.NV_BS_RT, Uint8Array.of(1));
    expect(xapi.callsOf('VM.set_NVRAM_EFI_variables')).toHaveLength(writes);
    await g.close();
    await d.stop();

    d = await start();
    expect(d.stdout).toMatch(/^info: Loaded \d+ variables$/m);
    g = await guest(socket());
    expect([...(await g.fw.readVariable(ref('Written')))!.data]).toEqual([1]);
    await g.close();
    await d.stop();
  });

  it('rolls back and answers DEVICE_ERROR when XAPI refuses the write', async () => {
    const d = await start();
    const g = await guest(socket());
    await g.fw.setVariable(ref('V'), Attributes.NV_BS_RT, Uint8Array.of(1));
    xapi.inject(
      { kind: 'failure', errorDescription: ['INTERNAL_ERROR', 'database locked'] },
      { method: 'VM.set_NVRAM_EFI_variables' },
    );
    expect(await g.fw.setVariable(ref('V'), Attributes.NV_BS_RT, Uint8Array.of(2))).toBe(EfiStatus.DEVICE_ERROR);
    expect([...(await g.fw.readVariable(ref('V')))!.data]).toEqual([1]);
    expect(await g.fw.setVariable(ref('V'), Attributes.NV_BS_RT, Uint8Array.of(3))).toBe(EfiStatus.SUCCESS);
    await g.close();
    await d.stop();
    expect(d.stderr).toMatch(/^error: SetVariable "V" .*the NVRAM could not be saved .*database locked/m);
  });

  it('raises VM_SECURE_BOOT_FAILED once per daemon, then ACCESS_DENIED', async () => {
    const d = await start();
    const g = await guest(socket());
    expect(await g.fw.notifySBFailure()).toBe(EfiStatus.SUCCESS);
    expect(await g.fw.notifySBFailure()).toBe(EfiStatus.ACCESS_DENIED);
    expect(xapi.messages).toEqual([
      {
        name: 'VM_SECURE_BOOT_FAILED',
        priority: 5,
        cls: 'VM',
        objUuid: xapi.vmUuid,
        body: 'The VM failed to pass Secure Boot verification.',
      },
    ]);
    await g.close();
    await d.stop();
  });

  it('answers DEVICE_ERROR to NotifySBFailure when XAPI cannot take the alert', async () => {
    const d = await start();
    const g = await guest(socket());
    xapi.inject({ kind: 'close' }, { method: 'message.create' });
    expect(await g.fw.notifySBFailure()).toBe(EfiStatus.DEVICE_ERROR);
    expect(await g.fw.notifySBFailure()).toBe(EfiStatus.ACCESS_DENIED);
    await g.close();
    await d.stop();
  });

  it('is not ready while the NVRAM is still being read, and exits 0 on SIGTERM then', async () => {
    xapi.inject({ kind: 'slow', delayMs: 60_000 }, { method: 'VM.get_NVRAM' });
    const d = Daemon.spawn(args());
    daemons.push(d);
    await until(() => xapi.callsOf('VM.get_NVRAM').length === 1, 'the NVRAM read');
    // Not ready: no pidfile yet, only the locked temporary file beside it that becomes it at readiness.
    expect(existsSync(pidfile())).toBe(false);
    const [temp, ...others] = temporariesOf(pidfile());
    expect(others).toEqual([]);
    expect(readFileSync(join(dirname(pidfile()), temp!), 'utf8')).toBe(`${d.pid}\n`);
    expect(existsSync(socket())).toBe(false);
    expect(await d.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    expect(existsSync(pidfile())).toBe(false);
    expect(temporariesOf(pidfile())).toEqual([]);
  });

  it('on SIGTERM finishes the write in flight, answers it, then writes the save file', async () => {
    const save = join(dir, 'save.dat');
    const d = await start('--arg', `save:${save}`);
    const g = await guest(socket());
    xapi.inject({ kind: 'slow', delayMs: 300 }, { method: 'VM.set_NVRAM_EFI_variables' });
    const write = g.fw.setVariable(ref('InFlight'), Attributes.NV_BS_RT, Uint8Array.of(9));
    await until(() => xapi.callsOf('VM.set_NVRAM_EFI_variables').length === 1, 'the XAPI write');
    d.child.kill('SIGTERM');
    expect(await write).toBe(EfiStatus.SUCCESS);
    expect(await d.waitExit()).toEqual({ code: 0, signal: null });
    const saved = decodeVarsBlob(new Uint8Array(await readFile(save)));
    expect(saved.ok && saved.state.variables.map((v) => fromUtf16le(v.name))).toContain('InFlight');
    expect(storedNames()).toContain('InFlight');
    await g.close();
  });
});

describe.skipIf(process.getuid?.() !== 0)(
  'the xapidb backend inside the sandbox (root only: --chroot, --uid, --gid and --depriv need root)',
  () => {
    const NOBODY = 65534;

    it('reads, writes and alerts XAPI through the guard socket inside the chroot, under seccomp', async () => {
      // As under XCP-ng: xapi-guard's per-VM socket lives inside the chroot, open to the daemon's uid.
      const root = join(dir, 'root');
      await mkdir(root, { mode: 0o755 });
      await chown(root, NOBODY, NOBODY);
      const run = join(dir, 'run');
      await mkdir(run);
      await chmod(run, 0o1777);
      const guard = await startGuardDouble({ socketPath: join(root, 'xapi-depriv-socket') });
      try {
        await chmod(guard.socketPath, 0o666);
        const sandboxed = async (): Promise<Daemon> => {
          const pid = join(run, 'varstored.pid');
          const d = Daemon.spawn([
            ...['--domain', '5', '--transport', `unix:${socket()}`, '--pidfile', pid],
            ...['--arg', `uuid:${guard.vmUuid}`, '--arg', 'socket:/xapi-depriv-socket'],
            ...['--arg', `auth-dir:${join(dir, 'auth')}`],
            ...['--chroot', root, '--uid', String(NOBODY), '--gid', String(NOBODY), '--depriv'],
          ]);
          daemons.push(d);
          await d.ready(pid);
          return d;
        };

        let d = await sandboxed();
        expect(readFileSync(`/proc/${d.pid}/status`, 'utf8')).toMatch(/^Seccomp:\s+2$/m);
        let g = await guest(socket());
        expect(await g.fw.setVariable(ref('Sandboxed'), Attributes.NV_BS_RT, Uint8Array.of(7))).toBe(EfiStatus.SUCCESS);
        expect(guard.callsOf('VM.set_NVRAM_EFI_variables')).toHaveLength(1);
        expect(await g.fw.notifySBFailure()).toBe(EfiStatus.SUCCESS);
        expect(guard.messages.map((m) => m.name)).toEqual(['VM_SECURE_BOOT_FAILED']);
        await g.close();
        expect(await d.stop('SIGTERM')).toEqual({ code: 0, signal: null });

        d = await sandboxed();
        g = await guest(socket());
        expect([...(await g.fw.readVariable(ref('Sandboxed')))!.data]).toEqual([7]);
        await g.close();
        expect(await d.stop('SIGTERM')).toEqual({ code: 0, signal: null });
        expect(d.stderr).not.toMatch(/^error:/m);
      } finally {
        await guard.close();
      }
    });
  },
);
