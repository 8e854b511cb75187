import { describe, expect, it } from 'vitest';
import { dropPrivileges, type NativePrivileges } from './privileges.js';

function recorder(fail?: Error): { calls: unknown[]; load: () => Promise<NativePrivileges> } {
  const calls: unknown[] = [];
  return {
    calls,
    load: async () => ({
      dropPrivileges(options) {
        calls.push(options);
        if (fail) throw fail;
      },
    }),
  };
}

const unavailable = async (): Promise<NativePrivileges> => {
  throw new Error('Cannot find package');
};

describe('dropPrivileges', () => {
  it('does nothing, and loads nothing, when no option asks for it', async () => {
    let loaded = false;
    const r = await dropPrivileges({ uid: 0, gid: 0, depriv: false }, async () => {
      loaded = true;
      throw new Error('not expected');
    });
    expect(r).toBeUndefined();
    expect(loaded).toBe(false);
  });

  it('hands the chroot, ids and -d to @vmsb/xen, leaving out ids of 0 (unchanged)', async () => {
    const native = recorder();
    expect(
      await dropPrivileges(
        { chroot: '/var/run/xen/varstored-root-7', uid: 65542, gid: 65542, depriv: true },
        native.load,
      ),
    ).toBeUndefined();
    expect(await dropPrivileges({ chroot: '/r', uid: 0, gid: 0, depriv: false }, native.load)).toBeUndefined();
    expect(native.calls).toEqual([
      { chroot: '/var/run/xen/varstored-root-7', uid: 65542, gid: 65542, depriv: true, fileSizeLimit: 256 * 1024 },
      { chroot: '/r', depriv: false },
    ]);
  });

  it('reports a failure of the native call', async () => {
    const native = recorder(new Error('chroot /nope: No such file or directory'));
    expect(await dropPrivileges({ chroot: '/nope', uid: 0, gid: 0, depriv: false }, native.load)).toBe(
      'Failed to drop privileges: chroot /nope: No such file or directory',
    );
  });

  it('without @vmsb/xen, refuses a chroot other than / and -d rather than run unconfined', async () => {
    expect(await dropPrivileges({ chroot: '/var/run/xen/x', uid: 0, gid: 0, depriv: false }, unavailable)).toBe(
      'Failed to chroot to /var/run/xen/x: entering a chroot needs @vmsb/xen, which is unavailable (Cannot find package)',
    );
    expect(await dropPrivileges({ uid: 0, gid: 0, depriv: true }, unavailable)).toBe(
      'Failed to reduce privileges (-d): this needs @vmsb/xen, which is unavailable (Cannot find package)',
    );
    // The package loads but its binding is not built: the same refusal, naming why.
    const unbuilt = recorder(
      Object.assign(new Error('Xen is unavailable: the Xen binding is not built'), { code: 'ENOXEN' }),
    );
    expect(await dropPrivileges({ chroot: '/x', uid: 0, gid: 0, depriv: false }, unbuilt.load)).toBe(
      'Failed to chroot to /x: entering a chroot needs @vmsb/xen, which is unavailable (Xen is unavailable: the Xen binding is not built)',
    );
    // chroot("/") changes nothing; with no ids to switch there is nothing else to do.
    expect(await dropPrivileges({ chroot: '/', uid: 0, gid: 0, depriv: false }, unavailable)).toBeUndefined();
  });
});
