// End to end through the built daemon: guest simulator (here) -> fake Xen -> production binding (in
// the daemon, whose Xen libraries are the fake ones by LD_PRELOAD) -> varstored -> back. Uses only the
// daemon's public command line and the xenstore readiness key, as xenopsd does.
import {
  type CommandName,
  decodeResponse,
  EfiStatus,
  encodeRequest,
  guidFromText,
  type Request,
  utf16le,
} from '@vmsb/protocol';
import { type ChildProcess, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BUFFER_SIZE, FakeXen, fakeBuilt, until } from '@vmsb/xen/testing';
import { fileURLToPath } from 'node:url';

const appRoot = fileURLToPath(new URL('../..', import.meta.url));
const daemonBin = join(appRoot, 'bin', 'varstored');
const daemonReady = existsSync(daemonBin) && existsSync(join(appRoot, 'dist', 'cli.js'));

function guid(text: string): Uint8Array {
  const bytes = guidFromText(text);
  if (!bytes) throw new Error(`bad GUID ${text}`);
  return bytes;
}

const GLOBAL = guid('8be4df61-93ca-11d2-aa0d-00e098032b8c');
const VENDOR = guid('3c0b9d36-2a4e-4d0b-9a1f-6a5e4f3c2b10');
const NV_BS_RT = 0x7;

interface Daemon {
  child: ChildProcess;
  output: () => string;
  exit: Promise<number | null>;
}

function startDaemon(args: string[], env: Record<string, string>): Daemon {
  const child = spawn(daemonBin, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exit };
}

/** What OVMF's XenVariable driver does: serialise at the start of the buffer, OUT its frame to 0x100, read the reply. */
async function call(fx: FakeXen, vcpu: number, gfn: number, request: Request) {
  const bytes = new Uint8Array(BUFFER_SIZE);
  const length = encodeRequest(request, bytes);
  fx.writeBuffer(gfn, bytes.subarray(0, length));
  const io = await fx.out(vcpu, 0x100, 4, gfn);
  expect(io.outcome).toBe('completed');
  const decoded = decodeResponse(request.command as CommandName, fx.readBuffer(gfn));
  if (!decoded.ok) throw new Error(decoded.reason);
  return decoded.response;
}

describe.skipIf(!fakeBuilt || !daemonReady)('varstored --transport xen on the fake hypervisor', () => {
  const cleanup: (() => void)[] = [];
  afterEach(() => {
    for (const f of cleanup.splice(0).reverse()) f();
  });

  it('serves a guest end to end, shuts down cleanly and starts again with the same variables', async () => {
    const fx = new FakeXen(21, 2, 128);
    const work = mkdtempSync(join(tmpdir(), 'vmsb-xen-e2e-'));
    mkdirSync(join(work, 'auth'));
    cleanup.push(
      () => fx.dispose(),
      () => rmSync(work, { recursive: true, force: true }),
    );
    fx.xenstoreWrite('/local/domain/21/platform/secureboot', 'false');
    const args = [
      '--domain',
      '21',
      '--transport',
      'xen',
      '--backend',
      'file',
      '--arg',
      `path:${join(work, 'nvram.bin')}`,
      '--arg',
      `auth-dir:${join(work, 'auth')}`,
    ];
    const pidKey = '/local/domain/21/varstored-pid';

    const first = startDaemon(args, fx.env());
    cleanup.push(() => first.child.kill('SIGKILL'));
    await until(
      () => fx.xenstoreRead(pidKey) === String(first.child.pid) || first.child.exitCode !== null,
      'readiness',
    );
    expect(fx.xenstoreRead(pidKey), first.output()).toBe(String(first.child.pid));
    expect(fx.snapshot().servers[0]?.ranges).toEqual([{ isMmio: false, start: 0x100, end: 0x10b }]);

    const name = utf16le('VmsbXenEndToEnd');
    const set = await call(fx, 0, 0x20, {
      command: 'SetVariable',
      name,
      guid: VENDOR,
      data: Buffer.from('hello'),
      attributes: NV_BS_RT,
      atRuntime: false,
    });
    expect(set.status).toBe(EfiStatus.SUCCESS);

    // Two vCPUs at once, each with its own buffer.
    const [got, secureBoot] = await Promise.all([
      call(fx, 1, 0x40, { command: 'GetVariable', name, guid: VENDOR, dataSize: 100, atRuntime: false }),
      call(fx, 0, 0x60, {
        command: 'GetVariable',
        name: utf16le('SecureBoot'),
        guid: GLOBAL,
        dataSize: 100,
        atRuntime: false,
      }),
    ]);
    expect(got).toMatchObject({ status: EfiStatus.SUCCESS, attributes: NV_BS_RT });
    expect(Buffer.from((got as { data: Uint8Array }).data).toString()).toBe('hello');
    expect(secureBoot.status).toBe(EfiStatus.SUCCESS);
    expect([...(secureBoot as { data: Uint8Array }).data]).toEqual([0]);

    // TPM PPI: index 0x100 is the first byte of the non-volatile PPIBuffer.
    expect((await fx.out(1, 0x104, 4, 0x100)).outcome).toBe('completed');
    expect((await fx.out(1, 0x108, 1, 5)).outcome).toBe('completed');
    expect(await fx.in(0, 0x108, 1)).toMatchObject({ outcome: 'completed', value: 5 });

    first.child.kill('SIGTERM');
    expect(await first.exit, first.output()).toBe(0);
    expect(fx.snapshot().servers).toEqual([]);
    expect(fx.snapshot().counters).toMatchObject({ dmOpen: 0, fmOpen: 0, evOpen: 0, foreignPages: 0 });

    const second = startDaemon(args, fx.env());
    cleanup.push(() => second.child.kill('SIGKILL'));
    await until(
      () => fx.xenstoreRead(pidKey) === String(second.child.pid) || second.child.exitCode !== null,
      'readiness after restart',
    );
    expect(fx.xenstoreRead(pidKey), second.output()).toBe(String(second.child.pid));
    const again = await call(fx, 1, 0x20, {
      command: 'GetVariable',
      name,
      guid: VENDOR,
      dataSize: 100,
      atRuntime: false,
    });
    expect(Buffer.from((again as { data: Uint8Array }).data).toString()).toBe('hello');
    second.child.kill('SIGTERM');
    expect(await second.exit, second.output()).toBe(0);
  });

  it.skipIf(process.getuid?.() !== 0)(
    'serves a guest under --depriv --chroot --uid --gid, with readiness once the sandbox is in place (root only)',
    async () => {
      const fx = new FakeXen(22, 1, 128);
      const work = mkdtempSync(join(tmpdir(), 'vmsb-xen-depriv-'));
      const root = join(work, 'root');
      mkdirSync(root);
      chownSync(root, 65534, 65534);
      mkdirSync(join(work, 'auth'));
      cleanup.push(
        () => fx.dispose(),
        () => rmSync(work, { recursive: true, force: true }),
      );
      const args = ['--domain', '22', '--transport', 'xen', '--backend', 'file', '--arg', 'path:/nvram.bin'];
      args.push('--arg', `auth-dir:${join(work, 'auth')}`, '--chroot', root, '--uid', '65534', '--gid', '65534');
      args.push('--depriv');
      const daemon = startDaemon(args, fx.env());
      cleanup.push(() => daemon.child.kill('SIGKILL'));
      const pidKey = '/local/domain/22/varstored-pid';
      await until(
        () => fx.xenstoreRead(pidKey) === String(daemon.child.pid) || daemon.child.exitCode !== null,
        'readiness',
      );
      expect(fx.xenstoreRead(pidKey), daemon.output()).toBe(String(daemon.child.pid));
      // varstored-pid is written after the drop, over the xenstore connection opened before it.
      const status = readFileSync(`/proc/${daemon.child.pid}/status`, 'utf8');
      expect(status).toMatch(/^Seccomp:\s+2$/m);
      expect(status).toMatch(/^Uid:\s+65534\s+65534\s+65534\s+65534$/m);
      expect(readlinkSync(`/proc/${daemon.child.pid}/ns/net`)).not.toBe(readlinkSync('/proc/self/ns/net'));
      expect(readlinkSync(`/proc/${daemon.child.pid}/root`)).toBe(root);

      const name = utf16le('VmsbDeprived');
      const set = await call(fx, 0, 0x20, {
        command: 'SetVariable',
        name,
        guid: VENDOR,
        data: Buffer.from('inside'),
        attributes: NV_BS_RT,
        atRuntime: false,
      });
      expect(set.status).toBe(EfiStatus.SUCCESS);
      const got = await call(fx, 0, 0x40, {
        command: 'GetVariable',
        name,
        guid: VENDOR,
        dataSize: 100,
        atRuntime: false,
      });
      expect(Buffer.from((got as { data: Uint8Array }).data).toString()).toBe('inside');

      daemon.child.kill('SIGTERM');
      expect(await daemon.exit, daemon.output()).toBe(0);
      expect(fx.snapshot().servers).toEqual([]);
      expect(readFileSync(join(root, 'nvram.bin')).length).toBeGreaterThan(0);
    },
  );

  it.skipIf(existsSync('/dev/xen/privcmd'))(
    'exits at once, naming /dev/xen/privcmd, on a host without Xen',
    async () => {
      const daemon = startDaemon(
        ['--domain', '21', '--transport', 'xen', '--backend', 'file', '--arg', 'path:/nonexistent/nvram.bin'],
        {},
      );
      cleanup.push(() => daemon.child.kill('SIGKILL'));
      expect(await daemon.exit).toBe(1);
      expect(daemon.output()).toMatch(/the Xen transport is unavailable: \/dev\/xen\/privcmd is missing/);
    },
  );
});
