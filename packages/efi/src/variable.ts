import { bytesEqual, copyBytes, fromUtf16le, utf16le } from '@vmsb/protocol';
import { guidEquals } from './guid.js';

export { utf16le, fromUtf16le };

/** A stored UEFI variable. */
export interface Variable {
  /** UTF-16LE bytes, no terminator. */
  readonly name: Uint8Array;
  /** 16 bytes, EFI byte order. */
  readonly guid: Uint8Array;
  /** As stored (never has APPEND_WRITE). */
  readonly attributes: number;
  readonly data: Uint8Array;
  /** 16-byte EFI_TIME; all zero when none. */
  readonly timestamp: Uint8Array;
  /** 32 bytes; all zero when none (the signer binding of a private authenticated variable). */
  readonly signerDigest: Uint8Array;
}

export const SIGNER_DIGEST_SIZE = 32;

/**
 * Why `name` (UTF-16LE, no terminator) is not a usable variable name, or undefined: it must be
 * non-empty, a whole number of UTF-16 code units, and hold no NUL code unit (firmware sees names as
 * NUL-terminated strings, so an embedded NUL would name a different variable).
 */
export function nameProblem(name: Uint8Array): string | undefined {
  if (name.length === 0) return 'the name is empty';
  if (name.length % 2 !== 0) return `the name has an odd length (${name.length} bytes)`;
  for (let i = 0; i < name.length; i += 2) {
    if (name[i] === 0 && name[i + 1] === 0) return `the name has a NUL at byte ${i}`;
  }
  return undefined;
}

export { bytesEqual };

/** Whether `v` is the variable (name, guid): byte-exact, as UEFI compares them. */
export function isVariable(v: Pick<Variable, 'name' | 'guid'>, name: Uint8Array, guid: Uint8Array): boolean {
  return bytesEqual(v.name, name) && guidEquals(v.guid, guid);
}

/** The name as a string (for logs and tools). */
export function variableName(v: Pick<Variable, 'name'>): string {
  return fromUtf16le(v.name);
}

/** Two variables are the same record (everything a store persists). */
export function variablesEqual(a: Variable, b: Variable): boolean {
  return (
    a.attributes === b.attributes &&
    bytesEqual(a.name, b.name) &&
    bytesEqual(a.guid, b.guid) &&
    bytesEqual(a.data, b.data) &&
    bytesEqual(a.timestamp, b.timestamp) &&
    bytesEqual(a.signerDigest, b.signerDigest)
  );
}

/**
 * A private, frozen copy of a variable; missing timestamp/digest become all zero. Every field is
 * copied into new memory (copyBytes, never `slice()`, which on a Buffer is a view): a variable made
 * from a request never aliases the request buffer, which a transport may reuse for the next request.
 */
export function makeVariable(fields: {
  name: Uint8Array;
  guid: Uint8Array;
  attributes: number;
  data: Uint8Array;
  timestamp?: Uint8Array;
  signerDigest?: Uint8Array;
}): Variable {
  const timestamp = new Uint8Array(16);
  if (fields.timestamp !== undefined) timestamp.set(fields.timestamp.subarray(0, 16));
  const signerDigest = new Uint8Array(SIGNER_DIGEST_SIZE);
  if (fields.signerDigest !== undefined) signerDigest.set(fields.signerDigest.subarray(0, SIGNER_DIGEST_SIZE));
  return Object.freeze({
    name: copyBytes(fields.name),
    guid: copyBytes(fields.guid.subarray(0, 16)),
    attributes: fields.attributes >>> 0,
    data: copyBytes(fields.data),
    timestamp,
    signerDigest,
  });
}
