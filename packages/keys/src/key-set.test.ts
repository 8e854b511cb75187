import { statSync } from 'node:fs';
import { join } from 'node:path';
import { Guids, parseSignatureLists } from '@vmsb/efi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createKeySet,
  keySetFiles,
  microsoftSignatureList,
  describeCertificate,
  verifyAuthenticatedVariable,
  writeKeySet,
  type KeySet,
} from './index.js';
import { opensslVerify, runOk, scratch, serialization, splitAuth, type Scratch } from './test-support.js';

const OWNER = '3f8a1e52-7b6c-4d2e-9a10-5c4b3a291807';
const WHEN = new Date('2025-01-02T03:04:05Z');
let s: Scratch;
let set: KeySet;

beforeAll(async () => {
  s = scratch();
  set = await createKeySet({
    cn: 'Example Corp',
    owner: OWNER,
    timestamp: WHEN,
    extra: { KEK: microsoftSignatureList({ role: 'KEK' }) },
  });
});
afterAll(() => s.remove());

describe('createKeySet', () => {
  it('makes three self-signed RSA certificates named after the roles', () => {
    expect(set.owner).toBe(OWNER);
    for (const m of [set.PK, set.KEK, set.db]) {
      const info = describeCertificate(m.certificate.der);
      expect(info.commonName).toBe(`Example Corp ${m.name}`);
      expect(info.selfSigned).toBe(true);
      expect(info.keyBits).toBe(2048);
      expect(info.notBefore.toISOString()).toBe(WHEN.toISOString());
    }
  });

  it('chains the .auth files: PK self-signed, KEK by PK, db by KEK (checked with OpenSSL and @vmsb/auth)', () => {
    const ts = splitAuth(set.PK.auth).timestamp;
    const cases = [
      { m: set.PK, guid: Guids.GLOBAL_VARIABLE, signer: set.PK, other: set.KEK },
      { m: set.KEK, guid: Guids.GLOBAL_VARIABLE, signer: set.PK, other: set.db },
      { m: set.db, guid: Guids.IMAGE_SECURITY_DATABASE, signer: set.KEK, other: set.PK },
    ];
    for (const { m, guid, signer, other } of cases) {
      const { p7, payload } = splitAuth(m.auth);
      const signed = serialization(m.name, guid, 0x27, ts, payload);
      expect(opensslVerify(s, p7, signed, signer.certificate.pem).status).toBe(0);
      expect(opensslVerify(s, p7, signed, other.certificate.pem).status).not.toBe(0);
      expect(verifyAuthenticatedVariable({ name: m.name, auth: m.auth, trusted: [signer.certificate.der] }).ok).toBe(
        true,
      );
      expect(verifyAuthenticatedVariable({ name: m.name, auth: m.auth, trusted: [other.certificate.der] }).ok).toBe(
        false,
      );
    }
  });

  it('enrols the extra lists after its own certificate, with its owner', () => {
    const kek = parseSignatureLists(splitAuth(set.KEK.auth).payload);
    expect(kek.ok).toBe(true);
    if (!kek.ok) return;
    expect(kek.lists).toHaveLength(3);
    expect(kek.lists[0]!.signatures[0]!.data).toEqual(set.KEK.certificate.der);
    expect(kek.lists[0]!.signatures[0]!.owner).toEqual(
      Uint8Array.from(Buffer.from('521e8a3f6c7b2e4d9a105c4b3a291807', 'hex')),
    );
    expect(kek.lists[1]!.signatures[0]!.owner).toEqual(Guids.MICROSOFT);
    expect(splitAuth(set.db.auth).payload).toEqual(set.db.signatureList);
  });

  it('noPK.auth deletes PK with a later timestamp, signed by PK', () => {
    const pk = splitAuth(set.PK.auth);
    const no = splitAuth(set.noPK);
    expect(no.payload.length).toBe(0);
    expect(no.timestamp[6]).toBe(pk.timestamp[6]! + 1);
    expect(
      opensslVerify(
        s,
        no.p7,
        serialization('PK', Guids.GLOBAL_VARIABLE, 0x27, no.timestamp, no.payload),
        set.PK.certificate.pem,
      ).status,
    ).toBe(0);
  });

  it('generates fresh keys and a random owner each time', async () => {
    const again = await createKeySet({ cn: 'Other' });
    expect(again.owner).not.toBe(set.owner);
    expect(again.owner).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(again.PK.keyPem).not.toBe(set.PK.keyPem);
  });
});

describe('writeKeySet', () => {
  it('writes the files efitools and OpenSSL read, keys private, and sign-efi-sig-list reproduces PK.auth from them', async () => {
    const dir = join(s.dir, 'out');
    const written = await writeKeySet(set, dir);
    expect(written.map((p) => p.slice(dir.length + 1)).sort()).toEqual(
      keySetFiles(set)
        .map((f) => f.name)
        .sort(),
    );
    expect(statSync(join(dir, 'PK.key')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'db.auth')).mode & 0o777).toBe(0o644);
    runOk('openssl', ['rsa', '-in', join(dir, 'KEK.key'), '-check', '-noout']);
    runOk('openssl', ['x509', '-in', join(dir, 'db.der'), '-inform', 'DER', '-noout']);
    runOk('cert-to-efi-sig-list', ['-g', OWNER, join(dir, 'PK.crt'), join(s.dir, 'PK-again.esl')]);
    expect(s.read('PK-again.esl')).toEqual(s.read('out/PK.esl'));
    runOk('sign-efi-sig-list', [
      '-t',
      '2025-01-02 03:04:05',
      '-k',
      join(dir, 'PK.key'),
      '-c',
      join(dir, 'PK.crt'),
      'PK',
      join(dir, 'PK.esl'),
      join(s.dir, 'PK-again.auth'),
    ]);
    expect(s.read('PK-again.auth')).toEqual(s.read('out/PK.auth'));
    expect(new TextDecoder().decode(s.read('out/owner-guid.txt'))).toBe(`${OWNER}\n`);
  });

  it('refuses to overwrite, leaving the directory untouched', async () => {
    const dir = join(s.dir, 'clash');
    await writeKeySet(set, dir);
    const before = statSync(join(dir, 'PK.key')).mtimeMs;
    await expect(writeKeySet(set, dir)).rejects.toThrow(/not overwriting/);
    expect(statSync(join(dir, 'PK.key')).mtimeMs).toBe(before);
  });

  it('createKeySet writes too when given outDir', async () => {
    const dir = join(s.dir, 'direct');
    const made = await createKeySet({ cn: 'Direct', outDir: dir });
    expect(s.read('direct/KEK.auth')).toEqual(made.KEK.auth);
  });
});
