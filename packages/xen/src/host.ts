// @vmsb/xen/host: the host binding (build/Release/vmsb_host.node), which links no Xen library: lockf()
// locks for the pidfile and the file store, and the sandbox varstored enters at its drop point. Loaded
// on first use; importing this module never fails.
import { closeSync, ftruncateSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { loadFailureReason, nativeFile } from './native.js';

interface HostBinding {
  lock(path: string, create: boolean, mode: number): number | { heldBy: number };
  enterSandbox(options: SandboxOptions): void;
  filterText(): string | undefined;
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
  let fd: number | undefined = answer;
  return {
    ok: true,
    lock: {
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

/** The launcher executable (see native/launch.c and native-artefacts.json). */
export const launcherPath = nativeFile('vmsb-launch');

/** The variable vmsb-launch sets to the namespaces it entered ("net:[…] ipc:[…] uts:[…] mnt:[…]"). */
export const DEPRIV_NAMESPACES_ENV = 'VMSB_DEPRIV_NAMESPACES';
