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

  it('keeps what a request stored when the next request on the same vCPU reuses the request buffer', async () => {
    // The binding copies each command into one buffer per vCPU and rewrites it with that vCPU's next
    // command: a variable whose name or data were a view of the request would change with it.
    const fx = new FakeXen(23, 1, 128);
    const work = mkdtempSync(join(tmpdir(), 'vmsb-xen-reuse-'));
    mkdirSync(join(work, 'auth'));
    cleanup.push(
      () => fx.dispose(),
      () => rmSync(work, { recursive: true, force: true }),
    );
    fx.xenstoreWrite('/local/domain/23/platform/secureboot', 'false');
    const args = ['--domain', '23', '--transport', 'xen', '--backend', 'file'];
    args.push('--arg', `path:${join(work, 'nvram.bin')}`, '--arg', `auth-dir:${join(work, 'auth')}`);
    const daemon = startDaemon(args, fx.env());
    cleanup.push(() => daemon.child.kill('SIGKILL'));
    const pidKey = '/local/domain/23/varstored-pid';
    await until(
      () => fx.xenstoreRead(pidKey) === String(daemon.child.pid) || daemon.child.exitCode !== null,
      'readiness',
    );
    expect(fx.xenstoreRead(pidKey), daemon.output()).toBe(String(daemon.child.pid));

    // Same-length names and data: each request lays its bytes at the same offsets as the last.
    const written = [
      { name: utf16le('VmsbReuseA'), data: Buffer.alloc(48, 0x41), attributes: NV_BS_RT },
      { name: utf16le('VmsbReuseB'), data: Buffer.alloc(48, 0x42), attributes: 0x6 }, // volatile
      { name: utf16le('VmsbReuseC'), data: Buffer.alloc(48, 0x43), attributes: NV_BS_RT },
    ];
    for (const w of written) {
      const set = await call(fx, 0, 0x20, { command: 'SetVariable', guid: VENDOR, atRuntime: false, ...w });
      expect(set.status, daemon.output()).toBe(EfiStatus.SUCCESS);
    }
    // More traffic through the same buffer, then every variable read back as it was written.
    for (const w of written) {
      const other = await call(fx, 0, 0x20, {
        command: 'SetVariable',
        name: utf16le('VmsbReuseZ'),
        guid: VENDOR,
        data: Buffer.alloc(48, 0x5a ^ w.data[0]!),
        attributes: NV_BS_RT,
        atRuntime: false,
      });
      expect(other.status).toBe(EfiStatus.SUCCESS);
    }
    for (const w of written) {
      const got = await call(fx, 0, 0x20, {
        command: 'GetVariable',
        name: w.name,
        guid: VENDOR,
        dataSize: 100,
        atRuntime: false,
      });
      expect(got).toMatchObject({ status: EfiStatus.SUCCESS, attributes: w.attributes });
      expect(Buffer.from((got as { data: Uint8Array }).data).equals(w.data)).toBe(true);
    }
    // The names are intact too: enumeration finds each exactly once.
    const names: string[] = [];
    let previous = { name: new Uint8Array(0), guid: new Uint8Array(16) };
    for (let i = 0; i < 64; i++) {
      const next = await call(fx, 0, 0x20, {
        command: 'GetNextVariableName',
        nameSize: 1024,
        name: previous.name,
        guid: previous.guid,
        atRuntime: false,
      });
      if (next.status !== EfiStatus.SUCCESS) break;
      const n = next as { name: Uint8Array; guid: Uint8Array };
      previous = { name: n.name.slice(), guid: n.guid.slice() };
      if (Buffer.from(n.guid).equals(VENDOR)) names.push(Buffer.from(n.name).toString('utf16le'));
    }
    expect(names.sort()).toEqual(['VmsbReuseA', 'VmsbReuseB', 'VmsbReuseC', 'VmsbReuseZ']);
    daemon.child.kill('SIGTERM');
    expect(await daemon.exit, daemon.output()).toBe(0);
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
      // As xenopsd's /var/run/xen: a pidfile directory the daemon's ids cannot write after the drop.
      const pidfile = join(work, 'varstored-22.pid');
      args.push('--depriv', '--pidfile', pidfile);
      const daemon = startDaemon(args, fx.env());
      cleanup.push(() => daemon.child.kill('SIGKILL'));
      const pidKey = '/local/domain/22/varstored-pid';
      await until(
        () => fx.xenstoreRead(pidKey) === String(daemon.child.pid) || daemon.child.exitCode !== null,
        'readiness',
      );
      expect(fx.xenstoreRead(pidKey), daemon.output()).toBe(String(daemon.child.pid));
      // Under Xen readiness is xenstore's: the pidfile appeared at start, before the drop, as the C daemon's.
      expect(readFileSync(pidfile, 'utf8')).toBe(`${daemon.child.pid}\n`);
      expect(daemon.output()).toContain(
        `info: Pidfile ${pidfile} published at start: its directory is not writable by uid 65534 gid 65534 after the drop`,
      );
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
      // Out of the ids' reach for removal: emptied through the locked descriptor instead.
      expect(readFileSync(pidfile, 'utf8')).toBe('');
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
