import type { StoreState } from '@vmsb/efi';
import { decodeVarsBlob, encodeVarsBlob, MAX_VARS_BLOB_SIZE, VarsBlob } from '../vars-blob.js';
import type { DecodedNvram } from './common.js';
import { decodeJsonVarStore, encodeJsonVarStore, jsonVarStoreLosses } from './json.js';
import { decodeOvmfFd, encodeOvmfFd, looksLikeOvmfFd, ovmfFdLosses, type OvmfLayout } from './ovmf-fd.js';

export type { DecodedNvram } from './common.js';
export { decodeJsonVarStore, encodeJsonVarStore, jsonVarStoreLosses, JsonVarStore } from './json.js';
export {
  decodeOvmfFd,
  encodeOvmfFd,
  emptyOvmfFd,
  looksLikeOvmfFd,
  ovmfFdLosses,
  ovmfRecordSize,
  OvmfFd,
  OvmfLayouts,
  type DecodedOvmfFd,
  type EncodeOvmfFdOptions,
  type OvmfFdInfo,
  type OvmfLayout,
} from './ovmf-fd.js';

/**
 * The store formats: the binary VARS blob (varstored, XAPI before base64), the same blob in base64
 * (what `VM.NVRAM["EFI-variables"]` holds), QEMU/virt-firmware JSON (version 2), and an OVMF
 * variable flash image (`OVMF_VARS*.fd`).
 */
export type NvramFormat = 'vars' | 'vars-base64' | 'json' | 'ovmf-fd';

export const NVRAM_FORMATS: readonly NvramFormat[] = ['vars', 'vars-base64', 'json', 'ovmf-fd'];

/** One line per format, for help texts and messages. */
export const NVRAM_FORMAT_NAMES: Readonly<Record<NvramFormat, string>> = {
  vars: 'VARS blob (binary)',
  'vars-base64': 'VARS blob (base64, as XAPI stores it)',
  json: 'QEMU/virt-firmware JSON (version 2)',
  'ovmf-fd': 'OVMF variable flash image (.fd)',
};

const BASE64_TEXT = /^[A-Za-z0-9+/]+={0,2}$/;
const MAX_BASE64_SIZE = Math.ceil(MAX_VARS_BLOB_SIZE / 3) * 4 + 4096;

function startsWithMagic(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && String.fromCharCode(bytes[0]!, bytes[1]!, bytes[2]!, bytes[3]!) === VarsBlob.MAGIC;
}

/** The blob inside base64 text (whitespace allowed), or undefined when the text is not strict base64. */
function fromBase64(bytes: Uint8Array): Uint8Array | undefined {
  if (bytes.length > MAX_BASE64_SIZE) return undefined;
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1').replace(/\s+/g, '');
  if (text.length === 0 || text.length % 4 !== 0 || !BASE64_TEXT.test(text)) return undefined;
  const decoded = Buffer.from(text, 'base64');
  // Node decodes leniently; accept only text that is exactly the encoding of what it decodes to.
  if (decoded.toString('base64') !== text) return undefined;
  return new Uint8Array(decoded.buffer, decoded.byteOffset, decoded.byteLength);
}

/**
 * The format of a store file from its content, or undefined when it is none of them. Cheap: looks at
 * magic numbers (and, for base64, decodes the text), without validating the whole store.
 */
export function detectFormat(bytes: Uint8Array): NvramFormat | undefined {
  if (startsWithMagic(bytes)) return 'vars';
  if (looksLikeOvmfFd(bytes)) return 'ovmf-fd';
  let first = 0;
  while (
    first < bytes.length &&
    (bytes[first] === 0x20 || bytes[first] === 0x09 || bytes[first] === 0x0a || bytes[first] === 0x0d)
  )
    first++;
  if (bytes[first] === 0x7b /* { */) return 'json';
  // A UTF-8 byte-order mark before the JSON.
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf && bytes[3] === 0x7b) return 'json';
  const blob = fromBase64(bytes);
  if (blob !== undefined && startsWithMagic(blob)) return 'vars-base64';
  return undefined;
}

/** The format a file name suggests (for files that do not exist yet): `.json`, `.fd`, `.b64`/`.base64`, else undefined. */
export function formatFromFileName(path: string): NvramFormat | undefined {
  const lower = path.toLowerCase();
  if (lower.endsWith('.json')) return 'json';
  if (lower.endsWith('.fd')) return 'ovmf-fd';
  if (lower.endsWith('.b64') || lower.endsWith('.base64')) return 'vars-base64';
  if (lower.endsWith('.vars') || lower.endsWith('.dat') || lower.endsWith('.bin')) return 'vars';
  return undefined;
}

export type DecodedStore =
  | (DecodedNvram & {
      readonly ok: true;
      readonly format: NvramFormat;
      /** The VARS blob's version (a v1 blob is written back as v2). */
      readonly varsVersion?: 1 | 2;
    })
  | { readonly ok: false; readonly format?: NvramFormat; readonly error: string };

/** Decodes a store in `format`, or in the format detected from its content. Never throws. */
export function decodeNvram(bytes: Uint8Array, format: NvramFormat | undefined = detectFormat(bytes)): DecodedStore {
  switch (format) {
    case undefined:
      return {
        ok: false,
        error:
          'not a variable store: neither a VARS blob (binary or base64), QEMU/virt-firmware JSON nor an OVMF .fd image',
      };
    case 'vars':
    case 'vars-base64': {
      const blob = format === 'vars' ? bytes : fromBase64(bytes);
      if (blob === undefined) return { ok: false, format, error: 'not strict base64 text' };
      const decoded = decodeVarsBlob(blob);
      if (!decoded.ok) return { ok: false, format, error: `VARS blob: ${decoded.error}` };
      return { ok: true, format, state: decoded.state, warnings: [], varsVersion: decoded.version };
    }
    case 'json': {
      let input = bytes;
      if (input[0] === 0xef && input[1] === 0xbb && input[2] === 0xbf) input = input.subarray(3);
      const decoded = decodeJsonVarStore(input);
      return decoded.ok ? { ...decoded, format } : { ...decoded, format };
    }
    case 'ovmf-fd': {
      const decoded = decodeOvmfFd(bytes);
      return decoded.ok
        ? { ok: true, format, state: decoded.state, warnings: decoded.warnings }
        : { ok: false, format, error: decoded.error };
    }
  }
}

export interface EncodeNvramOptions {
  /** For 'ovmf-fd': an existing image whose layout is kept (see `encodeOvmfFd`). */
  readonly template?: Uint8Array;
  /** For 'ovmf-fd' without a template. Default '4m'. */
  readonly layout?: OvmfLayout;
}

/**
 * Encodes `state` in `format`, every variable included (volatile ones too: the caller chooses what
 * to keep). Formats other than VARS drop what they cannot hold: check `nvramLosses` first.
 * Throws RangeError when the state cannot be written at all (too large, invalid fields).
 */
export function encodeNvram(state: StoreState, format: NvramFormat, options: EncodeNvramOptions = {}): Uint8Array {
  switch (format) {
    case 'vars':
      return encodeVarsBlob(state, { nonVolatileOnly: false });
    case 'vars-base64':
      return new Uint8Array(
        Buffer.from(Buffer.from(encodeVarsBlob(state, { nonVolatileOnly: false })).toString('base64'), 'latin1'),
      );
    case 'json':
      return new Uint8Array(Buffer.from(encodeJsonVarStore(state), 'utf8'));
    case 'ovmf-fd':
      return encodeOvmfFd(state, {
        ...(options.template !== undefined ? { template: options.template } : {}),
        ...(options.layout !== undefined ? { layout: options.layout } : {}),
      });
  }
}

/** What `format` cannot hold of `state`, one line each; empty when writing it is lossless. */
export function nvramLosses(state: StoreState, format: NvramFormat): string[] {
  switch (format) {
    case 'vars':
    case 'vars-base64':
      return [];
    case 'json':
      return jsonVarStoreLosses(state);
    case 'ovmf-fd':
      return ovmfFdLosses(state);
  }
}
