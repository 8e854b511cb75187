import { unlinkSync } from 'node:fs';
import { resolve } from 'node:path';

/**
 * The pidfile: locked with lockf() for the daemon's whole life, as the C daemon does, so that a
 * second daemon on the same file refuses to start; empty until the daemon is ready, then `<pid>\n`.
 *
 * The lock is on the file itself (an exclusive fcntl lock, which needs write access to it): nobody
 * without write access to the pidfile can take it first. It is written through the descriptor that
 * holds the lock, so readiness can be announced after the chroot and the uid change, and the inode
 * (and so the lock) stays the same. fcntl locks are dropped when the process closes any descriptor
 * of the file: nothing else in the daemon opens it.
 */
export interface PidfileLock {
  readonly path: string;
  /** Writes `<pid>\n`. Once only; later calls do nothing. */
  publish(): void;
  readonly published: boolean;
  /** Removes the pidfile (while still holding the lock, so it cannot be another daemon's) and drops the lock. */
  release(): void;
}

export class PidfileLocked extends Error {}

export async function lockPidfile(path: string): Promise<PidfileLock> {
  const absolute = resolve(path);
  let host: typeof import('@vmsb/xen/host');
  try {
    host = await import('@vmsb/xen/host');
  } catch (e) {
    throw new Error(`Could not lock pidfile '${path}': the host binding cannot be loaded: ${(e as Error).message}`);
  }
  let attempt: ReturnType<typeof host.lockFile>;
  try {
    attempt = host.lockFile(absolute, { create: true, mode: 0o600 });
  } catch (e) {
    throw new Error(`Could not open pidfile '${path}': ${(e as Error).message}`);
  }
  if (!attempt.ok) {
    throw new PidfileLocked(
      `Failed to lock pidfile '${path}': it is held by another varstored${attempt.heldBy ? ` (pid ${attempt.heldBy})` : ''}`,
    );
  }
  const { lock } = attempt;
  // We hold the lock, so any content is left over from a daemon that died: it must not signal
  // readiness for this one.
  lock.write('');

  let published = false;
  let released = false;
  return {
    path,
    publish: () => {
      if (published || released) return;
      lock.write(`${process.pid}\n`);
      published = true;
    },
    get published() {
      return published;
    },
    release: () => {
      if (released) return;
      released = true;
      try {
        // Emptied first: inside a chroot the path is out of reach, and a stale pid must not read
        // as a ready daemon.
        lock.write('');
        unlinkSync(absolute);
      } catch {
        // Out of reach (chroot) or already gone: the empty, unlocked file is harmless.
      }
      lock.release();
    },
  };
}
