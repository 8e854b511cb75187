/**
 * The world a fuzz run starts from: a store in user mode whose PK, KEK and db keys are committed
 * test fixtures (so signatures, and therefore whole runs, are reproducible), plus Microsoft's KEK CA
 * 2011 so the real DBXUpdate verifies; and a pool of correctly signed updates that mutation starts
 * from, so that mutated messages reach deep into the PKCS#7 and signature-list parsers.
 */
import { readFileSync } from 'node:fs';
import { Attr, Attrs, Guids, makeVariable, utf16le, type StoreState, type Variable } from '@vmsb/efi';
import {
  bundledDbxUpdate,
  buildSignatureList,
  concatSignatureLists,
  createAuthenticatedVariable,
  microsoftCertificates,
  timestampBytes,
} from '@vmsb/keys';
import { guidFromText } from '@vmsb/protocol';

const FIXTURES = new URL('../fixtures/', import.meta.url);

function fixture(name: string): string {
  return readFileSync(new URL(name, FIXTURES), 'utf8');
}

export interface TestKey {
  readonly name: 'PK' | 'KEK' | 'db';
  readonly key: string;
  readonly certificate: string;
}

/** The committed test keys (RSA-2048, self-signed, generated once with openssl). */
export function testKeys(): { PK: TestKey; KEK: TestKey; db: TestKey } {
  const load = (name: 'PK' | 'KEK' | 'db'): TestKey => ({
    name,
    key: fixture(`${name}.key`),
    certificate: fixture(`${name}.crt`),
  });
  return { PK: load('PK'), KEK: load('KEK'), db: load('db') };
}

/** Owner GUID of the test entries. */
export const TEST_OWNER = '5d1a9b2e-7c44-4e0f-9b1d-2f6c3a8e4b17';
/** Vendor GUID of the fuzzer's own variables. */
export const FUZZ_VENDOR = guidFromText('3f0c8a51-9e27-4b6d-a4c2-7e1b5d9f0a63')!;

/** When the seed policy variables were "enrolled". */
const ENROLLED = timestampBytes(new Date(Date.UTC(2020, 0, 1)));

/** A SetVariable the fuzzer can send as it is or mutate. */
export interface SeedWrite {
  readonly label: string;
  readonly name: Uint8Array;
  readonly guid: Uint8Array;
  readonly attributes: number;
  /** EFI_VARIABLE_AUTHENTICATION_2 + payload (or a plain payload). */
  readonly data: Uint8Array;
  /** Offset and length of the PKCS#7 inside `data`, for DER-aware mutation. */
  readonly certData?: { readonly offset: number; readonly length: number };
}

export interface Corpus {
  /** The state every run (and every reset) starts from. */
  readonly state: StoreState;
  readonly seeds: readonly SeedWrite[];
}

function policy(name: 'PK' | 'KEK' | 'db' | 'dbx', guid: Uint8Array, data: Uint8Array): Variable {
  return makeVariable({ name: utf16le(name), guid, attributes: Attrs.NV_BS_RT_AT, data, timestamp: ENROLLED });
}

function plain(name: string, guid: Uint8Array, attributes: number, data: Uint8Array): Variable {
  return makeVariable({ name: utf16le(name), guid, attributes, data });
}

function sha256Entry(i: number): Uint8Array {
  const h = new Uint8Array(32);
  h.fill(i & 0xff);
  h[0] = 0xd8;
  h[31] = (i >>> 8) & 0xff;
  return h;
}

let cached: Corpus | undefined;

/** Builds (once per process) the seed state and the signed seed pool. Deterministic. */
export function fuzzCorpus(): Corpus {
  if (cached !== undefined) return cached;
  const keys = testKeys();
  const msKek2011 = microsoftCertificates({ role: 'KEK', generation: 2011 });
  const esl = (pem: string): Uint8Array => buildSignatureList({ type: 'x509', certificates: [pem], owner: TEST_OWNER });
  const kekData = concatSignatureLists([
    esl(keys.KEK.certificate),
    buildSignatureList({
      type: 'x509',
      certificates: msKek2011.map((c) => c.der),
      owner: '77fa9abd-0359-4d32-bd60-28f4e78f784b',
    }),
  ]);
  const variables: Variable[] = [
    policy('PK', Guids.GLOBAL_VARIABLE, esl(keys.PK.certificate)),
    policy('KEK', Guids.GLOBAL_VARIABLE, kekData),
    policy('db', Guids.IMAGE_SECURITY_DATABASE, esl(keys.db.certificate)),
    policy(
      'dbx',
      Guids.IMAGE_SECURITY_DATABASE,
      buildSignatureList({ type: 'sha256', hashes: [sha256Entry(1), sha256Entry(2)], owner: TEST_OWNER }),
    ),
    plain('Timeout', Guids.GLOBAL_VARIABLE, Attrs.NV_BS_RT, Uint8Array.of(3, 0)),
    plain('BootOrder', Guids.GLOBAL_VARIABLE, Attrs.NV_BS_RT, Uint8Array.of(1, 0, 0, 0)),
    plain('PlatformLang', Guids.GLOBAL_VARIABLE, Attrs.NV_BS_RT, new TextEncoder().encode('en-US\0')),
    plain('FuzzVolatile', FUZZ_VENDOR, Attrs.BS_RT, Uint8Array.of(1, 2, 3)),
    plain('FuzzBootOnly', FUZZ_VENDOR, Attrs.NV_BS, Uint8Array.of(4, 5, 6)),
  ];
  const state: StoreState = { variables, morKey: new Uint8Array(8), ppi: { index: 0, func: new Uint8Array(256) } };

  const seeds: SeedWrite[] = [];
  const time = (i: number): Date => new Date(Date.UTC(2031, 0, 1, 0, 0, i));
  let clock = 0;
  const signed = (
    label: string,
    o: {
      name: string;
      guid?: Uint8Array;
      append?: boolean;
      payload: Uint8Array;
      signer: TestKey;
      attributes?: number;
      wrap?: boolean;
    },
  ): void => {
    const attributes = (o.attributes ?? Attrs.NV_BS_RT_AT) | (o.append === true ? Attr.APPEND_WRITE : 0);
    const data = createAuthenticatedVariable({
      name: o.name,
      ...(o.guid !== undefined ? { guid: o.guid } : {}),
      attributes: o.attributes ?? Attrs.NV_BS_RT_AT,
      append: o.append === true,
      timestamp: time(++clock),
      payload: o.payload,
      key: o.signer.key,
      certificate: o.signer.certificate,
      wrapContentInfo: o.wrap === true,
      checkPayload: false,
    });
    const dwLength = new DataView(data.buffer, data.byteOffset + 16, 4).getUint32(0, true);
    const guid =
      o.guid ?? (o.name === 'PK' || o.name === 'KEK' ? Guids.GLOBAL_VARIABLE : Guids.IMAGE_SECURITY_DATABASE);
    seeds.push({
      label,
      name: utf16le(o.name),
      guid: guid.slice(),
      attributes,
      data,
      certData: { offset: 40, length: dwLength - 24 },
    });
  };
  const hashes = (from: number, n: number): Uint8Array =>
    buildSignatureList({
      type: 'sha256',
      hashes: Array.from({ length: n }, (_, i) => sha256Entry(from + i)),
      owner: TEST_OWNER,
    });

  for (let i = 0; i < 4; i++)
    signed(`db append by KEK #${i}`, {
      name: 'db',
      append: true,
      payload: hashes(100 + i * 4, 1 + i),
      signer: keys.KEK,
    });
  signed('db replace by KEK', {
    name: 'db',
    payload: concatSignatureLists([esl(keys.db.certificate), hashes(200, 2)]),
    signer: keys.KEK,
  });
  signed('db replace by PK (ContentInfo)', {
    name: 'db',
    payload: esl(keys.db.certificate),
    signer: keys.PK,
    wrap: true,
  });
  signed('dbx append by KEK', { name: 'dbx', append: true, payload: hashes(300, 3), signer: keys.KEK });
  signed('dbt create by KEK', { name: 'dbt', payload: hashes(400, 1), signer: keys.KEK });
  signed('KEK append by PK', { name: 'KEK', append: true, payload: esl(keys.db.certificate), signer: keys.PK });
  signed('KEK replace by PK', { name: 'KEK', payload: kekData, signer: keys.PK });
  signed('PK replace by PK', { name: 'PK', payload: esl(keys.PK.certificate), signer: keys.PK });
  signed('private create by db key', {
    name: 'FuzzPrivate',
    guid: FUZZ_VENDOR,
    payload: Uint8Array.of(1, 2, 3, 4),
    signer: keys.db,
  });
  signed('private append by db key', {
    name: 'FuzzPrivate',
    guid: FUZZ_VENDOR,
    append: true,
    payload: Uint8Array.of(5, 6),
    signer: keys.db,
  });
  signed('private replace by db key', {
    name: 'FuzzPrivate',
    guid: FUZZ_VENDOR,
    payload: Uint8Array.of(7),
    signer: keys.db,
  });
  signed('private create by KEK key (volatile)', {
    name: 'FuzzPrivateRt',
    guid: FUZZ_VENDOR,
    attributes: Attrs.NV_BS_RT_AT & ~Attr.NON_VOLATILE,
    payload: Uint8Array.of(9),
    signer: keys.KEK,
  });
  // Last: deleting PK switches the store to setup mode, which reshapes every later authenticated write.
  signed('PK delete by PK', { name: 'PK', payload: new Uint8Array(0), signer: keys.PK });

  const dbx = bundledDbxUpdate();
  const dwLength = new DataView(dbx.bytes.buffer, dbx.bytes.byteOffset + 16, 4).getUint32(0, true);
  seeds.push({
    label: 'Microsoft DBXUpdate (append)',
    name: utf16le('dbx'),
    guid: Guids.IMAGE_SECURITY_DATABASE.slice(),
    attributes: dbx.attributes,
    data: dbx.bytes,
    certData: { offset: 40, length: dwLength - 24 },
  });

  cached = { state, seeds };
  return cached;
}
