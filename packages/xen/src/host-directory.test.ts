// openDirectory: files created, renamed and removed through a directory descriptor (the host binding
// built in build/Release, as the daemon loads it). Lock holders are asked from another process:
// fcntl locks belong to the process, so this one cannot see its own.
import { spawnSync } from 'node:child_process';
import {
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type DirectoryHandle, openDirectory } from './host.js';
import { packageRoot } from './native.js';

const hostModule = join(packageRoot, 'dist', 'host.js');

let dir: string;
let handle: DirectoryHandle;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'vmsb-dirhandle-'));
  handle = openDirectory(dir);
});
afterEach(() => {
  handle.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Who holds the lockf() lock of `path`, asked by another process ('free' if nobody). */
function holder(path: string): string {
  const out = spawnSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const h = await import(${JSON.stringify(hostModule)}); const a = h.lockFile(${JSON.stringify(path)}, { create: false }); console.log(a.ok ? 'free' : String(a.heldBy));`,
    ],
    { encoding: 'utf8' },
  );
  return out.stdout.trim();
}

/** The errno name a call fails with. */
function code(call: () => unknown): string | undefined {
  try {
    call();
  } catch (e) {
    return (e as NodeJS.ErrnoException).code;
  }
  return undefined;
}

describe('openDirectory', () => {
  it('creates a file exclusively and locked, renames it without replacing, and the lock moves with it', () => {
    const lock = handle.createLocked('tmp', 0o600);
    expect(code(() => handle.createLocked('tmp', 0o600))).toBe('EEXIST');
    lock.write('42\n');
    expect(statSync(join(dir, 'tmp')).mode & 0o777).toBe(0o600);
    writeFileSync(join(dir, 'taken'), 'x');
    expect(handle.rename('tmp', 'taken', { noReplace: true })).toBe(false);
    expect(handle.rename('tmp', 'final', { noReplace: true })).toBe(true);
    expect(readdirSync(dir).sort()).toEqual(['final', 'taken']);
    expect(holder(join(dir, 'final'))).toBe(String(process.pid));
    lock.release();
  });

  it('claims a file nobody holds, refuses one another process holds (naming it), and says when there is none', () => {
    expect(handle.claim('absent')).toBeUndefined();
    writeFileSync(join(dir, 'stale'), 'old');
    const claimed = handle.claim('stale');
    expect(claimed?.ok).toBe(true);
    expect(holder(join(dir, 'stale'))).toBe(String(process.pid));
    if (claimed?.ok) claimed.lock.release();

    const lock = handle.createLocked('live', 0o600);
    const asked = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const h = await import(${JSON.stringify(hostModule)}); const d = h.openDirectory(${JSON.stringify(dir)}); console.log(JSON.stringify(d.claim('live')));`,
      ],
      { encoding: 'utf8' },
    );
    expect(JSON.parse(asked.stdout)).toEqual({ ok: false, heldBy: process.pid });
    lock.release();
  });

  it('removes a name only while it is the held file, never one that replaced it', () => {
    const lock = handle.createLocked('mine', 0o600);
    renameSync(join(dir, 'mine'), join(dir, 'moved'));
    writeFileSync(join(dir, 'mine'), 'someone else');
    expect(handle.removeIfHeld('mine', lock)).toBe(false);
    expect(readFileSync(join(dir, 'mine'), 'utf8')).toBe('someone else');
    expect(handle.removeIfHeld('moved', lock)).toBe(true);
    expect(handle.removeIfHeld('moved', lock)).toBe(false);
    lock.release();
    expect(() => handle.removeIfHeld('mine', lock)).toThrow(/released/);
  });

  it('takes one path component as a name and never follows a symbolic link', () => {
    for (const bad of ['', '.', '..', 'a/b', '../x', 'nul\0']) {
      expect(() => handle.createLocked(bad, 0o600)).toThrow(TypeError);
      expect(() => handle.claim(bad)).toThrow(TypeError);
    }
    symlinkSync(join(dir, 'target'), join(dir, 'link'));
    expect(code(() => handle.createLocked('link', 0o600))).toBe('EEXIST');
    expect(code(() => handle.claim('link'))).toBe('ELOOP');
    expect(readdirSync(dir)).toEqual(['link']);
    handle.close();
    expect(() => handle.claim('x')).toThrow(/closed/);
  });
});
