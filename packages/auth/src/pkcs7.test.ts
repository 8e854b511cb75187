import { createHash, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  clearSignedDataCache,
  findSigner,
  parseSignedData,
  Pkcs7Limits,
  verifyWithAnchor,
  VerificationContext,
  type SignedData,
} from './pkcs7.js';
import { children, encodeElement, readRoot, tlvBytes } from './der.js';
import { Pki, unwrapContentInfo, type Issued } from './testing/pki.js';
import { parseCertificate, type Certificate } from './x509.js';

// Every verdict below is also asked of openssl itself, with the flags edk2 and varstored pass to
// PKCS7_verify (partial chain, no time check, any purpose): both must agree.

let pki: Pki;
let root: Issued;
let inter: Issued;
let leaf: Issued;
let expiredLeaf: Issued;
let unrelated: Issued;
let nonCaInter: Issued;
let leafOfNonCa: Issued;
let ecSigner: Issued;

beforeAll(() => {
  pki = new Pki();
  root = pki.issue('Test Root CA');
  inter = pki.issue('Test Intermediate CA', { issuer: root, ca: true, keyUsage: 'critical, keyCertSign, cRLSign' });
  leaf = pki.issue('Test Signer', {
    issuer: inter,
    keyUsage: 'digitalSignature',
    extraExtensions: ['extendedKeyUsage = 1.3.6.1.4.1.311.79.1'],
  });
  // A signer whose certificate, and its issuer's, expired long ago: dates are never checked.
  const oldInter = pki.issue('Old Intermediate CA', {
    issuer: root,
    ca: true,
    notBefore: '20080101000000Z',
    notAfter: '20120101000000Z',
  });
  expiredLeaf = pki.issue('Expired Signer', {
    issuer: oldInter,
    notBefore: '20100101000000Z',
    notAfter: '20110101000000Z',
  });
  expiredLeaf = { ...expiredLeaf, chain: oldInter } as Issued & { chain: Issued };
  unrelated = pki.issue('Unrelated Root');
  nonCaInter = pki.issue('Not A CA', { issuer: root, ca: false });
  leafOfNonCa = pki.issue('Signer Under Non-CA', { issuer: nonCaInter });
  ecSigner = pki.issue('EC Signer', { key: 'ec' });
});

afterAll(() => pki.dispose());

function cert(i: Issued): Certificate {
  const r = parseCertificate(i.der);
  if (!r.ok) throw new Error(r.reason);
  return r.certificate;
}

interface Signed {
  readonly content: Uint8Array;
  readonly cms: Uint8Array;
  readonly signedData: SignedData;
}

function sign(
  signer: Issued,
  options: Parameters<Pki['sign']>[2] = {},
  content: Uint8Array = randomBytes(300),
): Signed {
  const cms = pki.sign(content, signer, { ...options, wrapped: true });
  const parsed = parseSignedData(options.wrapped === true ? cms : unwrapContentInfo(cms));
  if (!parsed.ok) throw new Error(parsed.reason);
  return { content, cms, signedData: parsed.signedData };
}

function verdict(s: Signed, anchor: Issued, content = s.content) {
  return verifyWithAnchor(new VerificationContext(s.signedData, content), cert(anchor));
}

function expectAgreement(s: Signed, anchor: Issued, expected: boolean, content = s.content): void {
  const ours = verdict(s, anchor, content);
  expect(ours.ok, ours.ok ? 'verified' : ours.reason).toBe(expected);
  expect(pki.opensslVerifies(s.cms, content, anchor)).toBe(expected);
}

describe('PKCS#7 verification under UEFI rules', () => {
  it('chains a signer through a carried intermediate to the root, the intermediate, or itself', () => {
    const s = sign(leaf, { extra: [inter] });
    expectAgreement(s, root, true);
    expectAgreement(s, inter, true);
    expectAgreement(s, leaf, true);
    expectAgreement(s, unrelated, false);
    const r = verdict(s, root);
    expect(r.ok && r.chain.map((c) => c.subjectText)).toEqual([
      'CN=Test Signer',
      'CN=Test Intermediate CA',
      'CN=Test Root CA',
    ]);
  });

  it('needs the intermediate in the message to reach the root', () => {
    const s = sign(leaf);
    expectAgreement(s, root, false);
    expectAgreement(s, inter, true);
  });

  it('ignores validity dates (a signer that expired years ago still verifies)', () => {
    const chain = (expiredLeaf as Issued & { chain: Issued }).chain;
    const s = sign(expiredLeaf, { extra: [chain] });
    expectAgreement(s, root, true);
    expect(cert(expiredLeaf).notAfter).toBe('2011-01-01T00:00:00Z');
  });

  it('accepts bare SignedData and ContentInfo-wrapped alike', () => {
    const content = randomBytes(64);
    const bare = sign(leaf, { extra: [inter] }, content);
    const wrapped = sign(leaf, { extra: [inter], wrapped: true }, content);
    expect(bare.signedData.wrapped).toBe(false);
    expect(wrapped.signedData.wrapped).toBe(true);
    expect(verdict(bare, root).ok).toBe(true);
    expect(verdict(wrapped, root).ok).toBe(true);
  });

  it('verifies with signed attributes (messageDigest checked) and without', () => {
    const withAttrs = sign(leaf, { extra: [inter], signedAttributes: true });
    expect(withAttrs.signedData.signerInfo.signedAttributes).toBeDefined();
    expectAgreement(withAttrs, root, true);
    const tampered = withAttrs.content.slice();
    tampered[0]! ^= 0x80;
    expectAgreement(withAttrs, root, false, tampered);
    const r = verdict(withAttrs, root, tampered);
    expect(!r.ok && r.reason).toMatch(/messageDigest/);

    const noAttrs = sign(leaf, { extra: [inter] });
    expect(noAttrs.signedData.signerInfo.signedAttributes).toBeUndefined();
    expectAgreement(noAttrs, root, false, tampered.subarray(0, 10));
    const r2 = verdict(noAttrs, root, noAttrs.content.subarray(1));
    expect(!r2.ok && r2.reason).toMatch(/does not verify/);
  });

  it('verifies what pkijs signs, with its own signed attributes', async () => {
    const content = randomBytes(200);
    const signerCert = pkijs.Certificate.fromBER(leaf.der);
    const key = await webcrypto.subtle.importKey(
      'pkcs8',
      createPrivateKey(readFileSync(leaf.keyPath)).export({ type: 'pkcs8', format: 'der' }),
      { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
      false,
      ['sign'],
    );
    const sd = new pkijs.SignedData({
      version: 1,
      encapContentInfo: new pkijs.EncapsulatedContentInfo({ eContentType: '1.2.840.113549.1.7.1' }),
      signerInfos: [
        new pkijs.SignerInfo({
          version: 1,
          sid: new pkijs.IssuerAndSerialNumber({ issuer: signerCert.issuer, serialNumber: signerCert.serialNumber }),
          signedAttrs: new pkijs.SignedAndUnsignedAttributes({
            type: 0,
            attributes: [
              new pkijs.Attribute({
                type: '1.2.840.113549.1.9.3',
                values: [new asn1js.ObjectIdentifier({ value: '1.2.840.113549.1.7.1' })],
              }),
              new pkijs.Attribute({
                type: '1.2.840.113549.1.9.5',
                values: [new asn1js.UTCTime({ valueDate: new Date(Date.UTC(2012, 0, 1)) })],
              }),
              new pkijs.Attribute({
                type: '1.2.840.113549.1.9.4',
                values: [new asn1js.OctetString({ valueHex: createHash('sha256').update(content).digest() })],
              }),
            ],
          }),
        }),
      ],
      certificates: [signerCert, pkijs.Certificate.fromBER(inter.der)],
    });
    await sd.sign(key as never, 0, 'SHA-256', content);
    const bare = new Uint8Array(sd.toSchema(true).toBER());
    const cms = new Uint8Array(
      new pkijs.ContentInfo({ contentType: '1.2.840.113549.1.7.2', content: sd.toSchema(true) }).toSchema().toBER(),
    );
    const parsed = parseSignedData(bare);
    if (!parsed.ok) throw new Error(parsed.reason);
    expect(parsed.signedData.signerInfo.messageDigest).toEqual(
      new Uint8Array(createHash('sha256').update(content).digest()),
    );
    expectAgreement({ content, cms, signedData: parsed.signedData }, root, true);
    expectAgreement({ content, cms, signedData: parsed.signedData }, root, false, content.subarray(1));
  });

  it('verifies a message that also embeds content over the detached serialization only, as openssl does', () => {
    // PKCS7_verify with external data (edk2, varstored) digests the external data and ignores an
    // embedded copy; it refuses "content and data present" only under PKCS7_NO_DUAL_CONTENT,
    // which neither passes. The oracle here is `openssl smime -verify -content`, i.e. PKCS7_verify.
    for (const signedAttributes of [false, true]) {
      const content = randomBytes(120);
      const s = sign(leaf, { extra: [inter], embedContent: true, signedAttributes }, content);
      expect(s.signedData.hasEmbeddedContent).toBe(true);
      expectAgreement(s, root, true);
      expectAgreement(s, root, false, randomBytes(120));
      expectAgreement(s, root, false, content.subarray(1));
    }
  });

  it('refuses an issuer that is not a CA, as openssl does', () => {
    const s = sign(leafOfNonCa, { extra: [nonCaInter] });
    expectAgreement(s, root, false);
    expectAgreement(s, nonCaInter, false);
  });

  it('accepts only SHA-256 digests', () => {
    const s = sign(leaf, { extra: [inter], md: 'sha384' });
    const r = verdict(s, root);
    expect(!r.ok && r.reason).toMatch(/SHA-384.*only SHA-256/);
  });

  it('refuses a non-RSA signer', () => {
    const s = sign(ecSigner);
    const r = verdict(s, ecSigner);
    expect(!r.ok && r.reason).toMatch(/only RSA PKCS#1 v1.5/);
  });

  it('needs the signer certificate inside the message', () => {
    const s = sign(leaf, { noCerts: true });
    expect(findSigner(s.signedData)).toBeUndefined();
    const r = verdict(s, leaf);
    expect(!r.ok && r.reason).toMatch(/not in the message/);
  });

  it('finds a signer with a negative serial number', () => {
    const neg = pki.path('neg.key');
    const negPem = pki.path('neg.pem');
    pkiRun([
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      neg,
      '-out',
      negPem,
      '-subj',
      '/CN=Negative Serial',
      '-set_serial',
      '-4660',
      '-days',
      '3',
    ]);
    const der = new Uint8Array(pkiRun(['x509', '-in', negPem, '-outform', 'DER']));
    const issued: Issued = { name: 'neg', keyPath: neg, certPath: negPem, der };
    const c = cert(issued);
    expect(Buffer.from(c.serialNumber).toString('hex')).toBe('edcc');
    const s = sign(issued);
    expect(findSigner(s.signedData)?.der).toEqual(der);
    expectAgreement(s, issued, true);
  });

  it('bounds the work: at most MAX_CERTIFICATES certificates and MAX_CHAIN_LENGTH links', () => {
    // openssl refuses duplicate certificates, so grow the certificate set by hand.
    const s = pki.sign(randomBytes(10), leaf, { extra: [inter] });
    expect(parseSignedData(withExtraCertificates(s, inter.der, Pkcs7Limits.MAX_CERTIFICATES - 2)).ok).toBe(true);
    const r = parseSignedData(withExtraCertificates(s, inter.der, Pkcs7Limits.MAX_CERTIFICATES - 1));
    expect(!r.ok && r.reason).toMatch(/more than 32 certificates/);

    // A chain of 9 CAs under the root: the signer is 10 links from it.
    const cas: Issued[] = [];
    let issuer = root;
    for (let i = 0; i < 8; i++) {
      issuer = pki.issue(`Level ${i}`, { issuer, ca: true, key: 'rsa:1024' });
      cas.push(issuer);
    }
    const deep = pki.issue('Deep Signer', { issuer, key: 'rsa:1024' });
    const d = sign(deep, { extra: cas });
    expect(verdict(d, cas[1]!).ok).toBe(true); // 8 certificates: deep, Level 7..1
    expect(verdict(d, cas[0]!).ok).toBe(false); // 9 certificates
    expect(verdict(d, root).ok).toBe(false);
    expect(pki.opensslVerifies(d.cms, d.content, root)).toBe(true); // openssl allows 100 levels
  });

  it('picks issuers as openssl does: by name and key identifier, first match, no backtracking', () => {
    // Look-alike CAs (same name, other keys) are told apart by the signer's authority key identifier.
    const decoys: Issued[] = [];
    for (let i = 0; i < 3; i++)
      decoys.push(pki.issue('Test Intermediate CA', { issuer: root, ca: true, key: 'rsa:1024' }));
    const s = sign(leaf, { extra: [...decoys, inter] });
    expectAgreement(s, root, true);
    const ctx = new VerificationContext(s.signedData, s.content);
    expect(verifyWithAnchor(ctx, cert(root)).ok).toBe(true);
    expect(ctx.checks).toBe(3); // the content signature and two certificate signatures
    // Trying another anchor reuses the content signature already checked.
    expect(verifyWithAnchor(ctx, cert(unrelated)).ok).toBe(false);
    expect(ctx.checks).toBe(3);

    // Without key identifiers, the first look-alike is taken and the chain fails: so does openssl's.
    const bare = pki.issue('Bare CA', { issuer: root, ca: true, noKeyIdentifiers: true });
    const bareLeaf = pki.issue('Bare Signer', { issuer: bare, noKeyIdentifiers: true });
    const lookAlike = pki.issue('Bare CA', { issuer: root, ca: true, noKeyIdentifiers: true, key: 'rsa:1024' });
    expectAgreement(sign(bareLeaf, { extra: [bare] }), root, true);
    const confused = sign(bareLeaf, { extra: [lookAlike, bare] });
    expectAgreement(confused, root, false);
    const r = verdict(confused, root);
    expect(!r.ok && r.reason).toMatch(/does not verify with the key of CN=Bare CA/);
  });

  it('checks certificates carried above a signer that is itself the anchor, as openssl does', () => {
    expectAgreement(sign(leafOfNonCa), leafOfNonCa, true);
    expectAgreement(sign(leafOfNonCa, { extra: [nonCaInter] }), leafOfNonCa, false);
    expectAgreement(sign(leaf, { extra: [inter, root] }), leaf, true);
  });

  it('refuses a chain through a certificate with an unhandled critical extension', () => {
    const odd = pki.issue('Odd CA', {
      issuer: root,
      ca: true,
      extraExtensions: ['1.3.6.1.4.1.99999.1 = critical, ASN1:NULL'],
    });
    const under = pki.issue('Under Odd CA', { issuer: odd });
    const s = sign(under, { extra: [odd] });
    expectAgreement(s, root, false);
    const r = verdict(s, root);
    expect(!r.ok && r.reason).toMatch(/unhandled critical extension 1.3.6.1.4.1.99999.1/);
    expectAgreement(s, under, false); // the odd CA is still carried above the signer
    expectAgreement(sign(under), under, true);
  });

  it('accepts SHA-1 signed certificates in the chain (the content digest stays SHA-256)', () => {
    const sha1Ca = pki.issue('SHA-1 CA', { issuer: root, ca: true, md: 'sha1' });
    const under = pki.issue('Under SHA-1 CA', { issuer: sha1Ca, md: 'sha1' });
    expectAgreement(sign(under, { extra: [sha1Ca] }), root, true);
  });

  it('reports malformed messages without throwing', () => {
    const s = pki.sign(randomBytes(10), leaf);
    for (let cut = 0; cut < s.length; cut += 97) {
      const r = parseSignedData(s.subarray(0, cut));
      expect(r.ok).toBe(false);
    }
    expect(parseSignedData(new Uint8Array(0))).toEqual({
      ok: false,
      reason: 'the descriptor carries no PKCS#7 signature',
    });
    const trailing = new Uint8Array(s.length + 1);
    trailing.set(s);
    expect(parseSignedData(trailing).ok).toBe(false);
    expect(parseSignedData(new Uint8Array(Pkcs7Limits.MAX_SIZE + 1)).ok).toBe(false);
  });
});

describe('bounded work on hostile messages', () => {
  const SHA256_ALGORITHM = Uint8Array.from([
    0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00,
  ]);
  /** The SignedData with its fields replaced by `edit`'s (each field's whole encoding). */
  const editFields = (signedData: Uint8Array, edit: (fields: Uint8Array[]) => void): Uint8Array => {
    const fields = children(readRoot(signedData)).map(tlvBytes);
    edit(fields);
    return encodeElement(0x30, fields);
  };
  const elements = (tag: number, item: Uint8Array, count: number): Uint8Array =>
    encodeElement(
      tag,
      Array.from({ length: count }, () => item),
    );

  it('parses carried certificates only when verification needs them', () => {
    const s = sign(leaf, { extra: [inter] });
    const grown = withExtraCertificates(unwrapContentInfo(s.cms), unrelated.der, 20);
    clearSignedDataCache();
    const parsed = parseSignedData(grown);
    if (!parsed.ok) throw new Error(parsed.reason);
    const sd = parsed.signedData;
    expect(sd.carried).toHaveLength(22);
    expect(sd.carried.filter((c) => c.parsed)).toHaveLength(0);
    const r = verifyWithAnchor(new VerificationContext(sd, s.content), cert(root));
    expect(r.ok && r.chain.map((c) => c.subjectText)).toEqual([
      'CN=Test Signer',
      'CN=Test Intermediate CA',
      'CN=Test Root CA',
    ]);
    // The signer and its issuer; none of the 20 certificates whose subject no chain link names.
    const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
    expect(
      sd.carried
        .filter((c) => c.parsed)
        .map((c) => hex(c.der))
        .sort(),
    ).toEqual([hex(leaf.der), hex(inter.der)].sort());
  });

  it('parses at most MAX_PARSED_CERTIFICATES carried certificates, however many share a subject', () => {
    // Twenty certificates named like the signer's issuer, none of which issued it, before the real one.
    const decoy = pki.issue('Test Intermediate CA', { key: 'rsa:1024' });
    const s = sign(leaf, { extra: [inter] });
    const bare = unwrapContentInfo(s.cms);
    const reordered = (() => {
      const fields = children(readRoot(bare)).map(tlvBytes);
      const at = fields.findIndex((f) => f[0] === 0xa0);
      const certs = children(readRoot(fields[at]!)).map(tlvBytes);
      const signerFirst = certs.sort((a) => (Buffer.from(a).equals(Buffer.from(leaf.der)) ? -1 : 1));
      fields[at] = encodeElement(0xa0, [
        signerFirst[0]!,
        ...Array.from({ length: 20 }, () => decoy.der),
        signerFirst[1]!,
      ]);
      return encodeElement(0x30, fields);
    })();
    clearSignedDataCache();
    const parsed = parseSignedData(reordered);
    if (!parsed.ok) throw new Error(parsed.reason);
    const r = verifyWithAnchor(new VerificationContext(parsed.signedData, s.content), cert(root));
    expect(parsed.signedData.carried.filter((c) => c.parsed)).toHaveLength(Pkcs7Limits.MAX_PARSED_CERTIFICATES);
    // The real issuer lies beyond the bound: the chain stops short of the root (OpenSSL would find it).
    expect(!r.ok && r.reason).toMatch(/does not chain to CN=Test Root CA/);
    // An administrator's explanation still lists every certificate.
    expect(parsed.signedData.certificates).toHaveLength(22);
  });

  it('refuses a carried certificate OpenSSL cannot decode, as d2i_PKCS7 does, without parsing the others', () => {
    const s = sign(leaf, { extra: [inter] });
    // A SEQUENCE holding one INTEGER: well-formed DER, not a certificate.
    const bad = withExtraCertificates(unwrapContentInfo(s.cms), Uint8Array.from([0x30, 0x03, 0x02, 0x01, 0x80]), 1);
    const r = parseSignedData(bad);
    expect(!r.ok && r.reason).toMatch(/certificate 2 is not a valid X.509 certificate/);
  });

  it('refuses thousands of digest algorithms before any value is read', () => {
    const s = sign(leaf, { extra: [inter] });
    const bloated = editFields(unwrapContentInfo(s.cms), (f) => {
      f[1] = elements(0x31, SHA256_ALGORITHM, 2000);
    });
    const r = parseSignedData(bloated);
    expect(!r.ok && r.reason).toMatch(/more than 256 DER elements/);
    // A handful is still read as before (the first must be SHA-256).
    const few = parseSignedData(
      editFields(unwrapContentInfo(s.cms), (f) => (f[1] = elements(0x31, SHA256_ALGORITHM, 4))),
    );
    expect(few.ok && few.signedData.digestAlgorithmOids).toHaveLength(4);
  });

  it('refuses thousands of signed attributes before any value is read', () => {
    const s = sign(leaf, { extra: [inter], signedAttributes: true });
    const attribute = encodeElement(0x30, [
      Uint8Array.from([0x06, 0x03, 0x2a, 0x03, 0x04]),
      encodeElement(0x31, [Uint8Array.from([0x05, 0x00])]),
    ]);
    const bloated = editFields(unwrapContentInfo(s.cms), (f) => {
      const infos = f.length - 1;
      const info = children(readRoot(f[infos]!))[0]!;
      const parts = children(info).map(tlvBytes);
      const signed = parts.findIndex((p) => p[0] === 0xa0);
      const attrs = children(readRoot(parts[signed]!)).map(tlvBytes);
      parts[signed] = encodeElement(0xa0, [...attrs, ...Array.from({ length: 2000 }, () => attribute)]);
      f[infos] = encodeElement(0x31, [encodeElement(0x30, parts)]);
    });
    const r = parseSignedData(bloated);
    expect(!r.ok && r.reason).toMatch(/more than 256 DER elements/);
  });

  it('bounds CRLs, which verification never reads, by count and outline', () => {
    const s = sign(leaf, { extra: [inter] });
    const crl = encodeElement(0x30, [
      encodeElement(0x30, [SHA256_ALGORITHM]),
      SHA256_ALGORITHM,
      Uint8Array.from([0x03, 0x01, 0x00]),
    ]);
    const withCrls = (list: Uint8Array): Uint8Array =>
      editFields(unwrapContentInfo(s.cms), (f) => {
        f.splice(f.length - 1, 0, list);
      });
    const one = parseSignedData(withCrls(encodeElement(0xa1, [crl])));
    if (!one.ok) throw new Error(one.reason);
    expect(verifyWithAnchor(new VerificationContext(one.signedData, s.content), cert(root)).ok).toBe(true);
    const many = parseSignedData(withCrls(elements(0xa1, crl, 500)));
    expect(!many.ok && many.reason).toMatch(/more than 32 CRLs/);
    const junk = parseSignedData(withCrls(encodeElement(0xa1, [SHA256_ALGORITHM])));
    expect(!junk.ok && junk.reason).toMatch(/not a CertificateList/);
  });
});

describe('BER signatures', () => {
  it('verifies a SignedData re-encoded with indefinite lengths, as openssl does', () => {
    const content = randomBytes(50);
    const cms = pki.sign(content, leaf, { extra: [inter], signedAttributes: true, wrapped: true });
    const ber = indefinite(cms);
    expect([ber[1], ber[ber.length - 1]]).toEqual([0x80, 0]);
    const parsed = parseSignedData(ber);
    if (!parsed.ok) throw new Error(parsed.reason);
    expect(parsed.signedData.wrapped).toBe(true);
    expectAgreement({ content, cms: ber, signedData: parsed.signedData }, root, true);
  });
});

/** ContentInfo and its [0] re-encoded with indefinite lengths (BER, as a streaming signer writes them). */
function indefinite(cms: Uint8Array): Uint8Array {
  const outer = readChildren(cms, headerLength(cms));
  const [typeOid, explicit] = outer.map((c) => cms.subarray(c.start, c.end)) as [Uint8Array, Uint8Array];
  const signedData = explicit.subarray(headerLength(explicit));
  const eoc = Uint8Array.from([0, 0]);
  return concat([Uint8Array.from([0x30, 0x80]), typeOid, Uint8Array.from([0xa0, 0x80]), signedData, eoc, eoc]);
}

describe('parsed-signature cache', () => {
  it('reuses the parse of bytes seen before, and still verifies the signature over the current content', () => {
    clearSignedDataCache();
    const content = randomBytes(100);
    const cms = pki.sign(content, leaf, { extra: [inter] });
    const first = parseSignedData(cms);
    const again = parseSignedData(cms.slice());
    expect(first.ok && again.ok).toBe(true);
    if (!first.ok || !again.ok) return;
    expect(again.signedData).toBe(first.signedData);
    // Structures are cached, verdicts are not: other content fails with the cached parse.
    expect(verifyWithAnchor(new VerificationContext(again.signedData, content), cert(root)).ok).toBe(true);
    const other = content.slice();
    other[0]! ^= 1;
    const r = verifyWithAnchor(new VerificationContext(again.signedData, other), cert(root));
    expect(!r.ok && r.reason).toMatch(/does not verify/);
    // Changing the input after parsing changes nothing cached.
    cms[cms.length - 1]! ^= 1;
    const changed = parseSignedData(cms);
    expect(changed.ok && changed.signedData).not.toBe(first.signedData);
    clearSignedDataCache();
    const cold = parseSignedData(cms.slice());
    expect(cold.ok && cold.signedData).not.toBe(changed.ok && changed.signedData);
  });

  it('keeps the 16 most recently used signatures', () => {
    clearSignedDataCache();
    const messages = Array.from({ length: 17 }, () => pki.sign(randomBytes(8), leaf));
    const parsed = messages.map((m) => {
      const r = parseSignedData(m);
      if (!r.ok) throw new Error(r.reason);
      return r.signedData;
    });
    // The first was evicted by the 17th; the second is still there.
    expect(
      parseSignedData(messages[0]!).ok && (parseSignedData(messages[0]!) as { signedData: SignedData }).signedData,
    ).not.toBe(parsed[0]);
    expect((parseSignedData(messages[2]!) as { signedData: SignedData }).signedData).toBe(parsed[2]);
  });

  it('refuses hostile structure before decoding: unclosed indefinite lengths and deep nesting', () => {
    const unclosed = Uint8Array.from([0x30, 0x80, 0x06, 0x01, 0x2a]);
    const r = parseSignedData(unclosed);
    expect(!r.ok && r.reason).toMatch(/missing end-of-contents/);
    let nested: Uint8Array = Uint8Array.from([0x05, 0x00]);
    for (let i = 0; i < 200; i++)
      nested = Uint8Array.from([0x30, 0x82, nested.length >> 8, nested.length & 0xff, ...nested]);
    const d = parseSignedData(nested);
    expect(!d.ok && d.reason).toMatch(/nesting deeper than 32/);
  });
});

function pkiRun(args: string[]): Buffer {
  return runOpenssl(args);
}

import { execFileSync } from 'node:child_process';
function runOpenssl(args: string[]): Buffer {
  return execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Re-encodes a bare SignedData with `count` more copies of `der` in its certificate set. */
function withExtraCertificates(signedData: Uint8Array, der: Uint8Array, count: number): Uint8Array {
  // SignedData: 30 L { version, digestAlgorithms, contentInfo, [0] certs, signerInfos }
  const children = readChildren(signedData, headerLength(signedData));
  const certsIndex = children.findIndex((c) => signedData[c.start] === 0xa0);
  const parts = children.map((c) => signedData.subarray(c.start, c.end));
  const certs = parts[certsIndex]!;
  const inner = certs.subarray(headerLength(certs));
  const grown = concat([inner, ...Array.from({ length: count }, () => der)]);
  parts[certsIndex] = tlv(0xa0, grown);
  return tlv(0x30, concat(parts));
}

function headerLength(b: Uint8Array, at = 0): number {
  const first = b[at + 1]!;
  return first < 0x80 ? 2 : 2 + (first & 0x7f);
}

function readChildren(b: Uint8Array, from: number): { start: number; end: number }[] {
  const out: { start: number; end: number }[] = [];
  let p = from;
  while (p < b.length) {
    const h = headerLength(b, p);
    const first = b[p + 1]!;
    let len = first;
    if (first >= 0x80) {
      len = 0;
      for (let i = 0; i < (first & 0x7f); i++) len = len * 256 + b[p + 2 + i]!;
    }
    out.push({ start: p, end: p + h + len });
    p += h + len;
  }
  return out;
}

function tlv(tag: number, body: Uint8Array): Uint8Array {
  const n = body.length;
  const len =
    n < 0x80
      ? [n]
      : n < 0x100
        ? [0x81, n]
        : n < 0x10000
          ? [0x82, n >> 8, n & 0xff]
          : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  return concat([Uint8Array.from([tag, ...len]), body]);
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
