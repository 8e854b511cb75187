/**
 * The daemon with its default backend, xapidb, against a test double of xapi-guard's per-VM socket
 * (@vmsb/xapi/testing: a real HTTP/XML-RPC server on a Unix socket standing in for
 * xapi-guard and XAPI, which cannot run here).
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Attributes } from '@vmsb/guest-sim';
import { decodeVarsBlob } from '@vmsb/nvram';
import { EfiStatus, fromUtf16le, guidFromText } from '@vmsb/protocol';
import { type GuardDouble, startGuardDouble } from '@vmsb/xapi/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Daemon, guest, until } from './harness.js';

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
    // The pidfile is locked from the start (so it exists), but empty: not ready.
    expect(readFileSync(pidfile(), 'utf8')).toBe('');
    expect(existsSync(socket())).toBe(false);
    expect(await d.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    expect(existsSync(pidfile())).toBe(false);
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
