import { X509Certificate, createHash, type KeyObject } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Pki, fixture, type Issued } from './testing/pki.js';
import {
  caKind,
  fingerprint,
  issuedBy,
  KeyUsage,
  parseCertificate,
  rsaKeyObject,
  serialHex,
  type Certificate,
} from './x509.js';

// node:crypto's X509Certificate (OpenSSL underneath) is the oracle for what a certificate says.

let pki: Pki;
let root: Issued;
let leaf: Issued;

beforeAll(() => {
  pki = new Pki();
  root = pki.issue('X509 Root', {
    subject: '/C=GB/O=Example Ltd/CN=X509 Root',
    keyUsage: 'critical, keyCertSign, cRLSign',
  });
  leaf = pki.issue('X509 Leaf', { issuer: root, keyUsage: 'digitalSignature', serial: '7fedcba987654321' });
});

afterAll(() => pki.dispose());

function parse(der: Uint8Array): Certificate {
  const r = parseCertificate(der);
  if (!r.ok) throw new Error(r.reason);
  return r.certificate;
}

describe('X.509 certificates', () => {
  it('reads what OpenSSL reads', () => {
    for (const i of [root, leaf]) {
      const c = parse(i.der);
      const oracle = new X509Certificate(Buffer.from(i.der));
      expect(serialHex(c).toUpperCase().replace(/^0+/, '')).toBe(oracle.serialNumber.replace(/^0+/, ''));
      expect(fingerprint(c)).toBe(oracle.fingerprint256.replace(/:/g, '').toLowerCase());
      expect(c.subjectText.replace(/, /g, '\n')).toBe(oracle.subject);
      expect(c.issuerText.replace(/, /g, '\n')).toBe(oracle.issuer);
      expect(Date.parse(c.notAfter)).toBe(Date.parse(oracle.validTo));
      expect(Buffer.from(c.der)).toEqual(oracle.raw);
      expect(rsaKeyObject(c)?.equals(oracle.publicKey)).toBe(true);
      expect(c.rsaPublicKey?.modulusBits).toBe(2048);
    }
    const r = parse(root.der);
    const l = parse(leaf.der);
    expect(r.basicConstraints).toEqual({ ca: true, pathLength: undefined });
    expect(r.keyUsage).toBe(KeyUsage.KEY_CERT_SIGN | (1 << 6));
    expect(l.keyUsage).toBe(KeyUsage.DIGITAL_SIGNATURE);
    expect(l.authorityKeyIdentifier).toEqual(r.subjectKeyIdentifier);
    expect(issuedBy(l, r)).toBe(
      new X509Certificate(Buffer.from(leaf.der)).checkIssued(new X509Certificate(Buffer.from(root.der))),
    );
    expect(issuedBy(r, l)).toBe(false);
    expect(caKind(r)).toBe(1);
    expect(caKind(l)).toBe(0);
    // tbsCertificate is what the issuer signed.
    expect(createHash('sha256').update(l.tbs).digest().length).toBe(32);
    expect(
      new X509Certificate(Buffer.from(leaf.der)).verify(new X509Certificate(Buffer.from(root.der)).publicKey),
    ).toBe(true);
  });

  it("reads Microsoft's KEK CA 2011", () => {
    const c = parse(fixture('microsoft/MicCorKEKCA2011_2011-06-24.der'));
    expect(c.subjectText).toBe(
      'C=US, ST=Washington, L=Redmond, O=Microsoft Corporation, CN=Microsoft Corporation KEK CA 2011',
    );
    expect(serialHex(c)).toBe('610ad188000000000003');
    expect(c.notAfter).toBe('2026-06-24T20:51:29Z');
    expect(c.chainProblem).toBeUndefined();
  });

  it('reads a negative serial number', () => {
    const key = pki.path('neg.key');
    const pem = pki.path('neg.pem');
    pkiRun([
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      key,
      '-out',
      pem,
      '-subj',
      '/CN=Neg',
      '-set_serial',
      '-1',
      '-days',
      '1',
    ]);
    const c = parse(new Uint8Array(pkiRun(['x509', '-in', pem, '-outform', 'DER'])));
    expect(serialHex(c)).toBe('ff');
  });

  it('reads a version 1 certificate, which OpenSSL treats as a CA when self-issued', () => {
    const key = pki.path('v1.key');
    const csr = pki.path('v1.csr');
    const pem = pki.path('v1.pem');
    pkiRun(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr, '-subj', '/CN=Version One']);
    pkiRun(['x509', '-req', '-in', csr, '-signkey', key, '-out', pem, '-days', '1', '-extfile', '/dev/null']);
    const c = parse(new Uint8Array(pkiRun(['x509', '-in', pem, '-outform', 'DER'])));
    expect(c.version).toBe(1);
    expect(c.basicConstraints).toBeUndefined();
    expect(caKind(c)).toBe(3);
  });

  it('keeps a non-RSA key out of verification', () => {
    const ec = pki.issue('EC Cert', { key: 'ec' });
    const c = parse(ec.der);
    expect(c.publicKeyAlgorithmOid).toBe('1.2.840.10045.2.1');
    expect(c.rsaPublicKey).toBeUndefined();
    expect(rsaKeyObject(c)).toBeUndefined();
  });

  it('flags unhandled critical and duplicated extensions, but still parses', () => {
    const odd = parse(
      pki.issue('Odd', {
        extraExtensions: ['1.3.6.1.4.1.99999.7 = critical, ASN1:NULL', '1.3.6.1.4.1.99999.8 = ASN1:NULL'],
      }).der,
    );
    expect(odd.unhandledCriticalExtension).toBe('unhandled critical extension 1.3.6.1.4.1.99999.7');
    expect(odd.chainProblem).toBeDefined();
    // Rename the second extension to the first one's OID: a duplicate (the signature no longer matters here).
    const dup = odd.der.slice();
    const needle = Buffer.from('06092b0601040186 8d1f08'.replace(/ /g, ''), 'hex');
    const at = Buffer.from(dup).indexOf(needle);
    expect(at).toBeGreaterThan(0);
    dup[at + needle.length - 1] = 0x07;
    expect(parse(dup).invalidExtension).toBe('extension 1.3.6.1.4.1.99999.7 appears twice');
    const eku = parse(pki.issue('Critical EKU', { extraExtensions: ['extendedKeyUsage = critical, codeSigning'] }).der);
    expect(eku.chainProblem).toBeUndefined();
  });

  it('shows control characters in names escaped, and keeps the raw commonName bytes', () => {
    const c = parse(pki.issue('Tab', { subject: '/CN=Line\tBreak' }).der);
    expect(c.subjectText).toBe('CN=Line\\x09Break');
    expect(Buffer.from(c.commonName!).toString('latin1')).toBe('Line\tBreak');
    const bmp = parse(pki.issue('BMP', { subject: '/CN=Zoë', stringMask: 'pkix' }).der);
    expect(bmp.subjectText).toBe('CN=Zoë');
    expect(Buffer.from(bmp.commonName!).toString('hex')).toBe('005a006f00eb'); // BMPString, big-endian UCS-2
  });

  it('reports damaged certificates as values, never by throwing', () => {
    const der = leaf.der;
    fc.assert(
      fc.property(fc.nat(der.length - 1), fc.integer({ min: 1, max: 255 }), (at, xor) => {
        const damaged = der.slice();
        damaged[at]! ^= xor;
        const r = parseCertificate(damaged);
        if (r.ok) expect(r.certificate.der.length).toBe(der.length);
        else expect(r.reason).toMatch(/^not a valid X.509 certificate/);
      }),
      { numRuns: 2000 },
    );
    for (let cut = 0; cut < der.length; cut += 13) expect(parseCertificate(der.subarray(0, cut)).ok).toBe(false);
  }, 30_000);

  it('reads what OpenSSL reads from damaged real certificates it still decodes', () => {
    // Microsoft's KEK CA 2011 (extensions, a long chain of names) and the test root; OpenSSL decides
    // which damage leaves a certificate, then serial, key size and fingerprint must agree.
    const sources = [fixture('microsoft/MicCorKEKCA2011_2011-06-24.der'), root.der];
    let compared = 0;
    fc.assert(
      fc.property(
        fc.nat(sources.length - 1),
        fc.array(fc.tuple(fc.nat(4095), fc.nat(255)), { minLength: 1, maxLength: 3 }),
        (which, edits) => {
          const damaged = sources[which]!.slice();
          for (const [at, value] of edits) damaged[at % damaged.length] = value;
          let theirs: X509Certificate;
          try {
            theirs = new X509Certificate(damaged);
          } catch {
            return;
          }
          const r = parseCertificate(damaged);
          if (!r.ok) return;
          compared++;
          const c = r.certificate;
          // OpenSSL prints a negative serial as -magnitude; serialHex keeps the two's complement.
          const serial = serialHex(c)
            .toUpperCase()
            .replace(/^(00)+(?=.)/, '');
          if (!theirs.serialNumber.startsWith('-')) expect(serial).toBe(theirs.serialNumber.replace(/^(00)+(?=.)/, ''));
          // OpenSSL hashes its own DER re-encoding: comparable when the damage left the input DER.
          if (Buffer.from(theirs.raw).equals(damaged))
            expect(fingerprint(c)).toBe(theirs.fingerprint256.replaceAll(':', '').toLowerCase());
          let key: KeyObject | undefined;
          try {
            key = theirs.publicKey;
          } catch {
            key = undefined; // OpenSSL cannot decode the damaged key: neither may this package
          }
          if (key === undefined) expect(rsaKeyObject(c)).toBeUndefined();
          else if (c.rsaPublicKey !== undefined)
            expect(c.rsaPublicKey.modulusBits).toBe(key.asymmetricKeyDetails?.modulusLength);
        },
      ),
      { numRuns: 1500 },
    );
    expect(compared).toBeGreaterThan(500);
  }, 60_000);
});

import { execFileSync } from 'node:child_process';
function pkiRun(args: string[]): Buffer {
  return execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
}
