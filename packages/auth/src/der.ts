/**
 * A small, bounded BER/DER reader for the structures UEFI signatures use (PKCS#7 SignedData and
 * X.509 certificates). It hands out offsets into the caller's buffer, so the exact encoded bytes of
 * any element (a certificate, its tbsCertificate, the signed attributes) stay available for hashing
 * and byte-for-byte comparison.
 *
 * Lenient where real signers and OpenSSL are: long-form lengths with leading zero bytes, indefinite
 * lengths on constructed values, negative INTEGERs. Strict where it matters: every length is checked
 * against its enclosing element, nesting depth is capped, and trailing bytes are reported.
 */

/** Thrown inside the parsers of this package only; each public parser turns it into a result value. */
export class DerError extends Error {
  override readonly name = 'DerError';
}

export const TagClass = { UNIVERSAL: 0, APPLICATION: 1, CONTEXT: 2, PRIVATE: 3 } as const;

export const Tag = {
  BOOLEAN: 1,
  INTEGER: 2,
  BIT_STRING: 3,
  OCTET_STRING: 4,
  NULL: 5,
  OID: 6,
  UTF8_STRING: 12,
  SEQUENCE: 16,
  SET: 17,
  PRINTABLE_STRING: 19,
  T61_STRING: 20,
  IA5_STRING: 22,
  UTC_TIME: 23,
  GENERALIZED_TIME: 24,
  UNIVERSAL_STRING: 28,
  BMP_STRING: 30,
} as const;

/** One element: where its header, content and end are in `bytes`. */
export interface Tlv {
  readonly bytes: Uint8Array;
  readonly cls: number;
  readonly constructed: boolean;
  readonly tag: number;
  /** Offset of the identifier octet. */
  readonly start: number;
  /** Offset of the first content octet. */
  readonly contentStart: number;
  /** Offset just past the content (before an end-of-contents marker for indefinite lengths). */
  readonly contentEnd: number;
  /** Offset just past the whole element. */
  readonly end: number;
  readonly depth: number;
}

/** Deepest nesting accepted; real certificates and SignedData stay below 16. */
export const MAX_DER_DEPTH = 32;

/** Reads the element starting at `offset`, which must end at or before `limit`. */
export function readTlv(bytes: Uint8Array, offset: number, limit: number, depth = 0): Tlv {
  if (depth > MAX_DER_DEPTH) throw new DerError(`nesting deeper than ${MAX_DER_DEPTH}`);
  let p = offset;
  if (p >= limit) throw new DerError(`element expected at offset ${offset}`);
  const id = bytes[p++]!;
  const cls = id >>> 6;
  const constructed = (id & 0x20) !== 0;
  let tag = id & 0x1f;
  if (tag === 0x1f) {
    // High tag number form: base-128, at most 4 octets (tags above 2^28 do not occur).
    tag = 0;
    for (let n = 0; ; n++) {
      if (p >= limit) throw new DerError(`truncated tag at offset ${offset}`);
      if (n === 4) throw new DerError(`tag number too large at offset ${offset}`);
      const b = bytes[p++]!;
      tag = tag * 128 + (b & 0x7f);
      if ((b & 0x80) === 0) break;
    }
  }
  if (p >= limit) throw new DerError(`truncated length at offset ${offset}`);
  const first = bytes[p++]!;
  if (first === 0x80) {
    if (!constructed) throw new DerError(`indefinite length on a primitive element at offset ${offset}`);
    // Indefinite length: children follow until an end-of-contents marker (00 00).
    const contentStart = p;
    let q = p;
    for (;;) {
      if (q + 2 > limit) throw new DerError(`missing end-of-contents for the element at offset ${offset}`);
      if (bytes[q] === 0 && bytes[q + 1] === 0) return { bytes, cls, constructed, tag, start: offset, contentStart, contentEnd: q, end: q + 2, depth };
      q = readTlv(bytes, q, limit, depth + 1).end;
    }
  }
  let length: number;
  if (first < 0x80) {
    length = first;
  } else {
    const count = first & 0x7f;
    if (count === 0x7f) throw new DerError(`reserved length octet at offset ${offset}`);
    if (p + count > limit) throw new DerError(`truncated length at offset ${offset}`);
    length = 0;
    for (let i = 0; i < count; i++) {
      const b = bytes[p++]!;
      if (length > 0xffffff) throw new DerError(`length too large at offset ${offset}`);
      length = length * 256 + b;
    }
  }
  if (length > limit - p) throw new DerError(`element at offset ${offset} is ${length} bytes but only ${limit - p} remain`);
  return { bytes, cls, constructed, tag, start: offset, contentStart: p, contentEnd: p + length, end: p + length, depth };
}

/** Parses `bytes` as exactly one element (no trailing bytes). */
export function readRoot(bytes: Uint8Array): Tlv {
  const root = readTlv(bytes, 0, bytes.length);
  if (root.end !== bytes.length) throw new DerError(`${bytes.length - root.end} bytes follow the encoded value`);
  return root;
}

/** The child elements of a constructed element. */
export function children(tlv: Tlv): Tlv[] {
  if (!tlv.constructed) throw new DerError(`element at offset ${tlv.start} is not constructed`);
  const out: Tlv[] = [];
  let p = tlv.contentStart;
  while (p < tlv.contentEnd) {
    const child = readTlv(tlv.bytes, p, tlv.contentEnd, tlv.depth + 1);
    out.push(child);
    p = child.end;
  }
  return out;
}

export function isUniversal(tlv: Tlv, tag: number): boolean {
  return tlv.cls === TagClass.UNIVERSAL && tlv.tag === tag;
}

export function isContext(tlv: Tlv, tag: number): boolean {
  return tlv.cls === TagClass.CONTEXT && tlv.tag === tag;
}

/** Fails unless `tlv` is the universal element `tag` (with the constructed bit SEQUENCE/SET need). */
export function expect(tlv: Tlv | undefined, tag: number, what: string): Tlv {
  if (tlv === undefined) throw new DerError(`${what} is missing`);
  if (!isUniversal(tlv, tag)) throw new DerError(`${what} has an unexpected type`);
  const mustConstruct = tag === Tag.SEQUENCE || tag === Tag.SET;
  if (mustConstruct !== tlv.constructed && tag !== Tag.OCTET_STRING && tag !== Tag.BIT_STRING) {
    throw new DerError(`${what} has the wrong form`);
  }
  return tlv;
}

export function expectContext(tlv: Tlv | undefined, tag: number, what: string): Tlv {
  if (tlv === undefined || !isContext(tlv, tag)) throw new DerError(`${what} is missing`);
  return tlv;
}

/** The whole encoding of an element (header included). */
export function raw(tlv: Tlv): Uint8Array {
  return tlv.bytes.subarray(tlv.start, tlv.end);
}

/** The content octets of a primitive element. */
export function content(tlv: Tlv): Uint8Array {
  return tlv.bytes.subarray(tlv.contentStart, tlv.contentEnd);
}

/** INTEGER content octets (two's complement, as encoded); negative values are fine. */
export function integerBytes(tlv: Tlv, what: string): Uint8Array {
  expect(tlv, Tag.INTEGER, what);
  if (tlv.constructed || tlv.contentEnd === tlv.contentStart) throw new DerError(`${what} is not a valid INTEGER`);
  return content(tlv);
}

/** A small non-negative INTEGER as a number (version fields, path lengths). */
export function smallInteger(tlv: Tlv, what: string): number {
  const b = integerBytes(tlv, what);
  if (b.length > 4 || (b[0]! & 0x80) !== 0) throw new DerError(`${what} is out of range`);
  let v = 0;
  for (const x of b) v = v * 256 + x;
  return v;
}

/** OBJECT IDENTIFIER in dotted form. */
export function oid(tlv: Tlv, what: string): string {
  expect(tlv, Tag.OID, what);
  if (tlv.constructed) throw new DerError(`${what} is not a valid OID`);
  const c = content(tlv);
  if (c.length === 0 || c.length > 64) throw new DerError(`${what} is not a valid OID`);
  const arcs: number[] = [];
  let value = 0;
  let started = false;
  for (let i = 0; i < c.length; i++) {
    const b = c[i]!;
    if (!started && b === 0x80) throw new DerError(`${what} has a padded arc`);
    started = true;
    if (value >= 2 ** 45) throw new DerError(`${what} has an arc too large`);
    value = value * 128 + (b & 0x7f);
    if ((b & 0x80) === 0) {
      arcs.push(value);
      value = 0;
      started = false;
    } else if (i === c.length - 1) {
      throw new DerError(`${what} is truncated`);
    }
  }
  const firstArc = arcs[0]!;
  const head = firstArc < 40 ? [0, firstArc] : firstArc < 80 ? [1, firstArc - 40] : [2, firstArc - 80];
  return [...head, ...arcs.slice(1)].join('.');
}

/** The content octets of an OBJECT IDENTIFIER in dotted form (for comparing without decoding). */
export function encodeOid(dotted: string): Uint8Array {
  const arcs = dotted.split('.').map(Number);
  const values = [arcs[0]! * 40 + arcs[1]!, ...arcs.slice(2)];
  const out: number[] = [];
  for (const v of values) {
    const groups: number[] = [];
    let x = v;
    do {
      groups.unshift(x % 128);
      x = Math.floor(x / 128);
    } while (x > 0);
    for (let i = 0; i < groups.length; i++) out.push(groups[i]! | (i < groups.length - 1 ? 0x80 : 0));
  }
  return Uint8Array.from(out);
}

/** Whether `tlv` is the OBJECT IDENTIFIER whose content octets are `encoded`. */
export function isOid(tlv: Tlv | undefined, encoded: Uint8Array): boolean {
  if (tlv === undefined || tlv.cls !== TagClass.UNIVERSAL || tlv.tag !== Tag.OID || tlv.constructed) return false;
  if (tlv.contentEnd - tlv.contentStart !== encoded.length) return false;
  for (let i = 0; i < encoded.length; i++) if (tlv.bytes[tlv.contentStart + i] !== encoded[i]) return false;
  return true;
}

/** Dotted OID text for display; never throws (an invalid encoding shows as hex). */
export function oidText(tlv: Tlv): string {
  try {
    return oid(tlv, 'OID');
  } catch {
    return `invalid-oid:${hex(raw(tlv))}`;
  }
}

/** OCTET STRING value; a BER constructed OCTET STRING is joined from its primitive pieces. */
export function octetString(tlv: Tlv, what: string): Uint8Array {
  expect(tlv, Tag.OCTET_STRING, what);
  if (!tlv.constructed) return content(tlv);
  const parts = children(tlv).map((c) => {
    if (!isUniversal(c, Tag.OCTET_STRING) || c.constructed) throw new DerError(`${what} has a piece that is not a primitive OCTET STRING`);
    return content(c);
  });
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** BIT STRING value whose unused-bit count is zero (signatures, public keys). */
export function bitStringBytes(tlv: Tlv, what: string): Uint8Array {
  expect(tlv, Tag.BIT_STRING, what);
  if (tlv.constructed) throw new DerError(`${what} uses a constructed BIT STRING`);
  const c = content(tlv);
  if (c.length === 0 || c[0] !== 0) throw new DerError(`${what} is not a whole number of bytes`);
  return c.subarray(1);
}

/** BIT STRING as a flag word: bit 0 of the ASN.1 string is the value 1 (KeyUsage numbering). */
export function bitFlags(tlv: Tlv, what: string): number {
  expect(tlv, Tag.BIT_STRING, what);
  if (tlv.constructed) throw new DerError(`${what} uses a constructed BIT STRING`);
  const c = content(tlv);
  if (c.length === 0 || c[0]! > 7) throw new DerError(`${what} is not a valid BIT STRING`);
  let flags = 0;
  for (let i = 1; i < c.length && i <= 4; i++) {
    const byte = c[i]!;
    for (let bit = 0; bit < 8; bit++) if ((byte & (0x80 >>> bit)) !== 0) flags |= 1 << ((i - 1) * 8 + bit);
  }
  return flags >>> 0;
}

/** BOOLEAN (any non-zero octet is TRUE, as BER allows). */
export function booleanValue(tlv: Tlv, what: string): boolean {
  expect(tlv, Tag.BOOLEAN, what);
  const c = content(tlv);
  if (tlv.constructed || c.length !== 1) throw new DerError(`${what} is not a valid BOOLEAN`);
  return c[0] !== 0;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Hex of bytes, lower case. */
export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}
