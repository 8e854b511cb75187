import {
  checkSignatureLists,
  bytesEqual,
  Guids,
  guidEquals,
  parseSignatureLists,
  serializeSignatureLists,
  type SignatureData,
  type SignatureList,
} from '@vmsb/efi';
import { CertificateCache } from './cache.js';
import { oidName } from './oids.js';
import { certificateKeyProblem, rsaKeyObject } from './x509.js';

/**
 * Why a PK/KEK/db/dbx/dbt payload is not an acceptable signature database, or undefined when it is
 * (edk2 CheckSignatureListFormat, varstored check_signature_list_format): supported types with their
 * fixed sizes, SignatureHeaderSize 0, no empty list, the lists consume the payload exactly, and every
 * X.509 entry a certificate with an RSA key. A PK holds exactly one X.509 certificate. An empty
 * payload (a deletion) is always acceptable. The one check the store and the offline tools apply.
 */
export function signatureDatabaseProblem(
  payload: Uint8Array,
  isPk: boolean,
  cache: CertificateCache = new CertificateCache(),
): string | undefined {
  const r = checkSignatureDatabase(payload, isPk, cache);
  return r.ok ? undefined : r.reason;
}

/** `signatureDatabaseProblem`, keeping the parsed lists for the caller. */
export function checkSignatureDatabase(
  payload: Uint8Array,
  isPk: boolean,
  cache: CertificateCache,
): { readonly ok: true; readonly lists: readonly SignatureList[] } | { readonly ok: false; readonly reason: string } {
  if (payload.length === 0) return { ok: true, lists: [] };
  const checked = checkSignatureLists(payload);
  if (!checked.ok) return checked;
  if (isPk) {
    const count = checked.lists.reduce((n, l) => n + l.signatures.length, 0);
    if (count !== 1)
      return { ok: false, reason: `PK must hold exactly one certificate, the payload holds ${count} entries` };
  }
  let offset = 0;
  for (const list of checked.lists) {
    if (guidEquals(list.type, Guids.CERT_X509)) {
      for (let i = 0; i < list.signatures.length; i++) {
        const der = list.signatures[i]!.data;
        // OpenSSL's answer for every entry (as varstored); the full parse only for a PK, the one
        // certificate here that later verifies signatures.
        const problem = certificateKeyProblem(der) ?? (isPk ? fullParseProblem(der, cache) : undefined);
        if (problem !== undefined)
          return { ok: false, reason: `signature list at offset ${offset}, entry ${i}: ${problem}` };
      }
    } else if (isPk) {
      return { ok: false, reason: 'PK must hold an X.509 certificate (EFI_CERT_X509_GUID list)' };
    }
    offset += 28 + list.header.length + list.signatures.length * list.signatureSize;
  }
  return { ok: true, lists: checked.lists };
}

function fullParseProblem(der: Uint8Array, cache: CertificateCache): string | undefined {
  const parsed = cache.parse(der);
  if (!parsed.ok) return parsed.reason;
  if (rsaKeyObject(parsed.certificate) !== undefined) return undefined;
  return `the certificate's key (${oidName(parsed.certificate.publicKeyAlgorithmOid)}) is not a usable RSA key`;
}

/**
 * The part of `incoming` an APPEND_WRITE adds to a signature database that already holds `existing`
 * (UEFI 2.10 §8.2.1, edk2 FilterSignatureList): an entry is dropped when a list of the same
 * SignatureType and SignatureSize in `existing` holds the byte-identical entry (owner included);
 * kept entries stay under a copy of their list header, and a list left empty disappears. Entries
 * repeated inside `incoming` are kept, as edk2 does. `existing` is taken as is when it does not
 * parse (nothing to compare against). `incoming` must be well-formed; `incomingLists`, when given,
 * are its already parsed lists.
 */
export function filterAppendedSignatures(
  existing: Uint8Array,
  incoming: Uint8Array,
  incomingLists?: readonly SignatureList[],
): Uint8Array {
  const newLists =
    incomingLists !== undefined ? { ok: true as const, lists: incomingLists } : parseSignatureLists(incoming);
  if (!newLists.ok) throw new RangeError(`appended data is not signature lists: ${newLists.reason}`);
  const old = parseSignatureLists(existing);
  if (!old.ok || old.lists.length === 0) return new Uint8Array(incoming);
  // Buckets by a cheap hash of the entry; equality is then decided on the bytes.
  const present = new Map<number, { list: SignatureList; entry: SignatureData }[]>();
  for (const list of old.lists) {
    for (const entry of list.signatures) {
      const h = entryHash(entry);
      const bucket = present.get(h);
      if (bucket === undefined) present.set(h, [{ list, entry }]);
      else bucket.push({ list, entry });
    }
  }
  const isPresent = (list: SignatureList, entry: SignatureData): boolean =>
    present
      .get(entryHash(entry))
      ?.some(
        (o) =>
          o.list.signatureSize === list.signatureSize &&
          bytesEqual(o.list.type, list.type) &&
          bytesEqual(o.entry.owner, entry.owner) &&
          bytesEqual(o.entry.data, entry.data),
      ) ?? false;
  const kept: SignatureList[] = [];
  let dropped = false;
  for (const list of newLists.lists) {
    const signatures = list.signatures.filter((s) => !isPresent(list, s));
    if (signatures.length !== list.signatures.length) dropped = true;
    if (signatures.length > 0) kept.push({ ...list, signatures });
  }
  return dropped ? serializeSignatureLists(kept) : new Uint8Array(incoming);
}

function entryHash(entry: SignatureData): number {
  const d = entry.data;
  const n = d.length;
  let h = Math.imul(n ^ u32(entry.owner, 0), 0x9e3779b1);
  // The last bytes are hash or signature bytes for every entry type: they spread well.
  if (n >= 8) h = Math.imul(h ^ u32(d, n - 4), 0x85ebca6b) ^ u32(d, n - 8);
  else for (let i = 0; i < n; i++) h = Math.imul(h ^ d[i]!, 0x01000193);
  return h >>> 0;
}

function u32(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}

/** The first entry of the first list of a PK value: where edk2 and varstored read the platform certificate. */
export function platformKeyCertificate(pk: Uint8Array): Uint8Array | undefined {
  const parsed = parseSignatureLists(pk);
  if (!parsed.ok) return undefined;
  return parsed.lists[0]?.signatures[0]?.data;
}
