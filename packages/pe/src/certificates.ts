import { Guids, guidEquals } from '@vmsb/efi';
import type { PeImage } from './image.js';

export const WIN_CERT_TYPE_PKCS_SIGNED_DATA = 0x0002;
export const WIN_CERT_TYPE_EFI_GUID = 0x0ef1;
const WIN_CERTIFICATE_SIZE = 8;
const WIN_CERTIFICATE_UEFI_GUID_HEADER = 24;

/** One entry of an image's attribute certificate table. */
export interface ImageCertificate {
  /** File offset of the WIN_CERTIFICATE. */
  readonly offset: number;
  readonly length: number;
  readonly revision: number;
  readonly type: number;
  /**
   * pkcs7: a PKCS#7 SignedData edk2 verifies (WIN_CERT_TYPE_PKCS_SIGNED_DATA, or
   * WIN_CERT_TYPE_EFI_GUID with EFI_CERT_TYPE_PKCS7_GUID); skipped: an entry edk2 passes over.
   */
  readonly kind: 'pkcs7' | 'skipped';
  /** The PKCS#7 bytes (a view into the image), for pkcs7 entries. */
  readonly signedData: Uint8Array | undefined;
}

export interface CertificateTable {
  readonly entries: readonly ImageCertificate[];
  /**
   * False when the walk stopped before the end of the table (a truncated or inconsistent entry):
   * edk2 then refuses the image whatever its signatures say.
   */
  readonly intact: boolean;
  /** Why the walk stopped early. */
  readonly problem: string | undefined;
}

/**
 * Walks the certificate table as edk2's DxeImageVerificationHandler does: entries 8-byte aligned,
 * each at least a WIN_CERTIFICATE header and no longer than what is left of the table.
 */
export function readCertificateTable(bytes: Uint8Array, image: PeImage): CertificateTable {
  const table = image.certificateTable;
  if (table === undefined) return { entries: [], intact: true, problem: undefined };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = table.offset + table.size;
  const entries: ImageCertificate[] = [];
  let offset = table.offset;
  const stop = (problem: string): CertificateTable => ({ entries, intact: false, problem });
  while (offset < end) {
    const left = end - offset;
    if (left <= WIN_CERTIFICATE_SIZE) return stop(`${left} stray bytes at the end of the certificate table`);
    const length = view.getUint32(offset, true);
    const revision = view.getUint16(offset + 4, true);
    const type = view.getUint16(offset + 6, true);
    if (left < length) return stop(`the entry at offset ${offset} claims ${length} bytes, the table has ${left} left`);
    let signedData: Uint8Array | undefined;
    if (type === WIN_CERT_TYPE_PKCS_SIGNED_DATA) {
      if (length <= WIN_CERTIFICATE_SIZE) return stop(`the PKCS#7 entry at offset ${offset} is empty`);
      signedData = bytes.subarray(offset + WIN_CERTIFICATE_SIZE, offset + length);
    } else if (type === WIN_CERT_TYPE_EFI_GUID) {
      if (length <= WIN_CERTIFICATE_UEFI_GUID_HEADER) return stop(`the GUID entry at offset ${offset} is empty`);
      const certType = bytes.subarray(offset + WIN_CERTIFICATE_SIZE, offset + WIN_CERTIFICATE_UEFI_GUID_HEADER);
      if (guidEquals(certType, Guids.CERT_PKCS7))
        signedData = bytes.subarray(offset + WIN_CERTIFICATE_UEFI_GUID_HEADER, offset + length);
    } else if (length < WIN_CERTIFICATE_SIZE) {
      return stop(`the entry at offset ${offset} is shorter than its header`);
    }
    entries.push({
      offset,
      length,
      revision,
      type,
      kind: signedData === undefined ? 'skipped' : 'pkcs7',
      signedData,
    });
    // Entries are padded to 8 bytes.
    offset += length + ((8 - (length % 8)) % 8);
  }
  if (offset !== end) return { entries, intact: false, problem: 'the last entry runs past the end of the table' };
  return { entries, intact: true, problem: undefined };
}

const HASH_OIDS: readonly { algorithm: 'sha1' | 'sha224' | 'sha256' | 'sha384' | 'sha512'; oid: number[] }[] = [
  { algorithm: 'sha1', oid: [0x2b, 0x0e, 0x03, 0x02, 0x1a] },
  { algorithm: 'sha224', oid: [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04] },
  { algorithm: 'sha256', oid: [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01] },
  { algorithm: 'sha384', oid: [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02] },
  { algorithm: 'sha512', oid: [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03] },
];

/**
 * The digest algorithm of an Authenticode signature, found as edk2's HashPeImageByType finds it:
 * the SignedData's first digestAlgorithm OID at the fixed offset 32, which holds when the outer
 * lengths use two-byte long forms (as every real signature does). Undefined when it is not there.
 */
export function authenticodeHashAlgorithm(
  signedData: Uint8Array,
): 'sha1' | 'sha224' | 'sha256' | 'sha384' | 'sha512' | undefined {
  if (signedData.length < 2 || (signedData[1]! & 0x82) !== 0x82) return undefined;
  for (const { algorithm, oid } of HASH_OIDS) {
    if (signedData.length < 32 + oid.length) return undefined;
    if (oid.every((b, i) => signedData[32 + i] === b)) return algorithm;
  }
  return undefined;
}

/** 1.3.6.1.4.1.311.2.1.4, SPC_INDIRECT_DATA_OBJID. */
const SPC_INDIRECT_DATA = [0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x01, 0x04];
/** 1.2.840.113549.1.7.2, signedData. */
const SIGNED_DATA = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];

interface Tlv {
  readonly tag: number;
  readonly start: number;
  readonly valueStart: number;
  readonly end: number;
}

/** One DER TLV at `at`, within `limit`; undefined when malformed (definite lengths only). */
function tlv(bytes: Uint8Array, at: number, limit: number): Tlv | undefined {
  if (at + 2 > limit) return undefined;
  const tag = bytes[at]!;
  let length = bytes[at + 1]!;
  let valueStart = at + 2;
  if (length & 0x80) {
    const n = length & 0x7f;
    if (n === 0 || n > 4 || valueStart + n > limit) return undefined;
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + bytes[valueStart + i]!;
    valueStart += n;
  }
  const end = valueStart + length;
  return end > limit ? undefined : { tag, start: at, valueStart, end };
}

function oidIs(bytes: Uint8Array, t: Tlv | undefined, oid: readonly number[]): boolean {
  return (
    t !== undefined &&
    t.tag === 0x06 &&
    t.end - t.valueStart === oid.length &&
    oid.every((b, i) => bytes[t.valueStart + i] === b)
  );
}

/**
 * The DER value at the start of a certificate-table entry without what follows it: entries are
 * padded, and OpenSSL's d2i_PKCS7, which edk2 uses, reads one value and ignores the rest.
 */
export function derPrefix(bytes: Uint8Array): Uint8Array {
  const t = tlv(bytes, 0, bytes.length);
  return t === undefined ? bytes : bytes.subarray(0, t.end);
}

/**
 * The SpcIndirectDataContent a signature carries: the bytes its messageDigest covers (the SEQUENCE's
 * contents, without tag and length, as edk2's AuthenticodeVerify hands them to Pkcs7Verify) and the
 * image digest, which edk2 takes as the last bytes of that content.
 */
export function spcIndirectDataContent(signedData: Uint8Array): { content: Uint8Array } | { problem: string } {
  const limit = signedData.length;
  let t = tlv(signedData, 0, limit);
  if (t === undefined || t.tag !== 0x30) return { problem: 'the signature is not a DER SEQUENCE' };
  // ContentInfo { signedData, [0] SignedData }, or a bare SignedData.
  let first = tlv(signedData, t.valueStart, t.end);
  if (oidIs(signedData, first, SIGNED_DATA)) {
    const explicit = tlv(signedData, first!.end, t.end);
    if (explicit === undefined || explicit.tag !== 0xa0) return { problem: 'the ContentInfo holds no SignedData' };
    t = tlv(signedData, explicit.valueStart, explicit.end);
    if (t === undefined || t.tag !== 0x30) return { problem: 'the SignedData is not a SEQUENCE' };
    first = tlv(signedData, t.valueStart, t.end);
  }
  // SignedData { version INTEGER, digestAlgorithms SET, contentInfo SEQUENCE, ... }
  if (first === undefined || first.tag !== 0x02) return { problem: 'the SignedData has no version' };
  const algorithms = tlv(signedData, first.end, t.end);
  if (algorithms === undefined || algorithms.tag !== 0x31) return { problem: 'the SignedData has no digestAlgorithms' };
  const contentInfo = tlv(signedData, algorithms.end, t.end);
  if (contentInfo === undefined || contentInfo.tag !== 0x30) return { problem: 'the SignedData has no contentInfo' };
  const type = tlv(signedData, contentInfo.valueStart, contentInfo.end);
  if (!oidIs(signedData, type, SPC_INDIRECT_DATA))
    return { problem: 'the signed content is not an Authenticode SpcIndirectDataContent' };
  const explicit = tlv(signedData, type!.end, contentInfo.end);
  if (explicit === undefined || explicit.tag !== 0xa0) return { problem: 'the SpcIndirectDataContent is missing' };
  const spc = tlv(signedData, explicit.valueStart, explicit.end);
  if (spc === undefined || spc.tag !== 0x30) return { problem: 'the SpcIndirectDataContent is not a SEQUENCE' };
  return { content: signedData.subarray(spc.valueStart, spc.end) };
}
