import { randomUUID, type KeyObject } from 'node:crypto';
import { lstat, mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import { createAuthenticatedVariable } from './authenticated-variable.js';
import { createCertificate, type EncodedCertificate } from './certificate.js';
import { generateKeyPair, privateKeyToPem, type RsaBits } from './keys.js';
import { buildSignatureList, concatSignatureLists, guidBytes, type GuidInput } from './signature-list.js';
import { guidToText } from '@vmsb/efi';

export interface KeySetOptions {
  /** Common-name prefix: the certificates are `<cn> PK`, `<cn> KEK` and `<cn> db`. */
  readonly cn: string;
  /** RSA key size. Default 2048 (what every firmware accepts). */
  readonly bits?: RsaBits;
  /** Certificate validity in days. Default 3650. */
  readonly days?: number;
  /** SignatureOwner of the lists. Default: a fresh random GUID. */
  readonly owner?: GuidInput;
  /** Timestamp of PK.auth, KEK.auth and db.auth; noPK.auth gets one second later. Default: now. */
  readonly timestamp?: Date;
  /**
   * Lists appended to the KEK and db payloads after the set's own certificate (e.g.
   * `microsoftSignatureList({ role: 'KEK' })`), so the .auth files enrol them too.
   */
  readonly extra?: { readonly KEK?: Uint8Array; readonly db?: Uint8Array };
  /** Also write the files there (see `writeKeySet`). */
  readonly outDir?: string;
}

export interface KeySetMember {
  readonly name: 'PK' | 'KEK' | 'db';
  readonly privateKey: KeyObject;
  /** PKCS#8 PEM of the private key. */
  readonly keyPem: string;
  readonly certificate: EncodedCertificate;
  /** The member's own EFI_SIGNATURE_LIST (its certificate, owner `owner`). */
  readonly signatureList: Uint8Array;
  /** Signed update enrolling the payload: PK self-signed, KEK signed by PK, db signed by KEK. */
  readonly auth: Uint8Array;
}

/** A complete, self-consistent set of Secure Boot keys for one platform. */
export interface KeySet {
  /** SignatureOwner GUID as text. */
  readonly owner: string;
  readonly PK: KeySetMember;
  readonly KEK: KeySetMember;
  readonly db: KeySetMember;
  /** PK-signed deletion of PK (back to setup mode), timestamped one second after PK.auth. */
  readonly noPK: Uint8Array;
}

/**
 * Generates PK, KEK and db: an RSA key and a self-signed certificate each, their signature lists,
 * and .auth files that enrol them in order (PK.auth in setup mode, then KEK.auth signed by PK, then
 * db.auth signed by KEK).
 */
export async function createKeySet(options: KeySetOptions): Promise<KeySet> {
  if (options.cn.length === 0) throw new TypeError('the key set needs a common name');
  const owner = guidBytes(options.owner ?? randomUUID());
  const timestamp = new Date(Math.floor((options.timestamp ?? new Date()).getTime() / 1000) * 1000);
  const bits = options.bits ?? 2048;
  const [pk, kek, db] = await Promise.all([
    generateKeyPair({ bits }),
    generateKeyPair({ bits }),
    generateKeyPair({ bits }),
  ]);
  const cert = (key: KeyObject, role: string): EncodedCertificate =>
    createCertificate({
      cn: `${options.cn} ${role}`,
      key,
      notBefore: timestamp,
      ...(options.days !== undefined ? { days: options.days } : {}),
    });
  const certs = { PK: cert(pk.privateKey, 'PK'), KEK: cert(kek.privateKey, 'KEK'), db: cert(db.privateKey, 'db') };
  const esl = (c: EncodedCertificate): Uint8Array => buildSignatureList({ type: 'x509', certificates: [c.der], owner });
  const lists = { PK: esl(certs.PK), KEK: esl(certs.KEK), db: esl(certs.db) };
  const payload = {
    PK: lists.PK,
    KEK: concatSignatureLists([lists.KEK, ...(options.extra?.KEK !== undefined ? [options.extra.KEK] : [])]),
    db: concatSignatureLists([lists.db, ...(options.extra?.db !== undefined ? [options.extra.db] : [])]),
  };
  const signedBy = { PK: pk.privateKey, KEK: pk.privateKey, db: kek.privateKey };
  const signerCert = { PK: certs.PK, KEK: certs.PK, db: certs.KEK };
  const member = (name: 'PK' | 'KEK' | 'db', key: KeyObject): KeySetMember => ({
    name,
    privateKey: key,
    keyPem: privateKeyToPem(key),
    certificate: certs[name],
    signatureList: lists[name],
    auth: createAuthenticatedVariable({
      name,
      payload: payload[name],
      timestamp,
      key: signedBy[name],
      certificate: signerCert[name].der,
    }),
  });
  const set: KeySet = {
    owner: guidToText(owner),
    PK: member('PK', pk.privateKey),
    KEK: member('KEK', kek.privateKey),
    db: member('db', db.privateKey),
    noPK: createAuthenticatedVariable({
      name: 'PK',
      payload: new Uint8Array(0),
      timestamp: new Date(timestamp.getTime() + 1000),
      key: pk.privateKey,
      certificate: certs.PK.der,
    }),
  };
  if (options.outDir !== undefined) await writeKeySet(set, options.outDir);
  return set;
}

export interface KeySetFile {
  /** File name within the output directory. */
  readonly name: string;
  readonly contents: Uint8Array | string;
  /** 0o600 for private keys, 0o644 otherwise. */
  readonly mode: number;
}

/**
 * The files of a key set: for each of PK, KEK and db `<name>.key` (PKCS#8 PEM), `<name>.crt` (PEM),
 * `<name>.der`, `<name>.esl` and `<name>.auth`; `noPK.auth`; `owner-guid.txt`.
 */
export function keySetFiles(set: KeySet): KeySetFile[] {
  const files: KeySetFile[] = [];
  for (const m of [set.PK, set.KEK, set.db]) {
    files.push(
      { name: `${m.name}.key`, contents: m.keyPem, mode: 0o600 },
      { name: `${m.name}.crt`, contents: m.certificate.pem, mode: 0o644 },
      { name: `${m.name}.der`, contents: m.certificate.der, mode: 0o644 },
      { name: `${m.name}.esl`, contents: m.signatureList, mode: 0o644 },
      { name: `${m.name}.auth`, contents: m.auth, mode: 0o644 },
    );
  }
  files.push(
    { name: 'noPK.auth', contents: set.noPK, mode: 0o644 },
    { name: 'owner-guid.txt', contents: `${set.owner}\n`, mode: 0o644 },
  );
  return files;
}

/**
 * Writes `keySetFiles(set)` into `dir` (created if missing). Refuses to overwrite any existing file,
 * so keys are never replaced by accident. Resolves to the paths written.
 */
export async function writeKeySet(set: KeySet, dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const files = keySetFiles(set);
  // Check them all first so a clash leaves the directory as it was.
  const clashes: string[] = [];
  for (const file of files) {
    const exists = await lstat(join(dir, file.name)).then(
      () => true,
      (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? false : Promise.reject(err)),
    );
    if (exists) clashes.push(file.name);
  }
  if (clashes.length > 0) throw new Error(`${dir} already holds ${clashes.join(', ')}; not overwriting keys`);
  const written: string[] = [];
  for (const file of files) {
    const path = join(dir, file.name);
    const handle = await open(path, 'wx', file.mode);
    try {
      await handle.writeFile(file.contents);
      await handle.sync();
    } finally {
      await handle.close();
    }
    written.push(path);
  }
  return written;
}
