/**
 * A guest filling the store: every write that fits succeeds, the first that does not gets
 * EFI_OUT_OF_RESOURCES, exactly at the quota (131072 bytes, 128 counted per variable), and nothing
 * else is disturbed — the variables that were there, Secure Boot, QueryVariableInfo's accounting,
 * the persisted file, the daemon. Freeing space makes room again; a restart keeps it all.
 */
import { Attr, Attrs, Guids } from '@vmsb/efi';
import type { DaemonProcess } from '@vmsb/fuzz';
import type { Firmware, GuestConnection } from '@vmsb/guest-sim';
import { Limits, guidFromText, statusName } from '@vmsb/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { guestView, startGuestAndDaemon, tempDir } from './harness.js';

const VENDOR = guidFromText('6f2b9d1e-3c4a-4e8b-9f70-1a2b3c4d5e6f')!;
const ref = (name: string) => ({ name, guid: VENDOR });
const fill = (n: number, v: number): Uint8Array => new Uint8Array(n).fill(v);
/** What one variable costs against the quota. */
const footprint = (name: string, size: number): number => name.length * 2 + size + Limits.OVERHEAD;

let dir: { path: string; remove(): Promise<void> };
let daemon: DaemonProcess | undefined;
let connection: GuestConnection | undefined;

beforeEach(async () => {
  dir = await tempDir('quota');
});
afterEach(async () => {
  await connection?.close().catch(() => undefined);
  await daemon?.kill();
  daemon = undefined;
  connection = undefined;
  await dir.remove();
});

async function start(seed: boolean): Promise<Firmware> {
  const started = await startGuestAndDaemon({ dir: dir.path, seed });
  daemon = started.daemon;
  connection = started.connection;
  return started.fw;
}

async function remaining(fw: Firmware): Promise<number> {
  const info = await fw.queryVariableInfo(Attrs.NV_BS_RT);
  expect(statusName(info.status)).toBe('SUCCESS');
  expect(info.maximumStorageSize).toBe(Limits.TOTAL_MAX);
  return info.remainingStorageSize!;
}

describe('a guest filling the store', () => {
  it('gets OUT_OF_RESOURCES exactly at the quota, and nothing else is disturbed', async () => {
    const fw = await start(true);
    const original = await guestView(fw);
    const secureBoot = (await fw.readVariable({ name: 'SecureBoot', guid: Guids.GLOBAL_VARIABLE }))?.data[0];
    expect(secureBoot).toBe(1);

    // Fill with 4000-byte variables until the store refuses one.
    const written = new Map<string, Uint8Array>();
    let free = await remaining(fw);
    let refusedAt: { name: string; free: number } | undefined;
    for (let i = 0; i < 100 && refusedAt === undefined; i++) {
      const name = `Fill${i.toString().padStart(4, '0')}`;
      const data = fill(4000, i);
      const status = statusName(await fw.setVariable(ref(name), Attrs.NV_BS_RT, data));
      if (footprint(name, 4000) <= free) {
        expect(status, `${name} fits (${free} bytes free)`).toBe('SUCCESS');
        written.set(name, data);
        free -= footprint(name, 4000);
        expect(await remaining(fw)).toBe(free);
      } else {
        expect(status, `${name} does not fit (${free} bytes free)`).toBe('OUT_OF_RESOURCES');
        refusedAt = { name, free };
      }
    }
    expect(refusedAt).toBeDefined();
    expect(await remaining(fw)).toBe(refusedAt!.free);

    // To the byte: a variable of exactly the space left fits; then not one byte more does.
    const last = 'Last';
    const exact = refusedAt!.free - footprint(last, 0);
    expect(exact).toBeGreaterThan(0);
    expect(statusName(await fw.setVariable(ref(last), Attrs.NV_BS_RT, fill(exact + 1, 0xee)))).toBe('OUT_OF_RESOURCES');
    expect(statusName(await fw.setVariable(ref(last), Attrs.NV_BS_RT, fill(exact, 0xee)))).toBe('SUCCESS');
    written.set(last, fill(exact, 0xee));
    expect(await remaining(fw)).toBe(0);
    expect(statusName(await fw.setVariable(ref('OneMore'), Attrs.BS_RT, fill(1, 1)))).toBe('OUT_OF_RESOURCES');

    // Full, the store still does what needs no room: same-size replacements, shrinking, reads.
    const first = [...written.keys()][0]!;
    expect(statusName(await fw.setVariable(ref(first), Attrs.NV_BS_RT, fill(4000, 0x55)))).toBe('SUCCESS');
    written.set(first, fill(4000, 0x55));
    expect(statusName(await fw.setVariable(ref(first), Attrs.NV_BS_RT | Attr.APPEND_WRITE, fill(1, 0x56)))).toBe(
      'OUT_OF_RESOURCES',
    );
    expect((await fw.readVariable(ref(first)))?.data).toEqual(fill(4000, 0x55));

    // Nothing else was disturbed: every variable that was there reads the same, Secure Boot is on.
    const now = await guestView(fw);
    for (const [key, value] of original) expect(now.get(key), key).toEqual(value);
    expect((await fw.readVariable({ name: 'SecureBoot', guid: Guids.GLOBAL_VARIABLE }))?.data[0]).toBe(1);

    // Deleting frees exactly its footprint, and that room can be used again.
    expect(statusName(await fw.setVariable(ref(first), Attrs.NV_BS_RT, new Uint8Array(0)))).toBe('SUCCESS');
    written.delete(first);
    expect(await remaining(fw)).toBe(footprint(first, 4000));
    expect(
      statusName(await fw.setVariable(ref('Again'), Attrs.NV_BS_RT, fill(4000 + (first.length - 5) * 2, 0x77))),
    ).toBe('SUCCESS');
    written.set('Again', fill(4000 + (first.length - 5) * 2, 0x77));
    expect(await remaining(fw)).toBe(0);

    // A restart loads all of it: the originals and every acknowledged write.
    await connection!.close();
    connection = undefined;
    expect(await daemon!.stop()).toEqual({ code: 0, signal: null });
    daemon = undefined;
    const fw2 = await start(false);
    const after = await guestView(fw2);
    for (const [key, value] of original) {
      // The volatile variables of the seed are gone after a restart, as on real hardware.
      if ((value.attributes & Attr.NON_VOLATILE) !== 0) expect(after.get(key), key).toEqual(value);
    }
    for (const [name, data] of written) expect((await fw2.readVariable(ref(name)))?.data, name).toEqual(data);
  });

  it('refuses a variable larger than 57344 bytes, and an append that would grow one past it', async () => {
    const fw = await start(true);
    const free = await remaining(fw);
    expect(statusName(await fw.setVariable(ref('TooBig'), Attrs.NV_BS_RT, fill(Limits.DATA_MAX + 1, 1)))).toBe(
      'OUT_OF_RESOURCES',
    );
    expect(statusName(await fw.setVariable(ref('Largest'), Attrs.NV_BS_RT, fill(Limits.DATA_MAX, 2)))).toBe('SUCCESS');
    expect(statusName(await fw.setVariable(ref('Largest'), Attrs.NV_BS_RT | Attr.APPEND_WRITE, fill(1, 3)))).toBe(
      'OUT_OF_RESOURCES',
    );
    expect((await fw.readVariable(ref('Largest')))?.data).toEqual(fill(Limits.DATA_MAX, 2));
    expect(await remaining(fw)).toBe(free - footprint('Largest', Limits.DATA_MAX));
    expect(await fw.readVariable(ref('TooBig'))).toBeUndefined();
  });
});
