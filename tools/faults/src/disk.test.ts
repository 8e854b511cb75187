/**
 * When the NVRAM cannot be written, the guest gets EFI_DEVICE_ERROR and nothing changes: not the
 * variables it can read, not QueryVariableInfo, not the file. Writes that need no persistence
 * (volatile variables) still work, and once the disk is writable again so do non-volatile ones.
 *
 * What stands in for what:
 * - Disk full, always: RLIMIT_FSIZE (`prlimit --fsize`) on the daemon. A write past the limit fails
 *   with EFBIG exactly where a full disk fails with ENOSPC — in the temporary file's write, before
 *   the rename — and any user can set it. Node ignores SIGXFSZ, so the daemon sees the error.
 * - Disk full, where mounting is allowed (root, as in CI): a real ENOSPC from a small tmpfs.
 * - Read-only store directory: a read-only bind mount (EROFS) where mounting is allowed, else the
 *   immutable attribute (`chattr +i`, EPERM) for root, else chmod 0555 (EACCES) — chmod alone does
 *   not stop root. Each case first proves that a file can no longer be created there.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { chmod, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Attrs } from '@vmsb/efi';
import type { DaemonProcess } from '@vmsb/fuzz';
import type { Firmware, GuestConnection } from '@vmsb/guest-sim';
import { guidFromText, statusName } from '@vmsb/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { guestView, startGuestAndDaemon, tempDir } from './harness.js';

const VENDOR = guidFromText('0c7f4c55-2b4e-4a1f-8c3d-6e9a1b2c3d4e')!;
const isRoot = process.getuid?.() === 0;

function run(command: string, args: string[]): boolean {
  return spawnSync(command, args, { stdio: 'ignore' }).status === 0;
}

/** Whether this process may mount a tmpfs (root in a context that allows it). */
const canMount = ((): boolean => {
  if (!isRoot) return false;
  const probe = join(tmpdir(), `vmsb-faults-mount-probe-${process.pid}`);
  mkdirSync(probe, { recursive: true });
  try {
    if (!run('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe])) return false;
    run('umount', [probe]);
    return true;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
})();

let dir: { path: string; remove(): Promise<void> };
let daemon: DaemonProcess | undefined;
let connection: GuestConnection | undefined;
const cleanups: (() => void)[] = [];

beforeEach(async () => {
  dir = await tempDir('disk');
});
afterEach(async () => {
  await connection?.close().catch(() => undefined);
  connection = undefined;
  await daemon?.kill();
  daemon = undefined;
  for (const c of cleanups.splice(0).reverse()) c();
  await dir.remove();
});

async function start(options: { wrapper?: string[]; nvramPath?: string; seed?: boolean } = {}): Promise<Firmware> {
  const started = await startGuestAndDaemon({ dir: dir.path, ...options });
  daemon = started.daemon;
  connection = started.connection;
  return started.fw;
}

const ref = (name: string) => ({ name, guid: VENDOR });
const bytes = (n: number, fill: number): Uint8Array => new Uint8Array(n).fill(fill);

/**
 * The failed write changed nothing the guest can observe or that is on disk; the daemon still
 * serves, volatile writes still succeed.
 */
async function expectRefusedWithoutChange(fw: Firmware, nvram: string, write: () => Promise<bigint>): Promise<void> {
  const before = await guestView(fw);
  const space = await fw.queryVariableInfo(Attrs.NV_BS_RT);
  const file = await readFile(nvram);
  expect(statusName(await write())).toBe('DEVICE_ERROR');
  expect(await guestView(fw)).toEqual(before);
  expect(await fw.queryVariableInfo(Attrs.NV_BS_RT)).toEqual(space);
  expect(Buffer.compare(await readFile(nvram), file)).toBe(0);
  // No half-written temporary file is left behind.
  expect((await readdir(join(nvram, '..'))).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  // A volatile variable needs no disk.
  expect(statusName(await fw.setVariable(ref('StillVolatile'), Attrs.BS_RT, bytes(16, 1)))).toBe('SUCCESS');
  expect(daemon!.running).toBe(true);
}

describe('disk full', () => {
  it('RLIMIT_FSIZE (EFBIG): DEVICE_ERROR, memory and file unchanged; writes that fit still work', async () => {
    const nvram = join(dir.path, 'nvram.vars');
    const fw0 = await start();
    // Learn the file's size with one small saved change, then restart under a limit just above it.
    expect(statusName(await fw0.setVariable(ref('Small'), Attrs.NV_BS_RT, bytes(8, 1)))).toBe('SUCCESS');
    await connection!.close();
    expect(await daemon!.stop()).toEqual({ code: 0, signal: null });
    const size = (await stat(nvram)).size;
    const fw = await start({ seed: false, wrapper: ['prlimit', `--fsize=${size + 256}`, '--'] });

    // Growing the file past the limit: a new variable, a bigger value for an existing one, an append.
    await expectRefusedWithoutChange(fw, nvram, () => fw.setVariable(ref('Big'), Attrs.NV_BS_RT, bytes(4096, 2)));
    await expectRefusedWithoutChange(fw, nvram, () => fw.setVariable(ref('Small'), Attrs.NV_BS_RT, bytes(2048, 3)));
    await expectRefusedWithoutChange(fw, nvram, () =>
      fw.setVariable(ref('Small'), Attrs.NV_BS_RT | 0x40, bytes(1024, 4)),
    );
    // Changes that keep the file within the limit are saved.
    expect(statusName(await fw.setVariable(ref('Small'), Attrs.NV_BS_RT, bytes(8, 5)))).toBe('SUCCESS');
    expect(statusName(await fw.setVariable(ref('Tiny'), Attrs.NV_BS_RT, bytes(4, 6)))).toBe('SUCCESS');
    const read = await fw.readVariable(ref('Small'));
    expect(read?.data).toEqual(bytes(8, 5));
    await connection!.close();
    connection = undefined;
    expect(await daemon!.stop()).toEqual({ code: 0, signal: null });
    daemon = undefined;

    // What was acknowledged is what a new daemon loads.
    const again = await start({ seed: false });
    expect((await again.readVariable(ref('Tiny')))?.data).toEqual(bytes(4, 6));
    expect(await again.readVariable(ref('Big'))).toBeUndefined();
  });

  describe.skipIf(!canMount)('a full tmpfs (ENOSPC)', () => {
    it('DEVICE_ERROR, memory and file unchanged; writes succeed again once there is room', async () => {
      const mountPoint = join(dir.path, 'small-disk');
      await mkdir(mountPoint);
      expect(run('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mountPoint])).toBe(true);
      cleanups.push(() => void run('umount', ['-l', mountPoint]));
      const nvram = join(mountPoint, 'nvram.vars');
      const fw = await start({ nvramPath: nvram });
      expect(statusName(await fw.setVariable(ref('Before'), Attrs.NV_BS_RT, bytes(100, 1)))).toBe('SUCCESS');

      // Fill the disk to the last byte.
      const filler = join(mountPoint, 'filler');
      await writeFile(filler, new Uint8Array(0));
      const chunk = new Uint8Array(4096);
      for (;;) {
        try {
          await writeFile(filler, chunk, { flag: 'a' });
        } catch (e) {
          expect((e as NodeJS.ErrnoException).code).toBe('ENOSPC');
          break;
        }
      }
      await expectRefusedWithoutChange(fw, nvram, () => fw.setVariable(ref('During'), Attrs.NV_BS_RT, bytes(100, 2)));
      await expectRefusedWithoutChange(fw, nvram, () =>
        fw.setVariable(ref('Before'), Attrs.NV_BS_RT, new Uint8Array(0)),
      );

      await rm(filler);
      expect(statusName(await fw.setVariable(ref('After'), Attrs.NV_BS_RT, bytes(100, 3)))).toBe('SUCCESS');
      expect((await fw.readVariable(ref('Before')))?.data).toEqual(bytes(100, 1));
      expect(await fw.readVariable(ref('During'))).toBeUndefined();
    });
  });
});

/** Makes `path` refuse new files, by the strongest means available here; proves it did. */
function makeReadOnly(path: string): { mechanism: string; undo(): void } {
  let mechanism: string;
  let undo: () => void;
  if (canMount && run('mount', ['--bind', path, path]) && run('mount', ['-o', 'remount,bind,ro', path])) {
    mechanism = 'read-only bind mount';
    undo = () => void run('umount', ['-l', path]);
  } else if (isRoot && run('chattr', ['+i', path])) {
    mechanism = 'chattr +i';
    undo = () => void run('chattr', ['-i', path]);
  } else {
    mechanism = 'chmod 0555';
    spawnSync('chmod', ['0555', path]);
    undo = () => void spawnSync('chmod', ['0755', path]);
  }
  let refused = false;
  try {
    writeFileSync(join(path, 'probe'), 'x');
    rmSync(join(path, 'probe'), { force: true });
  } catch {
    refused = true;
  }
  if (!refused) {
    undo();
    throw new Error(`${mechanism} did not make ${path} read-only`);
  }
  return { mechanism, undo };
}

describe('read-only store directory', () => {
  it('DEVICE_ERROR, memory and file unchanged; writes succeed again once it is writable', async () => {
    const store = join(dir.path, 'store');
    await mkdir(store);
    await chmod(store, 0o755);
    const nvram = join(store, 'nvram.vars');
    const fw = await start({ nvramPath: nvram });
    expect(statusName(await fw.setVariable(ref('Before'), Attrs.NV_BS_RT, bytes(32, 1)))).toBe('SUCCESS');

    const ro = makeReadOnly(store);
    cleanups.push(ro.undo);
    await expectRefusedWithoutChange(fw, nvram, () => fw.setVariable(ref('During'), Attrs.NV_BS_RT, bytes(32, 2)));
    await expectRefusedWithoutChange(fw, nvram, () => fw.setVariable(ref('Before'), Attrs.NV_BS_RT, bytes(32, 3)));
    await expectRefusedWithoutChange(fw, nvram, () => fw.setVariable(ref('Before'), Attrs.NV_BS_RT, new Uint8Array(0)));

    cleanups.pop();
    ro.undo();
    expect(statusName(await fw.setVariable(ref('After'), Attrs.NV_BS_RT, bytes(32, 4)))).toBe('SUCCESS');
    expect((await fw.readVariable(ref('Before')))?.data).toEqual(bytes(32, 1));
    console.info(`read-only store directory made with: ${ro.mechanism}`);
  });
});
