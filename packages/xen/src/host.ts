// @vmsb/xen/host: the host binding (build/Release/vmsb_host.node), which links no Xen library: lockf()
// locks for the pidfile and the file store, and the sandbox varstored enters at its drop point. Loaded
// on first use; importing this module never fails.
import { closeSync, fchownSync, ftruncateSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { loadFailureReason, nativeFile } from './native.js';

interface HostBinding {
  lock(path: string, create: boolean, mode: number): number | { heldBy: number };
  openDirectory(path: string): number;
  createLockedAt(dirfd: number, name: string, mode: number): number;
  claimAt(dirfd: number, name: string): number | { heldBy: number } | null;
  renameAt(dirfd: number, from: string, to: string, noReplace: boolean): boolean;
  unlinkAtIfSame(dirfd: number, name: string, fd: number): boolean;
  enterSandbox(options: SandboxOptions): void;
  filterText(): string | undefined;
  trimMemory(): MemoryTrim;
  readonly seccompAvailable: boolean;
}

/** What `enterSandbox` applies; see README "Security model". */
export interface SandboxOptions {
  /** Directory to chroot into (the working directory becomes its root). */
  chroot?: string;
  /** User to become; 0 or absent leaves it unchanged. */
  uid?: number;
  /** Group to become, and the only supplementary group; 0 or absent leaves it unchanged. */
  gid?: number;
  /** varstored's --depriv: rlimits, no new privileges, and the seccomp filter on every thread. */
  depriv: boolean;
  /** RLIMIT_FSIZE under depriv: the largest file the process may write, in bytes (4096 to 2^30). */
  fileSizeLimit?: number;
}

/** An exclusive lockf() lock, held until `release()` or the end of the process. */
export interface FileLock {
  readonly path: string;
  /** Replaces the file's content through the locked descriptor (the inode, and so the lock, stays). */
  write(text: string): void;
  /** Closes the descriptor, which drops the lock. Idempotent. */
  release(): void;
}

export type LockAttempt = { ok: true; lock: FileLock } | { ok: false; heldBy: number };

export type HostAvailability = { ok: true; seccomp: boolean } | { ok: false; reason: string };

let loaded: { binding: HostBinding } | { reason: string } | undefined;

function load(): { binding: HostBinding } | { reason: string } {
  if (loaded) return loaded;
  const file = nativeFile('vmsb_host.node');
  try {
    loaded = { binding: createRequire(import.meta.url)(file) as HostBinding };
  } catch (e) {
    loaded = {
      reason: /Cannot find module/.test((e as Error).message)
        ? `the host binding is not built (${file} is missing): run pnpm install (it needs Node's headers and libseccomp-dev)`
        : loadFailureReason(file, e),
    };
  }
  return loaded;
}

function binding(): HostBinding {
  const result = load();
  if ('reason' in result) throw new Error(result.reason);
  return result.binding;
}

/** Whether the host binding loads, and whether it can build the seccomp filter. */
export function hostAvailability(): HostAvailability {
  const result = load();
  return 'reason' in result
    ? { ok: false, reason: result.reason }
    : { ok: true, seccomp: result.binding.seccompAvailable };
}

/**
 * Takes an exclusive lockf() lock on `path` (opened for writing, never through a symbolic link;
 * created with `mode` when `create`). Another process holding it is an answer, not an error:
 * `{ ok: false, heldBy }` with its pid (0 when the kernel cannot name it). fcntl locks belong to the
 * process and any close() of that file by the process drops them: the process must not open the
 * file again while it holds the lock.
 */
export function lockFile(path: string, options: { create: boolean; mode?: number }): LockAttempt {
  if (typeof path !== 'string' || path === '' || path.includes('\0')) {
    throw new TypeError('a lock file path is a non-empty string without NUL');
  }
  const answer = binding().lock(path, options.create, options.mode ?? 0o644);
  if (typeof answer !== 'number') return { ok: false, heldBy: answer.heldBy };
  return { ok: true, lock: heldLock(path, answer) };
}

/** The descriptor behind each lock this module handed out, while it is held. */
const descriptors = new WeakMap<FileLock, () => number | undefined>();

function heldLock(path: string, descriptor: number): FileLock {
  let fd: number | undefined = descriptor;
  const lock: FileLock = {
    path,
    write(text: string) {
      if (fd === undefined) throw new Error(`${path}: the lock was released`);
      ftruncateSync(fd, 0);
      const bytes = Buffer.from(text, 'utf8');
      let done = 0;
      while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done, done);
    },
    release() {
      if (fd === undefined) return;
      const closing = fd;
      fd = undefined;
      closeSync(closing);
    },
  };
  descriptors.set(lock, () => fd);
  return lock;
}

function entryName(name: string): string {
  if (typeof name !== 'string' || name === '' || name === '.' || name === '..' || /[/\0]/.test(name)) {
    throw new TypeError(`a directory entry name is one path component, got ${JSON.stringify(name)}`);
  }
  return name;
}

/**
 * A directory held open by an O_PATH descriptor, so that files in it can still be created, renamed
 * and removed by name after a chroot has put its path out of reach. Every name is one component.
 */
export interface DirectoryHandle {
  readonly path: string;
  /**
   * Creates `name` (O_EXCL, never through a symbolic link, with `mode`) and locks it with lockf().
   * With `owner`, hands the file to those ids (a sticky directory lets only its owner rename it).
   */
  createLocked(name: string, mode: number, owner?: { uid: number; gid: number }): FileLock;
  /**
   * Locks `name` if nobody holds its lockf() lock and it is still what the name refers to (a stale
   * file may then be replaced or removed; release the lock afterwards). `undefined` when there is no
   * such file; `{ ok: false, heldBy }` (0 when the kernel cannot name the holder) when it is locked.
   */
  claim(name: string): LockAttempt | undefined;
  /** Renames `from` to `to` in this directory; with `noReplace` (RENAME_NOREPLACE), false if `to` exists. */
  rename(from: string, to: string, options: { noReplace: boolean }): boolean;
  /** Removes `name` only while it is the file `lock` holds (never one that replaced it); whether it did. */
  removeIfHeld(name: string, lock: FileLock): boolean;
  /** Closes the descriptor. Idempotent. */
  close(): void;
}

/** Opens `path` as a DirectoryHandle (O_PATH | O_DIRECTORY | O_CLOEXEC). */
export function openDirectory(path: string): DirectoryHandle {
  if (typeof path !== 'string' || path === '' || path.includes('\0')) {
    throw new TypeError('a directory path is a non-empty string without NUL');
  }
  const native = binding();
  let dirfd: number | undefined = native.openDirectory(path);
  const open = (): number => {
    if (dirfd === undefined) throw new Error(`${path}: the directory was closed`);
    return dirfd;
  };
  const held = (lock: FileLock): number => {
    const fd = descriptors.get(lock)?.();
    if (fd === undefined) throw new Error(`${lock.path}: the lock was released`);
    return fd;
  };
  return {
    path,
    createLocked(name, mode, owner) {
      const fd = native.createLockedAt(open(), entryName(name), mode);
      const lock = heldLock(`${path}/${name}`, fd);
      if (owner !== undefined) {
        try {
          fchownSync(fd, owner.uid, owner.gid);
        } catch (e) {
          native.unlinkAtIfSame(open(), name, fd);
          lock.release();
          throw e;
        }
      }
      return lock;
    },
    claim(name) {
      const answer = native.claimAt(open(), entryName(name));
      if (answer === null) return undefined;
      if (typeof answer !== 'number') return { ok: false, heldBy: answer.heldBy };
      return { ok: true, lock: heldLock(`${path}/${name}`, answer) };
    },
    rename(from, to, options) {
      return native.renameAt(open(), entryName(from), entryName(to), options.noReplace);
    },
    removeIfHeld(name, lock) {
      return native.unlinkAtIfSame(open(), entryName(name), held(lock));
    },
    close() {
      if (dirfd === undefined) return;
      const closing = dirfd;
      dirfd = undefined;
      closeSync(closing);
    },
  };
}

/**
 * Enters the sandbox, in the C varstored's order: chroot, groups and gid, uid (and proves root cannot
 * be regained); under `depriv` then RLIMIT_FSIZE = fileSizeLimit, RLIMIT_NPROC = 0, RLIMIT_CORE = 0,
 * PR_SET_NO_NEW_PRIVS and the seccomp filter on every thread. RLIMIT_NPROC = 0 forbids new threads
 * too: start every thread the process will need (libuv's pool) first. The namespaces are entered
 * before Node starts (the vmsb-launch executable), because unshare() applies to one thread only.
 */
export function enterSandbox(options: SandboxOptions): void {
  const { chroot, uid, gid, depriv, fileSizeLimit } = options;
  if (chroot !== undefined && (typeof chroot !== 'string' || chroot === '' || chroot.includes('\0'))) {
    throw new TypeError('chroot must be a non-empty directory path');
  }
  for (const [name, id] of [
    ['uid', uid],
    ['gid', gid],
  ] as const) {
    if (id !== undefined && (!Number.isInteger(id) || id < 0 || id > 0xfffffffe)) {
      throw new RangeError(`${name} must be an integer from 0 to 4294967294, got ${String(id)}`);
    }
  }
  if (typeof depriv !== 'boolean') throw new TypeError('depriv must be a boolean');
  if (depriv && (!Number.isInteger(fileSizeLimit) || fileSizeLimit! < 4096 || fileSizeLimit! > 2 ** 30)) {
    throw new RangeError(
      `fileSizeLimit must be an integer from 4096 to 2^30 under depriv, got ${String(fileSizeLimit)}`,
    );
  }
  const native = binding();
  native.enterSandbox({
    ...(chroot !== undefined ? { chroot } : {}),
    ...(uid !== undefined ? { uid } : {}),
    ...(gid !== undefined ? { gid } : {}),
    depriv,
    ...(depriv ? { fileSizeLimit } : {}),
  });
  // The binding moved to the new root; Node caches the working directory, so tell it too, or
  // path.resolve() would keep resolving against the old one. chdir itself is not filtered.
  if (chroot !== undefined) process.chdir('/');
}

/** The seccomp filter `enterSandbox` loads under depriv, as libseccomp prints it (PFC); undefined without libseccomp. */
export function seccompFilterText(): string | undefined {
  return binding().filterText();
}

/** What `trimMemory` did. */
export interface MemoryTrim {
  /** V8's total heap size before and after its collection, in bytes. */
  readonly heapBefore: number;
  readonly heapAfter: number;
  /** Whether malloc_trim handed memory back to the kernel. */
  readonly mallocReleased: boolean;
}

/**
 * Gives memory the process no longer uses back to the kernel: V8's low-memory collection (full and
 * compacting, until nothing more is freed), then glibc's malloc_trim(0). Costs 10-40 ms of the
 * JavaScript thread after a VM's boot, so call it only when the process is idle. Allowed by the
 * sandbox's seccomp filter.
 */
export function trimMemory(): MemoryTrim {
  return binding().trimMemory();
}

/** The launcher executable (see native/launch.c and native-artefacts.json). */
export const launcherPath = nativeFile('vmsb-launch');

/** The variable vmsb-launch sets to the namespaces it entered ("net:[…] ipc:[…] uts:[…] mnt:[…]"). */
export const DEPRIV_NAMESPACES_ENV = 'VMSB_DEPRIV_NAMESPACES';
