/** Shared by the fault tests: temporary directories, seeded NVRAM files, a guest's view of the store. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VariableStore, type StoreState } from '@vmsb/efi';
import { DaemonProcess, FUZZ_PLATFORM, fuzzCorpus, type DaemonOptions } from '@vmsb/fuzz';
import { Firmware, GuestConnection } from '@vmsb/guest-sim';
import { encodeVarsBlob } from '@vmsb/nvram';
import { EfiStatus, guidToText, statusName } from '@vmsb/protocol';

export async function tempDir(prefix: string): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `vmsb-faults-${prefix}-`));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/** The NVRAM a daemon would have saved for `state` (builtins computed), as the file backend holds it. */
export function nvramBlob(state: StoreState = fuzzCorpus().state): Uint8Array {
  const store = VariableStore.restore(state, { platform: FUZZ_PLATFORM, resume: false });
  return encodeVarsBlob(store.state(), { nonVolatileOnly: true });
}

/** A daemon in user mode (the fuzz corpus: PK, KEK, db, dbx and a few plain variables) and a guest connected to it. */
export async function startGuestAndDaemon(
  options: DaemonOptions & { seed?: boolean },
): Promise<{ daemon: DaemonProcess; connection: GuestConnection; fw: Firmware }> {
  if (options.seed !== false) await writeFile(options.nvramPath ?? join(options.dir, 'nvram.vars'), nvramBlob());
  const daemon = await DaemonProcess.start(options);
  const connection = await GuestConnection.connect(daemon.socketPath);
  return { daemon, connection, fw: new Firmware(connection) };
}

/** Every variable the guest can see, with its attributes and data, keyed `guid:name`. */
export async function guestView(fw: Firmware): Promise<Map<string, { attributes: number; data: string }>> {
  const out = new Map<string, { attributes: number; data: string }>();
  for (const ref of await fw.enumerate()) {
    const value = await fw.readVariable(ref);
    if (value === undefined) throw new Error(`${ref.name} is enumerated but cannot be read`);
    out.set(`${guidToText(ref.guid)}:${ref.name}`, {
      attributes: value.attributes,
      data: Buffer.from(value.data).toString('hex'),
    });
  }
  return out;
}

export function describeStatus(status: bigint): string {
  return statusName(status);
}

export const S = EfiStatus;
