import { createHash, generateKeyPairSync, sign, X509Certificate } from 'node:crypto';
import * as asn1js from 'asn1js';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { certificateFields, createCertificate, describeCertificate, type EncodedCertificate } from './certificate.js';
import {
  buildSignedData,
  checkDetachedSignature,
  parseSignedData,
  Pkcs7Error,
  signedAttributesFor,
  withCertificates,
  wrapContentInfo,
} from './pkcs7.js';
import { Oid } from '@vmsb/auth';

const keys = () => generateKeyPairSync('rsa', { modulusLength: 2048 });
let root: ReturnType<typeof keys>;
let leaf: ReturnType<typeof keys>;
let ca: EncodedCertificate;
let signer: EncodedCertificate;
const data = new TextEncoder().encode('bytes covered by the signature');

beforeAll(() => {
  root = keys();
  leaf = keys();
  ca = createCertificate({ cn: 'PKCS7 CA', organization: 'vmsb tests', key: root.privateKey });
  signer = createCertificate({
    cn: 'PKCS7 signer',
    key: leaf.privateKey,
    issuer: { certificate: ca.der, key: root.privateKey },
    serial: 0x80n,
  });
});

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('SignedData built with pkijs', () => {
  it('reads back as built: version 1, SHA-256, detached id-data, the certificates, issuer and serial', () => {
    const signature = new Uint8Array(sign('sha256', data, leaf.privateKey));
    const der = buildSignedData({ signer: signer.der, chain: [ca.der], signature });
    const parsed = parseSignedData(der);
    const fields = certificateFields(signer.der);
    expect(hex(parsed.signedData)).toBe(hex(der));
    expect(parsed.digestAlgorithms).toEqual([Oid.SHA256]);
    expect(parsed.hasContent).toBe(false);
    expect(parsed.certificates.map(hex)).toEqual([hex(signer.der), hex(ca.der)]);
    expect(parsed.signerInfoCount).toBe(1);
    expect(parsed.signer.version).toBe(1);
    expect(hex(parsed.signer.issuer!)).toBe(hex(fields.issuer));
    // Serial 0x80 needs a sign octet.
    expect(hex(parsed.signer.serialNumber!)).toBe('0080');
    expect(parsed.signer.signatureAlgorithm).toBe(Oid.RSA_ENCRYPTION);
    expect(hex(parsed.signer.signature)).toBe(hex(signature));
    expect(parsed.signer.signedAttributes).toBeUndefined();
    expect(hex(checkDetachedSignature(parsed, data))).toBe(hex(signer.der));
    // The top of the encoding: SEQUENCE { INTEGER 1, SET { SEQUENCE { sha256, NULL } }, SEQUENCE { id-data } ...
    expect(hex(der.subarray(4, 37))).toBe('020101310f300d06096086480165030402010500300b06092a864886f70d010701');
  });

  it('carries signed attributes as [0] IMPLICIT and checks them', () => {
    const attributes = signedAttributesFor(new Uint8Array(createHash('sha256').update(data).digest()));
    const der = buildSignedData({
      signer: signer.der,
      signature: new Uint8Array(sign('sha256', attributes, leaf.privateKey)),
      signedAttributes: attributes,
    });
    const parsed = parseSignedData(der);
    expect(hex(parsed.signer.signedAttributes!)).toBe(hex(attributes));
    expect(hex(der)).toContain(`a0${hex(attributes.subarray(1))}`);
    expect(() => checkDetachedSignature(parsed, data)).not.toThrow();
    expect(() => checkDetachedSignature(parsed, data.subarray(1))).toThrow(/messageDigest/);
  });

  it('orders signed attributes as DER SET OF requires, with the digest as given', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (digest) => {
        const set = asn1js.fromBER(signedAttributesFor(digest)).result as asn1js.Set;
        const encodings = set.valueBlock.value.map((a) => hex(a.valueBeforeDecodeView));
        expect([...encodings].sort()).toEqual(encodings);
        expect(encodings.some((e) => e.endsWith(`0420${hex(digest)}`))).toBe(true);
      }),
      { numRuns: 50 },
    );
  });

  it('wraps in a ContentInfo and unwraps to the same bytes; adds certificates keeping the rest', () => {
    const signature = new Uint8Array(sign('sha256', data, leaf.privateKey));
    const bare = buildSignedData({ signer: signer.der, signature });
    const wrapped = wrapContentInfo(bare);
    expect(hex(wrapped.subarray(0, 19))).toBe(
      `3082${(wrapped.length - 4).toString(16).padStart(4, '0')}06092a864886f70d010702a082${bare.length.toString(16).padStart(4, '0')}`,
    );
    expect(hex(parseSignedData(wrapped).signedData)).toBe(hex(bare));
    const more = withCertificates(bare, [signer.der, ca.der]);
    expect(hex(more)).toBe(hex(buildSignedData({ signer: signer.der, chain: [ca.der], signature })));
  });

  it('fails only with Pkcs7Error on arbitrary or mutated input', () => {
    const sample = buildSignedData({
      signer: signer.der,
      signature: new Uint8Array(sign('sha256', data, leaf.privateKey)),
    });
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 96 }),
        fc.nat(),
        fc.integer({ min: 0, max: 255 }),
        fc.nat(),
        (random, at, value, cut) => {
          const mutated = Uint8Array.from(sample, (b, i) => (i === at % sample.length ? value : b));
          for (const input of [random, mutated, sample.subarray(0, cut % sample.length)]) {
            try {
              parseSignedData(input);
            } catch (err) {
              expect(err).toBeInstanceOf(Pkcs7Error);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('certificates built and read with pkijs', () => {
  it('encode any serial as a positive minimal INTEGER that reads back', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: (1n << 159n) - 1n }), (serial) => {
        const cert = createCertificate({ cn: 'serial', key: root.privateKey, serial });
        const expected = serial.toString(16).toUpperCase();
        expect(describeCertificate(cert.der).serialNumber.replace(/^0/, '')).toBe(expected);
        expect(new X509Certificate(cert.der).serialNumber.replace(/^0/, '')).toBe(expected);
        const body = certificateFields(cert.der).serialNumber;
        expect(body[0]! & 0x80).toBe(0);
        expect(body.length === 1 || body[0] !== 0 || (body[1]! & 0x80) !== 0).toBe(true);
      }),
      { numRuns: 40 },
    );
  });

  it('call a certificate self-signed when its own key verifies it, CA or not', () => {
    const endEntity = describeCertificate(createCertificate({ cn: 'alone', key: leaf.privateKey, ca: false }).der);
    expect(endEntity).toMatchObject({ selfSigned: true, ca: false });
    expect(describeCertificate(ca.der)).toMatchObject({ selfSigned: true, ca: true });
    expect(describeCertificate(signer.der)).toMatchObject({
      selfSigned: false,
      ca: false,
      issuer: 'O=vmsb tests, CN=PKCS7 CA',
    });
  });

  it('print names as node:crypto does, escapes included', () => {
    for (const [cn, organization] of [
      ['Plain', undefined],
      ['a, b + "c" <d>;', ' lead#'],
      ['#hash', 'trail '],
      ['ünïcödé ✓', 'tab\there'],
    ] as const) {
      const cert = createCertificate({
        cn,
        ...(organization !== undefined ? { organization } : {}),
        key: root.privateKey,
      });
      const info = describeCertificate(cert.der);
      const x = new X509Certificate(cert.der);
      expect(info.subject).toBe(
        x.subject
          .split('\n')
          .filter((l) => l.length > 0)
          .join(', '),
      );
      expect(info.issuer).toBe(info.subject);
      expect(info.commonName).toBe(cn);
    }
  });
});
