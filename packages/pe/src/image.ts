import { createHash } from 'node:crypto';

/** PE32 and PE32+ optional-header magics. */
export const PE32_MAGIC = 0x10b;
export const PE32_PLUS_MAGIC = 0x20b;
const IMAGE_FILE_MACHINE_IA64 = 0x200;
/** Index of the certificate table (IMAGE_DIRECTORY_ENTRY_SECURITY) in the data directories. */
export const SECURITY_DIRECTORY = 4;
const SECTION_HEADER_SIZE = 40;

export interface SectionHeader {
  readonly name: string;
  readonly pointerToRawData: number;
  readonly sizeOfRawData: number;
}

/** What Authenticode hashing and verification need from a PE/COFF image's headers. */
export interface PeImage {
  readonly size: number;
  /** File offset of the "PE\0\0" signature (e_lfanew, or 0 without a DOS header). */
  readonly peOffset: number;
  readonly machine: number;
  /** The optional header's magic as edk2 reads it (IA64 images claiming PE32 count as PE32+). */
  readonly format: 'PE32' | 'PE32+';
  readonly sizeOfHeaders: number;
  /** File offset of the CheckSum field (excluded from the hash). */
  readonly checksumOffset: number;
  readonly numberOfRvaAndSizes: number;
  /** File offset of the certificate-table directory entry, when the header has one. */
  readonly securityEntryOffset: number | undefined;
  /** The certificate table (file offset and size), when the image has a non-empty one. */
  readonly certificateTable: { readonly offset: number; readonly size: number } | undefined;
  readonly sections: readonly SectionHeader[];
}

export type PeImageResult =
  | { readonly ok: true; readonly image: PeImage }
  | { readonly ok: false; readonly reason: string };

/**
 * Reads the headers of a PE/COFF image as edk2's DxeImageVerificationLib does before hashing: an
 * optional DOS header ("MZ", e_lfanew), the "PE\0\0" signature, the COFF file header, a PE32 or
 * PE32+ optional header. TE images are refused, as edk2 refuses to verify them. Every offset is
 * checked against the file. Never throws.
 */
export function parsePeImage(bytes: Uint8Array): PeImageResult {
  const fail = (reason: string): PeImageResult => ({ ok: false, reason });
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const size = bytes.length;
  const u16 = (at: number): number => view.getUint16(at, true);
  const u32 = (at: number): number => view.getUint32(at, true);
  if (size < 2) return fail('the file is too small to be a PE/COFF image');
  let peOffset = 0;
  if (bytes[0] === 0x4d && bytes[1] === 0x5a) {
    if (size < 0x40) return fail('the DOS header is truncated');
    peOffset = u32(0x3c);
  } else if (bytes[0] === 0x56 && bytes[1] === 0x5a) {
    return fail('a TE image (edk2 does not verify the signatures of TE images: it refuses them)');
  }
  // Signature (4), file header (20), then at least the optional header's magic.
  if (peOffset > size - 26) return fail('the PE header lies outside the file (is it a PE/COFF image?)');
  if (u32(peOffset) !== 0x00004550) return fail('no "PE\\0\\0" signature: not a PE/COFF image');
  const fileHeader = peOffset + 4;
  const machine = u16(fileHeader);
  const numberOfSections = u16(fileHeader + 2);
  const sizeOfOptionalHeader = u16(fileHeader + 16);
  const optional = fileHeader + 20;
  const rawMagic = u16(optional);
  let magic = rawMagic;
  // edk2: some ELILO builds for Itanium carry a PE32 magic on a PE32+ header.
  if (machine === IMAGE_FILE_MACHINE_IA64 && rawMagic === PE32_MAGIC) magic = PE32_PLUS_MAGIC;
  if (magic !== PE32_MAGIC && magic !== PE32_PLUS_MAGIC)
    return fail(`optional header magic 0x${rawMagic.toString(16)} is neither PE32 (0x10b) nor PE32+ (0x20b)`);
  // Offsets inside the optional header (PE/COFF spec §3.4): CheckSum at 64 in both formats;
  // NumberOfRvaAndSizes at 92 (PE32) or 108 (PE32+), the data directories right after it.
  const checksumOffset = optional + 64;
  const rvaCountOffset = optional + (magic === PE32_MAGIC ? 92 : 108);
  const directories = rvaCountOffset + 4;
  if (directories > size) return fail('the optional header is truncated');
  if (sizeOfOptionalHeader < directories - optional)
    return fail(`SizeOfOptionalHeader ${sizeOfOptionalHeader} is smaller than the fixed fields`);
  const sizeOfHeaders = u32(optional + 60);
  const numberOfRvaAndSizes = u32(rvaCountOffset);
  const hasSecurity = numberOfRvaAndSizes > SECURITY_DIRECTORY;
  const securityEntryOffset = hasSecurity ? directories + SECURITY_DIRECTORY * 8 : undefined;
  if (securityEntryOffset !== undefined && securityEntryOffset + 8 > optional + sizeOfOptionalHeader)
    return fail('NumberOfRvaAndSizes names more data directories than the optional header holds');
  if (securityEntryOffset !== undefined && securityEntryOffset + 8 > sizeOfHeaders)
    return fail('the certificate-table entry lies beyond SizeOfHeaders');
  if (checksumOffset + 4 > sizeOfHeaders) return fail('SizeOfHeaders ends before the CheckSum field');
  if (sizeOfHeaders > size) return fail(`SizeOfHeaders (${sizeOfHeaders}) is larger than the file (${size})`);
  const sectionTable = optional + sizeOfOptionalHeader;
  if (sectionTable + numberOfSections * SECTION_HEADER_SIZE > size) return fail('the section table is truncated');
  const sections: SectionHeader[] = [];
  for (let i = 0; i < numberOfSections; i++) {
    const at = sectionTable + i * SECTION_HEADER_SIZE;
    const nameBytes = bytes.subarray(at, at + 8);
    const end = nameBytes.indexOf(0);
    const name = String.fromCharCode(...nameBytes.subarray(0, end < 0 ? 8 : end));
    const sizeOfRawData = u32(at + 16);
    const pointerToRawData = u32(at + 20);
    if (sizeOfRawData !== 0 && (pointerToRawData > size || sizeOfRawData > size - pointerToRawData))
      return fail(`section ${JSON.stringify(name)} lies outside the file`);
    sections.push({ name, pointerToRawData, sizeOfRawData });
  }
  let certificateTable: PeImage['certificateTable'];
  if (securityEntryOffset !== undefined) {
    const offset = u32(securityEntryOffset);
    const tableSize = u32(securityEntryOffset + 4);
    if (tableSize !== 0) {
      if (offset > size || tableSize > size - offset)
        return fail(`the certificate table (offset ${offset}, ${tableSize} bytes) lies outside the file`);
      certificateTable = { offset, size: tableSize };
    }
  }
  return {
    ok: true,
    image: {
      size,
      peOffset,
      machine,
      format: magic === PE32_MAGIC ? 'PE32' : 'PE32+',
      sizeOfHeaders,
      checksumOffset,
      numberOfRvaAndSizes,
      securityEntryOffset,
      certificateTable,
      sections,
    },
  };
}

/** Hash algorithms Authenticode signatures may use, as node:crypto names them. */
export type AuthenticodeAlgorithm = 'sha1' | 'sha256' | 'sha384' | 'sha512';

/** The byte ranges the Authenticode hash covers, in order. */
export function authenticodeRanges(
  image: PeImage,
): { ok: true; ranges: [number, number][] } | { ok: false; reason: string } {
  const ranges: [number, number][] = [];
  const add = (start: number, end: number): void => {
    if (end > start) ranges.push([start, end]);
  };
  // The headers, without CheckSum and without the certificate-table directory entry.
  add(0, image.checksumOffset);
  if (image.securityEntryOffset === undefined) {
    add(image.checksumOffset + 4, image.sizeOfHeaders);
  } else {
    add(image.checksumOffset + 4, image.securityEntryOffset);
    add(image.securityEntryOffset + 8, image.sizeOfHeaders);
  }
  // Sections by file offset (edk2's stable insertion sort), empty ones skipped.
  const sorted = [...image.sections].sort((a, b) => a.pointerToRawData - b.pointerToRawData);
  let hashed = image.sizeOfHeaders;
  for (const s of sorted) {
    if (s.sizeOfRawData === 0) continue;
    add(s.pointerToRawData, s.pointerToRawData + s.sizeOfRawData);
    hashed += s.sizeOfRawData;
  }
  // Extra data: edk2 starts it at SUM_OF_BYTES_HASHED (not at the end of the last section) and
  // stops CertSize bytes before the end of the file, as if the table were last.
  if (image.size > hashed) {
    const certSize = image.securityEntryOffset === undefined ? 0 : (image.certificateTable?.size ?? 0);
    if (image.size > hashed + certSize) add(hashed, image.size - certSize);
    else if (image.size < hashed + certSize)
      return { ok: false, reason: 'the sections and the certificate table add up to more than the file' };
  }
  return { ok: true, ranges };
}

/**
 * The Authenticode digest of an image, computed exactly as edk2's HashPeImage: the headers up to
 * CheckSum, then up to the certificate-table entry, then to SizeOfHeaders; each section with raw
 * data in file-offset order; then the extra data after SUM_OF_BYTES_HASHED up to the last
 * certificate-table size bytes.
 */
export function authenticodeDigest(
  bytes: Uint8Array,
  image: PeImage,
  algorithm: AuthenticodeAlgorithm = 'sha256',
): { ok: true; digest: Uint8Array } | { ok: false; reason: string } {
  const r = authenticodeRanges(image);
  if (!r.ok) return r;
  const hash = createHash(algorithm);
  for (const [start, end] of r.ranges) hash.update(bytes.subarray(start, end));
  return { ok: true, digest: new Uint8Array(hash.digest()) };
}
