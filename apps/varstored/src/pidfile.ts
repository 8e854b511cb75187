import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import type { DirectoryHandle, FileLock } from '@vmsb/xen/host';

/**
 * The pidfile: it exists only once the daemon is ready, holds `<pid>\n` from the moment it appears,
 * and is locked with lockf() for the daemon's whole life, so that a second daemon on the same path
 * refuses to start (naming the holder).
 *
 * At start (before the drop) the daemon refuses if a live daemon holds the pidfile, removes a stale
 * one, and prepares a private temporary file beside it (O_EXCL, 0600), locked and holding `<pid>\n`.
 * Readiness renames it onto the pidfile path, so a watcher never sees an empty or early pidfile. The
 * rename goes through a descriptor of the pidfile's directory opened before the drop, so it works
 * inside a chroot; the lock is on the inode and moves with it. That descriptor is closed as soon as
 * the pidfile is published: a directory descriptor from outside the chroot would let a compromised
 * daemon reach host files with openat(dirfd, "..") while it serves the guest. At exit the pidfile is
 * removed where its path is reachable (no chroot), and otherwise emptied through the locked
 * descriptor (the toolstack removes it, as it does the C daemon's). fcntl locks are dropped when the
 * process closes any descriptor of the file: nothing else in the daemon opens it.
 */
export interface PidfileLock {
  readonly path: string;
  /**
   * Whether the daemon, once in its sandbox (ids), can still rename and remove files in the
   * pidfile's directory; when not, only `publish()` before the drop can make the pidfile appear.
   */
  readonly publishableAfterDrop: boolean;
  /**
   * Makes the pidfile appear, atomically, with `<pid>\n`. Once only; later calls do nothing. Throws
   * PidfileLocked when a live daemon's pidfile appeared at the path meanwhile (a stale one is replaced).
   */
  publish(): void;
  readonly published: boolean;
  /**
   * Removes the temporary file before readiness, or the pidfile after it where its path is reachable
   * (while still holding the lock, so it cannot be another daemon's), else empties it; drops the lock.
   */
  release(): void;
}

export class PidfileLocked extends Error {}

/** The ids the daemon runs as after the drop (0 = unchanged), as --uid and --gid. */
export interface SandboxIds {
  readonly uid: number;
  readonly gid: number;
}

export async function lockPidfile(path: string, ids: SandboxIds = { uid: 0, gid: 0 }): Promise<PidfileLock> {
  const absolute = resolve(path);
  const directory = dirname(absolute);
  const name = basename(absolute);
  let host: typeof import('@vmsb/xen/host');
  try {
    host = await import('@vmsb/xen/host');
  } catch (e) {
    throw new Error(`Could not lock pidfile '${path}': the host binding cannot be loaded: ${(e as Error).message}`);
  }
  const held = (pid: number) => `it is held by another varstored${pid ? ` (pid ${pid})` : ''}`;

  let dir: DirectoryHandle;
  try {
    dir = host.openDirectory(directory);
  } catch (e) {
    throw new Error(`Could not open the directory of pidfile '${path}': ${(e as Error).message}`);
  }
  let temp: FileLock | undefined;
  let tempName = '';
  let access: { publishable: boolean; owner?: { uid: number; gid: number } };
  try {
    access = accessAfterDrop(directory, ids);
    let existing: ReturnType<DirectoryHandle['claim']>;
    try {
      existing = dir.claim(name);
    } catch (e) {
      throw new Error(`Could not open pidfile '${path}': ${(e as Error).message}`);
    }
    if (existing !== undefined && !existing.ok) {
      throw new PidfileLocked(`Failed to lock pidfile '${path}': ${held(existing.heldBy)}`);
    }
    if (existing !== undefined) {
      // Left by a daemon that died: it must not read as a ready daemon while this one starts.
      try {
        dir.removeIfHeld(name, existing.lock);
      } finally {
        existing.lock.release();
      }
    }
    for (let attempt = 0; temp === undefined; attempt++) {
      tempName = `.${name}.${randomBytes(6).toString('hex')}`;
      try {
        temp = dir.createLocked(tempName, 0o600, access.owner);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 8) {
          throw new Error(`Could not create the temporary file for pidfile '${path}': ${(e as Error).message}`);
        }
      }
    }
    temp.write(`${process.pid}\n`);
  } catch (e) {
    if (temp !== undefined) {
      try {
        dir.removeIfHeld(tempName, temp);
      } catch {
        // Already gone: nothing to clean.
      }
      temp.release();
    }
    dir.close();
    throw e;
  }

  const lock = temp;
  let published = false;
  let released = false;
  return {
    path,
    publishableAfterDrop: access.publishable,
    publish: () => {
      if (published || released) return;
      for (let attempt = 0; !published; attempt++) {
        if (attempt >= 16) throw new Error(`Could not publish pidfile '${path}': it keeps being replaced`);
        let stale: ReturnType<DirectoryHandle['claim']>;
        try {
          if (dir.rename(tempName, name, { noReplace: true })) {
            published = true;
            break;
          }
          // A pidfile appeared since the start: replace it only if nobody holds its lock.
          stale = dir.claim(name);
        } catch (e) {
          throw new Error(`Could not publish pidfile '${path}': ${(e as Error).message}`);
        }
        if (stale === undefined) continue;
        if (!stale.ok) throw new PidfileLocked(`Failed to publish pidfile '${path}': ${held(stale.heldBy)}`);
        try {
          dir.rename(tempName, name, { noReplace: false });
          published = true;
        } catch (e) {
          throw new Error(`Could not publish pidfile '${path}': ${(e as Error).message}`);
        } finally {
          stale.lock.release();
        }
      }
      // No descriptor of a host directory stays open while the daemon serves the guest.
      dir.close();
    },
    get published() {
      return published;
    },
    release: () => {
      if (released) return;
      released = true;
      let removed = false;
      try {
        if (!published) {
          removed = dir.removeIfHeld(tempName, lock);
        } else {
          // Reopened by its path: inside a chroot that names another directory (or none), where
          // removeIfHeld finds no file of this lock and removes nothing.
          const again = host.openDirectory(directory);
          try {
            removed = again.removeIfHeld(name, lock);
          } finally {
            again.close();
          }
        }
      } catch {
        // Unreachable (chroot) or not writable by the ids of the sandbox: emptied below.
      }
      if (!removed && published) {
        // So that a stale pid never reads as a ready daemon.
        try {
          lock.write('');
        } catch {
          // Nothing more can be done; the lock still goes below.
        }
      }
      lock.release();
      dir.close();
    },
  };
}

/**
 * Whether the ids the daemon takes at the drop may rename and remove entries of `directory` (write
 * and search permission), and, in a sticky directory they do not own, the owner the temporary file
 * needs so that they may rename it.
 */
function accessAfterDrop(
  directory: string,
  ids: SandboxIds,
): { publishable: boolean; owner?: { uid: number; gid: number } } {
  if (ids.uid === 0 && ids.gid === 0) return { publishable: true };
  const uid = ids.uid !== 0 ? ids.uid : (process.geteuid?.() ?? 0);
  const gid = ids.gid !== 0 ? ids.gid : (process.getegid?.() ?? 0);
  if (uid === 0) return { publishable: true };
  const st = statSync(directory);
  const bits = st.uid === uid ? (st.mode >> 6) & 3 : st.gid === gid ? (st.mode >> 3) & 3 : st.mode & 3;
  const publishable = bits === 3;
  const sticky = (st.mode & 0o1000) !== 0 && st.uid !== uid;
  return sticky ? { publishable, owner: { uid, gid } } : { publishable };
}
