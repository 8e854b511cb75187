import { existsSync } from 'node:fs';
import { signatureDatabaseProblem } from '@vmsb/auth';
import { Guids, guidToText, parseSignatureLists, serializeEfiTime } from '@vmsb/efi';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildSignatureList,
  concatSignatureLists,
  createCertificate,
  generateKeyPair,
  guidBytes,
  type EncodedCertificate,
} from './index.js';
import { runOk, scratch, type Scratch } from './test-support.js';

const OWNER = '11111111-2222-3333-4444-555555555555';
let s: Scratch;
let certA: EncodedCertificate;
let certB: EncodedCertificate;

beforeAll(async () => {
  s = scratch();
  const [a, b] = await Promise.all([generateKeyPair(), generateKeyPair({ bits: 3072 })]);
  certA = createCertificate({ cn: 'ESL test A', key: a.privateKey });
  certB = createCertificate({ cn: 'ESL test B with a longer name', organization: 'vmsb', key: b.privateKey });
});
afterAll(() => s.remove());

describe('X.509 signature lists', () => {
  it('are byte-identical to cert-to-efi-sig-list and sbsiglist', () => {
    const pem = s.write('a.pem', certA.pem);
    runOk('cert-to-efi-sig-list', ['-g', OWNER, pem, s.path('a.esl')]);
    runOk('sbsiglist', [
      '--owner',
      OWNER,
      '--type',
      'x509',
      '--output',
      s.path('a-sb.esl'),
      s.write('a.der', certA.der),
    ]);
    const ours = buildSignatureList({ type: 'x509', certificates: [certA.pem], owner: OWNER });
    expect(ours).toEqual(s.read('a.esl'));
    expect(ours).toEqual(s.read('a-sb.esl'));
  });

  it('hold one list per certificate, in order, like concatenated cert-to-efi-sig-list outputs', () => {
    const owner = guidBytes('{77FA9ABD-0359-4D32-BD60-28F4E78F784B}');
    runOk('cert-to-efi-sig-list', ['-g', guidToText(owner), s.write('b.pem', certB.pem), s.path('b.esl')]);
    runOk('cert-to-efi-sig-list', ['-g', guidToText(owner), s.write('a2.pem', certA.pem), s.path('a2.esl')]);
    const ours = buildSignatureList({ type: 'x509', certificates: [certB.der, certA.der], owner });
    expect(ours).toEqual(concatSignatureLists([s.read('b.esl'), s.read('a2.esl')]));
    const parsed = parseSignatureLists(ours);
    expect(parsed.ok && parsed.lists.map((l) => l.signatures.length)).toEqual([1, 1]);
  });

  it('refuses an empty set and non-certificates', () => {
    expect(() => buildSignatureList({ type: 'x509', certificates: [], owner: OWNER })).toThrow(/no certificates/);
    expect(() => buildSignatureList({ type: 'x509', certificates: [Uint8Array.of(1, 2, 3)], owner: OWNER })).toThrow();
    expect(() => buildSignatureList({ type: 'x509', certificates: [certA.der], owner: 'not-a-guid' })).toThrow(/GUID/);
  });
});

describe('hash signature lists', () => {
  const efiDir = '/usr/lib/efitools/x86_64-linux-gnu';
  it.skipIf(!existsSync(`${efiDir}/HelloWorld.efi`))(
    'are byte-identical to hash-to-efi-sig-list (one list, every hash)',
    () => {
      const out = runOk('hash-to-efi-sig-list', [
        `${efiDir}/HelloWorld.efi`,
        `${efiDir}/LockDown.efi`,
        s.path('hw.esl'),
      ]);
      const hashes = [...out.matchAll(/HASH IS ([0-9a-f]{64})/g)].map((m) => m[1]!);
      expect(hashes).toHaveLength(2);
      // hash-to-efi-sig-list always names shim's GUID as the owner.
      const ours = buildSignatureList({ type: 'sha256', hashes, owner: Guids.SHIM_LOCK });
      expect(ours).toEqual(s.read('hw.esl'));
    },
  );

  it('are byte-identical to sbsiglist for a SHA-256 hash', () => {
    const hash = Uint8Array.from({ length: 32 }, (_, i) => i * 7);
    runOk('sbsiglist', ['--owner', OWNER, '--type', 'sha256', '--output', s.path('h.esl'), s.write('h.bin', hash)]);
    expect(buildSignatureList({ type: 'sha256', hashes: [hash], owner: OWNER })).toEqual(s.read('h.esl'));
  });

  it('take hex in either case and refuse wrong sizes', () => {
    const hex = 'AB'.repeat(48);
    expect(buildSignatureList({ type: 'sha384', hashes: [hex], owner: OWNER })).toEqual(
      buildSignatureList({ type: 'sha384', hashes: [hex.toLowerCase()], owner: OWNER }),
    );
    expect(() => buildSignatureList({ type: 'sha256', hashes: [hex], owner: OWNER })).toThrow(/32 bytes/);
    expect(() => buildSignatureList({ type: 'sha256', hashes: ['xyz'], owner: OWNER })).toThrow(/hex/);
    expect(() => buildSignatureList({ type: 'sha256', hashes: [], owner: OWNER })).toThrow(/no hashes/);
  });

  it('round-trip through the EFI parser for every hash type', () => {
    const sizes = { sha1: 20, sha224: 28, sha256: 32, sha384: 48, sha512: 64 } as const;
    fc.assert(
      fc.property(
        fc.constantFrom(...(Object.keys(sizes) as (keyof typeof sizes)[])),
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.integer({ min: 1, max: 20 }),
        fc.integer(),
        (type, owner, count, seed) => {
          const hashes = Array.from({ length: count }, (_, i) =>
            Uint8Array.from({ length: sizes[type] }, (_, j) => (seed + i * 31 + j) & 0xff),
          );
          const bytes = buildSignatureList({ type, hashes, owner });
          const parsed = parseSignatureLists(bytes);
          expect(parsed.ok).toBe(true);
          if (!parsed.ok) return;
          expect(parsed.lists).toHaveLength(1);
          expect(parsed.lists[0]!.signatureSize).toBe(16 + sizes[type]);
          expect(parsed.lists[0]!.signatures.map((e) => e.data)).toEqual(hashes);
          expect(parsed.lists[0]!.signatures.every((e) => e.owner.every((b, i) => b === owner[i]))).toBe(true);
          expect(signatureDatabaseProblem(bytes, false)).toBeUndefined();
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('certificate TBS-hash lists', () => {
  it('are byte-identical to cert-to-efi-hash-list, with and without a time of revocation', () => {
    const pem = s.write('tbs.pem', certA.pem);
    runOk('cert-to-efi-hash-list', ['-g', OWNER, '-s', '256', pem, s.path('t256.esl')]);
    expect(buildSignatureList({ type: 'x509-sha256', certificates: [certA.der], owner: OWNER })).toEqual(
      s.read('t256.esl'),
    );

    runOk('cert-to-efi-hash-list', ['-g', OWNER, '-s', '512', '-t', '2023-02-03 04:05:06', pem, s.path('t512.esl')]);
    const timeOfRevocation = serializeEfiTime({ year: 2023, month: 2, day: 3, hour: 4, minute: 5, second: 6 });
    expect(
      buildSignatureList({ type: 'x509-sha512', certificates: [certA.pem], owner: OWNER, timeOfRevocation }),
    ).toEqual(s.read('t512.esl'));
  });

  it('accept precomputed hashes and refuse a bad revocation time', () => {
    const bytes = buildSignatureList({ type: 'x509-sha384', hashes: ['00'.repeat(48)], owner: OWNER });
    expect(bytes.length).toBe(28 + 16 + 48 + 16);
    expect(() =>
      buildSignatureList({
        type: 'x509-sha256',
        certificates: [certA.der],
        owner: OWNER,
        timeOfRevocation: new Uint8Array(8),
      }),
    ).toThrow(/16-byte/);
    expect(() => buildSignatureList({ type: 'x509-sha256', owner: OWNER })).toThrow(/no certificates or hashes/);
  });
});

describe('raw fixed-size lists', () => {
  it('build any fixed-size type by GUID and refuse variable-size ones', () => {
    const modulus = new Uint8Array(256).fill(0xc3);
    const bytes = buildSignatureList({
      type: 'raw',
      signatureType: Guids.CERT_RSA2048,
      entries: [modulus],
      owner: OWNER,
    });
    const parsed = parseSignatureLists(bytes);
    expect(parsed.ok && parsed.lists[0]!.signatureSize).toBe(272);
    expect(() =>
      buildSignatureList({ type: 'raw', signatureType: Guids.CERT_X509, entries: [modulus], owner: OWNER }),
    ).toThrow(/fixed-size/);
  });
});
