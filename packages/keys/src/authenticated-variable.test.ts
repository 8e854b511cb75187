import { sign } from 'node:crypto';
import { Guids, serializeEfiTime, utf16le } from '@vmsb/efi';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  attachSignature,
  buildSignatureList,
  createAuthenticatedVariable,
  createCertificate,
  generateKeyPair,
  parseSignableBytes,
  prepareVariable,
  signableBytes,
  splitAuthenticatedVariable,
  type EncodedCertificate,
  type KeyPair,
} from './index.js';
import { opensslVerify, runOk, scratch, serialization, splitAuth, type Scratch } from './test-support.js';

const OWNER = '0d6ec1a4-64d6-4c4e-8cb4-8f51e0b6a1c2';
/** efitools' -t format and the matching EFI_TIME. */
const TS_TEXT = '2024-03-05 06:07:08';
const TS = serializeEfiTime({ year: 2024, month: 3, day: 5, hour: 6, minute: 7, second: 8 });

let s: Scratch;
let pk: KeyPair;
let kek: KeyPair;
let pkCert: EncodedCertificate;
let kekCert: EncodedCertificate;
let pkEsl: Uint8Array;
let kekEsl: Uint8Array;
let paths: { pkKey: string; pkCrt: string; kekKey: string; kekCrt: string; pkEsl: string; kekEsl: string };

beforeAll(async () => {
  s = scratch();
  [pk, kek] = await Promise.all([generateKeyPair(), generateKeyPair()]);
  pkCert = createCertificate({ cn: 'Auth test PK', key: pk.privateKey });
  kekCert = createCertificate({ cn: 'Auth test KEK', key: kek.privateKey });
  pkEsl = buildSignatureList({ type: 'x509', certificates: [pkCert.der], owner: OWNER });
  kekEsl = buildSignatureList({ type: 'x509', certificates: [kekCert.der], owner: OWNER });
  paths = {
    pkKey: s.write('PK.key', pk.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()),
    pkCrt: s.write('PK.crt', pkCert.pem),
    kekKey: s.write('KEK.key', kek.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()),
    kekCrt: s.write('KEK.crt', kekCert.pem),
    pkEsl: s.write('PK.esl', pkEsl),
    kekEsl: s.write('KEK.esl', kekEsl),
  };
});
afterAll(() => s.remove());

/** sign-efi-sig-list with a fixed timestamp; returns its output file. */
function efitoolsSign(variable: string, key: string, crt: string, esl: string, extra: string[] = []): Uint8Array {
  const out = s.path(`${variable}-${Math.random().toString(36).slice(2)}.auth`);
  runOk('sign-efi-sig-list', [...extra, '-t', TS_TEXT, '-k', key, '-c', crt, variable, esl, out]);
  return new Uint8Array(s.read(out.slice(s.dir.length + 1)));
}

describe('createAuthenticatedVariable against sign-efi-sig-list', () => {
  it('PK, self-signed: byte-identical output', () => {
    const ours = createAuthenticatedVariable({
      name: 'PK',
      payload: pkEsl,
      timestamp: TS,
      key: pk.privateKey,
      certificate: pkCert.pem,
    });
    const theirs = efitoolsSign('PK', paths.pkKey, paths.pkCrt, paths.pkEsl);
    const [a, b] = [splitAuth(ours), splitAuth(theirs)];
    expect(a.timestamp).toEqual(b.timestamp);
    expect(a.header).toEqual(b.header);
    expect(a.payload).toEqual(b.payload);
    expect(a.p7).toEqual(b.p7);
    expect(ours).toEqual(theirs);
  });

  it('KEK signed by PK, db and dbx appends signed by KEK, and a custom vendor GUID: byte-identical', () => {
    expect(
      createAuthenticatedVariable({
        name: 'KEK',
        payload: kekEsl,
        timestamp: TS,
        key: new TextDecoder().decode(s.read('PK.key')),
        certificate: pkCert.der,
      }),
    ).toEqual(efitoolsSign('KEK', paths.pkKey, paths.pkCrt, paths.kekEsl));
    expect(
      createAuthenticatedVariable({
        name: 'db',
        append: true,
        payload: kekEsl,
        timestamp: TS,
        key: kek.privateKey,
        certificate: kekCert.pem,
      }),
    ).toEqual(efitoolsSign('db', paths.kekKey, paths.kekCrt, paths.kekEsl, ['-a']));
    expect(
      createAuthenticatedVariable({
        name: 'dbx',
        append: true,
        payload: pkEsl,
        timestamp: TS,
        key: kek.privateKey,
        certificate: kekCert.pem,
      }),
    ).toEqual(efitoolsSign('dbx', paths.kekKey, paths.kekCrt, paths.pkEsl, ['-a']));
    // sign-efi-sig-list -g sets the vendor GUID of the variable being signed.
    expect(
      createAuthenticatedVariable({
        name: 'MyVar',
        guid: OWNER,
        payload: pkEsl,
        timestamp: TS,
        key: pk.privateKey,
        certificate: pkCert.pem,
      }),
    ).toEqual(efitoolsSign('MyVar', paths.pkKey, paths.pkCrt, paths.pkEsl, ['-g', OWNER]));
  });

  it('the signature verifies with OpenSSL over name‖guid‖attributes‖timestamp‖payload, with the signer as the only trust', () => {
    const auth = createAuthenticatedVariable({
      name: 'db',
      payload: kekEsl,
      timestamp: TS,
      key: kek.privateKey,
      certificate: kekCert.pem,
    });
    const { p7, payload, timestamp } = splitAuth(auth);
    expect(timestamp).toEqual(TS);
    const signed = serialization('db', Guids.IMAGE_SECURITY_DATABASE, 0x27, TS, payload);
    expect(opensslVerify(s, p7, signed).status).toBe(0);
    expect(opensslVerify(s, p7, signed, kekCert.pem).status).toBe(0);
    // Not with another anchor, not over other attributes (an append), not over another name.
    expect(opensslVerify(s, p7, signed, pkCert.pem).status).not.toBe(0);
    expect(opensslVerify(s, p7, serialization('db', Guids.IMAGE_SECURITY_DATABASE, 0x67, TS, payload)).status).not.toBe(
      0,
    );
    expect(
      opensslVerify(s, p7, serialization('dbx', Guids.IMAGE_SECURITY_DATABASE, 0x27, TS, payload)).status,
    ).not.toBe(0);
  });

  it('has the SignedData profile UEFI specifies', () => {
    const auth = createAuthenticatedVariable({
      name: 'PK',
      payload: pkEsl,
      timestamp: TS,
      key: pk.privateKey,
      certificate: pkCert.pem,
    });
    const { p7, header } = splitAuth(auth);
    const view = new DataView(header.buffer, header.byteOffset, 8);
    expect(view.getUint32(0, true)).toBe(24 + p7.length);
    expect(view.getUint16(4, true)).toBe(0x0200);
    expect(view.getUint16(6, true)).toBe(0x0ef1);
    expect(header.subarray(8)).toEqual(Guids.CERT_PKCS7);
    const dump = runOk('openssl', ['asn1parse', '-inform', 'DER', '-in', s.write('profile.der', p7), '-i']);
    const lines = dump.split('\n');
    expect(lines[1]).toMatch(/d=1 .*INTEGER\s+:01/);
    expect(dump).toMatch(/OBJECT\s+:pkcs7-data\n.*cont \[ 0 \]/);
    expect(dump).not.toMatch(/pkcs9|contentType|messageDigest|signingTime/);
    expect(dump).toMatch(/OBJECT\s+:rsaEncryption\s*\n.*NULL\s*\n.*OCTET STRING/);
  });
});

describe('createAuthenticatedVariable options', () => {
  it('signed attributes: OpenSSL verifies, sbvarsign-style', () => {
    const auth = createAuthenticatedVariable({
      name: 'KEK',
      payload: kekEsl,
      timestamp: TS,
      key: pk.privateKey,
      certificate: pkCert.pem,
      signedAttributes: true,
    });
    const { p7, payload } = splitAuth(auth);
    const dump = runOk('openssl', ['asn1parse', '-inform', 'DER', '-in', s.write('attrs.der', p7)]);
    expect(dump).toMatch(/:contentType/);
    expect(dump).toMatch(/:messageDigest/);
    const signed = serialization('KEK', Guids.GLOBAL_VARIABLE, 0x27, TS, payload);
    expect(opensslVerify(s, p7, signed, pkCert.pem).status).toBe(0);
    const tampered = signed.slice();
    tampered[tampered.length - 1]! ^= 1;
    expect(opensslVerify(s, p7, tampered, pkCert.pem).status).not.toBe(0);
  });

  it('ContentInfo wrapping: OpenSSL verifies the wrapped form as is', () => {
    const bare = createAuthenticatedVariable({
      name: 'db',
      payload: kekEsl,
      timestamp: TS,
      key: kek.privateKey,
      certificate: kekCert.pem,
    });
    const wrapped = createAuthenticatedVariable({
      name: 'db',
      payload: kekEsl,
      timestamp: TS,
      key: kek.privateKey,
      certificate: kekCert.pem,
      wrapContentInfo: true,
    });
    const p7 = splitAuth(wrapped).p7;
    expect(Array.from(p7.subarray(4, 15))).toEqual([0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02]);
    expect(p7.subarray(19)).toEqual(splitAuth(bare).p7);
    expect(
      opensslVerify(s, p7, serialization('db', Guids.IMAGE_SECURITY_DATABASE, 0x27, TS, kekEsl), kekCert.pem).status,
    ).toBe(0);
  });

  it('carries intermediates after the signer so a chain to an issuer verifies', async () => {
    const leafKey = await generateKeyPair();
    const leaf = createCertificate({
      cn: 'db signer',
      key: leafKey.privateKey,
      issuer: { certificate: kekCert.pem, key: kek.privateKey },
    });
    const auth = createAuthenticatedVariable({
      name: 'db',
      payload: pkEsl,
      timestamp: TS,
      key: leafKey.privateKey,
      certificate: leaf.pem,
      chain: [kekCert.pem],
    });
    const { p7 } = splitAuth(auth);
    const signed = serialization('db', Guids.IMAGE_SECURITY_DATABASE, 0x27, TS, pkEsl);
    // The KEK certificate, as trust anchor, verifies a signature by a certificate it issued.
    expect(opensslVerify(s, p7, signed, kekCert.pem).status).toBe(0);
    expect(opensslVerify(s, p7, signed, pkCert.pem).status).not.toBe(0);
  });

  it('deletion: an empty payload, signed like any update', () => {
    const auth = createAuthenticatedVariable({
      name: 'PK',
      payload: new Uint8Array(0),
      timestamp: TS,
      key: pk.privateKey,
      certificate: pkCert.pem,
    });
    const { p7, payload } = splitAuth(auth);
    expect(payload.length).toBe(0);
    expect(opensslVerify(s, p7, serialization('PK', Guids.GLOBAL_VARIABLE, 0x27, TS, payload), pkCert.pem).status).toBe(
      0,
    );
    const empty = s.write('empty.esl', new Uint8Array(0));
    expect(auth).toEqual(efitoolsSign('PK', paths.pkKey, paths.pkCrt, empty));
  });

  it('timestamps from a Date are UTC to the second; default is now', () => {
    const v = prepareVariable({ name: 'db', payload: kekEsl, timestamp: new Date('2024-03-05T06:07:08.999Z') });
    expect(v.timestamp).toEqual(TS);
    const now = prepareVariable({ name: 'db', payload: kekEsl });
    expect(new DataView(now.timestamp.buffer).getUint16(0, true)).toBeGreaterThanOrEqual(2024);
  });

  it('refuses updates firmware would refuse', () => {
    const base = { payload: pkEsl, timestamp: TS, key: pk.privateKey, certificate: pkCert.pem };
    expect(() => createAuthenticatedVariable({ ...base, name: 'PK', attributes: 0x07 })).toThrow(/TIME_BASED/);
    expect(() => createAuthenticatedVariable({ ...base, name: 'PK', attributes: 0x37 })).toThrow(/deprecated/);
    expect(() => createAuthenticatedVariable({ ...base, name: 'Other' })).toThrow(/GUID/);
    expect(() => createAuthenticatedVariable({ ...base, name: '', guid: OWNER })).toThrow(/empty/);
    const badTime = TS.slice();
    badTime[12] = 60; // TimeZone
    expect(() => createAuthenticatedVariable({ ...base, name: 'PK', timestamp: badTime })).toThrow(/TimeZone/);
    expect(() => createAuthenticatedVariable({ ...base, name: 'PK', timestamp: new Uint8Array(8) })).toThrow(
      /16 bytes/,
    );
    // PK holds one certificate; db must be signature lists.
    const two = buildSignatureList({ type: 'x509', certificates: [pkCert.der, kekCert.der], owner: OWNER });
    expect(() => createAuthenticatedVariable({ ...base, name: 'PK', payload: two })).toThrow(/exactly one certificate/);
    expect(() => createAuthenticatedVariable({ ...base, name: 'db', payload: Uint8Array.of(1, 2, 3) })).toThrow(
      /signature database/,
    );
    // ...unless asked not to check (for negative tests of verifiers).
    expect(
      createAuthenticatedVariable({ ...base, name: 'db', payload: Uint8Array.of(1, 2, 3), checkPayload: false }).length,
    ).toBeGreaterThan(40);
    // A key that is not the certificate's.
    expect(() => createAuthenticatedVariable({ ...base, name: 'PK', key: kek.privateKey })).toThrow(/does not belong/);
  });
});

describe('offline signing', () => {
  const update = () => ({ name: 'KEK', payload: kekEsl, timestamp: TS });

  it('signableBytes equals sign-efi-sig-list -o and the hand-built serialization', () => {
    const out = s.path('bundle.bin');
    runOk('sign-efi-sig-list', ['-o', '-t', TS_TEXT, 'KEK', paths.kekEsl, out]);
    const ours = signableBytes(update());
    expect(ours).toEqual(s.read('bundle.bin'));
    expect(ours).toEqual(serialization('KEK', Guids.GLOBAL_VARIABLE, 0x27, TS, kekEsl));
    expect(signableBytes({ ...update(), append: true })).toEqual(
      serialization('KEK', Guids.GLOBAL_VARIABLE, 0x67, TS, kekEsl),
    );
  });

  it('raw signature from `openssl dgst -sha256 -sign` → identical to signing here', () => {
    const bundle = s.write('raw-bundle.bin', signableBytes(update()));
    runOk('openssl', ['dgst', '-sha256', '-sign', paths.pkKey, '-out', s.path('raw.sig'), bundle]);
    const auth = attachSignature({ ...update(), signature: s.read('raw.sig'), certificate: pkCert.pem });
    expect(auth).toEqual(createAuthenticatedVariable({ ...update(), key: pk.privateKey, certificate: pkCert.pem }));
    const { p7 } = splitAuth(auth);
    expect(opensslVerify(s, p7, s.read('raw-bundle.bin'), pkCert.pem).status).toBe(0);
  });

  it('`openssl cms -sign` and `openssl smime -sign` signatures attach: same signature value, with attributes, PEM, -nocerts', () => {
    const bundle = s.write('cms-bundle.bin', signableBytes(update()));
    const cms = (name: string, extra: string[]) =>
      runOk('openssl', [
        'cms',
        '-sign',
        '-binary',
        '-md',
        'sha256',
        '-in',
        bundle,
        '-signer',
        paths.pkCrt,
        '-inkey',
        paths.pkKey,
        '-out',
        s.path(name),
        ...extra,
      ]);
    cms('noattr.der', ['-noattr', '-outform', 'DER']);
    const fromCms = attachSignature({ ...update(), cms: s.read('noattr.der') });
    const local = createAuthenticatedVariable({ ...update(), key: pk.privateKey, certificate: pkCert.pem });
    // CMS writes the digest AlgorithmIdentifiers without NULL parameters, so only the signature
    // value (deterministic PKCS#1 v1.5) is the same bytes; the structure is CMS's own.
    const signatureValue = (auth: Uint8Array) => splitAuth(auth).p7.slice(-256);
    expect(signatureValue(fromCms)).toEqual(signatureValue(local));
    expect(splitAuth(fromCms).p7).toEqual(s.read('noattr.der').subarray(19));
    expect(opensslVerify(s, splitAuth(fromCms).p7, s.read('cms-bundle.bin'), pkCert.pem).status).toBe(0);

    // PKCS#7 (openssl smime), the API efitools uses, gives exactly our SignedData.
    runOk('openssl', [
      'smime',
      '-sign',
      '-binary',
      '-noattr',
      '-md',
      'sha256',
      '-in',
      bundle,
      '-signer',
      paths.pkCrt,
      '-inkey',
      paths.pkKey,
      '-outform',
      'DER',
      '-out',
      s.path('smime.der'),
    ]);
    expect(attachSignature({ ...update(), cms: s.read('smime.der') })).toEqual(local);

    cms('attr.pem', ['-outform', 'PEM']);
    const withAttrs = attachSignature({ ...update(), cms: new TextDecoder().decode(s.read('attr.pem')) });
    const signed = s.read('cms-bundle.bin');
    expect(opensslVerify(s, splitAuth(withAttrs).p7, signed, pkCert.pem).status).toBe(0);

    cms('nocerts.der', ['-noattr', '-nocerts', '-outform', 'DER']);
    expect(() => attachSignature({ ...update(), cms: s.read('nocerts.der') })).toThrow(
      /certificate is not in the signature/,
    );
    const completed = attachSignature({ ...update(), cms: s.read('nocerts.der'), certificate: pkCert.der });
    expect(completed).toEqual(fromCms);

    const wrapped = attachSignature({ ...update(), cms: s.read('noattr.der'), wrapContentInfo: true });
    expect(splitAuth(wrapped).p7).toEqual(s.read('noattr.der'));
  });

  it('sign-efi-sig-list -i accepts a signature over our signable bytes and produces our .auth', () => {
    const bundle = s.write('i-bundle.bin', signableBytes(update()));
    runOk('openssl', [
      'smime',
      '-sign',
      '-binary',
      '-noattr',
      '-md',
      'sha256',
      '-in',
      bundle,
      '-signer',
      paths.pkCrt,
      '-inkey',
      paths.pkKey,
      '-outform',
      'DER',
      '-out',
      s.path('i.p7'),
    ]);
    runOk('sign-efi-sig-list', [
      '-i',
      s.path('i.p7'),
      '-t',
      TS_TEXT,
      '-c',
      paths.pkCrt,
      'KEK',
      paths.kekEsl,
      s.path('i.auth'),
    ]);
    // efitools embeds the file as given (ContentInfo-wrapped); ours wraps on request.
    expect(s.read('i.auth')).toEqual(attachSignature({ ...update(), cms: s.read('i.p7'), wrapContentInfo: true }));
  });

  it('parseSignableBytes recovers the update, so the signed file alone is enough to attach', () => {
    const bytes = signableBytes({ name: 'db', append: true, payload: kekEsl, timestamp: TS });
    const recovered = parseSignableBytes(bytes, 'db');
    expect(recovered).toEqual({
      name: utf16le('db'),
      guid: Guids.IMAGE_SECURITY_DATABASE,
      attributes: 0x67,
      timestamp: TS,
      payload: kekEsl,
    });
    const signature = new Uint8Array(sign('sha256', bytes, kek.privateKey));
    const auth = attachSignature({ ...recovered, signature, certificate: kekCert.pem });
    expect(auth).toEqual(
      createAuthenticatedVariable({
        name: 'db',
        append: true,
        payload: kekEsl,
        timestamp: TS,
        key: kek.privateKey,
        certificate: kekCert.pem,
      }),
    );
    expect(() => parseSignableBytes(bytes, 'dbx')).toThrow(/another variable/);
    expect(() => parseSignableBytes(bytes.subarray(0, 20), 'db')).toThrow(/too few/);
  });

  it('refuses signatures over other bytes, by other keys, or without the timestamp', () => {
    const bundle = signableBytes(update());
    const good = new Uint8Array(sign('sha256', bundle, pk.privateKey));
    expect(() => attachSignature({ ...update(), signature: good, certificate: kekCert.pem })).toThrow(
      /does not verify/,
    );
    expect(() => attachSignature({ ...update(), append: true, signature: good, certificate: pkCert.pem })).toThrow(
      /does not verify/,
    );
    expect(() => attachSignature({ name: 'KEK', payload: kekEsl, signature: good, certificate: pkCert.pem })).toThrow(
      /timestamp/,
    );
    const bundlePath = s.write('wrong.bin', serialization('KEK', Guids.GLOBAL_VARIABLE, 0x27, TS, pkEsl));
    runOk('openssl', [
      'cms',
      '-sign',
      '-binary',
      '-noattr',
      '-md',
      'sha256',
      '-in',
      bundlePath,
      '-signer',
      paths.pkCrt,
      '-inkey',
      paths.pkKey,
      '-outform',
      'DER',
      '-out',
      s.path('wrong.p7'),
    ]);
    expect(() => attachSignature({ ...update(), cms: s.read('wrong.p7') })).toThrow(/does not verify/);
    runOk('openssl', [
      'cms',
      '-sign',
      '-binary',
      '-md',
      'sha256',
      '-in',
      bundlePath,
      '-signer',
      paths.pkCrt,
      '-inkey',
      paths.pkKey,
      '-outform',
      'DER',
      '-out',
      s.path('wrong-attr.p7'),
    ]);
    expect(() => attachSignature({ ...update(), cms: s.read('wrong-attr.p7') })).toThrow(/messageDigest/);
    runOk('openssl', [
      'cms',
      '-sign',
      '-binary',
      '-noattr',
      '-md',
      'sha384',
      '-in',
      bundlePath,
      '-signer',
      paths.pkCrt,
      '-inkey',
      paths.pkKey,
      '-outform',
      'DER',
      '-out',
      s.path('sha384.p7'),
    ]);
    expect(() => attachSignature({ ...update(), cms: s.read('sha384.p7') })).toThrow(/SHA-256/);
    runOk('openssl', [
      'cms',
      '-sign',
      '-binary',
      '-nodetach',
      '-noattr',
      '-md',
      'sha256',
      '-in',
      bundlePath,
      '-signer',
      paths.pkCrt,
      '-inkey',
      paths.pkKey,
      '-outform',
      'DER',
      '-out',
      s.path('attached.p7'),
    ]);
    expect(() => attachSignature({ ...update(), cms: s.read('attached.p7') })).toThrow(/not detached/);
    expect(() => attachSignature({ ...update(), cms: Uint8Array.of(0x30, 0x80, 0, 0) })).toThrow();
  });
});

describe('splitAuthenticatedVariable', () => {
  it('splits what createAuthenticatedVariable builds', () => {
    const auth = createAuthenticatedVariable({
      name: 'db',
      payload: kekEsl,
      timestamp: TS,
      key: kek.privateKey,
      certificate: kekCert.pem,
    });
    const parts = splitAuthenticatedVariable(auth);
    expect(parts.timestamp).toEqual(TS);
    expect(parts.payload).toEqual(kekEsl);
    expect(parts.certData).toEqual(splitAuth(auth).p7);
  });

  it('never reads outside its input and only throws RangeError or TypeError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(), (bytes, len) => {
        if (bytes.length >= 20) new DataView(bytes.buffer).setUint32(16, len % 256, true);
        try {
          const p = splitAuthenticatedVariable(bytes);
          expect(p.timestamp.length + 24 + p.certData.length + p.payload.length).toBe(bytes.length);
        } catch (err) {
          expect(err instanceof RangeError || err instanceof TypeError).toBe(true);
        }
      }),
    );
  });
});
