import type { StoreState, Variable } from '@vmsb/efi';
import { fromUtf16le, guidToText, Limits } from '@vmsb/protocol';

/**
 * The "VARS" blob: how varstored keeps a VM's variables in XAPI (base64 of it) and in its
 * suspend/migrate save file.
 *
 *   0  "VARS"            4  u32 version (1 or 2)    8  u64 count    16 u64 length of the records
 *   v2 only: 24 u8 morKey[8], 32 u32 ppi.index, 36 u8 ppi.func[256]
 *   then `count` records: u64 nameLen, name, u64 dataLen, data, guid[16], u32 attributes,
 *   EFI_TIME[16], signerDigest[32]
 * Everything little-endian; names UTF-16LE without terminator.
 */
export const VarsBlob = {
  MAGIC: 'VARS',
  /** The version written. */
  VERSION: 2,
  HEADER_SIZE: 24,
  /** v2 ancillary data: the MOR key and the TCG2 PPI volatile region. */
  ANCILLARY_SIZE: 8 + 4 + 256,
  /** Bytes of a record besides its name and data. */
  RECORD_OVERHEAD: 8 + 8 + 16 + 4 + 16 + 32,
  /** varstored refuses blobs with more variables than its store can hold. */
  MAX_VARIABLES: 1024,
  MOR_KEY_SIZE: 8,
  PPI_FUNC_SIZE: 256,
  TIMESTAMP_SIZE: 16,
  SIGNER_DIGEST_SIZE: 32,
  GUID_SIZE: 16,
} as const;

/** The largest blob the decoder can accept: every bound at its maximum. Readers cap file sizes with it. */
export const MAX_VARS_BLOB_SIZE =
  VarsBlob.HEADER_SIZE +
  VarsBlob.ANCILLARY_SIZE +
  VarsBlob.MAX_VARIABLES * (VarsBlob.RECORD_OVERHEAD + Limits.NAME_MAX + Limits.DATA_MAX);

export type DecodedVarsBlob =
  | { readonly ok: true; readonly state: StoreState; readonly version: 1 | 2 }
  | { readonly ok: false; readonly error: string };

export interface EncodeVarsBlobOptions {
  /** Keep only NON_VOLATILE variables (what XAPI and the file store hold); the save file keeps all. */
  readonly nonVolatileOnly: boolean;
}

const NON_VOLATILE = 0x1;

class Corrupt {
  constructor(readonly message: string) {}
}

/**
 * Decodes a VARS blob (versions 1 and 2). Never throws: a blob that is truncated, has trailing
 * bytes, an out-of-range length or count, or the same variable twice is reported with what is
 * wrong and where. The returned state owns its bytes (nothing aliases `bytes`).
 */
export function decodeVarsBlob(bytes: Uint8Array): DecodedVarsBlob {
  try {
    return decode(bytes);
  } catch (e) {
    if (e instanceof Corrupt) return { ok: false, error: e.message };
    return { ok: false, error: `undecodable VARS blob (${e instanceof Error ? e.message : String(e)})` };
  }
}

function decode(bytes: Uint8Array): DecodedVarsBlob {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 0;
  const remaining = (): number => bytes.length - offset;
  const need = (n: number, what: string): void => {
    if (n > remaining()) {
      throw new Corrupt(`truncated at byte ${offset}: ${what} needs ${n} bytes, ${remaining()} left`);
    }
  };
  const take = (n: number, what: string): Uint8Array => {
    need(n, what);
    const out = bytes.slice(offset, offset + n);
    offset += n;
    return out;
  };
  const u32 = (what: string): number => {
    need(4, what);
    const v = view.getUint32(offset, true);
    offset += 4;
    return v;
  };
  /** A u64 that must not exceed `max`; checked on the two halves before it becomes a number. */
  const u64 = (what: string, max: number): number => {
    need(8, what);
    const lo = view.getUint32(offset, true);
    const hi = view.getUint32(offset + 4, true);
    if (hi !== 0 || lo > max) {
      const value = (BigInt(hi) << 32n) | BigInt(lo);
      throw new Corrupt(`${what} ${value} at byte ${offset} is larger than ${max}`);
    }
    offset += 8;
    return lo;
  };

  if (bytes.length < VarsBlob.HEADER_SIZE) {
    throw new Corrupt(`too short for a VARS header: ${bytes.length} bytes, need ${VarsBlob.HEADER_SIZE}`);
  }
  const magic = String.fromCharCode(...bytes.subarray(0, 4));
  if (magic !== VarsBlob.MAGIC) throw new Corrupt(`bad magic ${JSON.stringify(printable(magic))} (expected "VARS")`);
  offset = 4;
  const version = u32('version');
  if (version !== 1 && version !== 2) throw new Corrupt(`unsupported VARS version ${version} (1 and 2 are read)`);
  const count = u64('variable count', VarsBlob.MAX_VARIABLES);
  // The records' total length is informational: varstored ignores it on load, and so do we.
  offset += 8;

  let morKey: Uint8Array = new Uint8Array(VarsBlob.MOR_KEY_SIZE);
  let ppi: { index: number; func: Uint8Array } = { index: 0, func: new Uint8Array(VarsBlob.PPI_FUNC_SIZE) };
  if (version === 2) {
    need(VarsBlob.ANCILLARY_SIZE, 'v2 ancillary data (MOR key, PPI region)');
    morKey = take(VarsBlob.MOR_KEY_SIZE, 'MOR key');
    const index = u32('PPI index');
    ppi = { index, func: take(VarsBlob.PPI_FUNC_SIZE, 'PPI data') };
  }

  const variables: Variable[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < count; i++) {
    const at = offset;
    const where = `variable ${i + 1} of ${count} (at byte ${at})`;
    const nameLength = u64(`${where}: name length`, Limits.NAME_MAX);
    if (nameLength === 0) throw new Corrupt(`${where}: empty name`);
    const name = take(nameLength, `${where}: name`);
    const dataLength = u64(`${where} ${describe(name)}: data length`, Limits.DATA_MAX);
    if (dataLength === 0) throw new Corrupt(`${where} ${describe(name)}: empty data`);
    const data = take(dataLength, `${where} ${describe(name)}: data`);
    const guid = take(VarsBlob.GUID_SIZE, `${where} ${describe(name)}: GUID`);
    const attributes = u32(`${where} ${describe(name)}: attributes`);
    const timestamp = take(VarsBlob.TIMESTAMP_SIZE, `${where} ${describe(name)}: timestamp`);
    const signerDigest = take(VarsBlob.SIGNER_DIGEST_SIZE, `${where} ${describe(name)}: signer digest`);
    const key = variableKey(name, guid);
    if (seen.has(key)) throw new Corrupt(`${where}: ${describe(name)}-${guidToText(guid)} appears twice`);
    seen.add(key);
    variables.push({ name, guid, attributes, data, timestamp, signerDigest });
  }
  if (remaining() !== 0) {
    throw new Corrupt(`${remaining()} unexpected bytes after the last of ${count} variables (at byte ${offset})`);
  }
  return { ok: true, state: { variables, morKey, ppi }, version };
}

/**
 * Encodes a store state as a version-2 VARS blob. Throws RangeError for a state no reader would
 * accept back (empty or oversized name or data, wrong-sized fields, too many variables): the
 * writer never produces a blob that fails to load.
 */
export function encodeVarsBlob(state: StoreState, options: EncodeVarsBlobOptions): Uint8Array {
  const variables = options.nonVolatileOnly
    ? state.variables.filter((v) => (v.attributes & NON_VOLATILE) !== 0)
    : state.variables;
  if (variables.length > VarsBlob.MAX_VARIABLES) {
    throw new RangeError(`${variables.length} variables: a VARS blob holds at most ${VarsBlob.MAX_VARIABLES}`);
  }
  fixedSize(state.morKey, VarsBlob.MOR_KEY_SIZE, 'MOR key');
  fixedSize(state.ppi.func, VarsBlob.PPI_FUNC_SIZE, 'PPI data');
  if (!Number.isInteger(state.ppi.index) || state.ppi.index < 0 || state.ppi.index > 0xffff_ffff) {
    throw new RangeError(`PPI index ${state.ppi.index} is not a u32`);
  }

  let recordsLength = 0;
  for (const v of variables) {
    // The name is described only for an error: decoding it for every record on every save was
    // most of a save's encoding time (BENCHMARKS.md, durable-write).
    if (v.name.length === 0 || v.name.length > Limits.NAME_MAX) {
      throw new RangeError(`${describe(v.name)}: name length ${v.name.length} is outside 1..${Limits.NAME_MAX}`);
    }
    if (v.data.length === 0 || v.data.length > Limits.DATA_MAX) {
      throw new RangeError(`${describe(v.name)}: data length ${v.data.length} is outside 1..${Limits.DATA_MAX}`);
    }
    if (
      v.guid.length !== VarsBlob.GUID_SIZE ||
      v.timestamp.length !== VarsBlob.TIMESTAMP_SIZE ||
      v.signerDigest.length !== VarsBlob.SIGNER_DIGEST_SIZE
    ) {
      const what = describe(v.name);
      fixedSize(v.guid, VarsBlob.GUID_SIZE, `${what}: GUID`);
      fixedSize(v.timestamp, VarsBlob.TIMESTAMP_SIZE, `${what}: timestamp`);
      fixedSize(v.signerDigest, VarsBlob.SIGNER_DIGEST_SIZE, `${what}: signer digest`);
    }
    recordsLength += VarsBlob.RECORD_OVERHEAD + v.name.length + v.data.length;
  }

  const out = new Uint8Array(VarsBlob.HEADER_SIZE + VarsBlob.ANCILLARY_SIZE + recordsLength);
  const view = new DataView(out.buffer);
  let offset = 0;
  const bytes = (b: Uint8Array): void => {
    out.set(b, offset);
    offset += b.length;
  };
  const u32 = (v: number): void => {
    view.setUint32(offset, v >>> 0, true);
    offset += 4;
  };
  const u64 = (v: number): void => {
    // Two halves rather than a BigInt per field: every value here is a count or length below 2^53.
    view.setUint32(offset, v >>> 0, true);
    view.setUint32(offset + 4, Math.floor(v / 0x1_0000_0000), true);
    offset += 8;
  };

  for (let i = 0; i < 4; i++) out[i] = VarsBlob.MAGIC.charCodeAt(i);
  offset = 4;
  u32(VarsBlob.VERSION);
  u64(variables.length);
  u64(recordsLength);
  bytes(state.morKey);
  u32(state.ppi.index);
  bytes(state.ppi.func);
  for (const v of variables) {
    u64(v.name.length);
    bytes(v.name);
    u64(v.data.length);
    bytes(v.data);
    bytes(v.guid);
    u32(v.attributes);
    bytes(v.timestamp);
    bytes(v.signerDigest);
  }
  return out;
}

function fixedSize(bytes: Uint8Array, size: number, what: string): void {
  if (bytes.length !== size) throw new RangeError(`${what} is ${bytes.length} bytes, must be ${size}`);
}

function variableKey(name: Uint8Array, guid: Uint8Array): string {
  return `${Buffer.from(guid).toString('hex')}:${Buffer.from(name).toString('hex')}`;
}

/** A variable name for messages: printable, bounded, quoted. */
function describe(name: Uint8Array): string {
  const text = fromUtf16le(name.subarray(0, 128));
  return JSON.stringify(printable(text) + (name.length > 128 ? '…' : ''));
}

function printable(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?');
}
