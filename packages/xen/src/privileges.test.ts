// Dropping privileges in a process that serves a guest: the production binding (dist/) in a child
// process whose Xen libraries are the fake ones (LD_PRELOAD), driven from here as Xen would drive it.
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { packageRoot } from './native.js';
import { FakeXen, fakeBuilt } from './testing/fake-xen.js';

const distIndex = join(packageRoot, 'dist', 'index.js');
const childScript = join(packageRoot, 'src', 'testing', 'serve-child.mjs');
const isRoot = process.getuid?.() === 0;

interface Report {
  dropError?: string;
  uid: number;
  euid: number;
  gid: number;
  egid: number;
  groups: number[];
  noNewPrivs: boolean;
  cwd: string;
  root: string[] | string;
  regain: string;
  platform?: string;
  vcpus: number;
}

function serve(
  fx: FakeXen,
  drop: object,
  exitAfterStart = false,
): { child: ChildProcess; report: Promise<Report>; stderr: () => string } {
  const child = spawn(
    process.execPath,
    [childScript, pathToFileURL(distIndex).href, JSON.stringify({ domid: fx.domid, drop, exitAfterStart })],
    {
      env: { ...process.env, ...fx.env() },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const report = new Promise<Report>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', (line) => resolve(JSON.parse(line) as Report));
    child.once('exit', (code) => reject(new Error(`child exited (${code}) before reporting: ${stderr}`)));
  });
  report.catch(() => {}); // a test that expects the child to exit early does not await the report
  return { child, report, stderr: () => stderr };
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

describe.skipIf(!fakeBuilt || !existsSync(distIndex) || !isRoot)('dropPrivileges in a serving process', () => {
  const cleanup: (() => void)[] = [];
  afterEach(() => {
    for (const f of cleanup.splice(0)) f();
  });

  it('chroots, drops groups, gid and uid, cannot regain root, and keeps serving the guest', async () => {
    const fx = new FakeXen(11, 2, 64);
    const jail = mkdtempSync(join(tmpdir(), 'vmsb-jail-'));
    chmodSync(jail, 0o755);
    writeFileSync(join(jail, 'inside-the-jail'), '');
    cleanup.push(
      () => fx.dispose(),
      () => rmSync(jail, { recursive: true, force: true }),
    );
    fx.xenstoreWrite('/local/domain/11/platform/secureboot', 'true');

    const { child, report } = serve(fx, { chroot: jail, uid: 65534, gid: 65534, depriv: true, fileSizeLimit: 1 << 20 });
    cleanup.push(() => child.kill('SIGKILL'));
    expect(await report).toEqual({
      uid: 65534,
      euid: 65534,
      gid: 65534,
      egid: 65534,
      groups: [65534],
      noNewPrivs: true,
      cwd: '/',
      root: ['inside-the-jail'],
      regain: 'not tried',
      platform: 'true',
      vcpus: 2,
    });
    expect(fx.xenstoreRead('/local/domain/11/varstored-pid')).toBe(String(child.pid));
    expect(fx.snapshot().counters).toMatchObject({ dmRestricted: 11, fmRestricted: 11, evRestricted: 11 });

    // The handles opened before the drop still serve the guest afterwards.
    const request = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
    fx.writeBuffer(0x20, request);
    expect((await fx.out(1, 0x100, 4, 0x20)).outcome).toBe('completed');
    expect([...fx.readBuffer(0x20, 16)]).toEqual([...request].reverse());
    await fx.out(0, 0x104, 4, 5);
    expect(await fx.in(0, 0x108, 4)).toMatchObject({ outcome: 'completed', value: 5 * 3 + 4 });

    child.kill('SIGTERM');
    expect(await exited(child)).toBe(0);
    expect(fx.snapshot().servers).toEqual([]);
    expect(fx.snapshot().counters).toMatchObject({ dmOpen: 0, fmOpen: 0, evOpen: 0, foreignPages: 0 });
  });

  it('reports a chroot that cannot be entered, and changes nothing else', async () => {
    const fx = new FakeXen(12, 1, 32);
    cleanup.push(() => fx.dispose());
    const { child, report } = serve(fx, { chroot: '/nonexistent/jail', uid: 65534, depriv: false });
    cleanup.push(() => child.kill('SIGKILL'));
    const r = await report;
    expect(r.dropError).toBe('chroot failed: No such file or directory (/nonexistent/jail)');
    expect(r).toMatchObject({ uid: 0, euid: 0, noNewPrivs: false, regain: 'succeeded' });
    child.kill('SIGTERM');
    expect(await exited(child)).toBe(0);
  });
});

describe.skipIf(!fakeBuilt || !existsSync(distIndex))('a serving process that exits without closing', () => {
  it('still releases the domain: the server is destroyed and the ports unclaimed', async () => {
    const fx = new FakeXen(13, 2, 32);
    try {
      const { child } = serve(fx, { depriv: false }, true);
      expect(await exited(child)).toBe(3);
      expect(fx.snapshot().servers).toEqual([]);
      expect(fx.snapshot().counters).toMatchObject({ dmOpen: 0, fmOpen: 0, evOpen: 0 });
      expect((await fx.in(0, 0x100, 4)).outcome).toBe('unclaimed');
    } finally {
      fx.dispose();
    }
  });
});
