import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { StoreState, Variable } from '@vmsb/efi';
import { fromUtf16le, guidToText, utf16le } from '@vmsb/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeVarsBlob, encodeVarsBlob, VarsBlob } from './vars-blob.js';

const GLOBAL = Uint8Array.from([
  0x61, 0xdf, 0xe4, 0x8b, 0xca, 0x93, 0xd2, 0x11, 0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c,
]);

function variable(name: string, data: number[], attributes = 7, extra: Partial<Variable> = {}): Variable {
  return {
    name: utf16le(name),
    guid: GLOBAL,
    attributes,
    data: Uint8Array.from(data),
    timestamp: new Uint8Array(16),
    signerDigest: new Uint8Array(32),
    ...extra,
  };
}

function state(
  variables: Variable[],
  morKey = new Uint8Array(8),
  ppiIndex = 0,
  func = new Uint8Array(256),
): StoreState {
  return { variables, morKey, ppi: { index: ppiIndex, func } };
}

/** A v1 blob as the C daemons wrote them: no ancillary data. */
function v1Blob(variables: Variable[]): Uint8Array {
  const v2 = encodeVarsBlob(state(variables), { nonVolatileOnly: false });
  const out = new Uint8Array(v2.length - VarsBlob.ANCILLARY_SIZE);
  out.set(v2.subarray(0, VarsBlob.HEADER_SIZE));
  out.set(v2.subarray(VarsBlob.HEADER_SIZE + VarsBlob.ANCILLARY_SIZE), VarsBlob.HEADER_SIZE);
  new DataView(out.buffer).setUint32(4, 1, true);
  return out;
}

function decodeOk(bytes: Uint8Array) {
  const decoded = decodeVarsBlob(bytes);
  if (!decoded.ok) throw new Error(`expected a valid blob: ${decoded.error}`);
  return decoded;
}

function decodeError(bytes: Uint8Array): string {
  const decoded = decodeVarsBlob(bytes);
  if (decoded.ok) throw new Error('expected a corrupt blob');
  return decoded.error;
}

const arbVariable: fc.Arbitrary<Variable> = fc.record({
  name: fc.uint8Array({ minLength: 1, maxLength: 64 }),
  guid: fc.uint8Array({ minLength: 16, maxLength: 16 }),
  attributes: fc.nat({ max: 0xffff_ffff }),
  data: fc.uint8Array({ minLength: 1, maxLength: 256 }),
  timestamp: fc.uint8Array({ minLength: 16, maxLength: 16 }),
  signerDigest: fc.uint8Array({ minLength: 32, maxLength: 32 }),
});

const arbState: fc.Arbitrary<StoreState> = fc.record({
  variables: fc.uniqueArray(arbVariable, {
    maxLength: 12,
    selector: (v) => `${Buffer.from(v.guid).toString('hex')}:${Buffer.from(v.name).toString('hex')}`,
  }),
  morKey: fc.uint8Array({ minLength: 8, maxLength: 8 }),
  ppi: fc.record({ index: fc.nat({ max: 0xffff_ffff }), func: fc.uint8Array({ minLength: 256, maxLength: 256 }) }),
});

describe('VARS blob layout', () => {
  it('writes the exact v2 layout: header, ancillary data, then each record', () => {
    const morKey = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
    const func = new Uint8Array(256).fill(0x5a);
    const timestamp = Uint8Array.from({ length: 16 }, (_, i) => 0x10 + i);
    const signerDigest = new Uint8Array(32).fill(0xdd);
    const v = variable('AB', [0xc0, 0xc1, 0xc2], 0x27, { timestamp, signerDigest });
    const blob = encodeVarsBlob(state([v], morKey, 0x123, func), { nonVolatileOnly: false });
    const recordLength = 84 + 4 + 3;
    expect(blob.length).toBe(24 + 268 + recordLength);
    const view = new DataView(blob.buffer);
    expect(Buffer.from(blob.subarray(0, 4)).toString('latin1')).toBe('VARS');
    expect(view.getUint32(4, true)).toBe(2);
    expect(view.getBigUint64(8, true)).toBe(1n);
    expect(view.getBigUint64(16, true)).toBe(BigInt(recordLength));
    expect([...blob.subarray(24, 32)]).toEqual([...morKey]);
    expect(view.getUint32(32, true)).toBe(0x123);
    expect([...blob.subarray(36, 292)]).toEqual([...func]);
    let o = 292;
    expect(view.getBigUint64(o, true)).toBe(4n);
    expect([...blob.subarray(o + 8, o + 12)]).toEqual([0x41, 0, 0x42, 0]);
    o += 12;
    expect(view.getBigUint64(o, true)).toBe(3n);
    expect([...blob.subarray(o + 8, o + 11)]).toEqual([0xc0, 0xc1, 0xc2]);
    o += 11;
    expect([...blob.subarray(o, o + 16)]).toEqual([...GLOBAL]);
    expect(view.getUint32(o + 16, true)).toBe(0x27);
    expect([...blob.subarray(o + 20, o + 36)]).toEqual([...timestamp]);
    expect([...blob.subarray(o + 36, o + 68)]).toEqual([...signerDigest]);
    expect(o + 68).toBe(blob.length);
  });

  it('keeps only non-volatile variables when asked, and all of them otherwise', () => {
    const s = state([variable('Nv', [1], 0x7), variable('Volatile', [2], 0x6), variable('Auth', [3], 0x27)]);
    const nv = decodeOk(encodeVarsBlob(s, { nonVolatileOnly: true }));
    expect(nv.state.variables.map((v) => fromUtf16le(v.name))).toEqual(['Nv', 'Auth']);
    const all = decodeOk(encodeVarsBlob(s, { nonVolatileOnly: false }));
    expect(all.state.variables.map((v) => fromUtf16le(v.name))).toEqual(['Nv', 'Volatile', 'Auth']);
  });

  it('round-trips any valid state exactly, in order', () => {
    fc.assert(
      fc.property(arbState, (s) => {
        const decoded = decodeOk(encodeVarsBlob(s, { nonVolatileOnly: false }));
        expect(decoded.version).toBe(2);
        expect(decoded.state).toEqual(s);
      }),
      { numRuns: 150 },
    );
  }, 30_000);

  it('reads version 1 blobs (no ancillary data: MOR key and PPI region are zero)', () => {
    const vars = [variable('Boot0000', [9, 9, 9]), variable('Timeout', [5, 0])];
    const decoded = decodeOk(v1Blob(vars));
    expect(decoded.version).toBe(1);
    expect(decoded.state.variables).toEqual(vars);
    expect(decoded.state.morKey).toEqual(new Uint8Array(8));
    expect(decoded.state.ppi).toEqual({ index: 0, func: new Uint8Array(256) });
  });

  it('returns bytes that do not alias the input', () => {
    const blob = encodeVarsBlob(state([variable('X', [1, 2, 3])]), { nonVolatileOnly: false });
    const decoded = decodeOk(blob);
    blob.fill(0);
    expect([...decoded.state.variables[0]!.data]).toEqual([1, 2, 3]);
  });
});

describe('corrupt VARS blobs are errors that say what is wrong', () => {
  const good = encodeVarsBlob(state([variable('Alpha', [1, 2]), variable('Beta', [3])]), { nonVolatileOnly: false });
  const patched = (at: number, write: (view: DataView) => void, bytes = good): Uint8Array => {
    const copy = bytes.slice();
    write(new DataView(copy.buffer, at));
    return copy;
  };
  const firstRecord = 24 + 268;

  it.each([
    ['an empty input', new Uint8Array(0), /too short for a VARS header/],
    ['a bad magic', patched(0, (v) => v.setUint8(0, 0x58)), /bad magic "XARS"/],
    ['version 3', patched(4, (v) => v.setUint32(0, 3, true)), /unsupported VARS version 3/],
    ['version 0', patched(4, (v) => v.setUint32(0, 0, true)), /unsupported VARS version 0/],
    [
      'a count above 1024',
      patched(8, (v) => v.setBigUint64(0, 1025n, true)),
      /variable count 1025 .* larger than 1024/,
    ],
    [
      'a huge count',
      patched(8, (v) => v.setBigUint64(0, 0xffff_ffff_ffff_ffffn, true)),
      /variable count 18446744073709551615/,
    ],
    [
      'one more variable than present',
      patched(8, (v) => v.setBigUint64(0, 3n, true)),
      /variable 3 of 3 .*truncated|truncated.*variable 3 of 3/,
    ],
    [
      'one fewer variable than present',
      patched(8, (v) => v.setBigUint64(0, 1n, true)),
      /unexpected bytes after the last of 1 variables/,
    ],
    ['a zero-length name', patched(firstRecord, (v) => v.setBigUint64(0, 0n, true)), /variable 1 of 2 .*empty name/],
    [
      'a name longer than 4096',
      patched(firstRecord, (v) => v.setBigUint64(0, 4098n, true)),
      /name length 4098 .* larger than 4096/,
    ],
    ['a name length with high bits', patched(firstRecord, (v) => v.setUint32(4, 1, true)), /name length 4294967306 /],
    ['a zero-length data', patched(firstRecord + 8 + 10, (v) => v.setBigUint64(0, 0n, true)), /"Alpha": empty data/],
    [
      'data longer than 57344',
      patched(firstRecord + 8 + 10, (v) => v.setBigUint64(0, 57345n, true)),
      /"Alpha": data length 57345 .* larger than 57344/,
    ],
    [
      'data running past the end',
      patched(firstRecord + 8 + 10, (v) => v.setBigUint64(0, 50000n, true)),
      /truncated .* "Alpha": data needs 50000 bytes/,
    ],
    ['a v2 header without its ancillary data', good.subarray(0, 30), /truncated at byte 24: v2 ancillary data/],
  ])('rejects %s', (_what, bytes, message) => {
    expect(decodeError(bytes)).toMatch(message);
  });

  it('rejects a variable stored twice', () => {
    const twice = encodeVarsBlob(state([variable('Same', [1]), variable('Other', [2]), variable('Same', [3])]), {
      nonVolatileOnly: false,
    });
    expect(decodeError(twice)).toMatch(/variable 3 of 3 .*"Same"-8be4df61-93ca-11d2-aa0d-00e098032b8c appears twice/);
  });

  it('accepts the same name under different GUIDs', () => {
    const other = Uint8Array.from(GLOBAL);
    other[0] = 0;
    expect(
      decodeOk(
        encodeVarsBlob(state([variable('Same', [1]), variable('Same', [1], 7, { guid: other })]), {
          nonVolatileOnly: false,
        }),
      ).state.variables,
    ).toHaveLength(2);
  });

  it('rejects every truncation and every extension of a valid blob', () => {
    for (let n = 0; n < good.length; n++) expect(decodeVarsBlob(good.subarray(0, n)).ok).toBe(false);
    const longer = new Uint8Array(good.length + 1);
    longer.set(good);
    expect(decodeError(longer)).toMatch(/1 unexpected bytes after the last of 2 variables/);
  });

  it('never throws, whatever the bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        const header = Uint8Array.from([0x56, 0x41, 0x52, 0x53]);
        const withMagic = new Uint8Array(bytes.length + 4);
        withMagic.set(header);
        withMagic.set(bytes, 4);
        decodeVarsBlob(bytes);
        decodeVarsBlob(withMagic);
      }),
      { numRuns: 500 },
    );
  }, 30_000);

  it('never throws on single-byte corruptions of a valid blob, and any blob it accepts re-encodes to a valid blob', () => {
    fc.assert(
      fc.property(fc.nat({ max: good.length - 1 }), fc.nat({ max: 255 }), (at, value) => {
        const copy = good.slice();
        copy[at] = value;
        const decoded = decodeVarsBlob(copy);
        if (decoded.ok) {
          const again = decodeOk(encodeVarsBlob(decoded.state, { nonVolatileOnly: false }));
          expect(again.state).toEqual(decoded.state);
        }
      }),
      { numRuns: 300 },
    );
  }, 30_000);
});

describe('the encoder refuses states no reader would accept', () => {
  it.each([
    ['an empty name', state([variable('', [1])]), /name length 0/],
    ['empty data', state([variable('A', [])]), /data length 0/],
    ['oversized data', state([{ ...variable('A', [1]), data: new Uint8Array(57345) }]), /data length 57345/],
    ['oversized name', state([{ ...variable('A', [1]), name: new Uint8Array(4098) }]), /name length 4098/],
    ['a short GUID', state([{ ...variable('A', [1]), guid: new Uint8Array(15) }]), /GUID is 15 bytes/],
    ['a short timestamp', state([{ ...variable('A', [1]), timestamp: new Uint8Array(8) }]), /timestamp is 8 bytes/],
    [
      'a short digest',
      state([{ ...variable('A', [1]), signerDigest: new Uint8Array(31) }]),
      /signer digest is 31 bytes/,
    ],
    ['a short MOR key', state([], new Uint8Array(7)), /MOR key is 7 bytes/],
    ['a short PPI region', state([], new Uint8Array(8), 0, new Uint8Array(255)), /PPI data is 255 bytes/],
    ['a negative PPI index', state([], new Uint8Array(8), -1), /PPI index -1/],
  ])('throws for %s', (_what, s, message) => {
    expect(() => encodeVarsBlob(s, { nonVolatileOnly: false })).toThrow(message);
  });

  it('throws for more than 1024 variables', () => {
    const many = Array.from({ length: 1025 }, (_, i) => variable(`V${i}`, [1]));
    expect(() => encodeVarsBlob(state(many), { nonVolatileOnly: false })).toThrow(/1025 variables/);
    expect(
      decodeOk(encodeVarsBlob(state(many.slice(0, 1024)), { nonVolatileOnly: false })).state.variables,
    ).toHaveLength(1024);
  });
});

// A real NVRAM taken from a VM's XAPI record (GPL test data of another project: read in place, never copied).
const LEGACY = fileURLToPath(
  new URL('../../../../shared/vectors/uefistored/nvram/legacy-payload-bin.dat', import.meta.url),
);

describe.skipIf(!existsSync(LEGACY))('a real VARS v1 blob (uefistored legacy-payload-bin.dat)', () => {
  it('loads all 32 variables and round-trips them through v2', () => {
    const decoded = decodeOk(new Uint8Array(readFileSync(LEGACY)));
    expect(decoded.version).toBe(1);
    const names = decoded.state.variables.map((v) => fromUtf16le(v.name));
    expect(names).toHaveLength(32);
    for (const expected of [
      'Boot0000',
      'BootOrder',
      'ConOut',
      'ConIn',
      'Lang',
      'PlatformLang',
      'Timeout',
      'PK',
      'MTC',
      'MemoryTypeInformation',
    ]) {
      expect(names).toContain(expected);
    }
    const pk = decoded.state.variables.find((v) => fromUtf16le(v.name) === 'PK')!;
    expect(guidToText(pk.guid)).toBe('8be4df61-93ca-11d2-aa0d-00e098032b8c');
    expect(pk.attributes).toBe(0x27);
    const again = decodeOk(encodeVarsBlob(decoded.state, { nonVolatileOnly: false }));
    expect(again.version).toBe(2);
    expect(again.state).toEqual(decoded.state);
  });
});
