import type { StoreState, Variable } from '@vmsb/efi';
import { fromUtf16le, guidFromText, guidToText, utf16le } from '@vmsb/protocol';
import { ancillaryLosses, emptyAncillary, isZero, type DecodedNvram } from './common.js';

/**
 * The JSON variable store QEMU's `uefi-vars` device persists and virt-firmware reads and writes
 * (QEMU `qapi/uefi.json`, UefiVarStore):
 *
 *   { "version": 2,
 *     "variables": [ { "guid": "8be4df61-93ca-11d2-aa0d-00e098032b8c", "name": "PK", "attr": 39,
 *                      "data": "<hex>", "time": "<hex of the 16-byte EFI_TIME>", "digest": "<hex>" } ] }
 *
 * `time` is present for time-based authenticated variables, `digest` (the signer binding of a
 * private authenticated variable) when there is one. Names are JSON strings, so any UTF-16 name
 * survives a round trip here (QEMU itself keeps only ASCII names).
 */
export const JsonVarStore = {
  VERSION: 2,
  /** Larger inputs are not variable stores. */
  MAX_SIZE: 16 * 1024 * 1024,
  /** As many variables as a VARS blob may hold. */
  MAX_VARIABLES: 1024,
  DIGEST_SIZE: 32,
  /** Largest variable name and value, as the store enforces (bytes). */
  NAME_MAX: 4096,
  DATA_MAX: 57344,
} as const;

/** The JSON object of one variable, members in QEMU's order. */
interface JsonVariable {
  guid: string;
  name: string;
  attr: number;
  data: string;
  time?: string;
  digest?: string;
}

const TIME_BASED_AUTHENTICATED_WRITE_ACCESS = 0x20;
const HEX = /^(?:[0-9a-fA-F]{2})*$/;

class Invalid {
  constructor(readonly message: string) {}
}

/**
 * Reads a JSON variable store (UTF-8 bytes or text). Never throws: malformed JSON, a wrong
 * version, a member of the wrong type, bad hex or GUID text, an empty value or a variable listed
 * twice is an error naming the variable. Unknown members are ignored with a warning.
 */
export function decodeJsonVarStore(input: Uint8Array | string): DecodedNvram {
  try {
    return decode(input);
  } catch (e) {
    if (e instanceof Invalid) return { ok: false, error: `JSON variable store: ${e.message}` };
    return { ok: false, error: `JSON variable store: undecodable (${e instanceof Error ? e.message : String(e)})` };
  }
}

function decode(input: Uint8Array | string): DecodedNvram {
  const size = typeof input === 'string' ? input.length : input.length;
  if (size > JsonVarStore.MAX_SIZE)
    throw new Invalid(`${size} bytes is larger than any variable store (${JsonVarStore.MAX_SIZE})`);
  let text: string;
  try {
    text = typeof input === 'string' ? input : new TextDecoder('utf-8', { fatal: true }).decode(input);
  } catch {
    throw new Invalid('the file is not UTF-8 text');
  }
  let root: unknown;
  try {
    root = JSON.parse(text);
  } catch (e) {
    throw new Invalid(`not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (root === null || typeof root !== 'object' || Array.isArray(root))
    throw new Invalid('the top level is not an object');
  const top = root as Record<string, unknown>;
  if (top.version !== JsonVarStore.VERSION)
    throw new Invalid(`version ${JSON.stringify(top.version)} is not supported (2 is)`);
  if (!Array.isArray(top.variables)) throw new Invalid('"variables" is not an array');
  if (top.variables.length > JsonVarStore.MAX_VARIABLES)
    throw new Invalid(`${top.variables.length} variables; a store holds at most ${JsonVarStore.MAX_VARIABLES}`);
  const warnings: string[] = [];
  for (const key of Object.keys(top))
    if (key !== 'version' && key !== 'variables')
      warnings.push(`unknown top-level member ${JSON.stringify(key)} ignored`);
  const variables: Variable[] = [];
  const seen = new Set<string>();
  top.variables.forEach((entry: unknown, i: number) => {
    const where = `variable ${i + 1}`;
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry))
      throw new Invalid(`${where} is not an object`);
    const e = entry as Record<string, unknown>;
    if (typeof e.name !== 'string' || e.name.length === 0)
      throw new Invalid(`${where}: "name" is not a non-empty string`);
    const label = `${where} (${JSON.stringify(e.name.slice(0, 128))})`;
    if (e.name.includes('\u0000')) throw new Invalid(`${label}: the name holds a NUL character`);
    const name = utf16le(e.name);
    if (name.length > JsonVarStore.NAME_MAX)
      throw new Invalid(`${label}: the name is longer than ${JsonVarStore.NAME_MAX} bytes`);
    if (typeof e.guid !== 'string') throw new Invalid(`${label}: "guid" is not a string`);
    const guid = guidFromText(e.guid);
    if (guid === undefined) throw new Invalid(`${label}: "guid" ${JSON.stringify(e.guid.slice(0, 64))} is not a GUID`);
    if (typeof e.attr !== 'number' || !Number.isInteger(e.attr) || e.attr < 0 || e.attr > 0xffff_ffff) {
      throw new Invalid(`${label}: "attr" is not a 32-bit unsigned integer`);
    }
    const data = hex(e.data, `${label}: "data"`);
    if (data.length === 0) throw new Invalid(`${label}: "data" is empty (a variable always has a value)`);
    if (data.length > JsonVarStore.DATA_MAX)
      throw new Invalid(`${label}: ${data.length} bytes of data exceed ${JsonVarStore.DATA_MAX}`);
    let timestamp: Uint8Array = new Uint8Array(16);
    if (e.time !== undefined) {
      timestamp = hex(e.time, `${label}: "time"`);
      if (timestamp.length !== 16)
        throw new Invalid(`${label}: "time" is ${timestamp.length} bytes, an EFI_TIME is 16`);
    }
    let signerDigest: Uint8Array = new Uint8Array(JsonVarStore.DIGEST_SIZE);
    if (e.digest !== undefined) {
      signerDigest = hex(e.digest, `${label}: "digest"`);
      if (signerDigest.length !== JsonVarStore.DIGEST_SIZE) {
        throw new Invalid(
          `${label}: "digest" is ${signerDigest.length} bytes; only 32-byte (SHA-256) signer digests can be kept`,
        );
      }
    }
    for (const key of Object.keys(e)) {
      if (!['guid', 'name', 'attr', 'data', 'time', 'digest'].includes(key))
        warnings.push(`${label}: unknown member ${JSON.stringify(key)} ignored`);
    }
    const id = `${guidToText(guid)}:${Buffer.from(name).toString('hex')}`;
    if (seen.has(id)) throw new Invalid(`${label} ${guidToText(guid)} is listed twice`);
    seen.add(id);
    variables.push({ name, guid, attributes: e.attr, data, timestamp, signerDigest });
  });
  return { ok: true, state: { variables, ...emptyAncillary() }, warnings };
}

function hex(value: unknown, what: string): Uint8Array {
  if (typeof value !== 'string') throw new Invalid(`${what} is not a string`);
  if (!HEX.test(value)) throw new Invalid(`${what} is not an even number of hex digits`);
  return Uint8Array.from(Buffer.from(value, 'hex'));
}

/** What a JSON store cannot hold of `state`: only the VARS blob's MOR key and PPI data. */
export function jsonVarStoreLosses(state: StoreState): string[] {
  return ancillaryLosses(state);
}

/**
 * The JSON text of `state` (every variable given; filter volatile ones first for a QEMU store).
 * `time` is written for time-based authenticated variables and whenever a timestamp is set,
 * `digest` whenever a signer digest is set, so nothing but the ancillary data is lost.
 */
export function encodeJsonVarStore(state: StoreState): string {
  const variables = state.variables.map((v): JsonVariable => {
    if (v.guid.length !== 16) throw new RangeError(`a GUID is 16 bytes, got ${v.guid.length}`);
    if (v.name.length === 0 || v.name.length % 2 !== 0)
      throw new RangeError(`${guidToText(v.guid)}: a variable name must be whole UTF-16 code units`);
    const out: JsonVariable = {
      guid: guidToText(v.guid),
      name: fromUtf16le(v.name),
      attr: v.attributes >>> 0,
      data: Buffer.from(v.data).toString('hex'),
    };
    if ((v.attributes & TIME_BASED_AUTHENTICATED_WRITE_ACCESS) !== 0 || !isZero(v.timestamp))
      out.time = Buffer.from(v.timestamp).toString('hex');
    if (!isZero(v.signerDigest)) out.digest = Buffer.from(v.signerDigest).toString('hex');
    return out;
  });
  return `${JSON.stringify({ version: JsonVarStore.VERSION, variables }, null, 4)}\n`;
}
