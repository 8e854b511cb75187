import { crc32 } from 'node:zlib';
import { signerDigestIsData, type StoreState, type Variable } from '@vmsb/efi';
import { bytesEqual, fromUtf16le, guidFromText, guidToText } from '@vmsb/protocol';
import { ancillaryLosses, isZero, type DecodedNvram } from './common.js';

/**
 * An OVMF/edk2 variable flash image (`OVMF_VARS*.fd`): a firmware volume whose data is the
 * authenticated variable store, followed by the fault-tolerant-write (FTW) working block and its
 * spare area.
 *
 *   EFI_FIRMWARE_VOLUME_HEADER (HeaderLength, 72 with one block-map entry)
 *   VARIABLE_STORE_HEADER: Signature GUID, u32 Size, u8 Format 0x5A, u8 State 0xFE, 6 reserved
 *   records, each 4-byte aligned: AUTHENTICATED_VARIABLE_HEADER (60 bytes) | name (UTF-16LE, NUL
 *   terminated, NameSize bytes) | data (DataSize bytes); unused flash is 0xFF
 *
 * Records are never rewritten in place: an update appends a new record and marks the old one
 * deleted through the State byte, so a store holds stale copies that readers must skip.
 */

export const OvmfFd = {
  /** EFI_SYSTEM_NV_DATA_FV_GUID: FileSystemGuid of the variable firmware volume. */
  FV_GUID: guidFromText('fff12b8d-7696-4c8b-a985-2747075b4f50')!,
  FV_SIGNATURE: 0x4856465f, // "_FVH"
  /** EFI_FVB2 attributes OVMF's variable volume carries (read/write enabled and status, alignment 16). */
  FV_ATTRIBUTES: 0x0004feff,
  FV_REVISION: 2,
  /** gEfiAuthenticatedVariableGuid: records carry a timestamp (what OVMF uses). */
  AUTHENTICATED_STORE_GUID: guidFromText('aaf32c78-947b-439a-a180-2e144ec37792')!,
  /** gEfiVariableGuid: the older store without authentication fields (read only). */
  PLAIN_STORE_GUID: guidFromText('ddcf3616-3275-4164-98b6-fe85707ffe7d')!,
  /** gEdkiiWorkingBlockSignatureGuid: the FTW working block after the store. */
  FTW_WORKING_BLOCK_GUID: guidFromText('9e58292b-7c68-497d-a0ce-6500fd9f1b95')!,
  STORE_HEADER_SIZE: 28,
  STORE_FORMATTED: 0x5a,
  STORE_HEALTHY: 0xfe,
  AUTHENTICATED_RECORD_HEADER_SIZE: 60,
  PLAIN_RECORD_HEADER_SIZE: 32,
  START_ID: 0x55aa,
  /** State of a live record. */
  VAR_ADDED: 0x3f,
  /** VAR_ADDED & VAR_IN_DELETED_TRANSITION: live until the copy that replaces it is complete. */
  VAR_IN_DELETED_TRANSITION_ADDED: 0x3e,
  FTW_HEADER_SIZE: 32,
  /** Larger inputs are not variable flash images. */
  MAX_SIZE: 64 * 1024 * 1024,
} as const;

/** The two OVMF flash layouts: 4 MiB firmware (540672-byte VARS) and 2 MiB firmware (128 KiB VARS). */
export type OvmfLayout = '4m' | '2m';

interface LayoutSpec {
  readonly fvLength: number;
  readonly blockSize: number;
  /** VARIABLE_STORE_HEADER.Size: the store ends at the first byte of the FTW event-log area. */
  readonly storeSize: number;
  /** Offset of the FTW working block and its size. */
  readonly ftwOffset: number;
  readonly ftwSize: number;
}

export const OvmfLayouts: Readonly<Record<OvmfLayout, LayoutSpec>> = {
  '4m': { fvLength: 0x84000, blockSize: 0x1000, storeSize: 0x40000 - 72, ftwOffset: 0x41000, ftwSize: 0x1000 },
  '2m': { fvLength: 0x20000, blockSize: 0x1000, storeSize: 0xe000 - 72, ftwOffset: 0xf000, ftwSize: 0x1000 },
};

export interface OvmfFdInfo {
  readonly fvLength: number;
  /** Byte offset of the VARIABLE_STORE_HEADER. */
  readonly storeOffset: number;
  /** VARIABLE_STORE_HEADER.Size (header included). */
  readonly storeSize: number;
  /** Records carry timestamps (gEfiAuthenticatedVariableGuid). */
  readonly authenticated: boolean;
  /** Bytes of the store in use, stale records included. */
  readonly used: number;
  /** Records found, live and stale. */
  readonly records: number;
  /** Offset of the FTW working block, when one was found. */
  readonly ftwOffset?: number;
}

export type DecodedOvmfFd =
  | (DecodedNvram & { readonly ok: true; readonly info: OvmfFdInfo })
  | (DecodedNvram & { readonly ok: false });

class Corrupt {
  constructor(readonly message: string) {}
}

function u16(b: Uint8Array, at: number): number {
  return b[at]! | (b[at + 1]! << 8);
}

function u32(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}

const align4 = (n: number): number => (n + 3) & ~3;

/** Cheap test used by format detection: a firmware volume header for variable flash. */
export function looksLikeOvmfFd(bytes: Uint8Array): boolean {
  return (
    bytes.length >= 72 && bytesEqual(bytes.subarray(16, 32), OvmfFd.FV_GUID) && u32(bytes, 40) === OvmfFd.FV_SIGNATURE
  );
}

interface Header {
  readonly fvLength: number;
  readonly storeOffset: number;
  readonly storeSize: number;
  readonly authenticated: boolean;
}

function readHeader(bytes: Uint8Array): Header {
  if (bytes.length > OvmfFd.MAX_SIZE)
    throw new Corrupt(`${bytes.length} bytes is larger than any variable flash image (${OvmfFd.MAX_SIZE})`);
  if (bytes.length < 72 + OvmfFd.STORE_HEADER_SIZE)
    throw new Corrupt(`too short for a firmware volume and variable store header: ${bytes.length} bytes`);
  if (!bytesEqual(bytes.subarray(16, 32), OvmfFd.FV_GUID)) {
    throw new Corrupt(
      `FileSystemGuid ${guidToText(bytes.subarray(16, 32))} is not EFI_SYSTEM_NV_DATA_FV_GUID: not a variable flash volume`,
    );
  }
  if (u32(bytes, 40) !== OvmfFd.FV_SIGNATURE) throw new Corrupt('no "_FVH" firmware volume signature at byte 40');
  const lengthHigh = u32(bytes, 36);
  const fvLength = u32(bytes, 32);
  if (lengthHigh !== 0 || fvLength > bytes.length) {
    throw new Corrupt(`FvLength ${lengthHigh * 2 ** 32 + fvLength} exceeds the ${bytes.length}-byte file`);
  }
  const headerLength = u16(bytes, 48);
  if (headerLength < 56 + 8 || headerLength % 8 !== 0 || headerLength + OvmfFd.STORE_HEADER_SIZE > fvLength) {
    throw new Corrupt(`HeaderLength ${headerLength} is not a valid firmware volume header length`);
  }
  let sum = 0;
  for (let i = 0; i < headerLength; i += 2) sum = (sum + u16(bytes, i)) & 0xffff;
  if (sum !== 0) throw new Corrupt(`firmware volume header checksum fails (sum 0x${sum.toString(16)})`);
  const storeOffset = headerLength;
  const signature = bytes.subarray(storeOffset, storeOffset + 16);
  let authenticated: boolean;
  if (bytesEqual(signature, OvmfFd.AUTHENTICATED_STORE_GUID)) authenticated = true;
  else if (bytesEqual(signature, OvmfFd.PLAIN_STORE_GUID)) authenticated = false;
  else
    throw new Corrupt(
      `variable store signature ${guidToText(signature)} is neither the authenticated nor the plain variable store GUID`,
    );
  const storeSize = u32(bytes, storeOffset + 16);
  if (storeSize < OvmfFd.STORE_HEADER_SIZE || storeSize > fvLength - storeOffset) {
    throw new Corrupt(
      `variable store Size ${storeSize} does not fit the ${fvLength - storeOffset} bytes after the volume header`,
    );
  }
  const format = bytes[storeOffset + 20]!;
  const state = bytes[storeOffset + 21]!;
  if (format !== OvmfFd.STORE_FORMATTED)
    throw new Corrupt(`variable store Format 0x${format.toString(16)} is not formatted (0x5a)`);
  if (state !== OvmfFd.STORE_HEALTHY)
    throw new Corrupt(`variable store State 0x${state.toString(16)} is not healthy (0xfe)`);
  return { fvLength, storeOffset, storeSize, authenticated };
}

/** The FTW working block in the volume after the store, when there is one. */
function findWorkingBlock(bytes: Uint8Array, from: number, to: number): number | undefined {
  for (let at = (from + 15) & ~15; at + OvmfFd.FTW_HEADER_SIZE <= to; at += 16) {
    if (
      bytes[at] === OvmfFd.FTW_WORKING_BLOCK_GUID[0] &&
      bytesEqual(bytes.subarray(at, at + 16), OvmfFd.FTW_WORKING_BLOCK_GUID)
    )
      return at;
  }
  return undefined;
}

/** Whether the working block records a write that may not have completed. */
function workingBlockBusy(bytes: Uint8Array, at: number, fvLength: number): boolean {
  const queue = u32(bytes, at + 24);
  const end = Math.min(fvLength, at + OvmfFd.FTW_HEADER_SIZE + queue);
  for (let i = at + OvmfFd.FTW_HEADER_SIZE; i < end; i++) if (bytes[i] !== 0xff) return true;
  return false;
}

/** The FTW working block header as edk2 initialises it: CRC over the header with Crc and State erased. */
function workingBlockHeader(writeQueueSize: number): Uint8Array {
  const header = new Uint8Array(OvmfFd.FTW_HEADER_SIZE).fill(0xff);
  header.set(OvmfFd.FTW_WORKING_BLOCK_GUID, 0);
  const view = new DataView(header.buffer);
  view.setBigUint64(24, BigInt(writeQueueSize), true);
  view.setUint32(16, crc32(header) >>> 0, true);
  header[20] = 0xfe; // WorkingBlockValid set (bits are active-low on flash)
  return header;
}

/**
 * Reads the live variables of an OVMF variable flash image. Deleted and superseded records are
 * skipped as edk2 does (a record in deleted transition counts only when no live copy exists).
 * Never throws: a damaged image is an error naming what is wrong and where. Warnings report what
 * the image carries that a StoreState cannot (monotonic counts, public-key indexes of the
 * deprecated counter-based scheme) and an unfinished fault-tolerant write.
 */
export function decodeOvmfFd(bytes: Uint8Array): DecodedOvmfFd {
  try {
    return decode(bytes);
  } catch (e) {
    if (e instanceof Corrupt) return { ok: false, error: `OVMF variable store: ${e.message}` };
    return { ok: false, error: `OVMF variable store: undecodable (${e instanceof Error ? e.message : String(e)})` };
  }
}

function decode(bytes: Uint8Array): DecodedOvmfFd {
  const header = readHeader(bytes);
  const { storeOffset, storeSize, authenticated } = header;
  const end = storeOffset + storeSize;
  const recordHeader = authenticated ? OvmfFd.AUTHENTICATED_RECORD_HEADER_SIZE : OvmfFd.PLAIN_RECORD_HEADER_SIZE;
  const warnings: string[] = [];
  type Found = { at: number; variable: Variable; live: boolean };
  const chosen = new Map<string, Found>();
  let records = 0;
  let at = align4(storeOffset + OvmfFd.STORE_HEADER_SIZE);
  while (at + recordHeader <= end && u16(bytes, at) === OvmfFd.START_ID) {
    records++;
    if (records > 1_000_000) throw new Corrupt('too many records');
    const state = bytes[at + 2]!;
    const attributes = u32(bytes, at + 4);
    const nameSize = u32(bytes, at + (authenticated ? 36 : 8));
    const dataSize = u32(bytes, at + (authenticated ? 40 : 12));
    const guid = bytes.slice(at + recordHeader - 16, at + recordHeader);
    const nameAt = at + recordHeader;
    if (nameSize > end - nameAt || dataSize > end - nameAt - nameSize) {
      // A record being written when power failed has its header only (VAR_HEADER_VALID_ONLY, 0x7f):
      // its sizes may promise more than was written, and edk2 ignores it. Anything else is damage.
      if (state !== OvmfFd.VAR_ADDED && state !== OvmfFd.VAR_IN_DELETED_TRANSITION_ADDED) break;
      throw new Corrupt(
        `record at byte ${at}: NameSize ${nameSize} and DataSize ${dataSize} run past the store end at byte ${end}`,
      );
    }
    const next = align4(nameAt + nameSize + dataSize);
    const live = state === OvmfFd.VAR_ADDED;
    if (live || state === OvmfFd.VAR_IN_DELETED_TRANSITION_ADDED) {
      let name = bytes.subarray(nameAt, nameAt + nameSize);
      if (name.length >= 2 && name[name.length - 2] === 0 && name[name.length - 1] === 0)
        name = name.subarray(0, name.length - 2);
      const label = `record at byte ${at} (${JSON.stringify(fromUtf16le(name.subarray(0, 256)))} ${guidToText(guid)})`;
      if (name.length === 0 || name.length % 2 !== 0)
        throw new Corrupt(`${label}: NameSize ${nameSize} is not a UTF-16 name`);
      const key = `${guidToText(guid)}:${Buffer.from(name).toString('hex')}`;
      const previous = chosen.get(key);
      if (dataSize === 0) {
        warnings.push(`${label}: empty data, skipped`);
      } else if (previous === undefined || (!previous.live && live)) {
        let timestamp: Uint8Array = new Uint8Array(16);
        if (authenticated) {
          timestamp = bytes.slice(at + 16, at + 32);
          const monotonic = u32(bytes, at + 8) + u32(bytes, at + 12) * 2 ** 32;
          const pubKeyIndex = u32(bytes, at + 32);
          if (monotonic !== 0 || pubKeyIndex !== 0) {
            warnings.push(
              `${label}: MonotonicCount ${monotonic} and PubKeyIndex ${pubKeyIndex} (counter-based authentication) are not kept`,
            );
          }
        }
        chosen.set(key, {
          at,
          live,
          variable: {
            name: name.slice(),
            guid,
            attributes,
            data: bytes.slice(nameAt + nameSize, nameAt + nameSize + dataSize),
            timestamp,
            signerDigest: new Uint8Array(32),
          },
        });
      } else if (previous.live && live) {
        warnings.push(
          `${label}: a second live copy of the variable; the first one (byte ${previous.at}) is used, as firmware does`,
        );
      }
    }
    at = next;
  }
  const used = at - storeOffset;
  for (let i = at; i < end; i++) {
    if (bytes[i] !== 0xff) {
      warnings.push(
        `the store holds non-erased bytes after its last record (byte ${i}); they are ignored, as firmware ignores them`,
      );
      break;
    }
  }
  const ftwOffset = findWorkingBlock(bytes, end, header.fvLength);
  if (ftwOffset !== undefined && workingBlockBusy(bytes, ftwOffset, header.fvLength)) {
    warnings.push(
      'the fault-tolerant-write log records a write that may be unfinished; firmware would complete it at the next boot, so this view can be out of date',
    );
  }
  const variables = [...chosen.values()].sort((a, b) => a.at - b.at).map((f) => f.variable);
  if (variables.length > 4096) throw new Corrupt(`${variables.length} live variables is more than any store holds`);
  return {
    ok: true,
    state: { variables, morKey: new Uint8Array(8), ppi: { index: 0, func: new Uint8Array(256) } },
    warnings,
    info: {
      fvLength: header.fvLength,
      storeOffset,
      storeSize,
      authenticated,
      used,
      records,
      ...(ftwOffset !== undefined ? { ftwOffset } : {}),
    },
  };
}

/** An empty variable flash image in one of OVMF's layouts, byte for byte as the OVMF build makes it. */
export function emptyOvmfFd(layout: OvmfLayout = '4m'): Uint8Array {
  const spec = OvmfLayouts[layout];
  const out = new Uint8Array(spec.fvLength).fill(0xff);
  const view = new DataView(out.buffer);
  out.fill(0, 0, 16);
  out.set(OvmfFd.FV_GUID, 16);
  view.setBigUint64(32, BigInt(spec.fvLength), true);
  view.setUint32(40, OvmfFd.FV_SIGNATURE, true);
  view.setUint32(44, OvmfFd.FV_ATTRIBUTES, true);
  view.setUint16(48, 72, true);
  view.setUint16(50, 0, true);
  view.setUint16(52, 0, true);
  out[54] = 0;
  out[55] = OvmfFd.FV_REVISION;
  view.setUint32(56, spec.fvLength / spec.blockSize, true);
  view.setUint32(60, spec.blockSize, true);
  view.setUint32(64, 0, true);
  view.setUint32(68, 0, true);
  let sum = 0;
  for (let i = 0; i < 72; i += 2) sum = (sum + view.getUint16(i, true)) & 0xffff;
  view.setUint16(50, (0x10000 - sum) & 0xffff, true);
  out.set(OvmfFd.AUTHENTICATED_STORE_GUID, 72);
  view.setUint32(72 + 16, spec.storeSize, true);
  out[72 + 20] = OvmfFd.STORE_FORMATTED;
  out[72 + 21] = OvmfFd.STORE_HEALTHY;
  out.fill(0, 72 + 22, 72 + 28);
  out.set(workingBlockHeader(spec.ftwSize - OvmfFd.FTW_HEADER_SIZE), spec.ftwOffset);
  return out;
}

/** Bytes a variable takes in an authenticated store (header, NUL-terminated name, data, alignment). */
export function ovmfRecordSize(v: Pick<Variable, 'name' | 'data'>): number {
  return align4(OvmfFd.AUTHENTICATED_RECORD_HEADER_SIZE + v.name.length + 2 + v.data.length);
}

/** What an OVMF image cannot hold of `state` (empty when the conversion is lossless). */
export function ovmfFdLosses(state: StoreState): string[] {
  const losses = ancillaryLosses(state);
  for (const v of state.variables) {
    if (signerDigestIsData(v) && !isZero(v.signerDigest)) {
      losses.push(
        `${fromUtf16le(v.name)} (${guidToText(v.guid)}): its signer digest (the binding of a private authenticated variable) has no place in an OVMF store`,
      );
    }
  }
  return losses;
}

export interface EncodeOvmfFdOptions {
  /**
   * An existing image whose layout (volume header, store size, FTW areas) is kept; only the
   * variable store's records are rewritten. Default: a fresh image in `layout`.
   */
  readonly template?: Uint8Array;
  /** Layout of a fresh image when there is no template. Default '4m'. */
  readonly layout?: OvmfLayout;
}

/**
 * Writes `state`'s variables into an OVMF variable flash image: one live record per variable, in
 * order, compacted (no stale copies). What the format cannot hold (signer digests, MOR key and PPI
 * data) is dropped: check `ovmfFdLosses` first. Throws RangeError when the variables do not fit the
 * store or the template is not an authenticated variable store.
 */
export function encodeOvmfFd(state: StoreState, options: EncodeOvmfFdOptions = {}): Uint8Array {
  let out: Uint8Array;
  let header: Header;
  if (options.template !== undefined) {
    out = options.template.slice();
    try {
      header = readHeader(out);
    } catch (e) {
      throw new RangeError(
        `the template is not a usable OVMF variable store: ${e instanceof Corrupt ? e.message : String(e)}`,
      );
    }
    if (!header.authenticated)
      throw new RangeError('the template is a variable store without authentication fields; timestamps would be lost');
  } else {
    out = emptyOvmfFd(options.layout ?? '4m');
    header = readHeader(out);
  }
  const start = align4(header.storeOffset + OvmfFd.STORE_HEADER_SIZE);
  const end = header.storeOffset + header.storeSize;
  const needed = state.variables.reduce((n, v) => n + ovmfRecordSize(v), 0);
  if (start + needed > end) {
    throw new RangeError(
      `the ${state.variables.length} variables need ${needed} bytes; the OVMF store holds ${end - start}`,
    );
  }
  out.fill(0xff, start, end);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  let at = start;
  for (const v of state.variables) {
    if (v.name.length === 0 || v.name.length % 2 !== 0)
      throw new RangeError(`${guidToText(v.guid)}: a variable name must be whole UTF-16 code units`);
    if (v.data.length === 0) throw new RangeError(`${fromUtf16le(v.name)}: a variable cannot be empty`);
    view.setUint16(at, OvmfFd.START_ID, true);
    out[at + 2] = OvmfFd.VAR_ADDED;
    out[at + 3] = 0;
    view.setUint32(at + 4, v.attributes >>> 0, true);
    view.setBigUint64(at + 8, 0n, true);
    out.set(v.timestamp.subarray(0, 16), at + 16);
    view.setUint32(at + 32, 0, true);
    view.setUint32(at + 36, v.name.length + 2, true);
    view.setUint32(at + 40, v.data.length, true);
    out.set(v.guid.subarray(0, 16), at + 44);
    const nameAt = at + OvmfFd.AUTHENTICATED_RECORD_HEADER_SIZE;
    out.set(v.name, nameAt);
    out[nameAt + v.name.length] = 0;
    out[nameAt + v.name.length + 1] = 0;
    out.set(v.data, nameAt + v.name.length + 2);
    at += ovmfRecordSize(v);
  }
  // A pending fault-tolerant write would be replayed over the new records at boot: clear the log.
  const ftw = findWorkingBlock(out, end, header.fvLength);
  if (ftw !== undefined && workingBlockBusy(out, ftw, header.fvLength)) {
    const queue = u32(out, ftw + 24);
    out.fill(0xff, ftw, Math.min(header.fvLength, ftw + OvmfFd.FTW_HEADER_SIZE + queue));
    out.set(workingBlockHeader(queue), ftw);
  }
  return out;
}
