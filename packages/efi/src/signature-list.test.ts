import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { Guids, guid, guidToText } from './guid.js';
import {
  SIGNATURE_LIST_HEADER_SIZE,
  SignatureTypes,
  checkSignatureLists,
  countSignatures,
  parseSignatureLists,
  serializeSignatureLists,
  signatureHashes,
  signatureListOfCertificate,
  signatureListOfHashes,
  signatureTypeOf,
  x509Certificates,
  type SignatureList,
} from './signature-list.js';

const OWNER = Guids.MICROSOFT;

function header(type: Uint8Array, listSize: number, headerSize: number, signatureSize: number): Uint8Array {
  const out = new Uint8Array(28);
  out.set(type, 0);
  const v = new DataView(out.buffer);
  v.setUint32(16, listSize, true);
  v.setUint32(20, headerSize, true);
  v.setUint32(24, signatureSize, true);
  return out;
}

const sha256List = (count: number, fill = 1) =>
  signatureListOfHashes(
    Guids.CERT_SHA256,
    Array.from({ length: count }, (_, i) => new Uint8Array(32).fill(fill + i)),
    OWNER,
  );

describe('the signature type table', () => {
  it('has the fixed data sizes of ImageAuthentication.h', () => {
    const size = (name: string) => SignatureTypes.find((t) => t.name === name)?.dataSize;
    expect([
      size('CERT_SHA1'),
      size('CERT_SHA224'),
      size('CERT_SHA256'),
      size('CERT_SHA384'),
      size('CERT_SHA512'),
    ]).toEqual([20, 28, 32, 48, 64]);
    expect([size('CERT_RSA2048'), size('CERT_RSA2048_SHA256'), size('CERT_RSA2048_SHA1')]).toEqual([256, 256, 256]);
    expect([size('CERT_X509_SHA256'), size('CERT_X509_SHA384'), size('CERT_X509_SHA512')]).toEqual([48, 64, 80]);
    expect(size('CERT_X509')).toBeUndefined();
    expect(signatureTypeOf(guid('c1c41626-504c-4092-aca9-41f936934328'))?.name).toBe('CERT_SHA256');
    expect(signatureTypeOf(new Uint8Array(16))).toBeUndefined();
  });
});

describe('parseSignatureLists / serializeSignatureLists', () => {
  it('an empty value is zero lists', () => {
    expect(parseSignatureLists(new Uint8Array(0))).toEqual({ ok: true, lists: [] });
  });

  it('round-trips lists of every fixed-size type and X.509 lists', () => {
    const lists: SignatureList[] = [
      sha256List(3),
      signatureListOfCertificate(new Uint8Array(700).fill(0x30), OWNER),
      signatureListOfHashes(Guids.CERT_X509_SHA256, [new Uint8Array(48)], OWNER),
    ];
    const bytes = serializeSignatureLists(lists);
    expect(bytes.length).toBe(28 + 3 * 48 + 28 + 716 + 28 + 64);
    const parsed = parseSignatureLists(bytes);
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(serializeSignatureLists(parsed.lists)).toEqual(bytes);
    expect(countSignatures(parsed.lists)).toBe(5);
    expect(x509Certificates(parsed.lists).map((c) => c.der.length)).toEqual([700]);
    expect(signatureHashes(parsed.lists).map((h) => [h.type.name, h.hash.length, h.timeOfRevocation?.length])).toEqual([
      ['CERT_SHA256', 32, undefined],
      ['CERT_SHA256', 32, undefined],
      ['CERT_SHA256', 32, undefined],
      ['CERT_X509_SHA256', 32, 16],
    ]);
  });

  it('property: serialize then parse is the identity on well-formed lists', () => {
    const list = fc
      .record({
        type: fc.uint8Array({ minLength: 16, maxLength: 16 }),
        header: fc.uint8Array({ maxLength: 8 }),
        dataSize: fc.integer({ min: 0, max: 40 }),
        count: fc.integer({ min: 0, max: 5 }),
        seed: fc.integer({ min: 0, max: 255 }),
      })
      .map(({ type, header, dataSize, count, seed }) => ({
        type,
        header,
        signatureSize: 16 + dataSize,
        signatures: Array.from({ length: count }, (_, i) => ({
          owner: new Uint8Array(16).fill(i),
          data: new Uint8Array(dataSize).fill(seed + i),
        })),
      }));
    fc.assert(
      fc.property(fc.array(list, { maxLength: 5 }), (lists) => {
        const bytes = serializeSignatureLists(lists);
        const parsed = parseSignatureLists(bytes);
        expect(parsed.ok).toBe(true);
        if (parsed.ok) expect(serializeSignatureLists(parsed.lists)).toEqual(bytes);
      }),
    );
  });

  it('property: parsing arbitrary bytes never throws and accepts only what re-serializes to the same bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const parsed = parseSignatureLists(bytes);
        if (parsed.ok) expect(serializeSignatureLists(parsed.lists)).toEqual(bytes);
        else expect(parsed.offset).toBeGreaterThanOrEqual(0);
      }),
      { numRuns: 2000 },
    );
  });

  const malformed: [string, Uint8Array][] = [
    ['trailing bytes shorter than a header', new Uint8Array(27)],
    ['ListSize below 28', header(Guids.CERT_SHA256, 27, 0, 48)],
    ['ListSize past the end', header(Guids.CERT_SHA256, 28 + 48, 0, 48)],
    ['header larger than the list', header(Guids.CERT_SHA256, 28, 1, 48)],
    ['SignatureSize 0', header(Guids.CERT_SHA256, 28, 0, 0)],
    ['SignatureSize below 16', header(Guids.CERT_SHA256, 28, 0, 15)],
    [
      'body not a multiple of SignatureSize',
      (() => {
        const b = new Uint8Array(28 + 50);
        b.set(header(Guids.CERT_SHA256, 78, 0, 48));
        return b;
      })(),
    ],
    [
      'a valid list followed by garbage',
      (() => {
        const l = serializeSignatureLists([sha256List(1)]);
        const b = new Uint8Array(l.length + 3);
        b.set(l);
        return b;
      })(),
    ],
  ];
  it.each(malformed)('rejects %s', (_what, bytes) => {
    const parsed = parseSignatureLists(bytes);
    expect(parsed.ok).toBe(false);
  });

  it('serialize refuses inconsistent lists', () => {
    expect(() =>
      serializeSignatureLists([
        {
          type: Guids.CERT_SHA256,
          header: new Uint8Array(0),
          signatureSize: 48,
          signatures: [{ owner: OWNER, data: new Uint8Array(31) }],
        },
      ]),
    ).toThrow(RangeError);
    expect(() => signatureListOfHashes(Guids.CERT_SHA256, [new Uint8Array(20)], OWNER)).toThrow(RangeError);
    expect(() => signatureListOfHashes(Guids.CERT_X509, [new Uint8Array(20)], OWNER)).toThrow(RangeError);
  });
});

describe('checkSignatureLists (edk2 CheckSignatureListFormat rules)', () => {
  it('accepts supported types with their fixed sizes', () => {
    expect(
      checkSignatureLists(
        serializeSignatureLists([sha256List(2), signatureListOfCertificate(new Uint8Array(10), OWNER)]),
      ).ok,
    ).toBe(true);
    expect(checkSignatureLists(new Uint8Array(0)).ok).toBe(true);
  });

  const bad: [string, Uint8Array, object?][] = [
    [
      'an unknown type',
      serializeSignatureLists([
        {
          type: new Uint8Array(16).fill(9),
          header: new Uint8Array(0),
          signatureSize: 48,
          signatures: [{ owner: OWNER, data: new Uint8Array(32) }],
        },
      ]),
    ],
    [
      'SM3 (not supported by edk2)',
      serializeSignatureLists([signatureListOfHashes(Guids.CERT_SM3, [new Uint8Array(32)], OWNER)]),
    ],
    [
      'a SHA256 list with SignatureSize 49',
      serializeSignatureLists([
        {
          type: Guids.CERT_SHA256,
          header: new Uint8Array(0),
          signatureSize: 49,
          signatures: [{ owner: OWNER, data: new Uint8Array(33) }],
        },
      ]),
    ],
    [
      'a non-empty SignatureHeader',
      serializeSignatureLists([
        {
          type: Guids.CERT_SHA256,
          header: new Uint8Array(4),
          signatureSize: 48,
          signatures: [{ owner: OWNER, data: new Uint8Array(32) }],
        },
      ]),
    ],
    ['an empty list', serializeSignatureLists([sha256List(0)])],
    ['two entries where one is allowed (PK)', serializeSignatureLists([sha256List(2)]), { maxSignatures: 1 }],
    [
      'one entry in each of two lists where one is allowed (PK)',
      serializeSignatureLists([sha256List(1), sha256List(1, 9)]),
      { maxSignatures: 1 },
    ],
  ];
  it.each(bad)('rejects %s', (_what, bytes, options) => {
    const result = checkSignatureLists(bytes, options ?? {});
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toMatch(/signature list at offset \d+/);
  });

  it('empty lists pass when allowed (edk2 tolerates them)', () => {
    expect(checkSignatureLists(serializeSignatureLists([sha256List(0)]), { allowEmptyLists: true }).ok).toBe(true);
  });
});

const tools = ['openssl', 'cert-to-efi-sig-list', 'hash-to-efi-sig-list'].every((t) => {
  try {
    execFileSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
});
const EFI_BINARY = '/usr/lib/efitools/x86_64-linux-gnu/HelloWorld.efi';

describe.skipIf(!tools)('cross-check with efitools (an independent ESL writer)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmsb-efi-esl-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('cert-to-efi-sig-list output parses to the certificate, owner and sizes; we serialize the same bytes', () => {
    const key = join(dir, 'k.pem');
    const cert = join(dir, 'c.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '1',
        '-subj',
        '/CN=vmsb test',
      ],
      { stdio: 'ignore' },
    );
    const der = new Uint8Array(execFileSync('openssl', ['x509', '-in', cert, '-outform', 'DER']));
    const owner = '77fa9abd-0359-4d32-bd60-28f4e78f784b';
    execFileSync('cert-to-efi-sig-list', ['-g', owner, cert, join(dir, 'c.esl')], { stdio: 'ignore' });
    const esl = new Uint8Array(readFileSync(join(dir, 'c.esl')));
    const parsed = checkSignatureLists(esl);
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    const certs = x509Certificates(parsed.lists);
    expect(certs).toHaveLength(1);
    expect(certs[0]!.der).toEqual(der);
    expect(guidToText(certs[0]!.owner)).toBe(owner);
    expect(serializeSignatureLists([signatureListOfCertificate(der, guid(owner))])).toEqual(esl);
    expect(esl.length).toBe(SIGNATURE_LIST_HEADER_SIZE + 16 + der.length);
  });

  it.skipIf(!existsSync(EFI_BINARY))('hash-to-efi-sig-list output parses as one SHA-256 entry', () => {
    execFileSync('hash-to-efi-sig-list', [EFI_BINARY, join(dir, 'h.esl')], { stdio: 'ignore' });
    const esl = new Uint8Array(readFileSync(join(dir, 'h.esl')));
    const parsed = checkSignatureLists(esl);
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    const hashes = signatureHashes(parsed.lists);
    expect(hashes).toHaveLength(1);
    expect(hashes[0]!.type.name).toBe('CERT_SHA256');
    expect(hashes[0]!.hash.length).toBe(32);
    // The tool signs its hash entries with shim's GUID as owner.
    expect(hashes[0]!.owner).toEqual(Guids.SHIM_LOCK);
    expect(serializeSignatureLists(parsed.lists)).toEqual(esl);
  });
});
