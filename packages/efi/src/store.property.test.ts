import { FirmwareClient, Limits, decodeResponse, encodeRequest, type Request } from '@vmsb/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Guids } from './guid.js';
import { G, RecordingAuthenticator, S, V, n, newStore } from './test-helpers.js';

/**
 * A deliberately plain model of edk2's SetVariable/GetVariable for variables outside the UEFI
 * namespaces, with varstored's limits, and no authenticator configured.
 */
class Model {
  readonly vars = new Map<string, { attributes: number; data: Uint8Array }>();
  runtime = false;
  constructor(private readonly base: number) {}

  used(): number {
    let total = this.base;
    for (const [name, v] of this.vars) total += name.length * 2 + v.data.length + 128;
    return total;
  }

  set(name: string, attr: number, data: Uint8Array, rt: boolean): bigint {
    this.runtime ||= rt;
    const AW = 0x10;
    const AT = 0x20;
    const AP = 0x40;
    const MASK = 0x6f;
    const aw = (attr & AW) !== 0;
    const at = (attr & AT) !== 0;
    if ((attr & ~(MASK | AW)) !== 0) return S.INVALID_PARAMETER;
    if ((attr & 6) === 4 || (attr & MASK) === 1) return aw ? S.UNSUPPORTED : S.INVALID_PARAMETER;
    if (!aw && !at && (attr & 8) !== 0) return S.INVALID_PARAMETER;
    if (aw && at) return S.UNSUPPORTED;
    let payload = data;
    if (aw) {
      if (data.length !== 560) return S.UNSUPPORTED;
      payload = new Uint8Array(0);
    } else if (at) {
      const dw = data.length >= 40 ? new DataView(data.buffer, data.byteOffset).getUint32(16, true) : 0;
      if (data.length < 40 || dw > data.length - 16 || dw < 24) return S.SECURITY_VIOLATION;
      payload = data.subarray(16 + dw);
    }
    if (payload.length > Limits.DATA_MAX) return S.OUT_OF_RESOURCES;
    const isDelete = ((attr & AP) === 0 && payload.length === 0) || attr === 0;
    if (!isDelete && (attr & 8) !== 0) return S.INVALID_PARAMETER;
    const e = this.vars.get(name);
    if (e !== undefined) {
      if (this.runtime && (e.attributes & 4) === 0) return S.WRITE_PROTECTED;
      if (attr !== 0 && (attr & ~AP) !== e.attributes) return S.INVALID_PARAMETER;
    }
    if (aw) return S.UNSUPPORTED;
    if (at) return S.SECURITY_VIOLATION;
    const append = (attr & AP) !== 0;
    let next: { attributes: number; data: Uint8Array } | undefined;
    if (e !== undefined) {
      if (this.runtime && (e.attributes & 1) === 0) return S.WRITE_PROTECTED;
      if ((!append && payload.length === 0) || (attr & 6) === 0) next = undefined;
      else {
        const merged = append ? Buffer.concat([e.data, payload]) : payload.slice();
        if (merged.length > Limits.DATA_MAX) return S.OUT_OF_RESOURCES;
        next = { attributes: e.attributes, data: merged };
      }
    } else {
      if (append && payload.length === 0) return S.SUCCESS;
      if (payload.length === 0 || (attr & 6) === 0) return S.NOT_FOUND;
      const stored = attr & ~AP;
      if (this.runtime && ((stored & 4) === 0 || (stored & 1) === 0)) return S.INVALID_PARAMETER;
      next = { attributes: stored, data: payload.slice() };
    }
    const before = this.used();
    const footprint = (v: { data: Uint8Array } | undefined) =>
      v === undefined ? 0 : name.length * 2 + v.data.length + 128;
    const after = before - footprint(e) + footprint(next);
    if (after > Limits.TOTAL_MAX && after > before) return S.OUT_OF_RESOURCES;
    if (next === undefined) this.vars.delete(name);
    else this.vars.set(name, next);
    return S.SUCCESS;
  }

  get(name: string, rt: boolean): { status: bigint; attributes?: number; data?: Uint8Array } {
    this.runtime ||= rt;
    const v = this.vars.get(name);
    if (v === undefined || (this.runtime && (v.attributes & 4) === 0)) return { status: S.NOT_FOUND };
    return { status: S.SUCCESS, attributes: v.attributes, data: v.data };
  }
}

/** Byte equality that stays fast on 57 KiB values (both undefined counts as equal). */
function same(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return Buffer.compare(a, b) === 0;
}

const names = fc.constantFrom('A', 'B', 'C', 'Dd', 'Eee');
const attributes = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(0x2, 0x3, 0x6, 0x7, 0x42, 0x43, 0x46, 0x47, 0) },
  { weight: 2, arbitrary: fc.constantFrom(0x1, 0x4, 0x5, 0x41, 0xf, 0x17, 0x27, 0x37, 0x87, 0x107, 0x40) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xff }) },
);
// Data made of one repeated byte keeps big values cheap to generate and compare.
const data = fc
  .tuple(
    fc.oneof(
      { weight: 6, arbitrary: fc.integer({ min: 0, max: 64 }) },
      { weight: 2, arbitrary: fc.integer({ min: 20000, max: 57344 }) },
      { weight: 1, arbitrary: fc.constantFrom(560, 57344, 57345, 60000) },
    ),
    fc.integer({ min: 0, max: 255 }),
  )
  .map(([length, byte]) => new Uint8Array(length).fill(byte));

/** Runs and seed can be raised or pinned from the environment (VMSB_FUZZ_ITERATIONS, VMSB_FUZZ_SEED). */
function runs(defaultRuns: number): { numRuns: number; seed?: number } {
  const iterations = Number(process.env.VMSB_FUZZ_ITERATIONS);
  const seed = Number(process.env.VMSB_FUZZ_SEED);
  return {
    numRuns: Number.isInteger(iterations) && iterations > 0 ? iterations : defaultRuns,
    ...(process.env.VMSB_FUZZ_SEED !== undefined && Number.isInteger(seed) ? { seed } : {}),
  };
}
const command = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('set' as const), name: names, attributes, data }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('get' as const), name: names }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('delete' as const), name: names }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('list' as const) }) },
);

/**
 * GetNextVariableName walks the model's names in creation order (a rewrite keeps a name's place,
 * a delete and re-create moves it last), hiding boot-service-only ones at runtime.
 */
function expectSameEnumeration(fw: FirmwareClient, model: Model): void {
  const listed = fw
    .listVariables()
    .filter((v) => Buffer.from(v.guid).equals(Buffer.from(V)))
    .map((v) => Buffer.from(v.name).toString('utf16le'));
  expect(listed).toEqual(
    [...model.vars].filter(([, v]) => !model.runtime || (v.attributes & 4) !== 0).map(([name]) => name),
  );
}

describe('property: the store agrees with a plain reference model', () => {
  it('random Set/Get/Delete sequences give the same statuses and contents; the total never exceeds 131072', () => {
    const seen = new Set<bigint>();
    fc.assert(
      // The guest says "runtime" from command `runtimeFrom` on (often never).
      fc.property(fc.array(command, { maxLength: 40 }), fc.integer({ min: 0, max: 30 }), (commands, runtimeFrom) => {
        const store = newStore();
        const fw = FirmwareClient.forStore(store);
        const model = new Model(store.usedStorage);
        for (const [i, command] of commands.entries()) {
          const c = { ...command, rt: i >= runtimeFrom };
          fw.atRuntime = c.rt;
          if (c.op === 'set') {
            const status = fw.setVariable(n(c.name), V, c.attributes, c.data);
            seen.add(status);
            expect(status).toBe(model.set(c.name, c.attributes, c.data, c.rt));
          } else if (c.op === 'list') {
            model.runtime ||= c.rt;
            expectSameEnumeration(fw, model);
          } else if (c.op === 'delete') {
            expect(fw.setVariable(n(c.name), V, 0, new Uint8Array(0))).toBe(
              model.set(c.name, 0, new Uint8Array(0), c.rt),
            );
          } else {
            const got = fw.getVariable(n(c.name), V);
            const want = model.get(c.name, c.rt);
            expect(got.status).toBe(want.status);
            expect(got.attributes).toBe(want.attributes);
            expect(same(got.data, want.data)).toBe(true);
          }
          expect(store.usedStorage).toBeLessThanOrEqual(Limits.TOTAL_MAX);
          expect(store.usedStorage).toBe(model.used());
        }
        for (const name of ['A', 'B', 'C', 'Dd', 'Eee']) {
          expect(same(store.getVariable(n(name), V)?.data, model.vars.get(name)?.data)).toBe(true);
        }
        expectSameEnumeration(fw, model);
      }),
      runs(200),
    );
    // The generator must reach every outcome, or the agreement above proves little.
    for (const s of [
      S.SUCCESS,
      S.NOT_FOUND,
      S.INVALID_PARAMETER,
      S.OUT_OF_RESOURCES,
      S.WRITE_PROTECTED,
      S.UNSUPPORTED,
      S.SECURITY_VIOLATION,
    ]) {
      expect(seen.has(s), `status 0x${s.toString(16)} never produced`).toBe(true);
    }
  }, 60_000);
});

const anyRequest: fc.Arbitrary<Request> = fc.oneof(
  fc.record({
    command: fc.constant('GetVariable' as const),
    name: fc.uint8Array({ maxLength: 80 }),
    guid: fc.constantFrom(V, G, Guids.IMAGE_SECURITY_DATABASE),
    dataSize: fc.nat(),
    atRuntime: fc.boolean(),
  }),
  fc.record({
    command: fc.constant('SetVariable' as const),
    name: fc.oneof(
      fc.uint8Array({ maxLength: 40 }),
      fc.constantFrom(
        n('PK'),
        n('KEK'),
        n('db'),
        n('dbx'),
        n('BootOrder'),
        n('Boot0001'),
        n('SetupMode'),
        n('MemoryOverwriteRequestControlLock'),
      ),
    ),
    guid: fc.constantFrom(
      V,
      G,
      Guids.IMAGE_SECURITY_DATABASE,
      Guids.MEMORY_OVERWRITE_CONTROL_LOCK,
      Guids.TCG2_PHYSICAL_PRESENCE,
    ),
    data: fc.uint8Array({ maxLength: 600 }),
    attributes: fc.oneof(fc.integer({ min: 0, max: 0xff }), fc.nat()),
    atRuntime: fc.boolean(),
  }),
  fc.record({
    command: fc.constant('GetNextVariableName' as const),
    nameSize: fc.nat(),
    name: fc.uint8Array({ maxLength: 40 }),
    guid: fc.constantFrom(V, G),
    atRuntime: fc.boolean(),
  }),
  fc.record({ command: fc.constant('QueryVariableInfo' as const), attributes: fc.nat() }),
  fc.constant({ command: 'NotifySBFailure' as const }),
);

describe('property: dispatch never throws and never answers more than the buffer', () => {
  it('for well-formed requests with arbitrary fields, then corrupted bytes', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            anyRequest,
            fc.array(fc.tuple(fc.nat({ max: 700 }), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
            fc.boolean(),
          ),
          { maxLength: 25 },
        ),
        (steps) => {
          const store = newStore({ authenticator: new RecordingAuthenticator() });
          for (const [request, corruptions, persistOk] of steps) {
            const buffer = new Uint8Array(Limits.BUFFER_SIZE);
            encodeRequest(request, buffer);
            for (const [at, value] of corruptions) buffer[at] = value;
            const out = store.dispatch(buffer);
            expect(out.response.length).toBeGreaterThanOrEqual(8);
            expect(out.response.length).toBeLessThanOrEqual(Limits.BUFFER_SIZE);
            const status = new DataView(out.response.buffer).getBigUint64(0, true);
            expect(status).toBe(out.status);
            if (out.command !== undefined) expect(decodeResponse(out.command, out.response).ok).toBe(true);
            if (out.pending !== undefined) {
              if (persistOk) out.pending.commit();
              else expect(out.pending.rollback()).toEqual(Uint8Array.of(7, 0, 0, 0, 0, 0, 0, 0x80));
            }
            expect(store.usedStorage).toBeLessThanOrEqual(Limits.TOTAL_MAX);
          }
        },
      ),
      runs(300),
    );
  }, 60_000);

  it('for arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), fc.constantFrom(0, 1, 2, 3, 4, 7), (bytes, command) => {
        const store = newStore();
        // Make most inputs reach a command handler: version 1 and a real command code.
        const b = bytes.slice();
        if (b.length >= 8) {
          const view = new DataView(b.buffer);
          view.setUint32(0, 1, true);
          view.setUint32(4, command, true);
        }
        const out = store.dispatch(b);
        expect(out.response.length).toBeGreaterThanOrEqual(8);
        expect(out.response.length).toBeLessThanOrEqual(Limits.BUFFER_SIZE);
        out.pending?.commit();
      }),
      runs(1000),
    );
  }, 60_000);
});
