import {
  Guids,
  makeVariable,
  serializeSignatureLists,
  signatureListOfCertificate,
  utf16le,
  type AuthenticatedWrite,
  type StoreView,
  type Variable,
} from '@vmsb/efi';
import { EfiStatus } from '@vmsb/protocol';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { createAuthenticator, explainAuthenticatedWrite, privateSignerDigest } from './authenticator.js';
import { CertificateCache } from './cache.js';
import { children, readRoot } from './der.js';
import { parseCertificate } from './x509.js';
import { ATTRS, authenticated, guidFor, Pki, time, type Issued } from './testing/pki.js';

// The StoreView here is a plain map standing in for VariableStore's read-only view (get, setupMode,
// authEnforce); store.test.ts runs the same authenticator inside the real store.

let pki: Pki;
let pk: Issued;
let kekCa: Issued;
let signer: Issued;
let rogue: Issued;

beforeAll(() => {
  pki = new Pki();
  pk = pki.issue('Unit PK');
  kekCa = pki.issue('Unit KEK CA');
  signer = pki.issue('Unit db Signer', { issuer: kekCa });
  rogue = pki.issue('Unit Rogue');
});

afterAll(() => pki.dispose());

function variable(name: string, data: Uint8Array, timestamp = time(2020)): Variable {
  return makeVariable({ name: utf16le(name), guid: guidFor(name), attributes: ATTRS, data, timestamp });
}

function view(vars: readonly Variable[], setupMode = false, authEnforce = true): StoreView {
  return {
    get: (name, guid) => vars.find((v) => Buffer.compare(v.name, name) === 0 && Buffer.compare(v.guid, guid) === 0),
    setupMode,
    authEnforce,
  };
}

const esl = (...certs: Issued[]): Uint8Array =>
  serializeSignatureLists(certs.map((c) => signatureListOfCertificate(c.der, Guids.MICROSOFT)));

function userMode(): StoreView {
  return view([variable('PK', esl(pk)), variable('KEK', esl(kekCa))]);
}

function request(name: string, data: Uint8Array, extra: Partial<AuthenticatedWrite> = {}): AuthenticatedWrite {
  return { name: utf16le(name), guid: guidFor(name), attributes: ATTRS, append: false, data, ...extra };
}

describe('authenticator', () => {
  it('explains a success: signer, anchor, chain and who else could have signed', () => {
    const data = authenticated(pki, { name: 'db', payload: esl(rogue), timestamp: time(2021), signer, extra: [kekCa] });
    const e = createAuthenticator().explain(request('db', data), userMode());
    expect(e).toMatchObject({
      status: EfiStatus.SUCCESS,
      statusName: 'SUCCESS',
      code: undefined,
      kind: 'db',
      mode: 'user',
      append: false,
      timestamp: '2021-01-01T00:00:00',
    });
    expect(e.signer?.subject).toBe('CN=Unit db Signer');
    expect(e.trustedBy?.subject).toBe('CN=Unit KEK CA');
    expect(e.chain?.map((c) => c.subject)).toEqual(['CN=Unit db Signer', 'CN=Unit KEK CA']);
    expect(e.allowedSigners?.map((c) => c.subject)).toEqual(['CN=Unit PK', 'CN=Unit KEK CA']);
    expect(e.certificates?.map((c) => c.subject).sort()).toEqual(['CN=Unit KEK CA', 'CN=Unit db Signer']);
    expect(e.payloadSize).toBe(esl(rogue).length);
    expect(e.signatureChecks).toBe(2);
    expect(e.reason).toMatch(
      /^db \(d719b2cb-3d3a-4596-a3bc-dad00e67656f\): signed by "CN=Unit db Signer" \(sha256 [0-9a-f]{16}…\), trusted through "CN=Unit KEK CA"/,
    );
  });

  it('explains failures with a code, and names the expected and the actual signer', () => {
    const auth = createAuthenticator();
    const byRogue = auth.explain(
      request('KEK', authenticated(pki, { name: 'KEK', payload: esl(rogue), timestamp: time(2021), signer: rogue })),
      userMode(),
    );
    expect(byRogue).toMatchObject({ status: EfiStatus.SECURITY_VIOLATION, code: 'wrong-signer', kind: 'KEK' });
    expect(byRogue.signer?.subject).toBe('CN=Unit Rogue');
    expect(byRogue.allowedSigners?.map((c) => c.subject)).toEqual(['CN=Unit PK']);
    expect(byRogue.reason).toMatch(/signed by "CN=Unit Rogue".*expected the enrolled PK "CN=Unit PK"/);

    const stale = auth.explain(
      request('db', authenticated(pki, { name: 'db', payload: esl(rogue), timestamp: time(2019), signer: pk }), {
        existing: variable('db', esl(pk), time(2020)),
      }),
      userMode(),
    );
    expect(stale).toMatchObject({
      code: 'stale-timestamp',
      timestamp: '2019-01-01T00:00:00',
      storedTimestamp: '2020-01-01T00:00:00',
    });

    const unsigned = auth.explain(
      request('db', authenticated(pki, { name: 'db', payload: esl(rogue), timestamp: time(2021) })),
      userMode(),
    );
    expect(unsigned.code).toBe('no-signature');
    const garbage = authenticated(pki, { name: 'db', payload: esl(rogue), timestamp: time(2021), signer: pk });
    garbage[45]! ^= 0xff;
    expect(auth.explain(request('db', garbage), userMode()).code).toBe('malformed-signature');
    const tampered = authenticated(pki, { name: 'db', payload: esl(rogue), timestamp: time(2021), signer: pk });
    tampered[tampered.length - 1]! ^= 1;
    expect(auth.explain(request('db', tampered), userMode()).code).toBe('bad-signature');
    const list = auth.explain(
      request('db', authenticated(pki, { name: 'db', payload: Uint8Array.of(1), timestamp: time(2021), signer: pk })),
      userMode(),
    );
    expect(list).toMatchObject({ status: EfiStatus.INVALID_PARAMETER, code: 'malformed-list' });
    expect(auth.explain(request('db', Uint8Array.of(1, 2, 3)), userMode())).toMatchObject({
      code: 'malformed-descriptor',
      mode: 'user',
    });
    expect(explainAuthenticatedWrite(request('db', Uint8Array.of(1)), view([], true))).toMatchObject({
      code: 'malformed-descriptor',
      mode: 'setup',
    });
    expect(auth.explain(request('db', Uint8Array.of(1)), view([], false, false)).mode).toBe('permissive');
  });

  it("computes varstored's signer digest from the commonName's raw bytes, as OpenSSL hands them out", () => {
    const cert = (i: Issued) => {
      const r = parseCertificate(i.der);
      if (!r.ok) throw new Error(r.reason);
      return r.certificate;
    };
    const utf8 = cert(pki.issue('Digest UTF8', { subject: '/O=Org/CN=Zoë Signer/CN=Second' }));
    expect(Buffer.from(privateSignerDigest(utf8)!).toString('hex')).toBe(
      createHash('sha256').update(Buffer.from('Zoë Signer', 'utf8')).update(utf8.tbs).digest('hex'),
    );
    // A BMPString starts with a NUL byte: the C string OpenSSL returns is empty.
    const bmp = cert(pki.issue('Digest BMP', { subject: '/CN=Zoë', stringMask: 'pkix' }));
    expect(Buffer.from(privateSignerDigest(bmp)!).toString('hex')).toBe(
      createHash('sha256').update(bmp.tbs).digest('hex'),
    );
    expect(privateSignerDigest(cert(pki.issue('No CN', { subject: '/O=Nameless' })))).toBeUndefined();
  });

  it('guards the attributes of PK/KEK/db/dbx/dbt itself', () => {
    const data = authenticated(pki, {
      name: 'db',
      payload: esl(rogue),
      timestamp: time(2021),
      signer: pk,
      attributes: 0x23,
    });
    const r = createAuthenticator().verify(request('db', data, { attributes: 0x23 }), userMode());
    expect(r.status).toBe(EfiStatus.INVALID_PARAMETER);
    expect(r.reason).toMatch(/NV\|BS\|RT\|AT \(0x27\), got 0x23/);
  });

  it('returns private copies and a result only on success', () => {
    const data = authenticated(pki, { name: 'db', payload: esl(rogue), timestamp: time(2021), signer: pk });
    const req = request('db', data);
    const r = createAuthenticator().verify(req, userMode());
    expect(r.status).toBe(EfiStatus.SUCCESS);
    const payload = r.payload!.slice();
    data.fill(0);
    expect(r.payload).toEqual(payload);
    expect(r.timestamp).toEqual(time(2021));
    expect(r.signerDigest).toBeUndefined();
    const refused = createAuthenticator().verify(
      request('KEK', authenticated(pki, { name: 'KEK', payload: esl(rogue), timestamp: time(2021), signer: rogue })),
      userMode(),
    );
    expect(refused.payload).toBeUndefined();
    expect(refused.timestamp).toBeUndefined();
  });

  it('never throws, and approves only well-formed writes, whatever the guest sends', () => {
    const auth = createAuthenticator();
    const valid = authenticated(pki, {
      name: 'db',
      payload: esl(rogue),
      timestamp: time(2021),
      signer: signer,
      extra: [kekCa],
    });
    const names = fc.constantFrom('PK', 'KEK', 'db', 'dbx', 'Private');
    const mutation = fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 1, max: 255 })), { maxLength: 4 });
    fc.assert(
      fc.property(
        names,
        mutation,
        fc.boolean(),
        fc.boolean(),
        fc.boolean(),
        fc.nat(valid.length),
        (name, flips, setup, enforce, append, cut) => {
          const data = valid.slice(0, Math.max(cut, 0) === 0 ? valid.length : cut);
          for (const [at, x] of flips) if (at < data.length) data[at]! ^= x;
          const r = auth.verify(
            request(name, data, { append }),
            view(setup ? [] : [variable('PK', esl(pk)), variable('KEK', esl(kekCa))], setup, enforce),
          );
          expect(typeof r.status).toBe('bigint');
          expect(typeof r.reason).toBe('string');
          if (r.status === EfiStatus.SUCCESS) {
            expect(r.payload).toBeInstanceOf(Uint8Array);
            expect(r.timestamp?.length).toBe(16);
          }
        },
      ),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), names, (data, name) => {
        const r = auth.verify(request(name, data), userMode());
        expect(r.status).not.toBe(EfiStatus.SUCCESS);
      }),
      { numRuns: 500 },
    );
  });
});

describe('bounded work against a hostile KEK', () => {
  class CountingCache extends CertificateCache {
    parses = 0;
    override parse(der: Uint8Array) {
      this.parses++;
      return super.parse(der);
    }
  }
  /** `n` copies of `cert` with distinct serial numbers (signatures left stale: nothing here checks them). */
  const variants = (cert: Issued, n: number): Uint8Array[] => {
    const serial = children(children(readRoot(cert.der))[0]!)[1]!;
    return Array.from({ length: n }, (_, i) => {
      const der = cert.der.slice();
      der[serial.contentEnd - 1] = i;
      der[serial.contentEnd - 2] = 0x70;
      return der;
    });
  };
  const kekOf = (ders: Uint8Array[]): Uint8Array =>
    serializeSignatureLists(ders.map((d) => signatureListOfCertificate(d, Guids.MICROSOFT)));

  it('parses only KEK certificates a chain from the message can reach, and a few to name', () => {
    const kek = kekOf([...variants(pk, 60), kekCa.der]);
    const data = authenticated(pki, { name: 'db', payload: esl(rogue), timestamp: time(2021), signer, extra: [kekCa] });
    const cache = new CountingCache();
    const r = createAuthenticator({ certificateCache: cache }).verify(
      request('db', data),
      view([variable('PK', esl(pk)), variable('KEK', kek)]),
    );
    expect(r.status).toBe(EfiStatus.SUCCESS);
    // The PK, up to 8 allowed signers named, and the KEK CA that verifies: not the 60 others.
    expect(cache.parses).toBeGreaterThan(0);
    expect(cache.parses).toBeLessThanOrEqual(10);
    const refused = authenticated(pki, { name: 'db', payload: esl(rogue), timestamp: time(2021), signer: rogue });
    const cache2 = new CountingCache();
    const e = createAuthenticator({ certificateCache: cache2 }).explain(
      request('db', refused),
      view([variable('PK', esl(pk)), variable('KEK', kek)]),
    );
    expect(e.status).toBe(EfiStatus.SECURITY_VIOLATION);
    expect(e.reason).toMatch(/and 54 more KEK entries/);
    // An explanation lists every allowed signer (the administrator asked for all of them).
    expect(e.allowedSigners).toHaveLength(62);
  });

  it('tries at most 8 KEK certificates named as the issuer', () => {
    const decoy = pki.issue('Unit KEK CA', { key: 'rsa:1024' });
    const kek = kekOf([...variants(decoy, 40), kekCa.der]);
    const data = authenticated(pki, { name: 'db', payload: esl(rogue), timestamp: time(2021), signer });
    const cache = new CountingCache();
    const r = createAuthenticator({ certificateCache: cache }).verify(
      request('db', data),
      view([variable('PK', esl(pk)), variable('KEK', kek)]),
    );
    // edk2 would reach the 41st entry; 8 tries bound the work a guest-built KEK can cause.
    expect(r.status).toBe(EfiStatus.SECURITY_VIOLATION);
    expect(cache.parses).toBeGreaterThan(0);
    expect(cache.parses).toBeLessThanOrEqual(10);
    // With the KEK CA among the first 8, the same write verifies.
    const early = kekOf([...variants(decoy, 5), kekCa.der, ...variants(decoy, 40).slice(5)]);
    const ok = createAuthenticator().verify(
      request('db', data),
      view([variable('PK', esl(pk)), variable('KEK', early)]),
    );
    expect(ok.status).toBe(EfiStatus.SUCCESS);
  });
});
