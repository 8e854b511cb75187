// How long verifying Microsoft's DBXUpdate takes, against one raw RSA verification of the same
// signature in the same run: cold (the parsed-signature cache cleared before each iteration, so
// the bounded DER reader parses the message every time) and warm (the guest re-sends the same update).
// Run after `pnpm build`: `pnpm bench`.
import { createHash, verify, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Guids, makeVariable, utf16le } from '@vmsb/efi';
import {
  clearSignedDataCache,
  createAuthenticator,
  parseAuthentication2,
  parseCertificate,
  parseSignedData,
  signedContent,
  verifyWithAnchor,
  VerificationContext,
  findSigner,
} from '../dist/index.js';

const dir = new URL('../fixtures/microsoft/', import.meta.url);
const dbxUpdate = new Uint8Array(readFileSync(new URL('DBXUpdate-amd64.bin', dir)));
const kekCa = new Uint8Array(readFileSync(new URL('MicCorKEKCA2011_2011-06-24.der', dir)));
const DBX = utf16le('dbx');

// Raw baseline: crypto.verify of the SignerInfo signature with the signer's key, key already imported.
const d = parseAuthentication2(dbxUpdate);
if (!d.ok) throw new Error(d.reason);
const sd = parseSignedData(d.descriptor.certData);
if (!sd.ok) throw new Error(sd.reason);
const content = signedContent(DBX, Guids.IMAGE_SECURITY_DATABASE, 0x67, d.descriptor.timestamp, d.descriptor.payload);
const signer = findSigner(sd.signedData);
const signerKey = new X509Certificate(Buffer.from(signer.der)).publicKey;
const sig = sd.signedData.signerInfo.signature;
if (!verify('sha256', content, signerKey, sig)) throw new Error('baseline does not verify');

// The anchor as a store would hold it: KEK = one X.509 list with KEK CA 2011.
const esl = new Uint8Array(28 + 16 + kekCa.length);
esl.set(Guids.CERT_X509, 0);
new DataView(esl.buffer).setUint32(16, esl.length, true);
new DataView(esl.buffer).setUint32(24, 16 + kekCa.length, true);
esl.set(Guids.MICROSOFT, 28);
esl.set(kekCa, 44);
const kek = makeVariable({ name: utf16le('KEK'), guid: Guids.GLOBAL_VARIABLE, attributes: 0x27, data: esl });
// PK holds the same certificate: the PK rule is tried first and fails (the signer is not the PK).
const pk = makeVariable({ name: utf16le('PK'), guid: Guids.GLOBAL_VARIABLE, attributes: 0x27, data: esl });
const byName = new Map([
  ['KEK', kek],
  ['PK', pk],
]);
const view = {
  get: (name) => byName.get(Buffer.from(name).toString('utf16le')),
  setupMode: false,
  authEnforce: true,
};
const request = { name: DBX, guid: Guids.IMAGE_SECURITY_DATABASE, attributes: 0x27, append: true, data: dbxUpdate };
const authenticator = createAuthenticator();
const anchor = parseCertificate(kekCa).certificate;

function time(label, iterations, fn) {
  for (let i = 0; i < Math.min(200, iterations); i++) fn();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) fn();
  const us = Number(process.hrtime.bigint() - t0) / 1000 / iterations;
  return { label, us };
}

const N = Number(process.env.VMSB_BENCH_ITERATIONS ?? 2000);
const COLD = Number(process.env.VMSB_BENCH_COLD_ITERATIONS ?? 300);
const dbxContent = () =>
  signedContent(DBX, Guids.IMAGE_SECURITY_DATABASE, 0x67, d.descriptor.timestamp, d.descriptor.payload);
const pkcs7Verify = () => {
  const p = parseSignedData(d.descriptor.certData);
  const r = verifyWithAnchor(new VerificationContext(p.signedData, dbxContent()), anchor);
  if (!r.ok) throw new Error(r.reason);
};
const authVerify = (a, req) => {
  const r = a.verify(req, view);
  if (r.status !== 0n) throw new Error(r.reason);
  return r;
};
const existing = makeVariable({
  name: DBX,
  guid: Guids.IMAGE_SECURITY_DATABASE,
  attributes: 0x27,
  data: d.descriptor.payload,
});
const results = [
  time('raw crypto.verify (same signature, key imported)', N, () => verify('sha256', content, signerKey, sig)),
  time('PKCS#7 parse + content signature + chain to KEK CA 2011, cold (signature cache cleared)', COLD, () => {
    clearSignedDataCache();
    pkcs7Verify();
  }),
  time('PKCS#7 parse + content signature + chain to KEK CA 2011, warm (parsed signature cached)', N, pkcs7Verify),
  time(
    'Authenticator.verify (dbx append, KEK holds KEK CA 2011), cold (signature cache cleared; KEK parsed once)',
    COLD,
    () => {
      clearSignedDataCache();
      authVerify(authenticator, request);
    },
  ),
  time('Authenticator.verify (same), fully cold (new authenticator: KEK and PK parsed too)', COLD, () => {
    clearSignedDataCache();
    authVerify(createAuthenticator(), request);
  }),
  time('Authenticator.verify (same), warm', N, () => authVerify(authenticator, request)),
  time('Authenticator.verify (same, existing dbx holds the same 443 hashes: all de-duplicated), warm', N, () => {
    const r = authVerify(authenticator, { ...request, existing });
    if (r.payload.length !== 0) throw new Error('not de-duplicated');
  }),
];
// Measured again last: on a busy machine the two raw figures show how much the load moved.
const rawAgain = time('raw crypto.verify, again at the end', N, () => verify('sha256', content, signerKey, sig));
results.push(rawAgain);
const base = Math.min(results[0].us, rawAgain.us);
for (const r of results)
  console.log(`${r.us.toFixed(1).padStart(8)} µs  ${(r.us / base).toFixed(1).padStart(6)}×  ${r.label}`);
console.log(
  `sha256 of the dbx payload: ${createHash('sha256').update(d.descriptor.payload).digest('hex').slice(0, 16)}…  (${N} iterations warm, ${COLD} cold)`,
);
