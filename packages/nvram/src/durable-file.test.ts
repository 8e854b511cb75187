import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ReplaceError, replaceFile, replaceFileSync } from './durable-file.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'vmsb-durable-'));
});
afterEach(() => {
  chmodSync(dir, 0o700);
  rmSync(dir, { recursive: true, force: true });
});

describe('replaceFileSync', () => {
  it('has replaced the file when it returns, owner-only, leaving no temporary file', () => {
    const path = join(dir, 'nvram.vars');
    writeFileSync(path, 'old');
    const bytes = new Uint8Array(200_000).map((_, i) => i & 0xff);
    replaceFileSync(path, bytes);
    expect(readFileSync(path).equals(bytes)).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['nvram.vars']);
  });

  it('writes an empty file', () => {
    const path = join(dir, 'empty');
    replaceFileSync(path, new Uint8Array(0));
    expect(readFileSync(path).length).toBe(0);
  });

  it('fails naming the file, keeps the old content and removes its temporary file', () => {
    const path = join(dir, 'nvram.vars');
    writeFileSync(path, 'old');
    // A non-empty directory where the file should be: the rename fails after the temporary file was written.
    const blocked = join(dir, 'blocked');
    mkdirSync(join(blocked, 'child'), { recursive: true });
    let error: unknown;
    try {
      replaceFileSync(blocked, Uint8Array.of(1, 2, 3));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ReplaceError);
    expect((error as ReplaceError).replaced).toBe(false);
    expect((error as Error).message).toContain(`${blocked}: cannot write`);
    expect(readdirSync(dir).sort()).toEqual(['blocked', 'nvram.vars']);
    expect(readFileSync(path, 'utf8')).toBe('old');
  });

  it.skipIf(process.getuid?.() === 0)('fails in a directory it cannot write (not as root: root writes anyway)', () => {
    chmodSync(dir, 0o500);
    expect(() => replaceFileSync(join(dir, 'x'), Uint8Array.of(1))).toThrow(ReplaceError);
  });
});

describe('replaceFile', () => {
  it('has written the file before its promise is even awaited (no thread-pool round trips)', async () => {
    const path = join(dir, 'nvram.vars');
    const settled = replaceFile(path, Uint8Array.of(7, 8, 9));
    expect([...readFileSync(path)]).toEqual([7, 8, 9]);
    await settled;
  });

  it('rejects with the ReplaceError', async () => {
    await expect(replaceFile(join(dir, 'missing', 'x'), Uint8Array.of(1))).rejects.toBeInstanceOf(ReplaceError);
  });
});
