/**
 * The C tools' privilege options: `-r <chroot>`, `-g <gid>`, `-u <uid>`, `-d`. They are applied
 * after the files that need the caller's privileges are read and before XAPI is contacted, so the
 * socket (`-s`) and any later file path are then looked up inside the chroot, as in C.
 *
 * chroot(2) and the `-d` hardening need native code: they come from @vmsb/xen's
 * `dropPrivileges`, loaded only when an option asks for it. Without that package, `-u`/`-g` are
 * applied with Node's own setgroups/setgid/setuid, and `-r` (other than `/`) and `-d` fail: running
 * on without the sandbox that was asked for would expose the host to whatever the VM wrote into
 * its NVRAM.
 */
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';

/**
 * RLIMIT_FSIZE under `-d`: the tools write no file after the drop (output goes to stdout; XAPI is
 * reached over its socket), so the daemon's limit is ample.
 */
const DEPRIV_FILE_SIZE_LIMIT = 256 * 1024;

export interface PrivilegeRequest {
  readonly chroot?: string;
  /** 0 = unchanged, as in C. */
  readonly uid: number;
  /** 0 = unchanged, as in C. */
  readonly gid: number;
  readonly depriv: boolean;
}

/** The part of @vmsb/xen used here. */
export interface NativePrivileges {
  dropPrivileges(options: {
    chroot?: string;
    uid?: number;
    gid?: number;
    depriv: boolean;
    fileSizeLimit?: number;
  }): void;
}

export type NativeLoader = () => Promise<NativePrivileges>;

const XEN_PACKAGE = '@vmsb/xen';
/** The error code @vmsb/xen gives when its native binding cannot be used. */
const NATIVE_UNAVAILABLE = 'ENOXEN';

/** Loads @vmsb/xen's dropPrivileges; rejects saying why it is unavailable. */
export const loadNativePrivileges: NativeLoader = async () => {
  // A literal specifier so that a bundler can follow it; tsup.config.ts keeps it external here,
  // since the package is optional and loads native code.
  const mod = (await import('@vmsb/xen')) as Partial<NativePrivileges>;
  if (typeof mod.dropPrivileges !== 'function') throw new Error(`${XEN_PACKAGE} has no dropPrivileges`);
  return { dropPrivileges: mod.dropPrivileges.bind(mod) };
};

export function privilegesRequested(request: PrivilegeRequest): boolean {
  return request.chroot !== undefined || request.uid !== 0 || request.gid !== 0 || request.depriv;
}

/**
 * Drops privileges as asked. Resolves to undefined on success, or to the message to print (the
 * tool then exits 1).
 */
export async function dropPrivileges(
  request: PrivilegeRequest,
  load: NativeLoader = loadNativePrivileges,
): Promise<string | undefined> {
  if (!privilegesRequested(request)) return undefined;
  let native: NativePrivileges | undefined;
  let unavailable = '';
  try {
    native = await load();
  } catch (e) {
    unavailable = e instanceof Error ? e.message : String(e);
  }
  if (native !== undefined) {
    // Under -d no thread can be created after the drop (RLIMIT_NPROC 0): make sure libuv's pool,
    // which starts with its first piece of work, exists now.
    if (request.depriv) await stat('/').catch(() => undefined);
    try {
      native.dropPrivileges({
        depriv: request.depriv,
        ...(request.depriv ? { fileSizeLimit: DEPRIV_FILE_SIZE_LIMIT } : {}),
        ...(request.chroot !== undefined ? { chroot: request.chroot } : {}),
        ...(request.uid !== 0 ? { uid: request.uid } : {}),
        ...(request.gid !== 0 ? { gid: request.gid } : {}),
      });
      return undefined;
    } catch (e) {
      // ENOXEN: the package loaded but its native binding is not built here; nothing was changed.
      if ((e as NodeJS.ErrnoException).code !== NATIVE_UNAVAILABLE)
        return `Failed to drop privileges: ${e instanceof Error ? e.message : String(e)}`;
      unavailable = e instanceof Error ? e.message : String(e);
    }
  }

  if (request.chroot !== undefined && resolve(request.chroot) !== '/') {
    return `Failed to chroot to ${request.chroot}: entering a chroot needs ${XEN_PACKAGE}, which is unavailable (${unavailable})`;
  }
  if (request.depriv) {
    return `Failed to reduce privileges (-d): this needs ${XEN_PACKAGE}, which is unavailable (${unavailable})`;
  }
  try {
    if (request.gid !== 0) {
      process.setgroups!([request.gid]);
      process.setgid!(request.gid);
    } else if (request.uid !== 0) {
      // Leaving root's supplementary groups behind with its uid.
      process.setgroups!([]);
    }
    if (request.uid !== 0) process.setuid!(request.uid);
  } catch (e) {
    return `Failed to drop privileges: ${e instanceof Error ? e.message : String(e)}`;
  }
  if (request.uid !== 0) {
    let regained = true;
    try {
      process.setuid!(0);
    } catch {
      regained = false;
    }
    if (regained) return 'Dropping privileges failed';
  }
  return undefined;
}
