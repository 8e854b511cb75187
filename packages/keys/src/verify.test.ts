import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  attachSignature,
  buildSignatureList,
  createAuthenticatedVariable,
  createCertificate,
  generateKeyPair,
  signableBytes,
  verifyAuthenticatedVariable,
  type EncodedCertificate,
  type KeyPair,
} from './index.js';
import { runOk, scratch, type Scratch } from './test-support.js';

const OWNER = '5a1c3d2e-0f4b-4a69-8e7d-6c5b4a392817';
const TS = new Date('2024-06-07T08:09:10Z');
let s: Scratch;
let key: KeyPair;
let ca: KeyPair;
let cert: EncodedCertificate;
let caCert: EncodedCertificate;
let esl: Uint8Array;

beforeAll(async () => {
  s = scratch();
  [key, ca] = await Promise.all([generateKeyPair(), generateKeyPair()]);
  caCert = createCertificate({ cn: 'Verify CA', key: ca.privateKey });
  cert = createCertificate({
    cn: 'Verify signer',
    key: key.privateKey,
    issuer: { certificate: caCert.der, key: ca.privateKey },
  });
  esl = buildSignatureList({ type: 'x509', certificates: [cert.der], owner: OWNER });
});
afterAll(() => s.remove());

describe('verifyAuthenticatedVariable (through @vmsb/auth)', () => {
  const signWith = (
    extra: { signedAttributes?: boolean; wrapContentInfo?: boolean; chain?: EncodedCertificate[] } = {},
  ) =>
    createAuthenticatedVariable({
      name: 'db',
      payload: esl,
      timestamp: TS,
      key: key.privateKey,
      certificate: cert.pem,
      ...(extra.signedAttributes !== undefined ? { signedAttributes: extra.signedAttributes } : {}),
      ...(extra.wrapContentInfo !== undefined ? { wrapContentInfo: extra.wrapContentInfo } : {}),
      ...(extra.chain !== undefined ? { chain: extra.chain.map((c) => c.der) } : {}),
    });

  it('accepts every form this package signs in, with the signer or its issuer as anchor', () => {
    for (const auth of [
      signWith(),
      signWith({ signedAttributes: true }),
      signWith({ wrapContentInfo: true }),
      signWith({ chain: [caCert] }),
    ]) {
      const bySigner = verifyAuthenticatedVariable({ name: 'db', auth, trusted: [cert.pem] });
      expect(bySigner.ok).toBe(true);
      if (bySigner.ok) {
        expect(bySigner.signer.subject).toContain('Verify signer');
        expect(bySigner.timestamp).toBe('2024-06-07T08:09:10');
        expect(bySigner.payload).toEqual(esl);
      }
    }
    // The issuer as anchor: the signer's certificate, carried in the signature, chains to it
    // directly, with or without the issuer also carried.
    expect(
      verifyAuthenticatedVariable({ name: 'db', auth: signWith({ chain: [caCert] }), trusted: [caCert.pem] }).ok,
    ).toBe(true);
    expect(verifyAuthenticatedVariable({ name: 'db', auth: signWith(), trusted: [caCert.pem] }).ok).toBe(true);
  });

  it('accepts offline signatures made with OpenSSL', () => {
    const update = { name: 'db', payload: esl, timestamp: TS };
    const bundle = s.write('bundle.bin', signableBytes(update));
    const keyPath = s.write('k.pem', key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
    const certPath = s.write('c.pem', cert.pem);
    runOk('openssl', [
      'cms',
      '-sign',
      '-binary',
      '-md',
      'sha256',
      '-in',
      bundle,
      '-signer',
      certPath,
      '-inkey',
      keyPath,
      '-outform',
      'DER',
      '-out',
      s.path('sig.p7'),
    ]);
    const auth = attachSignature({ ...update, cms: s.read('sig.p7') });
    expect(verifyAuthenticatedVariable({ name: 'db', auth, trusted: [cert.der] }).ok).toBe(true);
  });

  it('refuses the wrong anchor, name, attributes and tampered bytes, saying why', () => {
    const auth = signWith();
    const other = createCertificate({ cn: 'Someone else', key: ca.privateKey });
    const wrong = verifyAuthenticatedVariable({ name: 'db', auth, trusted: [other.der] });
    expect(wrong).toMatchObject({ ok: false, code: 'wrong-signer' });
    expect(verifyAuthenticatedVariable({ name: 'dbx', auth, trusted: [cert.der] })).toMatchObject({
      ok: false,
      code: 'bad-signature',
    });
    expect(verifyAuthenticatedVariable({ name: 'db', append: true, auth, trusted: [cert.der] })).toMatchObject({
      ok: false,
      code: 'bad-signature',
    });
    const tampered = auth.slice();
    tampered[tampered.length - 1]! ^= 1;
    expect(verifyAuthenticatedVariable({ name: 'db', auth: tampered, trusted: [cert.der] }).ok).toBe(false);
    expect(verifyAuthenticatedVariable({ name: 'db', auth: auth.subarray(0, 30), trusted: [cert.der] }).ok).toBe(false);
    expect(() => verifyAuthenticatedVariable({ name: 'Custom', auth, trusted: [cert.der] })).toThrow(/GUID/);
  });
});
