import { Guids, guidEquals, guidToText } from './guid.js';

/** EFI_SIGNATURE_DATA: the owner GUID followed by SignatureSize - 16 bytes of data. */
export interface SignatureData {
  readonly owner: Uint8Array;
  readonly data: Uint8Array;
}

/** EFI_SIGNATURE_LIST: a header, then equally sized EFI_SIGNATURE_DATA entries of one type. */
export interface SignatureList {
  readonly type: Uint8Array;
  /** SignatureHeader; empty for every type UEFI defines. */
  readonly header: Uint8Array;
  /** Size of each EFI_SIGNATURE_DATA (owner included). */
  readonly signatureSize: number;
  readonly signatures: readonly SignatureData[];
}

export type SignatureKind = 'hash' | 'rsa2048' | 'x509' | 'x509-hash';

export interface SignatureTypeInfo {
  /** EFI_CERT_*_GUID name without the EFI_ prefix and _GUID suffix, e.g. `CERT_SHA256`. */
  readonly name: string;
  readonly guid: Uint8Array;
  readonly kind: SignatureKind;
  /** Bytes of SignatureData per entry, or undefined when variable (X.509 certificates). */
  readonly dataSize: number | undefined;
  /** Hash algorithm for hash and x509-hash kinds, as node:crypto names it. */
  readonly hashAlgorithm?: string;
  /** Accepted by edk2's CheckSignatureListFormat in PK/KEK/db/dbx/dbt. */
  readonly supported: boolean;
}

/** The signature types of ImageAuthentication.h with their fixed entry sizes. */
export const SignatureTypes: readonly SignatureTypeInfo[] = [
  {
    name: 'CERT_SHA256',
    guid: Guids.CERT_SHA256,
    kind: 'hash',
    dataSize: 32,
    hashAlgorithm: 'sha256',
    supported: true,
  },
  { name: 'CERT_RSA2048', guid: Guids.CERT_RSA2048, kind: 'rsa2048', dataSize: 256, supported: true },
  { name: 'CERT_RSA2048_SHA256', guid: Guids.CERT_RSA2048_SHA256, kind: 'rsa2048', dataSize: 256, supported: true },
  { name: 'CERT_SHA1', guid: Guids.CERT_SHA1, kind: 'hash', dataSize: 20, hashAlgorithm: 'sha1', supported: true },
  { name: 'CERT_RSA2048_SHA1', guid: Guids.CERT_RSA2048_SHA1, kind: 'rsa2048', dataSize: 256, supported: true },
  { name: 'CERT_X509', guid: Guids.CERT_X509, kind: 'x509', dataSize: undefined, supported: true },
  {
    name: 'CERT_SHA224',
    guid: Guids.CERT_SHA224,
    kind: 'hash',
    dataSize: 28,
    hashAlgorithm: 'sha224',
    supported: true,
  },
  {
    name: 'CERT_SHA384',
    guid: Guids.CERT_SHA384,
    kind: 'hash',
    dataSize: 48,
    hashAlgorithm: 'sha384',
    supported: true,
  },
  {
    name: 'CERT_SHA512',
    guid: Guids.CERT_SHA512,
    kind: 'hash',
    dataSize: 64,
    hashAlgorithm: 'sha512',
    supported: true,
  },
  // TBS hash followed by the 16-byte EFI_TIME TimeOfRevocation.
  {
    name: 'CERT_X509_SHA256',
    guid: Guids.CERT_X509_SHA256,
    kind: 'x509-hash',
    dataSize: 48,
    hashAlgorithm: 'sha256',
    supported: true,
  },
  {
    name: 'CERT_X509_SHA384',
    guid: Guids.CERT_X509_SHA384,
    kind: 'x509-hash',
    dataSize: 64,
    hashAlgorithm: 'sha384',
    supported: true,
  },
  {
    name: 'CERT_X509_SHA512',
    guid: Guids.CERT_X509_SHA512,
    kind: 'x509-hash',
    dataSize: 80,
    hashAlgorithm: 'sha512',
    supported: true,
  },
  { name: 'CERT_SM3', guid: Guids.CERT_SM3, kind: 'hash', dataSize: 32, hashAlgorithm: 'sm3', supported: false },
  {
    name: 'CERT_X509_SM3',
    guid: Guids.CERT_X509_SM3,
    kind: 'x509-hash',
    dataSize: 48,
    hashAlgorithm: 'sm3',
    supported: false,
  },
];

/** The table entry for a SignatureType GUID, or undefined when the type is unknown. */
export function signatureTypeOf(type: Uint8Array): SignatureTypeInfo | undefined {
  return SignatureTypes.find((t) => guidEquals(t.guid, type));
}

/** sizeof(EFI_SIGNATURE_LIST) without the header and entries. */
export const SIGNATURE_LIST_HEADER_SIZE = 28;
/** sizeof(EFI_SIGNATURE_DATA.SignatureOwner). */
export const SIGNATURE_OWNER_SIZE = 16;

export type SignatureListsResult =
  | { readonly ok: true; readonly lists: readonly SignatureList[] }
  | { readonly ok: false; readonly reason: string /** byte offset of the offending list */; readonly offset: number };

/**
 * Splits a variable value into EFI_SIGNATURE_LISTs, checking only structure: every list holds its
 * 28-byte header, fits in what remains, has a header that fits, a SignatureSize of at least 16 that
 * divides the body, and the lists consume the value exactly. An empty value is zero lists. Never
 * throws. The returned byte arrays are views into `bytes`.
 */
export function parseSignatureLists(bytes: Uint8Array): SignatureListsResult {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lists: SignatureList[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const remaining = bytes.length - offset;
    const fail = (reason: string): SignatureListsResult => ({
      ok: false,
      reason: `signature list at offset ${offset}: ${reason}`,
      offset,
    });
    if (remaining < SIGNATURE_LIST_HEADER_SIZE)
      return fail(`${remaining} trailing bytes are shorter than a list header (28)`);
    const listSize = view.getUint32(offset + 16, true);
    const headerSize = view.getUint32(offset + 20, true);
    const signatureSize = view.getUint32(offset + 24, true);
    if (listSize < SIGNATURE_LIST_HEADER_SIZE) return fail(`SignatureListSize ${listSize} is below 28`);
    if (listSize > remaining) return fail(`SignatureListSize ${listSize} exceeds the ${remaining} bytes left`);
    if (headerSize > listSize - SIGNATURE_LIST_HEADER_SIZE)
      return fail(`SignatureHeaderSize ${headerSize} does not fit in the list`);
    if (signatureSize < SIGNATURE_OWNER_SIZE) return fail(`SignatureSize ${signatureSize} is below 16`);
    const body = listSize - SIGNATURE_LIST_HEADER_SIZE - headerSize;
    if (body % signatureSize !== 0)
      return fail(`${body} bytes of entries are not a multiple of SignatureSize ${signatureSize}`);
    const start = offset + SIGNATURE_LIST_HEADER_SIZE + headerSize;
    const signatures: SignatureData[] = [];
    for (let at = start; at < start + body; at += signatureSize) {
      signatures.push({
        owner: bytes.subarray(at, at + SIGNATURE_OWNER_SIZE),
        data: bytes.subarray(at + SIGNATURE_OWNER_SIZE, at + signatureSize),
      });
    }
    lists.push({
      type: bytes.subarray(offset, offset + 16),
      header: bytes.subarray(offset + SIGNATURE_LIST_HEADER_SIZE, start),
      signatureSize,
      signatures,
    });
    offset += listSize;
  }
  return { ok: true, lists };
}

export interface SignatureListFormatOptions {
  /** Largest number of entries over all lists (1 for PK). */
  readonly maxSignatures?: number;
  /** Accept lists with no entries (edk2 does; varstored refuses them). Default false. */
  readonly allowEmptyLists?: boolean;
}

/**
 * `parseSignatureLists` plus the format rules edk2 applies to PK/KEK/db/dbx/dbt payloads: every
 * type is a supported one, SignatureHeaderSize is 0, SignatureSize matches the type's fixed size,
 * and (unless allowed) no list is empty. Whether an X.509 entry parses, and holds an RSA key, is
 * left to the caller (it needs a certificate parser).
 */
export function checkSignatureLists(bytes: Uint8Array, options: SignatureListFormatOptions = {}): SignatureListsResult {
  const parsed = parseSignatureLists(bytes);
  if (!parsed.ok) return parsed;
  let offset = 0;
  let count = 0;
  for (const list of parsed.lists) {
    const fail = (reason: string): SignatureListsResult => ({
      ok: false,
      reason: `signature list at offset ${offset}: ${reason}`,
      offset,
    });
    const info = signatureTypeOf(list.type);
    if (info === undefined) return fail(`unknown SignatureType ${guidToText(list.type)}`);
    if (!info.supported) return fail(`unsupported SignatureType ${info.name}`);
    if (list.header.length !== 0) return fail(`SignatureHeaderSize ${list.header.length} is not 0 for ${info.name}`);
    if (info.dataSize !== undefined && list.signatureSize !== SIGNATURE_OWNER_SIZE + info.dataSize) {
      return fail(
        `SignatureSize ${list.signatureSize} is not ${SIGNATURE_OWNER_SIZE + info.dataSize} for ${info.name}`,
      );
    }
    if (list.signatures.length === 0 && options.allowEmptyLists !== true) return fail('the list has no entries');
    count += list.signatures.length;
    if (options.maxSignatures !== undefined && count > options.maxSignatures) {
      return fail(`more than ${options.maxSignatures} signature${options.maxSignatures === 1 ? '' : 's'}`);
    }
    offset += signatureListSize(list);
  }
  return parsed;
}

/** SignatureListSize of a list. */
export function signatureListSize(list: SignatureList): number {
  return SIGNATURE_LIST_HEADER_SIZE + list.header.length + list.signatures.length * list.signatureSize;
}

/**
 * Encodes lists back to bytes. Throws RangeError when a list is inconsistent (an entry whose
 * owner is not 16 bytes or whose size differs from signatureSize, or a type that is not 16 bytes).
 */
export function serializeSignatureLists(lists: readonly SignatureList[]): Uint8Array {
  let total = 0;
  for (const list of lists) {
    if (list.type.length !== 16) throw new RangeError(`a SignatureType is 16 bytes, got ${list.type.length}`);
    for (const s of list.signatures) {
      if (s.owner.length !== SIGNATURE_OWNER_SIZE)
        throw new RangeError(`a SignatureOwner is 16 bytes, got ${s.owner.length}`);
      if (SIGNATURE_OWNER_SIZE + s.data.length !== list.signatureSize) {
        throw new RangeError(
          `an entry of ${SIGNATURE_OWNER_SIZE + s.data.length} bytes in a list of SignatureSize ${list.signatureSize}`,
        );
      }
    }
    total += signatureListSize(list);
  }
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let at = 0;
  for (const list of lists) {
    out.set(list.type, at);
    view.setUint32(at + 16, signatureListSize(list), true);
    view.setUint32(at + 20, list.header.length, true);
    view.setUint32(at + 24, list.signatureSize, true);
    out.set(list.header, at + SIGNATURE_LIST_HEADER_SIZE);
    at += SIGNATURE_LIST_HEADER_SIZE + list.header.length;
    for (const s of list.signatures) {
      out.set(s.owner, at);
      out.set(s.data, at + SIGNATURE_OWNER_SIZE);
      at += list.signatureSize;
    }
  }
  return out;
}

/** A list holding one X.509 certificate (DER), as cert-to-efi-sig-list builds it. */
export function signatureListOfCertificate(der: Uint8Array, owner: Uint8Array): SignatureList {
  return {
    type: Guids.CERT_X509,
    header: new Uint8Array(0),
    signatureSize: SIGNATURE_OWNER_SIZE + der.length,
    signatures: [{ owner, data: der }],
  };
}

/** A list of hashes of one type (e.g. CERT_SHA256), all with the same owner. Throws RangeError on a wrong hash size. */
export function signatureListOfHashes(
  type: Uint8Array,
  hashes: readonly Uint8Array[],
  owner: Uint8Array,
): SignatureList {
  const info = signatureTypeOf(type);
  if (info === undefined || info.dataSize === undefined)
    throw new RangeError(`${guidToText(type)} is not a fixed-size signature type`);
  for (const h of hashes) {
    if (h.length !== info.dataSize)
      throw new RangeError(`a ${info.name} entry is ${info.dataSize} bytes, got ${h.length}`);
  }
  return {
    type,
    header: new Uint8Array(0),
    signatureSize: SIGNATURE_OWNER_SIZE + info.dataSize,
    signatures: hashes.map((data) => ({ owner, data })),
  };
}

/** Every X.509 certificate (DER) in the lists, in order, with its owner. */
export function x509Certificates(lists: readonly SignatureList[]): { owner: Uint8Array; der: Uint8Array }[] {
  const out: { owner: Uint8Array; der: Uint8Array }[] = [];
  for (const list of lists) {
    if (!guidEquals(list.type, Guids.CERT_X509)) continue;
    for (const s of list.signatures) out.push({ owner: s.owner, der: s.data });
  }
  return out;
}

/** Every hash entry (plain hash or X.509 TBS hash) in the lists, in order. */
export function signatureHashes(
  lists: readonly SignatureList[],
): { type: SignatureTypeInfo; owner: Uint8Array; hash: Uint8Array; timeOfRevocation?: Uint8Array }[] {
  const out: { type: SignatureTypeInfo; owner: Uint8Array; hash: Uint8Array; timeOfRevocation?: Uint8Array }[] = [];
  for (const list of lists) {
    const info = signatureTypeOf(list.type);
    // Entries of the wrong size for their type are not hashes of that type: skip them.
    if (
      info === undefined ||
      info.dataSize === undefined ||
      list.signatureSize !== SIGNATURE_OWNER_SIZE + info.dataSize
    )
      continue;
    if (info.kind === 'hash') {
      for (const s of list.signatures) out.push({ type: info, owner: s.owner, hash: s.data });
    } else if (info.kind === 'x509-hash') {
      for (const s of list.signatures) {
        const n = info.dataSize - 16;
        out.push({ type: info, owner: s.owner, hash: s.data.subarray(0, n), timeOfRevocation: s.data.subarray(n) });
      }
    }
  }
  return out;
}

/** Number of EFI_SIGNATURE_DATA entries over all lists. */
export function countSignatures(lists: readonly SignatureList[]): number {
  return lists.reduce((n, l) => n + l.signatures.length, 0);
}
