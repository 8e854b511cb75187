import {
  Guids,
  parseSignatureLists,
  serializeSignatureLists,
  signatureListOfCertificate,
  signatureListOfHashes,
  type SignatureList,
} from '@vmsb/efi';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertificateCache } from './cache.js';
import { children, readRoot } from './der.js';
import { filterAppendedSignatures, platformKeyCertificate, signatureDatabaseProblem } from './lists.js';
import { Pki, type Issued } from './testing/pki.js';

let pki: Pki;
let a: Issued;
let b: Issued;
let ec: Issued;
const cache = new CertificateCache();
const OWNER = Guids.MICROSOFT;
const OTHER_OWNER = Guids.CITRIX;

beforeAll(() => {
  pki = new Pki();
  a = pki.issue('List Cert A');
  b = pki.issue('List Cert B');
  ec = pki.issue('List EC Cert', { key: 'ec' });
});

afterAll(() => pki.dispose());

function hash(n: number): Uint8Array {
  return new Uint8Array(32).fill(n);
}

function sha256List(values: readonly number[], owner = OWNER): SignatureList {
  return signatureListOfHashes(Guids.CERT_SHA256, values.map(hash), owner);
}

const bytes = (...lists: SignatureList[]): Uint8Array => serializeSignatureLists(lists);

describe('signature database format', () => {
  it('accepts what efitools builds, hash lists, and deletion', () => {
    expect(signatureDatabaseProblem(pki.esl(a), false, cache)).toBeUndefined();
    expect(signatureDatabaseProblem(pki.esl(a), true, cache)).toBeUndefined();
    expect(
      signatureDatabaseProblem(bytes(sha256List([1, 2, 3]), signatureListOfCertificate(b.der, OWNER)), false, cache),
    ).toBeUndefined();
    expect(signatureDatabaseProblem(new Uint8Array(0), true, cache)).toBeUndefined();
  });

  it('holds a PK to exactly one X.509 certificate', () => {
    const two = bytes(signatureListOfCertificate(a.der, OWNER), signatureListOfCertificate(b.der, OWNER));
    expect(signatureDatabaseProblem(two, true, cache)).toMatch(/exactly one certificate.*2 entries/);
    expect(signatureDatabaseProblem(two, false, cache)).toBeUndefined();
    expect(signatureDatabaseProblem(bytes(sha256List([1])), true, cache)).toMatch(/X.509/);
  });

  it('refuses unknown types, wrong sizes, headers, empty lists, trailing bytes', () => {
    const good = bytes(sha256List([1, 2]));
    const withType = good.slice();
    withType.set(Guids.CERT_SM3, 0);
    expect(signatureDatabaseProblem(withType, false, cache)).toMatch(/unsupported SignatureType/);
    withType.set(new Uint8Array(16).fill(9), 0);
    expect(signatureDatabaseProblem(withType, false, cache)).toMatch(/unknown SignatureType/);
    const sha1As32 = good.slice();
    sha1As32.set(Guids.CERT_SHA1, 0);
    expect(signatureDatabaseProblem(sha1As32, false, cache)).toMatch(/SignatureSize 48 is not 36/);
    expect(
      signatureDatabaseProblem(
        bytes({ type: Guids.CERT_SHA256, header: new Uint8Array(48), signatureSize: 48, signatures: [] }),
        false,
        cache,
      ),
    ).toMatch(/SignatureHeaderSize/);
    expect(
      signatureDatabaseProblem(
        bytes({ type: Guids.CERT_SHA256, header: new Uint8Array(0), signatureSize: 48, signatures: [] }),
        false,
        cache,
      ),
    ).toMatch(/no entries/);
    expect(signatureDatabaseProblem(Uint8Array.from([...good, 0]), false, cache)).toMatch(/trailing/);
    expect(signatureDatabaseProblem(good.subarray(0, good.length - 1), false, cache)).toMatch(/exceeds/);
  });

  it('requires every X.509 entry to be a certificate with an RSA key', () => {
    expect(signatureDatabaseProblem(bytes(signatureListOfCertificate(ec.der, OWNER)), false, cache)).toMatch(
      /not a usable RSA key/,
    );
    const broken = a.der.slice(0, a.der.length - 1);
    expect(signatureDatabaseProblem(bytes(signatureListOfCertificate(broken, OWNER)), false, cache)).toMatch(
      /not a valid X.509/,
    );
    const both = bytes({
      type: Guids.CERT_X509,
      header: new Uint8Array(0),
      signatureSize: 16 + a.der.length,
      signatures: [
        { owner: OWNER, data: a.der },
        { owner: OWNER, data: new Uint8Array(a.der.length) },
      ],
    });
    expect(signatureDatabaseProblem(both, false, cache)).toMatch(/entry 1/);
    expect(
      signatureDatabaseProblem(
        bytes({
          type: Guids.CERT_X509,
          header: new Uint8Array(0),
          signatureSize: 16,
          signatures: [{ owner: OWNER, data: new Uint8Array(0) }],
        }),
        false,
        cache,
      ),
    ).toMatch(/not a valid X.509/);
  });

  it('checks hundreds of distinct X.509 entries without parsing any in full (only a PK entry is)', () => {
    class CountingCache extends CertificateCache {
      parses = 0;
      override parse(der: Uint8Array) {
        this.parses++;
        return super.parse(der);
      }
    }
    // Distinct certificates, as a guest in setup mode would send them: a's with 240 serial numbers.
    const tbs = children(readRoot(a.der))[0]!;
    const serial = children(tbs)[1]!;
    const variant = (i: number): Uint8Array => {
      const der = a.der.slice();
      der[serial.contentEnd - 1] = i & 0xff;
      der[serial.contentEnd - 2] = 0x10 + (i >> 8);
      return der;
    };
    const lists = Array.from({ length: 240 }, (_, i) => signatureListOfCertificate(variant(i), OWNER));
    const counting = new CountingCache();
    expect(signatureDatabaseProblem(bytes(...lists), false, counting)).toBeUndefined();
    const bad = signatureListOfCertificate(new Uint8Array(a.der.length), OWNER);
    expect(signatureDatabaseProblem(bytes(...lists.slice(1), bad), false, counting)).toMatch(
      /offset \d+, entry 0: not a valid X.509/,
    );
    const ecList = signatureListOfCertificate(ec.der, OWNER);
    expect(signatureDatabaseProblem(bytes(...lists.slice(1), ecList), false, counting)).toMatch(
      /entry 0: .*ecPublicKey.*not a usable RSA key/,
    );
    expect(counting.parses).toBe(0);
    // The PK's one certificate is what user-mode writes are verified against: it is parsed in full.
    expect(signatureDatabaseProblem(bytes(lists[0]!), true, counting)).toBeUndefined();
    expect(counting.parses).toBe(1);
  });

  it('reads the PK certificate where edk2 does: first entry of the first list', () => {
    expect(platformKeyCertificate(pki.esl(a))).toEqual(a.der);
    expect(platformKeyCertificate(new Uint8Array(0))).toBeUndefined();
    expect(platformKeyCertificate(Uint8Array.from([1, 2, 3]))).toBeUndefined();
  });
});

describe('append de-duplication', () => {
  it('drops entries already present in a list of the same type and size, owner included', () => {
    const existing = bytes(sha256List([1, 2, 3]), signatureListOfCertificate(a.der, OWNER));
    expect(filterAppendedSignatures(existing, bytes(sha256List([2, 3])))).toEqual(new Uint8Array(0));
    expect(filterAppendedSignatures(existing, bytes(sha256List([3, 4, 2, 5])))).toEqual(bytes(sha256List([4, 5])));
    expect(filterAppendedSignatures(existing, bytes(sha256List([1], OTHER_OWNER)))).toEqual(
      bytes(sha256List([1], OTHER_OWNER)),
    );
    expect(
      filterAppendedSignatures(
        existing,
        bytes(signatureListOfCertificate(a.der, OWNER), signatureListOfCertificate(b.der, OWNER)),
      ),
    ).toEqual(bytes(signatureListOfCertificate(b.der, OWNER)));
    // Same 32 bytes under another type are another signature.
    const sha256As512 = signatureListOfHashes(Guids.CERT_X509_SHA256, [new Uint8Array(48).fill(1)], OWNER);
    expect(filterAppendedSignatures(existing, bytes(sha256As512))).toEqual(bytes(sha256As512));
  });

  it('keeps duplicates inside the appended data, and everything when nothing exists yet', () => {
    const dup = bytes(sha256List([7, 7]));
    expect(filterAppendedSignatures(bytes(sha256List([1])), dup)).toEqual(dup);
    expect(filterAppendedSignatures(new Uint8Array(0), dup)).toEqual(dup);
    expect(filterAppendedSignatures(Uint8Array.from([1, 2, 3]), dup)).toEqual(dup); // unparseable: nothing to compare with
  });

  it('matches a model of FilterSignatureList on random databases', () => {
    const entry = fc.record({ value: fc.integer({ min: 0, max: 6 }), other: fc.boolean() });
    const list = fc.record({ sha1: fc.boolean(), entries: fc.array(entry, { minLength: 1, maxLength: 5 }) });
    const build = (ls: { sha1: boolean; entries: { value: number; other: boolean }[] }[]): SignatureList[] =>
      ls
        .map((l) =>
          signatureListOfHashes(
            l.sha1 ? Guids.CERT_SHA1 : Guids.CERT_SHA256,
            l.entries.map((e) => new Uint8Array(l.sha1 ? 20 : 32).fill(e.value)),
            OWNER,
          ),
        )
        .map((l, i) => ({
          ...l,
          signatures: l.signatures.map((s, j) => ({ ...s, owner: ls[i]!.entries[j]!.other ? OTHER_OWNER : OWNER })),
        }));
    fc.assert(
      fc.property(
        fc.array(list, { maxLength: 4 }),
        fc.array(list, { minLength: 1, maxLength: 4 }),
        (oldSpec, newSpec) => {
          const oldLists = build(oldSpec);
          const newLists = build(newSpec);
          const key = (l: SignatureList, s: { owner: Uint8Array; data: Uint8Array }): string =>
            `${Buffer.from(l.type).toString('hex')}/${l.signatureSize}/${Buffer.from(s.owner).toString('hex')}${Buffer.from(s.data).toString('hex')}`;
          const present = new Set(oldLists.flatMap((l) => l.signatures.map((s) => key(l, s))));
          const expected =
            oldLists.length === 0
              ? newLists
              : newLists
                  .map((l) => ({ ...l, signatures: l.signatures.filter((s) => !present.has(key(l, s))) }))
                  .filter((l) => l.signatures.length > 0);
          const out = filterAppendedSignatures(serializeSignatureLists(oldLists), serializeSignatureLists(newLists));
          expect(out).toEqual(serializeSignatureLists(expected));
          expect(parseSignatureLists(out).ok).toBe(true);
          // Appending the result again adds nothing.
          const merged = Uint8Array.from([...serializeSignatureLists(oldLists), ...out]);
          if (out.length > 0) {
            const again = filterAppendedSignatures(merged, out);
            expect(again.length).toBeLessThanOrEqual(out.length);
            const dedupedOut = filterAppendedSignatures(merged, serializeSignatureLists(newLists));
            expect(dedupedOut).toEqual(new Uint8Array(0));
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
