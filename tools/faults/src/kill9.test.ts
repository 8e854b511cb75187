/**
 * kill -9 at random points of a stream of non-volatile writes, 200 times on the same NVRAM file:
 * after every kill the file loads (directly and by a new daemon), and every write the guest saw
 * answered SUCCESS is there — or, for the one write in flight at the kill, either its old or its
 * new value. The kill lands a random 0-6 ms after a random number of answers, so across the
 * rounds it hits every phase of a save: before the request is read, during the temporary file's
 * write or fsync, around the rename, during the directory fsync, and after the answer.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Attrs } from '@vmsb/efi';
import { DaemonProcess, Random } from '@vmsb/fuzz';
import { Firmware, GuestConnection } from '@vmsb/guest-sim';
import { decodeVarsBlob } from '@vmsb/nvram';
import { EfiStatus, guidFromText, statusName } from '@vmsb/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from './harness.js';

const ROUNDS = 200;
const VARIABLES = 6;
const VENDOR = guidFromText('b3f1f0c2-6a0e-4d5b-9a51-2c7d4e8f1a90')!;
const nameOf = (i: number): string => `Kill${i}`;

/** What the guest knows: the last acknowledged value of each variable (undefined: deleted or never written). */
type Model = Map<string, string | undefined>;

interface InFlight {
  readonly name: string;
  readonly value: string | undefined;
}

let dir: { path: string; remove(): Promise<void> };
beforeAll(async () => {
  dir = await tempDir('kill9');
});
afterAll(async () => {
  await dir.remove();
});

function valueFor(rng: Random, round: number, seq: number): Uint8Array {
  // Sizes from a byte to several KiB, so saves differ in length and take different times.
  const size = rng.pick([1, 8, 64, 700, 3000, 9000]);
  const out = rng.bytes(size);
  out[0] = round & 0xff;
  if (size > 1) out[1] = seq & 0xff;
  return out;
}

/** The variables as the NVRAM file holds them. */
async function fileValues(path: string): Promise<Map<string, string>> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    // No file yet is a first boot: right only while nothing was ever acknowledged (checked by the caller).
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw e;
  }
  const decoded = decodeVarsBlob(new Uint8Array(bytes));
  if (!decoded.ok) throw new Error(`the NVRAM file does not load: ${decoded.error}`);
  const out = new Map<string, string>();
  for (const v of decoded.state.variables) {
    if (Buffer.compare(Buffer.from(v.guid), Buffer.from(VENDOR)) === 0)
      out.set(Buffer.from(v.name).toString('utf16le'), Buffer.from(v.data).toString('hex'));
  }
  return out;
}

/** Every acknowledged value is present; the in-flight variable may hold its old or its new value. */
function mismatches(
  found: ReadonlyMap<string, string | undefined>,
  model: Model,
  inFlight: InFlight | undefined,
): string[] {
  const problems: string[] = [];
  for (let i = 0; i < VARIABLES; i++) {
    const name = nameOf(i);
    const actual = found.get(name);
    const acked = model.get(name);
    if (actual === acked) continue;
    if (inFlight?.name === name && actual === inFlight.value) continue;
    problems.push(
      `${name}: holds ${actual?.slice(0, 16) ?? 'nothing'}, the guest was told ${acked?.slice(0, 16) ?? 'nothing'}`,
    );
  }
  return problems;
}

describe('kill -9 during a stream of NV writes', () => {
  it(`loses no acknowledged write over ${ROUNDS} kills`, async () => {
    const rng = new Random(0x6b696c6c);
    const model: Model = new Map();
    let inFlight: InFlight | undefined;
    const nvram = join(dir.path, 'nvram.vars');
    const kills = { beforeFirstAck: 0, midStream: 0 };
    let writesAcked = 0;
    let strayTempFiles = 0;
    let inFlightKills = 0;
    let inFlightLanded = 0;

    for (let round = 0; round <= ROUNDS; round++) {
      // 1. What survived the previous kill: the file decodes and holds what was acknowledged.
      if (round > 0) {
        const fromFile = await fileValues(nvram);
        expect(mismatches(fromFile, model, inFlight), `round ${round}: the file after the kill`).toEqual([]);
      }
      // 2. A new daemon loads it and serves the same values to the guest.
      const daemon = await DaemonProcess.start({ dir: dir.path, secureBoot: false });
      const connection = await GuestConnection.connect(daemon.socketPath);
      const fw = new Firmware(connection);
      const seen = new Map<string, string | undefined>();
      for (let i = 0; i < VARIABLES; i++) {
        const value = await fw.readVariable({ name: nameOf(i), guid: VENDOR });
        seen.set(nameOf(i), value === undefined ? undefined : Buffer.from(value.data).toString('hex'));
      }
      expect(mismatches(seen, model, inFlight), `round ${round}: what the restarted daemon serves`).toEqual([]);
      // The in-flight write has landed one way or the other: that is now what the guest knows.
      if (
        inFlight !== undefined &&
        seen.get(inFlight.name) === inFlight.value &&
        model.get(inFlight.name) !== inFlight.value
      )
        inFlightLanded++;
      for (const [name, value] of seen) model.set(name, value);
      inFlight = undefined;
      if (round === ROUNDS) {
        await connection.close();
        expect(await daemon.stop()).toEqual({ code: 0, signal: null });
        break;
      }

      // 3. Stream writes; after a random number of answers, the kill is armed to land a random
      //    0-6 ms later, whatever the stream is doing by then (the writes go on until it lands).
      const armAfter = rng.int(9);
      const killAfterMs = rng.float() * 6;
      let killed = false;
      let killer: NodeJS.Timeout | undefined;
      const arm = (): void => {
        killer = setTimeout(() => {
          killed = true;
          void daemon.kill();
        }, killAfterMs);
      };
      if (armAfter === 0) arm();
      let acked = 0;
      for (let seq = 0; !killed; seq++) {
        const name = nameOf(rng.int(VARIABLES));
        const remove = rng.bool(0.15);
        const data = remove ? new Uint8Array(0) : valueFor(rng, round, seq);
        const value = remove ? undefined : Buffer.from(data).toString('hex');
        inFlight = { name, value };
        let status: bigint;
        try {
          status = await fw.setVariable({ name, guid: VENDOR }, Attrs.NV_BS_RT, data);
        } catch {
          // The connection died with the daemon: this write was never acknowledged.
          break;
        }
        inFlight = undefined;
        if (status === EfiStatus.SUCCESS) {
          model.set(name, value);
          acked++;
          if (acked === armAfter) arm();
        } else if (!(remove && status === EfiStatus.NOT_FOUND)) {
          throw new Error(`round ${round}: SetVariable ${name} answered ${statusName(status)}`);
        }
      }
      clearTimeout(killer);
      if (inFlight !== undefined) inFlightKills++;
      const exit = await daemon.exited;
      expect(exit.signal, `round ${round}: the daemon died of the kill`).toBe('SIGKILL');
      await connection.close().catch(() => undefined);
      writesAcked += acked;
      if (acked === 0) kills.beforeFirstAck++;
      else kills.midStream++;
      expect(acked).toBeGreaterThanOrEqual(armAfter);
      // A kill during a save leaves its temporary file (the next daemon removes it).
      if ((await readdir(dir.path)).some((f) => f.endsWith('.tmp'))) strayTempFiles++;
    }
    // The kills landed in the middle of streams, not only before the first write.
    expect(kills.midStream).toBeGreaterThan(ROUNDS / 2);
    // Recorded for the report: saves interrupted by the kill leave their temporary file behind.
    console.info(
      `kill -9: ${ROUNDS} rounds, ${writesAcked} writes acknowledged, ${kills.beforeFirstAck} kills before the first answer, ` +
        `${inFlightKills} kills with a write in flight (${inFlightLanded} of those writes had landed), ${strayTempFiles} kills left a temporary file behind`,
    );
  });
});
