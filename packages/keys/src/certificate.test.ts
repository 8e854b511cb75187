import { createHash, createPublicKey, generateKeyPairSync, type KeyObject, X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  certificateDer,
  certificateToPem,
  createCertificate,
  generateKeyPair,
  keyBits,
  loadPrivateKey,
  describeCertificate,
  privateKeyToDer,
  privateKeyToPem,
  readCertificates,
  tbsHash,
  type KeyPair,
} from './index.js';
import { run, runOk, scratch, type Scratch } from './test-support.js';

let s: Scratch;
let root: KeyPair;
let leaf: KeyPair;
const notBefore = new Date('2024-05-01T12:34:56Z');

beforeAll(async () => {
  s = scratch();
  [root, leaf] = await Promise.all([generateKeyPair(), generateKeyPair()]);
});
afterAll(() => s.remove());

describe('generateKeyPair', () => {
  it('makes RSA keys of the requested size', async () => {
    expect(keyBits(root.privateKey)).toBe(2048);
    const [mid, big] = await Promise.all([generateKeyPair({ bits: 3072 }), generateKeyPair({ bits: 4096 })]);
    expect(mid.privateKey.asymmetricKeyType).toBe('rsa');
    expect(keyBits(mid.publicKey)).toBe(3072);
    expect(keyBits(big.privateKey)).toBe(4096);
    expect(big.publicKey.asymmetricKeyDetails?.publicExponent).toBe(65537n);
  });

  it('refuses sizes UEFI tooling does not use', async () => {
    await expect(generateKeyPair({ bits: 1024 as 2048 })).rejects.toThrow(/1024/);
  });
});

describe('private keys in and out', () => {
  it('round-trips through PKCS#8 PEM and DER, and reads PKCS#1 and OpenSSL keys', () => {
    const pem = privateKeyToPem(root.privateKey);
    expect(pem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    const spki = (k: KeyObject) => createPublicKey(k).export({ type: 'spki', format: 'der' });
    expect(spki(loadPrivateKey(pem))).toEqual(spki(root.privateKey));
    expect(spki(loadPrivateKey(privateKeyToDer(root.privateKey)))).toEqual(spki(root.privateKey));
    const pkcs1 = new Uint8Array(root.privateKey.export({ type: 'pkcs1', format: 'der' }));
    expect(spki(loadPrivateKey(pkcs1))).toEqual(spki(root.privateKey));

    runOk('openssl', ['genrsa', '-out', s.path('ossl.key'), '2048']);
    const fromOpenssl = loadPrivateKey(s.read('ossl.key'));
    expect(keyBits(fromOpenssl)).toBe(2048);
  });

  it('reads encrypted PEM with a passphrase', () => {
    const encrypted = root.privateKey
      .export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'secret' })
      .toString();
    expect(() => loadPrivateKey(encrypted)).toThrow();
    expect(keyBits(loadPrivateKey(encrypted, { passphrase: 'secret' }))).toBe(2048);
  });

  it('refuses public keys and non-RSA keys', () => {
    expect(() => loadPrivateKey(root.publicKey)).toThrow(/private key/);
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expect(() => loadPrivateKey(ec.privateKey)).toThrow(/RSA/);
  });
});

describe('createCertificate', () => {
  it('makes a self-signed CA certificate OpenSSL accepts', () => {
    const cert = createCertificate({
      cn: 'Test Platform Key',
      key: root.privateKey,
      notBefore,
      days: 30,
      serial: 0x1234n,
    });
    const pem = s.write('root.pem', cert.pem);
    const text = runOk('openssl', ['x509', '-in', pem, '-noout', '-text', '-nameopt', 'RFC2253']);
    expect(text).toMatch(/Version: 3 \(0x2\)/);
    expect(text).toMatch(/Serial Number: 4660 \(0x1234\)/);
    expect(text).toMatch(/Signature Algorithm: sha256WithRSAEncryption/);
    expect(text).toMatch(/Issuer: CN=Test Platform Key/);
    expect(text).toMatch(/Subject: CN=Test Platform Key/);
    expect(text).toMatch(/Not Before: May {2}1 12:34:56 2024 GMT/);
    expect(text).toMatch(/Not After : May 31 12:34:56 2024 GMT/);
    expect(text).toMatch(/Basic Constraints: critical\s+CA:TRUE/);
    expect(text).toMatch(/Key Usage: critical\s+Digital Signature, Certificate Sign, CRL Sign/);
    expect(text).toMatch(/Subject Key Identifier/);
    expect(text).toMatch(/Authority Key Identifier/);
    // OpenSSL checks the self-signature (the validity window lies in the past: dates ignored, as UEFI does).
    runOk('openssl', ['verify', '-no_check_time', '-check_ss_sig', '-CAfile', pem, pem]);
    // The DER form equals the PEM form.
    expect(certificateDer(cert.pem)).toEqual(cert.der);
    expect(new Uint8Array(new X509Certificate(cert.der).raw)).toEqual(cert.der);
  });

  it('makes a certificate issued by another, and the chain verifies with OpenSSL', () => {
    const ca = createCertificate({ cn: 'Test KEK CA', organization: 'vmsb tests', key: root.privateKey, notBefore });
    const issued = createCertificate({
      cn: 'Test db signer',
      key: leaf.privateKey,
      issuer: { certificate: ca.der, key: root.privateKey },
      notBefore,
      days: 365,
    });
    const caPem = s.write('ca.pem', ca.pem);
    const leafPem = s.write('leaf.pem', issued.pem);
    runOk('openssl', ['verify', '-no_check_time', '-CAfile', caPem, leafPem]);
    const text = runOk('openssl', ['x509', '-in', leafPem, '-noout', '-text', '-nameopt', 'RFC2253']);
    expect(text).toMatch(/Issuer: CN=Test KEK CA,O=vmsb tests/);
    expect(text).toMatch(/Basic Constraints: critical\s+CA:FALSE/);
    expect(text).toMatch(/Key Usage: critical\s+Digital Signature\n/);
    // The authority key identifier is the issuer's subject key identifier.
    const ski = /Subject Key Identifier:\s+([0-9A-F:]+)/.exec(
      runOk('openssl', ['x509', '-in', caPem, '-noout', '-text']),
    )![1];
    expect(text).toContain(ski);
    // Signed by a different key, the chain fails.
    const other = createCertificate({ cn: 'Test KEK CA', organization: 'vmsb tests', key: leaf.privateKey, notBefore });
    const otherPem = s.write('other.pem', other.pem);
    expect(run('openssl', ['verify', '-no_check_time', '-CAfile', otherPem, leafPem]).status).not.toBe(0);
  });

  it('encodes dates from 2050 on as GeneralizedTime', () => {
    const cert = createCertificate({
      cn: 'Long lived',
      key: root.privateKey,
      notBefore: new Date('2049-12-31T00:00:00Z'),
      days: 2,
    });
    const text = runOk('openssl', ['asn1parse', '-inform', 'DER', '-in', s.write('long.der', cert.der)]);
    expect(text).toMatch(/UTCTIME\s+:491231000000Z/);
    expect(text).toMatch(/GENERALIZEDTIME\s+:20500102000000Z/);
  });

  it('gives random positive 16-octet serials by default', () => {
    const a = describeCertificate(createCertificate({ cn: 'a', key: root.privateKey }).der);
    const b = describeCertificate(createCertificate({ cn: 'a', key: root.privateKey }).der);
    expect(a.serialNumber).toMatch(/^[4-7][0-9A-F]{31}$/);
    expect(a.serialNumber).not.toBe(b.serialNumber);
  });

  it('refuses inconsistent input', () => {
    const ca = createCertificate({ cn: 'CA', key: root.privateKey });
    expect(() =>
      createCertificate({ cn: 'x', key: leaf.privateKey, issuer: { certificate: ca.der, key: leaf.privateKey } }),
    ).toThrow(/issuer key/);
    expect(() => createCertificate({ cn: '', key: root.privateKey })).toThrow(/common name/);
    expect(() => createCertificate({ cn: 'x', key: root.privateKey, days: 0 })).toThrow(/days/);
    expect(() => createCertificate({ cn: 'x', key: root.privateKey, serial: 0n })).toThrow(/positive/);
    expect(() => createCertificate({ cn: 'x', key: root.privateKey, serial: 1n << 160n })).toThrow(/20 octets/);
  });
});

describe('describeCertificate', () => {
  it('reports what OpenSSL reports', () => {
    const ca = createCertificate({ cn: 'Parse CA', key: root.privateKey, notBefore, days: 10, serial: 0xabcdefn });
    const issued = createCertificate({
      cn: 'Parse leaf',
      key: leaf.privateKey,
      issuer: { certificate: ca.pem, key: root.privateKey },
      notBefore,
    });
    const caInfo = describeCertificate(ca.pem);
    expect(caInfo).toMatchObject({
      subject: 'CN=Parse CA',
      issuer: 'CN=Parse CA',
      commonName: 'Parse CA',
      serialNumber: 'ABCDEF',
      selfSigned: true,
      ca: true,
      keyType: 'rsa',
      keyBits: 2048,
    });
    expect(caInfo.notBefore.toISOString()).toBe('2024-05-01T12:34:56.000Z');
    expect(caInfo.notAfter.toISOString()).toBe('2024-05-11T12:34:56.000Z');
    const pem = s.write('parse.pem', ca.pem);
    const fp = runOk('openssl', ['x509', '-in', pem, '-noout', '-fingerprint', '-sha256']);
    expect(fp.split('=')[1]!.trim().replace(/:/g, '').toLowerCase()).toBe(caInfo.sha256);
    const spki = runOk('openssl', ['x509', '-in', pem, '-noout', '-pubkey']);
    const spkiDer = createPublicKey(spki).export({ type: 'spki', format: 'der' });
    expect(caInfo.spkiSha256).toBe(createHash('sha256').update(spkiDer).digest('hex'));

    const leafInfo = describeCertificate(issued.der);
    expect(leafInfo).toMatchObject({ subject: 'CN=Parse leaf', issuer: 'CN=Parse CA', selfSigned: false, ca: false });
  });

  it('reads PEM bundles and single DER certificates, and refuses garbage', () => {
    const a = createCertificate({ cn: 'A', key: root.privateKey });
    const b = createCertificate({ cn: 'B', key: leaf.privateKey });
    const bundle = `Bag Attributes: ignored\n${a.pem}\n${b.pem}`;
    expect(readCertificates(bundle)).toEqual([a.der, b.der]);
    expect(readCertificates(new TextEncoder().encode(bundle))).toEqual([a.der, b.der]);
    expect(readCertificates(a.der)).toEqual([a.der]);
    expect(() => certificateDer(bundle)).toThrow(/one certificate, found 2/);
    expect(() => readCertificates(Uint8Array.of(0x30, 0x03, 0x02, 0x01, 0x01))).toThrow(/not an X.509/);
    expect(certificateToPem(a.der)).toBe(a.pem);
  });

  it('hashes the TBSCertificate as OpenSSL sees it', () => {
    const cert = createCertificate({ cn: 'TBS', key: root.privateKey });
    const der = s.write('tbs.der', cert.der);
    runOk('openssl', [
      'asn1parse',
      '-inform',
      'DER',
      '-in',
      der,
      '-strparse',
      '4',
      '-noout',
      '-out',
      s.path('tbs.bin'),
    ]);
    expect(tbsHash(cert.der)).toEqual(new Uint8Array(createHash('sha256').update(s.read('tbs.bin')).digest()));
  });
});
