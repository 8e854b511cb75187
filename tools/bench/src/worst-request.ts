/**
 * worst-request: the most expensive guest requests known, each fitting the 64 KiB guest buffer,
 * dispatched through the daemon's store and authenticator (VariableStore.dispatch, what the
 * daemon runs for every request), against one verification of Microsoft's DBXUpdate measured
 * in the same run. Every request is distinct (new names, serials, timestamps), so no cache helps.
 */
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { clearSignedDataCache, createAuthenticator } from '@vmsb/auth';
import { Attrs, Guids, VariableStore, guid, utf16le } from '@vmsb/efi';
import { testKeys } from '@vmsb/fuzz';
import { buildSignatureList, createAuthenticatedVariable, createCertificate } from '@vmsb/keys';
import { EfiStatus, Limits, encodeRequest, statusName } from '@vmsb/protocol';
import { OWNER, dbxUpdateAppend } from './dbx-update.js';
import { median, result, type BenchResult } from './stats.js';

interface Context {
  readonly rounds: number;
  readonly log: (line: string) => void;
}

const PRIVATE_GUID = 'b1a5e3c2-8f44-4d1e-9a7b-3c2d1e0f4a5b';

function setVariableFrame(name: string, guid: Uint8Array, attributes: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(Limits.BUFFER_SIZE);
  encodeRequest({ command: 'SetVariable', name: utf16le(name), guid, data, attributes, atRuntime: false }, out);
  return out;
}

/** An EFI_VARIABLE_AUTHENTICATION_2 without a signature (dwLength 24): what setup mode takes. */
function unsigned(payload: Uint8Array, second: number): Uint8Array {
  const out = new Uint8Array(40 + payload.length);
  const v = new DataView(out.buffer);
  v.setUint16(0, 2030, true);
  out[2] = 1;
  out[3] = 1;
  out[6] = second % 60;
  v.setUint32(16, 24, true);
  v.setUint16(20, 0x0200, true);
  v.setUint16(22, 0x0ef1, true);
  out.set(Guids.CERT_PKCS7, 24);
  out.set(payload, 40);
  return out;
}

/** A small certificate (RSA-512, no extensions beyond the defaults) whose serial the caller varies. */
function smallCertificates(count: number, round: number, key: KeyObject): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const pem = createCertificate({ cn: 'x', key, serial: BigInt(round * 100_000 + i + 1) }).der;
    out.push(pem);
  }
  return out;
}

interface Candidate {
  readonly name: string;
  readonly what: string;
  /** A store in the state the request needs, and the request (distinct for each `round`). */
  prepare(round: number): { store: VariableStore; frame: Uint8Array; expect: bigint };
}

export function worstRequest(ctx: Context): BenchResult {
  const keys = testKeys();
  const small = generateKeyPairSync('rsa', { modulusLength: 512, publicExponent: 0x10001 }).privateKey;
  const signing = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 0x10001 }).privateKey;
  const platform = { secureBoot: true, authEnforce: true };
  const template = createCertificate({ cn: 'x', key: small, serial: 0x7fffffn }).der;
  // One certificate per EFI_SIGNATURE_LIST, as many lists as a variable's data may hold.
  const perEntry = 28 + 16 + template.length;
  const x509Count = Math.floor(Limits.DATA_MAX / perEntry);
  const certificatePool = Array.from({ length: 40 }, (_, r) => smallCertificates(x509Count, r, small));

  // The signer of the private-variable requests, issued by "CN=Hostile Issuer"; 31 more carried
  // certificates with that same subject but other keys, so each is a candidate issuer the chain
  // search must read in full before it finds none fits.
  const issuerKeys = Array.from({ length: 31 }, () => generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey);
  const issuers = issuerKeys.map((k) => createCertificate({ cn: 'Hostile Issuer', key: k }));
  const signer = createCertificate({
    cn: 'Hostile Signer',
    key: signing,
    issuer: { certificate: issuers[0]!.pem, key: issuerKeys[0]! },
  });
  const decoys = issuerKeys.map((k, i) =>
    createCertificate({
      cn: 'Hostile Issuer',
      key: k,
      issuer: { certificate: issuers[(i + 1) % issuers.length]!.pem, key: issuerKeys[(i + 1) % issuers.length]! },
    }),
  );
  const privateAuth = (round: number, chain: readonly string[]): { name: string; data: Uint8Array } => {
    const name = `Hostile${round}`;
    const data = createAuthenticatedVariable({
      name,
      guid: PRIVATE_GUID,
      attributes: Attrs.NV_BS_RT_AT,
      timestamp: new Date(Date.UTC(2030, 0, 1, 0, 0, round % 60)),
      payload: createHash('sha256').update(name).digest(),
      key: signing,
      certificate: signer.pem,
      chain,
      checkPayload: false,
    });
    return { name, data };
  };
  const privateFrame = (w: { name: string; data: Uint8Array }): Uint8Array =>
    setVariableFrame(w.name, guid(PRIVATE_GUID), Attrs.NV_BS_RT_AT, w.data);
  // KEK entries named "CN=Hostile Issuer", as the signer's issuer, each distinct.
  const issuerTemplate = createCertificate({ cn: 'Hostile Issuer', key: small, serial: 0x7fffffn }).der;
  const issuerCount = Math.floor(Limits.DATA_MAX / (28 + 16 + issuerTemplate.length));
  const issuerPool = Array.from({ length: 40 }, (_, r) =>
    Array.from(
      { length: issuerCount },
      (_, i) => createCertificate({ cn: 'Hostile Issuer', key: small, serial: BigInt(r * 100_000 + i + 1) }).der,
    ),
  );
  const setupStore = () => VariableStore.create({ platform, authenticator: createAuthenticator() });

  const candidates: Candidate[] = [
    {
      name: 'setup-kek-x509',
      what: `setup-mode KEK of ${x509Count} distinct X.509 entries`,
      prepare: (round) => {
        const payload = buildSignatureList({ type: 'x509', certificates: certificatePool[round % 40]!, owner: OWNER });
        return {
          store: setupStore(),
          frame: setVariableFrame('KEK', Guids.GLOBAL_VARIABLE, Attrs.NV_BS_RT_AT, unsigned(payload, round)),
          expect: EfiStatus.SUCCESS,
        };
      },
    },
    {
      name: 'setup-kek-x509-last-bad',
      what: `the same, the last entry not a certificate`,
      prepare: (round) => {
        const certs = certificatePool[round % 40]!.slice();
        certs[certs.length - 1] = new Uint8Array(template.length);
        const payload = buildSignatureList({ type: 'x509', certificates: [certs[0]!], owner: OWNER });
        const lists = certs.map((c) => {
          const l = payload.slice(0, 44);
          return Buffer.concat([l, c]);
        });
        return {
          store: setupStore(),
          frame: setVariableFrame(
            'KEK',
            Guids.GLOBAL_VARIABLE,
            Attrs.NV_BS_RT_AT,
            unsigned(Buffer.concat(lists), round),
          ),
          expect: EfiStatus.INVALID_PARAMETER,
        };
      },
    },
    {
      name: 'private-issuer-candidates',
      what: 'new private variable, signer + 31 carried certificates all named as its issuer',
      prepare: (round) => ({
        store: setupStore(),
        frame: privateFrame(
          privateAuth(
            round,
            decoys.map((d) => d.pem),
          ),
        ),
        expect: EfiStatus.SUCCESS,
      }),
    },
    {
      name: 'user-db-hostile-kek',
      what: `user-mode db append by an unknown signer, KEK holding ${issuerCount} distinct X.509 entries named as its issuer`,
      prepare: (round) => {
        // Setup mode: the guest enrols its KEK (certificates named like the signer's issuer), then a PK.
        const store = setupStore();
        const kek = buildSignatureList({ type: 'x509', certificates: issuerPool[round % 40]!, owner: OWNER });
        const pk = buildSignatureList({ type: 'x509', certificates: [keys.PK.certificate], owner: OWNER });
        for (const [name, payload] of [
          ['KEK', kek],
          ['PK', pk],
        ] as const) {
          const o = store.dispatch(
            setVariableFrame(name, Guids.GLOBAL_VARIABLE, Attrs.NV_BS_RT_AT, unsigned(payload, 1)),
          );
          if (o.status !== EfiStatus.SUCCESS) throw new Error(`${name}: ${statusName(o.status)}`);
          o.pending?.commit();
        }
        const data = createAuthenticatedVariable({
          name: 'db',
          append: true,
          timestamp: new Date(Date.UTC(2030, 0, 1, 0, 0, round % 60)),
          payload: buildSignatureList({
            type: 'sha256',
            hashes: [new Uint8Array(createHash('sha256').update(`db ${round}`).digest())],
            owner: OWNER,
          }),
          key: signing,
          certificate: signer.pem,
          checkPayload: false,
        });
        return {
          store,
          frame: setVariableFrame('db', Guids.IMAGE_SECURITY_DATABASE, Attrs.NV_BS_RT_AT | 0x40, data),
          expect: EfiStatus.SECURITY_VIOLATION,
        };
      },
    },
    {
      name: 'private-digest-algorithms',
      what: 'new private variable whose SignedData lists 4000 digest algorithms',
      prepare: (round) => {
        const w = privateAuth(round, []);
        return {
          store: setupStore(),
          frame: privateFrame({ name: w.name, data: bloatDigestAlgorithms(w.data, 4000) }),
          expect: EfiStatus.SECURITY_VIOLATION,
        };
      },
    },
    {
      name: 'private-nested-indefinite',
      what: 'new private variable whose PKCS#7 nests 32 indefinite lengths around 8,000 elements',
      prepare: (round) => {
        const w = privateAuth(round, []);
        return {
          store: setupStore(),
          frame: privateFrame({ name: w.name, data: withCertData(w.data, nestedIndefinite(32, 8000)) }),
          expect: EfiStatus.SECURITY_VIOLATION,
        };
      },
    },
  ];

  // Baseline: Microsoft's DBXUpdate verified by a fresh parse (as when it first arrives).
  const { view, request: dbxRequest } = dbxUpdateAppend();
  const authenticator = createAuthenticator();
  const dbxOnce = (): number => {
    clearSignedDataCache();
    const started = performance.now();
    const r = authenticator.verify(dbxRequest, view);
    const ms = performance.now() - started;
    if (r.status !== EfiStatus.SUCCESS) throw new Error(`DBXUpdate does not verify: ${r.reason}`);
    return ms;
  };

  const measure = (c: Candidate, round: number): number => {
    const { store, frame, expect } = c.prepare(round);
    const started = performance.now();
    const outcome = store.dispatch(frame);
    const ms = performance.now() - started;
    if (outcome.status !== expect)
      throw new Error(`${c.name}: ${statusName(outcome.status)}, expected ${statusName(expect)}`);
    return ms;
  };

  // Warm-up: both paths compiled before anything counts.
  for (let i = 0; i < 3; i++) {
    dbxOnce();
    for (const c of candidates) measure(c, 1000 + i);
  }
  const rounds = Math.max(ctx.rounds, 9);
  const base: number[] = [];
  const per = new Map<string, number[]>(candidates.map((c) => [c.name, []]));
  for (let r = 0; r < rounds; r++) {
    base.push(dbxOnce());
    for (const c of candidates) per.get(c.name)!.push(measure(c, r));
  }
  const baseMedian = median(base);
  const lines = candidates.map((c) => {
    const m = median(per.get(c.name)!);
    return { c, m, line: `${c.name} ${m.toFixed(2)} ms (${(m / baseMedian).toFixed(2)}x): ${c.what}` };
  });
  lines.sort((a, b) => b.m - a.m);
  const worst = lines[0]!;
  for (const l of lines) ctx.log(`worst-request: ${l.line}`);
  const res = result({
    name: 'worst-request',
    baseline: 'dbxupdate-verify',
    unit: 'ms',
    samples: { subject: per.get(worst.c.name)!, base },
    detail: '',
  });
  return {
    ...res,
    detail:
      `${worst.m <= 20 ? 'within' : 'ABOVE'} the 20 ms per request target here; the costliest request found, ${worst.c.name} (${worst.c.what}), through VariableStore.dispatch, against one ` +
      `fresh-parse verification of Microsoft's DBXUpdate (${baseMedian.toFixed(2)} ms); all: ${lines.map((l) => l.line).join('; ')}`,
  };
}

/** The descriptor's SignedData with its digestAlgorithms SET replaced by `count` SHA-256 entries. */
function bloatDigestAlgorithms(data: Uint8Array, count: number): Uint8Array {
  const dwLength = new DataView(data.buffer).getUint32(16, true);
  const certData = data.subarray(40, 16 + dwLength);
  const payload = data.subarray(16 + dwLength);
  // Bare SignedData: 30 len { version, digestAlgorithms SET, ... }.
  const header = certData[1]! < 0x80 ? 2 : 2 + (certData[1]! & 0x7f);
  const body = certData.subarray(header);
  const versionEnd = 2 + body[1]!;
  const setHeader = body[versionEnd + 1]! < 0x80 ? 2 : 2 + (body[versionEnd + 1]! & 0x7f);
  let setLength = 0;
  if (body[versionEnd + 1]! < 0x80) setLength = body[versionEnd + 1]!;
  else for (let i = 0; i < (body[versionEnd + 1]! & 0x7f); i++) setLength = setLength * 256 + body[versionEnd + 2 + i]!;
  const rest = body.subarray(versionEnd + setHeader + setLength);
  const sha256 = Uint8Array.from([
    0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00,
  ]);
  const algorithms = element(0x31, Buffer.concat(Array.from({ length: count }, () => sha256)));
  const signedData = element(0x30, Buffer.concat([body.subarray(0, versionEnd), algorithms, rest]));
  const auth = new Uint8Array(40 + signedData.length + payload.length);
  auth.set(data.subarray(0, 40));
  new DataView(auth.buffer).setUint32(16, 24 + signedData.length, true);
  auth.set(signedData, 40);
  auth.set(payload, 40 + signedData.length);
  return auth;
}

/**
 * `depth` SEQUENCEs of indefinite length, one inside the other, around `count` NULLs: what a
 * reader that finds an indefinite length's end by reading its children reads once per level.
 */
function nestedIndefinite(depth: number, count: number): Uint8Array {
  const open = Buffer.alloc(2 * depth);
  for (let i = 0; i < depth; i++) open.set([0x30, 0x80], 2 * i);
  const nulls = Buffer.alloc(2 * count);
  for (let i = 0; i < count; i++) nulls[2 * i] = 0x05;
  return Buffer.concat([open, nulls, Buffer.alloc(2 * depth)]);
}

/** The descriptor of `data` with `certData` in place of its PKCS#7. */
function withCertData(data: Uint8Array, certData: Uint8Array): Uint8Array {
  const dwLength = new DataView(data.buffer, data.byteOffset).getUint32(16, true);
  const payload = data.subarray(16 + dwLength);
  const auth = new Uint8Array(40 + certData.length + payload.length);
  auth.set(data.subarray(0, 40));
  new DataView(auth.buffer).setUint32(16, 24 + certData.length, true);
  auth.set(certData, 40);
  auth.set(payload, 40 + certData.length);
  return auth;
}

function element(tag: number, content: Uint8Array): Uint8Array {
  const n = content.length;
  const head =
    n < 0x80
      ? [tag, n]
      : n < 0x100
        ? [tag, 0x81, n]
        : n < 0x10000
          ? [tag, 0x82, n >> 8, n & 0xff]
          : [tag, 0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  return Buffer.concat([Uint8Array.from(head), content]);
}
