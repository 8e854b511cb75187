import { lstat, readdir, readlink, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { StoreState } from '@vmsb/efi';
import { readBoundedFile, ReplaceError, replaceFile } from './durable-file.js';
import { decodeVarsBlob, encodeVarsBlob, MAX_VARS_BLOB_SIZE } from './vars-blob.js';

/** Where a VM's non-volatile variables live between boots. */
export interface NvramStore {
  /** undefined = first boot (nothing stored yet). Throws an Error naming the file/source on corrupt data. */
  load(): Promise<StoreState | undefined>;
  /** Make the NV state durable before resolving; reject on failure (nothing partially written). */
  save(state: StoreState): Promise<void>;
}

export interface FileStoreOptions {
  /** The file holding the binary VARS blob (what XAPI holds, before base64). */
  readonly path: string;
  /** The store's lock (`lockFileStore`), held by whoever writes it for as long as it may write. */
  readonly lock?: FileStoreLock;
}

export interface FileStore extends NvramStore {
  readonly path: string;
}

/**
 * One writer per NVRAM: an exclusive lockf() lock on `<path>.lock`, a file beside the store. The
 * store itself cannot carry the lock: every save replaces it with a new inode (rename), and a lock
 * lives on an inode. The lock file is created once (mode 0644, so anyone can see who holds it) and
 * never removed: removing it would let two writers lock two different inodes. The lock belongs to
 * the process, is released when it exits (even by SIGKILL), and must not be reopened by it.
 */
export interface FileStoreLock {
  /** The store, as given. */
  readonly path: string;
  /** The lock file, as opened (under `root` when one was given). */
  readonly lockPath: string;
  release(): void;
}

/** Another process writes the store: a running varstored, or `varstore` writing it. */
export class FileStoreLocked extends Error {
  constructor(
    readonly path: string,
    readonly lockPath: string,
    /** The holder's pid; 0 when the kernel cannot name it (another pid namespace). */
    readonly heldBy: number,
  ) {
    super(`${path} is in use by another process${heldBy ? ` (pid ${heldBy})` : ''}: it holds the lock ${lockPath}`);
  }
}

/** The lock file of the store at `path`. */
export function fileStoreLockPath(path: string): string {
  return `${path}.lock`;
}

/**
 * A symbolic link as the store is refused rather than followed: each save replaces the file, so it
 * would replace the link with a regular file and the link's target would stop receiving updates
 * (and a link could point a privileged daemon at any file). Directories on the way may be links.
 */
export async function refuseSymlinkedStore(path: string): Promise<void> {
  const info = await lstat(path).catch(() => undefined);
  if (info?.isSymbolicLink()) {
    const target = await readlink(path).catch(() => '?');
    throw new Error(
      `${path} is a symbolic link (to ${target}): the NVRAM file is replaced on every write, which would turn the link into a file; give the target's path instead`,
    );
  }
}

/**
 * Takes the store's lock (see FileStoreLock), creating the lock file if needed. `root`: the directory
 * `path` is relative to when it is opened (the chroot the daemon will enter; the lock is taken before).
 * Throws FileStoreLocked when another process holds it, and an Error naming the file otherwise.
 */
export async function lockFileStore(path: string, options: { root?: string } = {}): Promise<FileStoreLock> {
  const onHost = options.root === undefined ? path : join(options.root, resolve('/', path));
  await refuseSymlinkedStore(onHost);
  const lockPath = fileStoreLockPath(onHost);
  let host: typeof import('@vmsb/xen/host');
  try {
    host = await import('@vmsb/xen/host');
  } catch (e) {
    throw new Error(`cannot lock ${path}: the host binding of @vmsb/xen cannot be loaded (${(e as Error).message})`);
  }
  let attempt: ReturnType<typeof host.lockFile>;
  try {
    attempt = host.lockFile(lockPath, { create: true, mode: 0o644 });
  } catch (e) {
    throw new Error(`cannot lock ${path}: ${(e as Error).message}`);
  }
  if (!attempt.ok) throw new FileStoreLocked(path, lockPath, attempt.heldBy);
  const { lock } = attempt;
  return { path, lockPath, release: () => lock.release() };
}

/**
 * The embedded store: one file holding the non-volatile variables as a VARS v2 blob, replaced
 * atomically and durably on every change. A missing file means first boot; an unreadable or
 * corrupt one is an error naming the file, never an empty store. Saves that would write the
 * bytes already on disk are skipped. Saves run one at a time, in call order. A symbolic link as the
 * store is refused (see refuseSymlinkedStore); the writer holds the store's lock (lockFileStore).
 */
export function createFileStore(options: FileStoreOptions): FileStore {
  const { path } = options;
  if (options.lock !== undefined && options.lock.path !== path) {
    throw new Error(`the lock given for ${path} is the lock of ${options.lock.path}`);
  }
  /** The blob known to be on disk (undefined: unknown or no file), to skip unchanged writes. */
  let onDisk: Uint8Array | undefined;
  let fileExists = false;
  let queue: Promise<unknown> = Promise.resolve();

  const serialised = <T>(work: () => Promise<T>): Promise<T> => {
    const run = queue.then(work, work);
    queue = run.catch(() => undefined);
    return run;
  };

  return {
    path,
    load: () =>
      serialised(async () => {
        await refuseSymlinkedStore(path);
        await removeStaleTemporaries(path);
        const bytes = await readBoundedFile(path, MAX_VARS_BLOB_SIZE);
        if (bytes === undefined) {
          // First boot. Saving must be possible, or every non-volatile write would fail later.
          const dir = dirname(path);
          const info = await stat(dir).catch(() => undefined);
          if (info === undefined || !info.isDirectory()) throw new Error(`${path}: directory ${dir} does not exist`);
          fileExists = false;
          onDisk = undefined;
          return undefined;
        }
        const decoded = decodeVarsBlob(bytes);
        if (!decoded.ok) throw new Error(`${path}: corrupt NVRAM (VARS blob): ${decoded.error}`);
        fileExists = true;
        onDisk = encodeVarsBlob(decoded.state, { nonVolatileOnly: true });
        return decoded.state;
      }),
    save: (state) =>
      serialised(async () => {
        const bytes = encodeVarsBlob(state, { nonVolatileOnly: true });
        if (onDisk !== undefined && sameBytes(onDisk, bytes)) return;
        const previous = fileExists ? onDisk : undefined;
        try {
          await replaceFile(path, bytes);
        } catch (e) {
          if (e instanceof ReplaceError && e.replaced) await restore(path, previous, fileExists);
          onDisk = undefined;
          throw e;
        }
        fileExists = true;
        onDisk = bytes;
      }),
  };
}

/**
 * Temporary files left by a process that died in the middle of `replaceFile` (they are named
 * `.<file>.<pid>.<n>.tmp`): removed when that process no longer exists.
 */
async function removeStaleTemporaries(path: string): Promise<void> {
  const dir = dirname(path);
  const prefix = `.${basename(path)}.`;
  const entries = await readdir(dir).catch(() => [] as string[]);
  for (const entry of entries) {
    if (!entry.startsWith(prefix)) continue;
    const match = /^(\d+)\.\d+\.tmp$/.exec(entry.slice(prefix.length));
    if (match === null || processExists(Number(match[1]))) continue;
    await rm(join(dir, entry), { force: true }).catch(() => undefined);
  }
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * After a write that may have landed but is not known durable, put the previous content back so
 * that the caller's rollback of its in-memory state matches the file again. Best effort: the
 * original error is what the caller reports.
 */
async function restore(path: string, previous: Uint8Array | undefined, existed: boolean): Promise<void> {
  try {
    if (previous !== undefined) await replaceFile(path, previous);
    else if (!existed) await rm(path, { force: true });
  } catch {
    // Nothing more can be done here; the save already failed.
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/**
 * Writes the suspend/migrate save file: every variable (volatile included) and the ancillary data,
 * as a VARS v2 blob, replaced atomically.
 */
export async function writeSaveFile(path: string, state: StoreState): Promise<void> {
  await replaceFile(path, encodeVarsBlob(state, { nonVolatileOnly: false }));
}

/** Reads a save file written by `writeSaveFile` (or by the C varstored). Throws an Error naming the file. */
export async function readSaveFile(path: string): Promise<StoreState> {
  const bytes = await readBoundedFile(path, MAX_VARS_BLOB_SIZE);
  if (bytes === undefined) throw new Error(`${path}: no such save file`);
  const decoded = decodeVarsBlob(bytes);
  if (!decoded.ok) throw new Error(`${path}: corrupt save file (VARS blob): ${decoded.error}`);
  return decoded.state;
}
