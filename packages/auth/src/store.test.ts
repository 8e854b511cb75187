import { createHash } from 'node:crypto';
import {
  Attr,
  Guids,
  parseEfiTime,
  serializeSignatureLists,
  signatureListOfCertificate,
  signatureListOfHashes,
  utf16le,
  VariableStore,
  type SetOutcome,
} from '@vmsb/efi';
import { EfiStatus, statusName } from '@vmsb/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAuthentication2 } from './authentication2.js';
import { createAuthenticator, privateSignerDigest } from './authenticator.js';
import { ATTRS, authenticated, fixture, guidFor, Pki, time, type Issued, type SignedWrite } from './testing/pki.js';
import { parseCertificate } from './x509.js';

// Real SetVariable requests through @vmsb/efi's VariableStore with this package's authenticator:
// keys and signatures made by openssl at test time, plus Microsoft's real dbx update.

let pki: Pki;
let pk: Issued;
let kek: Issued;
let kekCa: Issued;
let dbInter: Issued;
let dbSigner: Issued;
let expiredDbSigner: Issued;
let rogue: Issued;
let pkReissued: Issued;
let appKey: Issued;
let appKeySameName: Issued;

const VENDOR = Guids.CITRIX;

beforeAll(() => {
  pki = new Pki();
  pk = pki.issue('Test Platform Key');
  kek = pki.issue('Test KEK');
  kekCa = pki.issue('Test KEK CA', { keyUsage: 'critical, keyCertSign, digitalSignature' });
  dbInter = pki.issue('Test db Intermediate', { issuer: kekCa, ca: true });
  dbSigner = pki.issue('Test db Signer', { issuer: dbInter });
  expiredDbSigner = pki.issue('Expired db Signer', {
    issuer: kekCa,
    notBefore: '20090101000000Z',
    notAfter: '20100101000000Z',
  });
  rogue = pki.issue('Test Platform Key', { subject: '/CN=Rogue Key' });
  // The same key and subject as the PK, another serial: a different certificate.
  pkReissued = pki.issue('Test Platform Key', { keyPath: pk.keyPath });
  appKey = pki.issue('App Signer');
  appKeySameName = pki.issue('App Signer');
});

afterAll(() => pki.dispose());

function newStore(authEnforce = true): VariableStore {
  return VariableStore.create({ platform: { secureBoot: true, authEnforce }, authenticator: createAuthenticator() });
}

interface Write extends SignedWrite {
  /** Send these bytes instead of building them. */
  readonly data?: Uint8Array;
}

function write(store: VariableStore, w: Write): SetOutcome {
  const data = w.data ?? authenticated(pki, w);
  const attributes = (w.attributes ?? ATTRS) | (w.append === true ? Attr.APPEND_WRITE : 0);
  const outcome = store.setVariable(utf16le(w.name), w.guid ?? guidFor(w.name), attributes, data);
  outcome.pending?.commit();
  return outcome;
}

function expectStatus(outcome: SetOutcome, status: bigint): void {
  expect(statusName(outcome.status), outcome.reason).toBe(statusName(status));
}

function esl(...certs: Issued[]): Uint8Array {
  return serializeSignatureLists(certs.map((c) => signatureListOfCertificate(c.der, Guids.MICROSOFT)));
}

function hashes(...values: number[]): Uint8Array {
  return serializeSignatureLists([
    signatureListOfHashes(
      Guids.CERT_SHA256,
      values.map((v) => new Uint8Array(32).fill(v)),
      Guids.MICROSOFT,
    ),
  ]);
}

function byte(store: VariableStore, name: string): number | undefined {
  return store.getVariable(utf16le(name), Guids.GLOBAL_VARIABLE)?.data[0];
}

function modes(store: VariableStore): {
  setup: number | undefined;
  secureBoot: number | undefined;
  deployed: number | undefined;
} {
  return {
    setup: byte(store, 'SetupMode'),
    secureBoot: byte(store, 'SecureBoot'),
    deployed: byte(store, 'DeployedMode'),
  };
}

function value(store: VariableStore, name: string, guid = guidFor(name)) {
  return store.getVariable(utf16le(name), guid);
}

/** A store in user mode: KEK = {Test KEK, Test KEK CA}, db = {hash 1}, PK = Test Platform Key. */
function enrolled(authEnforce = true): VariableStore {
  const store = newStore(authEnforce);
  expectStatus(write(store, { name: 'db', payload: hashes(1), timestamp: time(2020) }), EfiStatus.SUCCESS);
  expectStatus(write(store, { name: 'KEK', payload: esl(kek, kekCa), timestamp: time(2020) }), EfiStatus.SUCCESS);
  expectStatus(write(store, { name: 'PK', payload: esl(pk), timestamp: time(2020), signer: pk }), EfiStatus.SUCCESS);
  return store;
}

describe('Secure Boot keys through VariableStore', () => {
  it('enrols unsigned keys in setup mode, then PK turns on user mode', () => {
    const store = newStore();
    expect(modes(store)).toEqual({ setup: 1, secureBoot: 0, deployed: 0 });
    // Setup mode: no signature needed (edk2, PcdRequireSelfSignedPk=FALSE), any signature accepted.
    expectStatus(write(store, { name: 'KEK', payload: esl(kek), timestamp: time(2021) }), EfiStatus.SUCCESS);
    expectStatus(
      write(store, { name: 'db', payload: hashes(1), timestamp: time(2021), signer: rogue }),
      EfiStatus.SUCCESS,
    );
    // ...and no timestamp order either.
    expectStatus(write(store, { name: 'db', payload: hashes(2), timestamp: time(2000) }), EfiStatus.SUCCESS);
    // The payload must still be a well-formed database.
    expectStatus(
      write(store, { name: 'KEK', payload: Uint8Array.of(1, 2, 3), timestamp: time(2022) }),
      EfiStatus.INVALID_PARAMETER,
    );
    expectStatus(
      write(store, { name: 'PK', payload: esl(pk, rogue), timestamp: time(2022) }),
      EfiStatus.INVALID_PARAMETER,
    );
    expectStatus(write(store, { name: 'PK', payload: hashes(1), timestamp: time(2022) }), EfiStatus.INVALID_PARAMETER);
    expect(modes(store)).toEqual({ setup: 1, secureBoot: 0, deployed: 0 });

    expectStatus(write(store, { name: 'PK', payload: esl(pk), timestamp: time(2022) }), EfiStatus.SUCCESS);
    expect(modes(store)).toEqual({ setup: 0, secureBoot: 1, deployed: 1 });
    expect(value(store, 'PK')?.data).toEqual(esl(pk));
    expect(parseEfiTime(value(store, 'PK')!.timestamp)?.year).toBe(2022);
  });

  it('requires the PK, byte for byte, to sign PK and KEK in user mode', () => {
    const store = enrolled();
    const kekUpdate = { name: 'KEK', payload: esl(kek), timestamp: time(2023) };
    const byRogue = write(store, { ...kekUpdate, signer: rogue });
    expectStatus(byRogue, EfiStatus.SECURITY_VIOLATION);
    expect(byRogue.reason).toMatch(
      /KEK must be signed by the PK: signed by "CN=Rogue Key".*expected the enrolled PK "CN=Test Platform Key"/,
    );
    expectStatus(write(store, { ...kekUpdate, signer: kek }), EfiStatus.SECURITY_VIOLATION);
    expectStatus(write(store, { ...kekUpdate, signer: pkReissued }), EfiStatus.SECURITY_VIOLATION);
    expectStatus(write(store, { ...kekUpdate }), EfiStatus.SECURITY_VIOLATION); // unsigned
    expectStatus(write(store, { ...kekUpdate, signer: pk }), EfiStatus.SUCCESS);
    expect(value(store, 'KEK')?.data).toEqual(esl(kek));
    expectStatus(
      write(store, { name: 'PK', payload: esl(pk), timestamp: time(2023), signer: rogue }),
      EfiStatus.SECURITY_VIOLATION,
    );
    expectStatus(write(store, { name: 'PK', payload: esl(pk), timestamp: time(2023), signer: pk }), EfiStatus.SUCCESS);
  });

  it('lets the PK or any KEK certificate (directly or through a chain) sign db, dbx and dbt', () => {
    const store = enrolled();
    expectStatus(
      write(store, { name: 'db', payload: hashes(2), timestamp: time(2021), signer: kek }),
      EfiStatus.SUCCESS,
    );
    expectStatus(
      write(store, { name: 'db', payload: hashes(3), timestamp: time(2022), signer: pk }),
      EfiStatus.SUCCESS,
    );
    expectStatus(
      write(store, { name: 'db', payload: hashes(4), timestamp: time(2023), signer: dbSigner, extra: [dbInter] }),
      EfiStatus.SUCCESS,
    );
    // The signer's certificate expired in 2010: dates are not checked.
    expectStatus(
      write(store, { name: 'db', payload: hashes(5), timestamp: time(2024), signer: expiredDbSigner, extra: [kekCa] }),
      EfiStatus.SUCCESS,
    );
    // Without its intermediate in the message the signer does not chain to the KEK CA.
    const lost = write(store, { name: 'db', payload: hashes(6), timestamp: time(2025), signer: dbSigner });
    expectStatus(lost, EfiStatus.SECURITY_VIOLATION);
    expect(lost.reason).toMatch(
      /signed by "CN=Test db Signer".*chains to none of them; allowed: "CN=Test Platform Key".*"CN=Test KEK".*"CN=Test KEK CA"/,
    );
    expectStatus(
      write(store, { name: 'dbx', payload: hashes(9), timestamp: time(2021), signer: rogue }),
      EfiStatus.SECURITY_VIOLATION,
    );
    expectStatus(
      write(store, { name: 'dbx', payload: hashes(9), timestamp: time(2021), signer: kek }),
      EfiStatus.SUCCESS,
    );
    expectStatus(
      write(store, { name: 'dbt', payload: hashes(9), timestamp: time(2021), signer: kek }),
      EfiStatus.SUCCESS,
    );
    expectStatus(
      write(store, {
        name: 'dbx',
        payload: hashes(9),
        timestamp: time(2022),
        signer: kek,
        signedAttributes: true,
        wrapped: true,
      }),
      EfiStatus.SUCCESS,
    );
  });

  it('needs strictly newer timestamps, except for appends, which keep the later one', () => {
    const store = enrolled();
    const update = { name: 'db', payload: hashes(2), timestamp: time(2022, 6, 1, 12, 0, 0), signer: kek } as const;
    const data = authenticated(pki, update);
    expectStatus(write(store, { ...update, data }), EfiStatus.SUCCESS);
    const replay = write(store, { ...update, data });
    expectStatus(replay, EfiStatus.SECURITY_VIOLATION);
    expect(replay.reason).toMatch(/timestamp 2022-06-01T12:00:00 is not later than the stored 2022-06-01T12:00:00/);
    expectStatus(write(store, { ...update, timestamp: time(2022, 6, 1, 11, 59, 59) }), EfiStatus.SECURITY_VIOLATION);
    expectStatus(write(store, { ...update, timestamp: time(2022, 6, 1, 12, 0, 1) }), EfiStatus.SUCCESS);

    expectStatus(
      write(store, { name: 'db', payload: hashes(3), timestamp: time(2001), signer: kek, append: true }),
      EfiStatus.SUCCESS,
    );
    const db = value(store, 'db')!;
    expect(db.data).toEqual(Uint8Array.from([...hashes(2), ...hashes(3)]));
    expect(parseEfiTime(db.timestamp)).toMatchObject({ year: 2022, second: 1 });
    expectStatus(
      write(store, { name: 'db', payload: hashes(4), timestamp: time(2030), signer: kek, append: true }),
      EfiStatus.SUCCESS,
    );
    expect(parseEfiTime(value(store, 'db')!.timestamp)?.year).toBe(2030);
  });

  it('de-duplicates appends to signature databases, and checks the size limit after the merge', () => {
    const store = enrolled();
    expectStatus(
      write(store, { name: 'dbx', payload: hashes(1, 2), timestamp: time(2021), signer: kek }),
      EfiStatus.SUCCESS,
    );
    expectStatus(
      write(store, { name: 'dbx', payload: hashes(2, 3), timestamp: time(2021), signer: kek, append: true }),
      EfiStatus.SUCCESS,
    );
    expect(value(store, 'dbx')?.data).toEqual(Uint8Array.from([...hashes(1, 2), ...hashes(3)]));
    expectStatus(
      write(store, { name: 'dbx', payload: hashes(1, 3), timestamp: time(2021), signer: kek, append: true }),
      EfiStatus.SUCCESS,
    );
    expect(value(store, 'dbx')?.data).toEqual(Uint8Array.from([...hashes(1, 2), ...hashes(3)]));
    // KEK appends are de-duplicated too (edk2), and signed by the PK.
    expectStatus(
      write(store, { name: 'KEK', payload: esl(kek, rogue), timestamp: time(2021), signer: pk, append: true }),
      EfiStatus.SUCCESS,
    );
    expect(value(store, 'KEK')?.data).toEqual(Uint8Array.from([...esl(kek, kekCa), ...esl(rogue)]));

    // 1100 hashes (52828 bytes) fit; 200 more would not, unless they are already there.
    const big = serializeSignatureLists([
      signatureListOfHashes(
        Guids.CERT_SHA256,
        Array.from({ length: 1100 }, (_, i) => sha(i)),
        Guids.MICROSOFT,
      ),
    ]);
    expectStatus(write(store, { name: 'dbx', payload: big, timestamp: time(2022), signer: kek }), EfiStatus.SUCCESS);
    const more = serializeSignatureLists([
      signatureListOfHashes(
        Guids.CERT_SHA256,
        Array.from({ length: 200 }, (_, i) => sha(i + 1000)),
        Guids.MICROSOFT,
      ),
    ]);
    const tooBig = write(store, { name: 'dbx', payload: more, timestamp: time(2022), signer: kek, append: true });
    expectStatus(tooBig, EfiStatus.OUT_OF_RESOURCES);
    const already = serializeSignatureLists([
      signatureListOfHashes(
        Guids.CERT_SHA256,
        Array.from({ length: 200 }, (_, i) => sha(i + 500)),
        Guids.MICROSOFT,
      ),
    ]);
    expectStatus(
      write(store, { name: 'dbx', payload: already, timestamp: time(2022), signer: kek, append: true }),
      EfiStatus.SUCCESS,
    );
    expect(value(store, 'dbx')?.data).toEqual(big);
  });

  it('refuses an append to the PK and malformed databases even when correctly signed', () => {
    const store = enrolled();
    expectStatus(
      write(store, { name: 'PK', payload: esl(rogue), timestamp: time(2023), signer: pk, append: true }),
      EfiStatus.INVALID_PARAMETER,
    );
    expectStatus(
      write(store, { name: 'PK', payload: esl(pk, rogue), timestamp: time(2023), signer: pk }),
      EfiStatus.INVALID_PARAMETER,
    );
    expectStatus(
      write(store, { name: 'KEK', payload: Uint8Array.of(0, 1), timestamp: time(2023), signer: pk }),
      EfiStatus.INVALID_PARAMETER,
    );
    const ecEsl = esl(pki.issue('EC KEK', { key: 'ec' }));
    expectStatus(
      write(store, { name: 'KEK', payload: ecEsl, timestamp: time(2023), signer: pk }),
      EfiStatus.INVALID_PARAMETER,
    );
    // A signature made for an append does not authorise a replacement.
    const appendData = authenticated(pki, {
      name: 'db',
      payload: hashes(7),
      timestamp: time(2024),
      signer: kek,
      append: true,
    });
    expectStatus(
      write(store, { name: 'db', payload: hashes(7), timestamp: time(2024), data: appendData }),
      EfiStatus.SECURITY_VIOLATION,
    );
  });

  it('deletes with a signed empty payload: PK deletion returns to setup mode, keys stay', () => {
    const store = enrolled();
    // Plain deletes cannot touch authenticated variables.
    const plain = store.setVariable(utf16le('db'), Guids.IMAGE_SECURITY_DATABASE, 0, new Uint8Array(0));
    expect(plain.status).not.toBe(EfiStatus.SUCCESS);
    expectStatus(
      write(store, { name: 'db', payload: new Uint8Array(0), timestamp: time(2023), signer: rogue }),
      EfiStatus.SECURITY_VIOLATION,
    );
    expectStatus(
      write(store, { name: 'db', payload: new Uint8Array(0), timestamp: time(2023), signer: kek }),
      EfiStatus.SUCCESS,
    );
    expect(value(store, 'db')).toBeUndefined();

    expectStatus(
      write(store, { name: 'PK', payload: new Uint8Array(0), timestamp: time(2023), signer: kek }),
      EfiStatus.SECURITY_VIOLATION,
    );
    expect(modes(store)).toEqual({ setup: 0, secureBoot: 1, deployed: 1 });
    expectStatus(
      write(store, { name: 'PK', payload: new Uint8Array(0), timestamp: time(2023), signer: pk }),
      EfiStatus.SUCCESS,
    );
    expect(modes(store)).toEqual({ setup: 1, secureBoot: 0, deployed: 0 });
    expect(value(store, 'KEK')?.data).toEqual(esl(kek, kekCa));
    // Setup mode again: unsigned KEK, then a new PK by anyone.
    expectStatus(write(store, { name: 'KEK', payload: esl(rogue), timestamp: time(2000) }), EfiStatus.SUCCESS);
    expectStatus(
      write(store, { name: 'PK', payload: esl(rogue), timestamp: time(2000), signer: kek }),
      EfiStatus.SUCCESS,
    );
    expect(modes(store)).toEqual({ setup: 0, secureBoot: 1, deployed: 1 });
    expectStatus(
      write(store, { name: 'KEK', payload: esl(kek), timestamp: time(2001), signer: pk }),
      EfiStatus.SECURITY_VIOLATION,
    );
    expectStatus(
      write(store, { name: 'KEK', payload: esl(kek), timestamp: time(2001), signer: rogue }),
      EfiStatus.SUCCESS,
    );
  });

  it('accepts anything well-formed for PK/KEK/db/dbx when auth-enforce=false (permissive)', () => {
    const store = enrolled(false);
    expectStatus(write(store, { name: 'KEK', payload: esl(rogue), timestamp: time(1999) }), EfiStatus.SUCCESS);
    expectStatus(
      write(store, { name: 'db', payload: hashes(8), timestamp: time(1998), signer: rogue }),
      EfiStatus.SUCCESS,
    );
    expectStatus(
      write(store, { name: 'PK', payload: esl(rogue), timestamp: time(1997), append: true }),
      EfiStatus.INVALID_PARAMETER,
    );
    expectStatus(
      write(store, { name: 'KEK', payload: Uint8Array.of(9), timestamp: time(2030) }),
      EfiStatus.INVALID_PARAMETER,
    );
    const badPad = authenticated(pki, { name: 'KEK', payload: esl(kek), timestamp: time(2030) });
    badPad[7] = 1;
    expectStatus(
      write(store, { name: 'KEK', payload: esl(kek), timestamp: time(2030), data: badPad }),
      EfiStatus.SECURITY_VIOLATION,
    );
    expectStatus(write(store, { name: 'PK', payload: new Uint8Array(0), timestamp: time(1990) }), EfiStatus.SUCCESS);
    expect(modes(store)).toEqual({ setup: 1, secureBoot: 0, deployed: 0 });
  });
});

function sha(i: number): Uint8Array {
  return createHash('sha256').update(String(i)).digest();
}

describe('private authenticated variables through VariableStore', () => {
  const name = 'AppState';
  const attrs = ATTRS;
  const w = (payload: string, timestamp: Uint8Array, signer: Issued | undefined, append = false): Write => ({
    name,
    guid: VENDOR,
    attributes: attrs,
    payload: new TextEncoder().encode(payload),
    timestamp,
    ...(signer === undefined ? {} : { signer }),
    append,
  });

  it('binds the variable to its first signer with varstored digest', () => {
    const store = newStore();
    expectStatus(write(store, w('', time(2020), appKey)), EfiStatus.NOT_FOUND); // an empty create stores nothing
    expectStatus(write(store, w('one', time(2020), undefined)), EfiStatus.SECURITY_VIOLATION); // private variables are always signed
    expectStatus(write(store, w('one', time(2020), appKey)), EfiStatus.SUCCESS);
    const stored = store.getVariable(utf16le(name), VENDOR)!;
    const cert = parseCertificate(appKey.der);
    expect(cert.ok && stored.signerDigest).toEqual(cert.ok ? privateSignerDigest(cert.certificate) : undefined);
    // SHA-256("App Signer" || tbsCertificate), computed independently from the certificate bytes.
    expect(Buffer.from(stored.signerDigest).toString('hex')).toBe(expectedDigest('App Signer', appKey.der));

    expectStatus(write(store, w('two', time(2021), appKeySameName)), EfiStatus.SECURITY_VIOLATION); // same CN, other key
    expectStatus(write(store, w('two', time(2021), pk)), EfiStatus.SECURITY_VIOLATION);
    expectStatus(write(store, w('two', time(2020), appKey)), EfiStatus.SECURITY_VIOLATION); // not newer
    expectStatus(write(store, w('two', time(2021), appKey)), EfiStatus.SUCCESS);
    expectStatus(write(store, w('+three', time(2019), appKey, true)), EfiStatus.SUCCESS); // appends need no order
    expect(new TextDecoder().decode(store.getVariable(utf16le(name), VENDOR)!.data)).toBe('two+three');
    expect(store.getVariable(utf16le(name), VENDOR)!.signerDigest).toEqual(stored.signerDigest);

    expectStatus(write(store, w('', time(2022), appKeySameName)), EfiStatus.SECURITY_VIOLATION);
    expectStatus(write(store, w('', time(2022), appKey)), EfiStatus.SUCCESS);
    expect(store.getVariable(utf16le(name), VENDOR)).toBeUndefined();
    // Deleted: anyone may create it afresh.
    expectStatus(write(store, w('four', time(2000), appKeySameName)), EfiStatus.SUCCESS);
  });

  it('lets another signer update when permissive, keeping the first binding', () => {
    const store = newStore(false);
    expectStatus(write(store, w('one', time(2020), appKey)), EfiStatus.SUCCESS);
    const digest = store.getVariable(utf16le(name), VENDOR)!.signerDigest;
    expectStatus(write(store, w('two', time(2001), appKeySameName)), EfiStatus.SUCCESS);
    expect(store.getVariable(utf16le(name), VENDOR)!.signerDigest).toEqual(digest);
    // ...but it must still be a valid signature.
    const broken = authenticated(pki, w('three', time(2030), appKey));
    broken[broken.length - 1]! ^= 1;
    expectStatus(write(store, { ...w('three', time(2030), appKey), data: broken }), EfiStatus.SECURITY_VIOLATION);
  });
});

function expectedDigest(cn: string, der: Uint8Array): string {
  // tbsCertificate: the first element inside the outer SEQUENCE (long-form lengths as openssl writes them).
  const outerHeader = 2 + (der[1]! & 0x7f);
  const tbsLenBytes = der[outerHeader + 1]! & 0x7f;
  let tbsLen = 0;
  for (let i = 0; i < tbsLenBytes; i++) tbsLen = tbsLen * 256 + der[outerHeader + 2 + i]!;
  const tbs = der.subarray(outerHeader, outerHeader + 2 + tbsLenBytes + tbsLen);
  return createHash('sha256').update(cn).update(tbs).digest('hex');
}

describe("Microsoft's DBXUpdate through VariableStore", () => {
  const dbxUpdate = fixture('microsoft/DBXUpdate-amd64.bin');
  const kekCa2011 = fixture('microsoft/MicCorKEKCA2011_2011-06-24.der');

  function microsoftStore(): VariableStore {
    const store = newStore();
    const kekEsl = serializeSignatureLists([signatureListOfCertificate(kekCa2011, Guids.MICROSOFT)]);
    expectStatus(write(store, { name: 'KEK', payload: kekEsl, timestamp: time(2020) }), EfiStatus.SUCCESS);
    expectStatus(write(store, { name: 'PK', payload: esl(pk), timestamp: time(2020) }), EfiStatus.SUCCESS);
    return store;
  }

  it('applies as an append signed under KEK CA 2011, idempotently', () => {
    const store = microsoftStore();
    const dbx = utf16le('dbx');
    const first = store.setVariable(dbx, Guids.IMAGE_SECURITY_DATABASE, ATTRS | Attr.APPEND_WRITE, dbxUpdate);
    expectStatus(first, EfiStatus.SUCCESS);
    first.pending?.commit();
    const stored = store.getVariable(dbx, Guids.IMAGE_SECURITY_DATABASE)!;
    expect(stored.data.length).toBe(21292);
    expect(parseEfiTime(stored.timestamp)).toMatchObject({ year: 2010, month: 3, day: 6 });
    // Applying it again adds nothing (every hash is there) and needs no newer timestamp.
    const again = store.setVariable(dbx, Guids.IMAGE_SECURITY_DATABASE, ATTRS | Attr.APPEND_WRITE, dbxUpdate);
    expectStatus(again, EfiStatus.SUCCESS);
    expect(again.pending).toBeUndefined();
    expect(store.getVariable(dbx, Guids.IMAGE_SECURITY_DATABASE)!.data).toEqual(stored.data);
  });

  it('fails as a non-append write', () => {
    const store = microsoftStore();
    const r = store.setVariable(utf16le('dbx'), Guids.IMAGE_SECURITY_DATABASE, ATTRS, dbxUpdate);
    expectStatus(r, EfiStatus.SECURITY_VIOLATION);
    expect(r.reason).toMatch(/does not verify over the signed content/);
  });

  it('does not apply in user mode without KEK CA 2011', () => {
    const store = enrolled();
    const r = store.setVariable(utf16le('dbx'), Guids.IMAGE_SECURITY_DATABASE, ATTRS | Attr.APPEND_WRITE, dbxUpdate);
    expectStatus(r, EfiStatus.SECURITY_VIOLATION);
    expect(r.reason).toMatch(
      /signed by "C=US, ST=Washington, L=Redmond, O=Microsoft Corporation, CN=Microsoft Windows UEFI Key Exchange Key"/,
    );
  });

  it('an unsigned descriptor is not a signature in user mode', () => {
    const store = microsoftStore();
    const unsigned = buildAuthentication2(time(2030), new Uint8Array(0), hashes(1));
    const r = store.setVariable(utf16le('db'), Guids.IMAGE_SECURITY_DATABASE, ATTRS, unsigned);
    expectStatus(r, EfiStatus.SECURITY_VIOLATION);
    expect(r.reason).toMatch(/carries no signature/);
  });
});
