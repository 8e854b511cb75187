import { X509Certificate, createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { fromUtf16le, guidFromText, guidToText, utf16le } from '@vmsb/protocol';
import { Guids, type Variable } from '@vmsb/efi';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeOvmfFd, emptyOvmfFd, encodeOvmfFd, ovmfFdLosses, ovmfRecordSize } from './ovmf-fd.js';
import { plain, stateOf, variablesArb } from './test-support.js';

// Debian's `ovmf` package (installed by scripts/setup) ships these templates.
const OVMF = '/usr/share/OVMF';
const SNAKEOIL_PEM = '/usr/share/ovmf/PkKek-1-snakeoil.pem';

function template(name: string): Uint8Array {
  const path = `${OVMF}/${name}`;
  if (!existsSync(path)) throw new Error(`${path} is missing: install the Debian package "ovmf" (scripts/setup does)`);
  return new Uint8Array(readFileSync(path));
}

function decodeOk(bytes: Uint8Array) {
  const d = decodeOvmfFd(bytes);
  if (!d.ok) throw new Error(d.error);
  return d;
}

const GLOBAL = guidFromText('8be4df61-93ca-11d2-aa0d-00e098032b8c')!;
const IMAGE_DB = guidFromText('d719b2cb-3d3a-4596-a3bc-dad00e67656f')!;
const X509 = 'a5c059a1-94e4-4aa7-87b5-ab155c2bf072';
const SHA256 = 'c1c41626-504c-4092-aca9-41f936934328';

function find(vars: readonly Variable[], name: string, guid: Uint8Array): Variable {
  const v = vars.find((x) => fromUtf16le(x.name) === name && guidToText(x.guid) === guidToText(guid));
  if (v === undefined) throw new Error(`${name} not found`);
  return v;
}

/** Walks EFI_SIGNATURE_LISTs independently of @vmsb/efi: [type, owner, data] per entry. */
function entries(data: Uint8Array): { type: string; owner: string; data: Uint8Array }[] {
  const out: { type: string; owner: string; data: Uint8Array }[] = [];
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let at = 0;
  while (at < data.length) {
    const type = guidToText(data.subarray(at, at + 16));
    const listSize = view.getUint32(at + 16, true);
    const headerSize = view.getUint32(at + 20, true);
    const size = view.getUint32(at + 24, true);
    for (let e = at + 28 + headerSize; e < at + listSize; e += size) {
      out.push({ type, owner: guidToText(data.subarray(e, e + 16)), data: data.subarray(e + 16, e + size) });
    }
    at += listSize;
  }
  return out;
}

function subjectCN(der: Uint8Array): string {
  return /CN=([^\n]+)/.exec(new X509Certificate(der).subject)![1]!;
}

describe('OVMF .fd images from Debian', () => {
  it('an empty store of each layout is byte for byte what the OVMF build ships', () => {
    expect(Buffer.compare(emptyOvmfFd('4m'), template('OVMF_VARS_4M.fd'))).toBe(0);
    expect(Buffer.compare(emptyOvmfFd('2m'), template('OVMF_VARS.fd'))).toBe(0);
    const d = decodeOk(template('OVMF_VARS_4M.fd'));
    expect(d.state.variables).toEqual([]);
    expect(d.info).toMatchObject({
      fvLength: 0x84000,
      storeOffset: 72,
      storeSize: 0x3ffb8,
      authenticated: true,
      records: 0,
      ftwOffset: 0x41000,
    });
  });

  it('reads OVMF_VARS_4M.ms.fd: Debian PK, Debian + Microsoft 2011 KEK, 2011 db, the dummy dbx', () => {
    const d = decodeOk(template('OVMF_VARS_4M.ms.fd'));
    expect(d.warnings).toEqual([]);
    // 57 records on flash, stale copies included; each live variable once.
    expect(d.info.records).toBe(57);
    const vars = d.state.variables;
    expect(new Set(vars.map((v) => `${guidToText(v.guid)}:${fromUtf16le(v.name)}`)).size).toBe(vars.length);

    const pk = entries(find(vars, 'PK', GLOBAL).data);
    expect(pk).toHaveLength(1);
    expect(pk[0]!.type).toBe(X509);
    expect(subjectCN(pk[0]!.data)).toBe('Debian UEFI Secure Boot (PK/KEK key)');

    const kek = entries(find(vars, 'KEK', GLOBAL).data);
    expect(kek.map((e) => subjectCN(e.data))).toEqual([
      'Debian UEFI Secure Boot (PK/KEK key)',
      'Microsoft Corporation KEK CA 2011',
    ]);
    expect(kek[1]!.owner).toBe('77fa9abd-0359-4d32-bd60-28f4e78f784b');

    const db = entries(find(vars, 'db', IMAGE_DB).data);
    expect(db.map((e) => subjectCN(e.data))).toEqual([
      'Microsoft Windows Production PCA 2011',
      'Microsoft Corporation UEFI CA 2011',
    ]);

    const dbx = entries(find(vars, 'dbx', IMAGE_DB).data);
    expect(dbx).toHaveLength(1);
    expect(dbx[0]!.type).toBe(SHA256);
    expect(Buffer.from(dbx[0]!.data).toString('hex')).toBe(createHash('sha256').update('').digest('hex'));
    expect(dbx[0]!.owner).toBe('a0baa8a3-041d-48a8-bc87-c36d121b5e3d');

    // Secure Boot variables carry their enrolment timestamp; edk2's own settings are plain.
    expect(find(vars, 'PK', GLOBAL).attributes).toBe(0x27);
    expect(Buffer.from(find(vars, 'PK', GLOBAL).timestamp).some((b) => b !== 0)).toBe(true);
    expect(find(vars, 'SecureBootEnable', guidFromText('f0a30bc7-af08-4556-99c4-001009c93a44')!).data).toEqual(
      Uint8Array.of(1),
    );
  });

  it('reads OVMF_VARS_4M.snakeoil.fd: PK, KEK and db are the snakeoil certificate', () => {
    const d = decodeOk(template('OVMF_VARS_4M.snakeoil.fd'));
    if (!existsSync(SNAKEOIL_PEM)) throw new Error(`${SNAKEOIL_PEM} is missing: install the Debian package "ovmf"`);
    const snakeoil = new Uint8Array(new X509Certificate(readFileSync(SNAKEOIL_PEM)).raw);
    for (const [name, guid] of [
      ['PK', GLOBAL],
      ['KEK', GLOBAL],
      ['db', IMAGE_DB],
    ] as const) {
      const list = entries(find(d.state.variables, name, guid).data);
      expect(list).toHaveLength(1);
      expect(Buffer.compare(list[0]!.data, snakeoil)).toBe(0);
    }
  });

  it('re-encodes a real store into its own template without losing a variable', () => {
    for (const name of ['OVMF_VARS_4M.ms.fd', 'OVMF_VARS.ms.fd', 'OVMF_VARS_4M.snakeoil.fd']) {
      const original = template(name);
      const first = decodeOk(original);
      const rewritten = encodeOvmfFd(first.state, { template: original });
      expect(rewritten.length).toBe(original.length);
      // Outside the variable store nothing changes (FTW working block, spare area).
      const storeEnd = first.info.storeOffset + first.info.storeSize;
      expect(Buffer.compare(rewritten.subarray(storeEnd), original.subarray(storeEnd))).toBe(0);
      expect(Buffer.compare(rewritten.subarray(0, 100), original.subarray(0, 100))).toBe(0);
      const second = decodeOk(rewritten);
      expect(plain(second.state.variables)).toEqual(plain(first.state.variables));
      // Compacted: only live records remain.
      expect(second.info.records).toBe(first.state.variables.length);
    }
  });
});

/** An image with hand-made records, for the state machine of record States. */
function imageWith(records: { name: string; state: number; data: number[]; guid?: Uint8Array }[]): Uint8Array {
  const img = emptyOvmfFd('2m');
  const view = new DataView(img.buffer);
  let at = 100;
  for (const r of records) {
    const name = utf16le(`${r.name}\u0000`);
    view.setUint16(at, 0x55aa, true);
    img[at + 2] = r.state;
    img[at + 3] = 0;
    view.setUint32(at + 4, 7, true);
    img.fill(0, at + 8, at + 36);
    view.setUint32(at + 36, name.length, true);
    view.setUint32(at + 40, r.data.length, true);
    img.set(r.guid ?? GLOBAL, at + 44);
    img.set(name, at + 60);
    img.set(r.data, at + 60 + name.length);
    at = (at + 60 + name.length + r.data.length + 3) & ~3;
  }
  return img;
}

describe('OVMF record states', () => {
  it('skips deleted records and prefers a live copy over one in deleted transition, as edk2 does', () => {
    const d = decodeOk(
      imageWith([
        { name: 'A', state: 0x3c, data: [1] }, // deleted after an update
        { name: 'B', state: 0x3e, data: [2] }, // in deleted transition, no live copy: still the value
        { name: 'C', state: 0x3e, data: [3] }, // in deleted transition...
        { name: 'A', state: 0x3d, data: [4] }, // deleted
        { name: 'C', state: 0x3f, data: [5] }, // ...superseded by this live copy
        { name: 'D', state: 0x7f, data: [6] }, // header only: never completed
      ]),
    );
    expect(d.state.variables.map((v) => [fromUtf16le(v.name), v.data[0]])).toEqual([
      ['B', 2],
      ['C', 5],
    ]);
  });

  it('keeps the first of two live copies and says so', () => {
    const d = decodeOk(
      imageWith([
        { name: 'X', state: 0x3f, data: [1] },
        { name: 'X', state: 0x3f, data: [2] },
      ]),
    );
    expect(d.state.variables.map((v) => v.data[0])).toEqual([1]);
    expect(d.warnings.join('\n')).toMatch(/second live copy/);
  });

  it('refuses a live record that runs past the store', () => {
    const img = imageWith([{ name: 'X', state: 0x3f, data: [1] }]);
    new DataView(img.buffer).setUint32(100 + 40, 0x100000, true);
    const d = decodeOvmfFd(img);
    expect(d.ok).toBe(false);
    if (!d.ok) expect(d.error).toMatch(/run past the store end/);
  });

  it('refuses a damaged volume header', () => {
    const img = emptyOvmfFd('2m');
    img[44] = img[44]! ^ 1;
    const d = decodeOvmfFd(img);
    expect(d.ok).toBe(false);
    if (!d.ok) expect(d.error).toMatch(/checksum/);
  });

  it('warns about an unfinished fault-tolerant write and clears it when rewriting', () => {
    const img = emptyOvmfFd('2m');
    img[0xf000 + 40] = 0x00; // a write record in the working block's queue
    const d = decodeOk(img);
    expect(d.warnings.join('\n')).toMatch(/fault-tolerant-write log/);
    const rewritten = encodeOvmfFd(d.state, { template: img });
    expect(Buffer.compare(rewritten, emptyOvmfFd('2m'))).toBe(0);
  });
});

describe('OVMF encoding', () => {
  it('round-trips any store it can hold (property)', () => {
    fc.assert(
      fc.property(
        variablesArb({ digest: false }),
        fc.constantFrom('4m' as const, '2m' as const),
        (variables, layout) => {
          const bytes = encodeOvmfFd(stateOf(variables), { layout });
          const d = decodeOk(bytes);
          expect(d.warnings).toEqual([]);
          expect(plain(d.state.variables)).toEqual(plain(variables));
        },
      ),
      { numRuns: 150 },
    );
  });

  it('reports what it cannot hold: signer digests and the ancillary data', () => {
    const v: Variable = {
      name: utf16le('Private'),
      guid: GLOBAL,
      attributes: 0x27,
      data: Uint8Array.of(1),
      timestamp: new Uint8Array(16),
      signerDigest: new Uint8Array(32).fill(7),
    };
    expect(ovmfFdLosses(stateOf([v]))).toEqual([expect.stringMatching(/Private .*signer digest/)]);
    expect(
      ovmfFdLosses({ variables: [], morKey: new Uint8Array(8).fill(1), ppi: { index: 3, func: new Uint8Array(256) } }),
    ).toHaveLength(2);
    expect(ovmfFdLosses(stateOf([{ ...v, signerDigest: new Uint8Array(32) }]))).toEqual([]);
  });

  it("counts only a private time-based authenticated variable's signer digest as data (VARS v1 leaves others uninitialised)", () => {
    const junk = new Uint8Array(32).fill(0x5a);
    const base = { data: Uint8Array.of(1), timestamp: new Uint8Array(16), signerDigest: junk };
    const notData: Variable[] = [
      { ...base, name: utf16le('Boot0000'), guid: GLOBAL, attributes: 0x7 },
      { ...base, name: utf16le('PK'), guid: GLOBAL, attributes: 0x27 },
      { ...base, name: utf16le('KEK'), guid: GLOBAL, attributes: 0x27 },
      { ...base, name: utf16le('db'), guid: Guids.IMAGE_SECURITY_DATABASE, attributes: 0x27 },
      { ...base, name: utf16le('dbx'), guid: Guids.IMAGE_SECURITY_DATABASE, attributes: 0x27 },
    ];
    expect(ovmfFdLosses(stateOf(notData))).toEqual([]);
    const bound: Variable = { ...base, name: utf16le('db'), guid: GLOBAL, attributes: 0x27 };
    expect(ovmfFdLosses(stateOf([...notData, bound]))).toEqual([expect.stringMatching(/^db .*signer digest/)]);
  });

  it('refuses variables that do not fit the store, saying how much they need', () => {
    const big = (i: number): Variable => ({
      name: utf16le(`Big${i}`),
      guid: GLOBAL,
      attributes: 7,
      data: new Uint8Array(30000),
      timestamp: new Uint8Array(16),
      signerDigest: new Uint8Array(32),
    });
    const vars = [big(1), big(2)];
    expect(() => encodeOvmfFd(stateOf(vars), { layout: '2m' })).toThrow(/need \d+ bytes; the OVMF store holds 57244/);
    expect(ovmfRecordSize(vars[0]!)).toBe((60 + 10 + 30000 + 3) & ~3);
    expect(() => encodeOvmfFd(stateOf(vars), { layout: '4m' })).not.toThrow();
  });

  it('never throws on damaged images (property)', () => {
    const base = encodeOvmfFd(
      stateOf([
        {
          name: utf16le('Boot0000'),
          guid: GLOBAL,
          attributes: 7,
          data: new Uint8Array(40).fill(3),
          timestamp: new Uint8Array(16),
          signerDigest: new Uint8Array(32),
        },
        {
          name: utf16le('db'),
          guid: IMAGE_DB,
          attributes: 0x27,
          data: new Uint8Array(90).fill(9),
          timestamp: new Uint8Array(16).fill(1),
          signerDigest: new Uint8Array(32),
        },
      ]),
      { layout: '2m' },
    );
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 400 }), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
        fc.integer({ min: 0, max: base.length }),
        (flips, cut) => {
          const img = base.slice(0, cut);
          for (const [at, value] of flips) if (at < img.length) img[at] = value;
          const d = decodeOvmfFd(img);
          expect(typeof d.ok).toBe('boolean');
        },
      ),
      { numRuns: 300 },
    );
  });
});
