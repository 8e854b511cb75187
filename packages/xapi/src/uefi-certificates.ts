/**
 * Pool.custom_uefi_certificates and Pool.uefi_certificates hold the Secure Boot keys new VMs get at
 * their first boot: standard base64 of a tar archive of `PK.auth`, `KEK.auth`, `db.auth` and
 * `dbx.auth`. XAPI extracts it into every host's /var/lib/varstored, keeping only each member's
 * base name, where varstored reads the files.
 *
 * The archive is POSIX ustar (what XCP-ng's secureboot-certs and XAPI's own tar library write),
 * 512-byte blocks, two zero blocks at the end, padded to a 10240-byte record. Reading is bounded
 * and accepts the header kinds those writers produce: regular files, directories, pax headers and
 * GNU long names.
 */

const BLOCK = 512;
const RECORD = 20 * BLOCK;

/** A variable is at most 57344 bytes, so no useful member is larger. */
export const MAX_MEMBER_BYTES = 57_344;
/** Members in one archive (four are used; a few more are tolerated and reported). */
export const MAX_MEMBERS = 16;
/** Base64 text accepted for a whole archive. */
export const MAX_ARCHIVE_BASE64 = 2 * 1024 * 1024;

export interface ArchiveMember {
  /** The base name, as XAPI extracts it ("PK.auth"). */
  readonly name: string;
  readonly data: Uint8Array;
}

export class ArchiveError extends Error {
  override readonly name = 'ArchiveError';
}

function writeString(header: Uint8Array, offset: number, length: number, text: string): void {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length > length) throw new ArchiveError(`"${text}" does not fit a ${length}-byte tar field`);
  header.set(bytes, offset);
}

function writeOctal(header: Uint8Array, offset: number, length: number, value: number): void {
  // length - 1 digits and a NUL, as POSIX writes them.
  writeString(header, offset, length, `${value.toString(8).padStart(length - 1, '0')}\0`);
}

function checksum(header: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i]!;
  return sum;
}

/**
 * A ustar archive of the members, in the order given: mode 0644, owner root, `mtime` (seconds
 * since the epoch) on every member.
 */
export function encodeTar(members: readonly ArchiveMember[], mtime: number): Uint8Array {
  const parts: Uint8Array[] = [];
  let size = 0;
  for (const member of members) {
    if (!/^[A-Za-z0-9._-]{1,99}$/.test(member.name) || member.name === '.' || member.name === '..')
      throw new ArchiveError(`"${member.name}" is not a plain file name`);
    const header = new Uint8Array(BLOCK);
    writeString(header, 0, 100, member.name);
    writeOctal(header, 100, 8, 0o644);
    writeOctal(header, 108, 8, 0);
    writeOctal(header, 116, 8, 0);
    writeOctal(header, 124, 12, member.data.length);
    writeOctal(header, 136, 12, Math.max(0, Math.floor(mtime)));
    header[156] = 0x30; // '0': regular file
    writeString(header, 257, 6, 'ustar\0');
    writeString(header, 263, 2, '00');
    writeString(header, 265, 32, 'root');
    writeString(header, 297, 32, 'root');
    writeString(header, 148, 8, `${checksum(header).toString(8).padStart(6, '0')}\0 `);
    const padded = new Uint8Array(Math.ceil(member.data.length / BLOCK) * BLOCK);
    padded.set(member.data);
    parts.push(header, padded);
    size += BLOCK + padded.length;
  }
  size += 2 * BLOCK;
  const total = Math.ceil(size / RECORD) * RECORD;
  const out = new Uint8Array(total);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function readString(header: Uint8Array, offset: number, length: number): string {
  const field = header.subarray(offset, offset + length);
  const end = field.indexOf(0);
  return Buffer.from(end < 0 ? field : field.subarray(0, end)).toString('utf8');
}

function readOctal(header: Uint8Array, offset: number, length: number, what: string): number {
  const text = readString(header, offset, length).trim();
  if (!/^[0-7]{1,11}$/.test(text)) throw new ArchiveError(`tar header: bad ${what} field`);
  return Number.parseInt(text, 8);
}

function baseName(path: string): string {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  return parts[parts.length - 1] ?? '';
}

/**
 * The regular files of a tar archive, by base name. Throws ArchiveError when the archive is
 * malformed, a member is too large, or there are too many.
 */
export function decodeTar(bytes: Uint8Array): ArchiveMember[] {
  const members: ArchiveMember[] = [];
  let at = 0;
  let longName: string | undefined;
  while (at + BLOCK <= bytes.length) {
    const header = bytes.subarray(at, at + BLOCK);
    if (header.every((b) => b === 0)) return members;
    const stored = readOctal(header, 148, 8, 'checksum');
    if (stored !== checksum(header)) throw new ArchiveError(`tar header at byte ${at}: checksum mismatch`);
    const size = readOctal(header, 124, 12, 'size');
    const type = String.fromCharCode(header[156]!);
    const dataStart = at + BLOCK;
    const dataEnd = dataStart + size;
    if (dataEnd > bytes.length) throw new ArchiveError(`tar member at byte ${at} runs past the end of the archive`);
    if (size > MAX_MEMBER_BYTES && type !== '5')
      throw new ArchiveError(`tar member at byte ${at} is ${size} bytes, more than a variable can hold`);
    const data = bytes.subarray(dataStart, dataEnd);
    const prefix = readString(header, 345, 155);
    const path = longName ?? (prefix !== '' ? `${prefix}/${readString(header, 0, 100)}` : readString(header, 0, 100));
    longName = undefined;
    switch (type) {
      case '0':
      case '\0':
      case '7': {
        const name = baseName(path);
        if (name === '') throw new ArchiveError(`tar member at byte ${at} has no name`);
        if (members.length >= MAX_MEMBERS) throw new ArchiveError(`more than ${MAX_MEMBERS} files in the archive`);
        members.push({ name, data: data.slice() });
        break;
      }
      case '5': // a directory: XAPI keeps base names only
        break;
      case 'L': // GNU long name of the next member
        longName = Buffer.from(data).toString('utf8').replace(/\0+$/, '');
        break;
      case 'x': {
        // pax extended header: only `path` matters here
        const match = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(Buffer.from(data).toString('utf8'));
        if (match) longName = match[1];
        break;
      }
      case 'g':
        break;
      default:
        throw new ArchiveError(`tar member "${path.slice(0, 100)}" is of type '${type}', not a regular file`);
    }
    at = dataStart + Math.ceil(size / BLOCK) * BLOCK;
  }
  // Archives end with zero blocks; one cut short at a member boundary is still readable.
  if (at !== bytes.length) throw new ArchiveError('the archive ends inside a tar header');
  return members;
}

/** The value of Pool.custom_uefi_certificates for these members. */
export function encodeUefiCertificates(members: readonly ArchiveMember[], mtime: number): string {
  return Buffer.from(encodeTar(members, mtime)).toString('base64');
}

/**
 * The members of a Pool.(custom_)uefi_certificates value; "" is no archive (no members). Throws
 * ArchiveError for text that is not base64 of a tar archive.
 */
export function decodeUefiCertificates(value: string): ArchiveMember[] {
  if (value === '') return [];
  if (value.length > MAX_ARCHIVE_BASE64)
    throw new ArchiveError(`the certificates value is ${value.length} characters, more than ${MAX_ARCHIVE_BASE64}`);
  const text = value.replace(/[\r\n]/g, '');
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text))
    throw new ArchiveError('the certificates value is not base64');
  return decodeTar(new Uint8Array(Buffer.from(text, 'base64')));
}
