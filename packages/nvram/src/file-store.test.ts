import { spawnSync } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StoreState, Variable } from '@vmsb/efi';
import { fromUtf16le, utf16le } from '@vmsb/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createFileStore, FileStoreLocked, lockFileStore, readSaveFile, writeSaveFile } from './file-store.js';
import { decodeVarsBlob, encodeVarsBlob, MAX_VARS_BLOB_SIZE } from './vars-blob.js';

const GUID = new Uint8Array(16).fill(0x42);

function variable(name: string, data: number[], attributes = 7): Variable {
  return {
    name: utf16le(name),
    guid: GUID,
    attributes,
    data: Uint8Array.from(data),
    timestamp: new Uint8Array(16),
    signerDigest: new Uint8Array(32),
  };
}

function state(variables: Variable[], morKey = new Uint8Array(8)): StoreState {
  return { variables, morKey, ppi: { index: 0, func: new Uint8Array(256) } };
}

const names = (s: StoreState | undefined): string[] => (s?.variables ?? []).map((v) => fromUtf16le(v.name));

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmsb-nvram-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('file store', () => {
  it('reports first boot when the file does not exist', async () => {
    expect(await createFileStore({ path: join(dir, 'nvram.vars') }).load()).toBeUndefined();
  });

  it('refuses a first boot where the file could never be written', async () => {
    const path = join(dir, 'missing', 'nvram.vars');
    await expect(createFileStore({ path }).load()).rejects.toThrow(
      `${path}: directory ${join(dir, 'missing')} does not exist`,
    );
  });

  it('removes temporary files of a writer that died, and only those', async () => {
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    await writeFile(join(dir, `.nvram.vars.${dead}.3.tmp`), 'partial');
    await writeFile(join(dir, `.nvram.vars.${process.pid}.1.tmp`), 'in progress');
    await writeFile(join(dir, `.other.vars.${dead}.1.tmp`), 'someone else');
    await createFileStore({ path: join(dir, 'nvram.vars') }).load();
    expect((await readdir(dir)).sort()).toEqual([`.nvram.vars.${process.pid}.1.tmp`, `.other.vars.${dead}.1.tmp`]);
  });

  it('writes the non-volatile variables as a VARS v2 blob and loads them back', async () => {
    const path = join(dir, 'nvram.vars');
    const store = createFileStore({ path });
    await store.save(
      state([variable('Boot0000', [1, 2]), variable('SetupMode', [1], 6), variable('BootOrder', [0, 0])]),
    );
    const bytes = new Uint8Array(await readFile(path));
    const decoded = decodeVarsBlob(bytes);
    expect(decoded.ok && decoded.version).toBe(2);
    expect(names(decoded.ok ? decoded.state : undefined)).toEqual(['Boot0000', 'BootOrder']);
    expect(names(await createFileStore({ path }).load())).toEqual(['Boot0000', 'BootOrder']);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it('skips a save that would write what is already on disk', async () => {
    const path = join(dir, 'nvram.vars');
    const store = createFileStore({ path });
    const s = state([variable('A', [1])]);
    await store.save(s);
    const before = await stat(path);
    // Volatile-only changes do not change the file either.
    await store.save(state([variable('A', [1]), variable('Volatile', [9], 6)]));
    expect((await stat(path)).ino).toBe(before.ino);
    await store.save(state([variable('A', [2])]));
    expect((await stat(path)).ino).not.toBe(before.ino);
  });

  it('skips an unchanged save right after loading', async () => {
    const path = join(dir, 'nvram.vars');
    await createFileStore({ path }).save(state([variable('A', [1])]));
    const before = await stat(path);
    const store = createFileStore({ path });
    const loaded = await store.load();
    await store.save(loaded!);
    expect((await stat(path)).ino).toBe(before.ino);
  });

  it('refuses a corrupt file with an error naming it, and leaves it untouched', async () => {
    const path = join(dir, 'nvram.vars');
    const blob = encodeVarsBlob(state([variable('A', [1, 2, 3])]), { nonVolatileOnly: true });
    const corrupt = blob.subarray(0, blob.length - 1);
    await writeFile(path, corrupt);
    await expect(createFileStore({ path }).load()).rejects.toThrow(`${path}: corrupt NVRAM (VARS blob): truncated`);
    expect(new Uint8Array(await readFile(path))).toEqual(corrupt);
  });

  it('refuses an empty file rather than treating it as first boot', async () => {
    const path = join(dir, 'nvram.vars');
    await writeFile(path, new Uint8Array(0));
    await expect(createFileStore({ path }).load()).rejects.toThrow(/too short for a VARS header/);
  });

  it('refuses a file larger than any valid blob without reading it', async () => {
    const path = join(dir, 'nvram.vars');
    await writeFile(path, '');
    await truncate(path, MAX_VARS_BLOB_SIZE + 1);
    await expect(createFileStore({ path }).load()).rejects.toThrow(/larger than any valid VARS blob/);
  });

  it('refuses a path that is not a regular file', async () => {
    await expect(createFileStore({ path: dir }).load()).rejects.toThrow(`${dir}: not a regular file`);
  });

  it('rejects a save it cannot make durable, writes nothing, and leaves no temporary file', async () => {
    const missing = join(dir, 'no-such-dir', 'nvram.vars');
    await expect(createFileStore({ path: missing }).save(state([variable('A', [1])]))).rejects.toThrow(
      `${missing}: cannot write`,
    );

    // The target is a directory: the rename fails after the temporary file was written.
    const target = join(dir, 'target');
    await mkdir(join(target, 'occupied'), { recursive: true });
    await expect(createFileStore({ path: target }).save(state([variable('A', [1])]))).rejects.toThrow(
      `${target}: cannot write`,
    );
    expect((await readdir(dir)).sort()).toEqual(['target']);
  });

  it('after a failed save, the next save writes again (nothing is assumed on disk)', async () => {
    const path = join(dir, 'nvram.vars');
    const store = createFileStore({ path });
    await store.save(state([variable('A', [1])]));
    await rm(path);
    await mkdir(join(path, 'blocker'), { recursive: true });
    await expect(store.save(state([variable('A', [2])]))).rejects.toThrow(/cannot write/);
    await rm(path, { recursive: true });
    await store.save(state([variable('A', [2])]));
    expect(names(await createFileStore({ path }).load())).toEqual(['A']);
  });

  it('runs saves one at a time in call order: the last call wins', async () => {
    const path = join(dir, 'nvram.vars');
    const store = createFileStore({ path });
    await Promise.all(Array.from({ length: 20 }, (_, i) => store.save(state([variable('Counter', [i + 1])]))));
    const loaded = await createFileStore({ path }).load();
    expect([...loaded!.variables[0]!.data]).toEqual([20]);
    expect((await readdir(dir)).sort()).toEqual(['nvram.vars']);
  });
});

describe('save file', () => {
  it('keeps every variable, volatile included, and the ancillary data', async () => {
    const path = join(dir, 'save.dat');
    const morKey = Uint8Array.from([8, 7, 6, 5, 4, 3, 2, 1]);
    const s: StoreState = {
      variables: [variable('NvVar', [1]), variable('SecureBoot', [0], 6)],
      morKey,
      ppi: { index: 0x104, func: new Uint8Array(256).fill(3) },
    };
    await writeSaveFile(path, s);
    expect(await readSaveFile(path)).toEqual(s);
  });

  it('names the file when it is missing or corrupt', async () => {
    const path = join(dir, 'save.dat');
    await expect(readSaveFile(path)).rejects.toThrow(`${path}: no such save file`);
    await writeFile(path, 'VARS\x02\x00\x00\x00');
    await expect(readSaveFile(path)).rejects.toThrow(`${path}: corrupt save file (VARS blob): too short`);
  });
});

/** Asks another process to take the store's lock (fcntl locks are per process): its answer. */
function lockFromAnotherProcess(path: string): string {
  // The built package (tests run after the build): the same code, in a process of its own.
  const source = fileURLToPath(new URL('../dist/index.js', import.meta.url));
  const script = `
    const { lockFileStore, FileStoreLocked } = await import(${JSON.stringify(source)});
    try { await lockFileStore(${JSON.stringify(path)}); console.log('locked'); }
    catch (e) { console.log(e instanceof FileStoreLocked ? 'held by ' + e.heldBy : 'error ' + e.message); }`;
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
  });
  return (run.stdout || run.stderr).trim();
}

// Each test starts Node processes: slow on a loaded machine.
describe('the store lock (one writer per NVRAM)', { timeout: 30_000 }, () => {
  it('is held across saves, which replace the file with a new inode, and names its holder', async () => {
    const path = join(dir, 'nvram.vars');
    const lock = await lockFileStore(path);
    expect(lock.lockPath).toBe(`${path}.lock`);
    const store = createFileStore({ path, lock });
    expect(await store.load()).toBeUndefined();
    await store.save(state([variable('A', [1])]));
    const first = (await stat(path)).ino;
    await store.save(state([variable('A', [2])]));
    expect((await stat(path)).ino).not.toBe(first);
    expect(lockFromAnotherProcess(path)).toBe(`held by ${process.pid}`);
    lock.release();
    expect(lockFromAnotherProcess(path)).toBe('locked');
  });

  it('refuses a lock that belongs to another store', async () => {
    const lock = await lockFileStore(join(dir, 'a.vars'));
    expect(() => createFileStore({ path: join(dir, 'b.vars'), lock })).toThrow(/is the lock of/);
    lock.release();
  });

  it('takes the lock under a root (the chroot the daemon will enter) for a path inside it', async () => {
    await mkdir(join(dir, 'jail'));
    const lock = await lockFileStore('/nvram.vars', { root: join(dir, 'jail') });
    expect(lock).toMatchObject({ path: '/nvram.vars', lockPath: join(dir, 'jail', 'nvram.vars.lock') });
    expect(lockFromAnotherProcess(join(dir, 'jail', 'nvram.vars'))).toBe(`held by ${process.pid}`);
    lock.release();
  });

  it('refuses a symbolic link as the store, naming the target, and leaves the link alone', async () => {
    const target = join(dir, 'real.vars');
    const link = join(dir, 'nvram.vars');
    await symlink(target, link);
    const message = `${link} is a symbolic link (to ${target}): the NVRAM file is replaced on every write, which would turn the link into a file; give the target's path instead`;
    await expect(lockFileStore(link)).rejects.toThrow(message);
    await expect(createFileStore({ path: link }).load()).rejects.toThrow(message);
    expect((await lstat(link)).isSymbolicLink()).toBe(true);
    expect(FileStoreLocked).toBeDefined();
  });
});
