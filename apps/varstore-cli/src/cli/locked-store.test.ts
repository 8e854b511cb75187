/**
 * One writer per NVRAM: `varstore` refuses to write a file store while a varstored serves it (the
 * daemon holds the store's lock for its life and would undo the change with its next write); reads
 * stay allowed. The daemon is the built one, started as the toolstack starts it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, lstatSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { assertBuilt, varstore } from './testing/support.js';

const VARSTORED = join(dirname(createRequire(import.meta.url).resolve('varstored/package.json')), 'bin', 'varstored');
const VENDOR = '11111111-2222-3333-4444-555555555555';

// Several processes per test (the daemon and each varstore run): slow on a loaded machine.
vi.setConfig({ testTimeout: 60_000 });

let dir: string;
let daemon: ChildProcess | undefined;

beforeEach(() => {
  assertBuilt();
  dir = mkdtempSync(join(tmpdir(), 'vmsb-locked-'));
});
afterEach(() => {
  daemon?.kill('SIGKILL');
  daemon = undefined;
  rmSync(dir, { recursive: true, force: true });
});

/** Starts varstored on `store` and resolves once it is ready (its pidfile holds its pid). */
async function serve(store: string): Promise<ChildProcess> {
  const pidfile = join(dir, 'varstored.pid');
  const child = spawn(
    VARSTORED,
    [
      '--domain',
      '3',
      '--transport',
      `unix:${join(dir, 'sock')}`,
      '--backend',
      'file',
      '--arg',
      `path:${store}`,
      '--pidfile',
      pidfile,
      '--arg',
      `auth-dir:${join(dir, 'auth')}`,
      '--log-level',
      'error',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (t: Buffer) => (stderr += t.toString()));
  let exited = false;
  child.once('exit', () => (exited = true));
  const deadline = Date.now() + 20_000;
  while (!existsSync(pidfile) || readFileSync(pidfile, 'utf8') !== `${child.pid}\n`) {
    if (exited || Date.now() > deadline) throw new Error(`varstored did not become ready: ${stderr}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return child;
}

describe('a store served by a running varstored', () => {
  it('refuses writes with exit 3, saying the VM is running and who holds it; reads still work', async () => {
    const store = join(dir, 'nvram.vars');
    expect((await varstore(['set', store, 'Mine', '--guid', VENDOR, '--hex', '01'])).code).toBe(0);
    const before = readFileSync(store);
    daemon = await serve(store);

    const set = await varstore(['set', store, 'Mine', '--guid', VENDOR, '--hex', '02']);
    expect(set.code).toBe(3);
    expect(set.stdout).not.toMatch(/✓/);
    expect(set.stderr).toContain(
      `${store}: the VM is running: process ${daemon.pid} (its varstored, or another varstore writing it) holds ${store}.lock; nothing was written`,
    );
    expect(set.stderr).toMatch(/stop the VM first/);
    expect(readFileSync(store)).toEqual(before);

    const get = await varstore(['get', store, 'Mine', '--guid', VENDOR, '--hex']);
    expect({ code: get.code, out: get.stdout }).toEqual({ code: 0, out: '01\n' });
    expect((await varstore(['ls', store])).code).toBe(0);

    // Once the VM is stopped, the same write goes through.
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon!.once('exit', r));
    daemon = undefined;
    expect((await varstore(['set', store, 'Mine', '--guid', VENDOR, '--hex', '02'])).code).toBe(0);
    expect((await varstore(['get', store, 'Mine', '--guid', VENDOR, '--hex'])).stdout).toBe('02\n');
  });

  it('refuses to write through a symbolic link (it would become a file), exit 3; reads follow it', async () => {
    const target = join(dir, 'real.vars');
    expect((await varstore(['set', target, 'Mine', '--guid', VENDOR, '--hex', '01'])).code).toBe(0);
    const link = join(dir, 'link.vars');
    symlinkSync(target, link);
    expect((await varstore(['get', link, 'Mine', '--guid', VENDOR, '--hex'])).stdout).toBe('01\n');
    const set = await varstore(['set', link, 'Mine', '--guid', VENDOR, '--hex', '02']);
    expect(set.code).toBe(3);
    expect(set.stderr).toContain(`${link} is a symbolic link (to ${target})`);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
  });
});
