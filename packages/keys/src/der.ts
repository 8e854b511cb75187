/**
 * Just enough DER for X.509 certificates and PKCS#7 SignedData: an encoder that always produces the
 * canonical (definite, minimal) form, so outputs are reproducible byte for byte, and a bounded
 * reader that hands out offsets into the caller's buffer, so the exact encoding of any element can be
 * copied or hashed.
 */

/** Identifier octets used here (universal class, plus the constructed bit where DER requires it). */
export const Tag = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** Context-specific constructed tag [n] (explicit tagging, or implicit tagging of a constructed type). */
export function contextTag(n: number): number {
  return 0xa0 | n;
}

/** Context-specific primitive tag [n]. */
export function contextPrimitiveTag(n: number): number {
  return 0x80 | n;
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function encodeLength(length: number): Uint8Array {
  if (length < 0x80) return Uint8Array.of(length);
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

/** One element with a single-octet identifier. */
export function tlv(tag: number, ...content: Uint8Array[]): Uint8Array {
  const body = concatBytes(content);
  return concatBytes([Uint8Array.of(tag), encodeLength(body.length), body]);
}

export function sequence(...items: Uint8Array[]): Uint8Array {
  return tlv(Tag.SEQUENCE, ...items);
}

/** SET OF in DER order: the encodings sorted as octet strings (X.690 §11.6). */
export function setOf(...items: Uint8Array[]): Uint8Array {
  const sorted = [...items].sort(compareBytes);
  return tlv(Tag.SET, ...sorted);
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

export function nullValue(): Uint8Array {
  return Uint8Array.of(Tag.NULL, 0);
}

export function booleanValue(value: boolean): Uint8Array {
  return Uint8Array.of(Tag.BOOLEAN, 1, value ? 0xff : 0);
}

/** A non-negative INTEGER from its big-endian magnitude (leading zeros dropped, a sign octet added when needed). */
export function unsignedInteger(magnitude: Uint8Array): Uint8Array {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const trimmed = magnitude.length === 0 ? Uint8Array.of(0) : magnitude.subarray(start);
  const body = (trimmed[0]! & 0x80) !== 0 ? concatBytes([Uint8Array.of(0), trimmed]) : trimmed;
  return tlv(Tag.INTEGER, body);
}

export function smallInteger(value: number): Uint8Array {
  if (!Number.isInteger(value) || value < 0 || value > 0x7fffffff) throw new RangeError(`not a small non-negative integer: ${value}`);
  const bytes: number[] = [];
  for (let n = value; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return unsignedInteger(Uint8Array.from(bytes));
}

/** An OBJECT IDENTIFIER from dotted text. */
export function oid(text: string): Uint8Array {
  const arcs = text.split('.').map((s) => {
    if (!/^\d+$/.test(s)) throw new RangeError(`not an OID: ${text}`);
    return BigInt(s);
  });
  if (arcs.length < 2) throw new RangeError(`not an OID: ${text}`);
  const out: number[] = [];
  const push = (arc: bigint): void => {
    const groups: number[] = [Number(arc & 0x7fn)];
    for (let n = arc >> 7n; n > 0n; n >>= 7n) groups.unshift(Number(n & 0x7fn) | 0x80);
    out.push(...groups);
  };
  push(arcs[0]! * 40n + arcs[1]!);
  for (const arc of arcs.slice(2)) push(arc);
  return tlv(Tag.OID, Uint8Array.from(out));
}

export function octetString(bytes: Uint8Array): Uint8Array {
  return tlv(Tag.OCTET_STRING, bytes);
}

/** A BIT STRING of whole octets with `unusedBits` padding bits in the last one. */
export function bitString(bytes: Uint8Array, unusedBits = 0): Uint8Array {
  return tlv(Tag.BIT_STRING, Uint8Array.of(unusedBits), bytes);
}

export function utf8String(text: string): Uint8Array {
  return tlv(Tag.UTF8_STRING, new TextEncoder().encode(text));
}

export function explicit(n: number, ...content: Uint8Array[]): Uint8Array {
  return tlv(contextTag(n), ...content);
}

/**
 * An X.509 Time (RFC 5280 §4.1.2.5): UTCTime for years 1950..2049, GeneralizedTime otherwise, to
 * the second, in UTC.
 */
export function x509Time(date: Date): Uint8Array {
  const year = date.getUTCFullYear();
  if (year < 0 || year > 9999) throw new RangeError(`year ${year} cannot be encoded in a certificate`);
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  const rest = `${p(date.getUTCMonth() + 1)}${p(date.getUTCDate())}${p(date.getUTCHours())}${p(date.getUTCMinutes())}${p(date.getUTCSeconds())}Z`;
  if (year >= 1950 && year < 2050) return tlv(Tag.UTC_TIME, new TextEncoder().encode(`${p(year % 100)}${rest}`));
  return tlv(Tag.GENERALIZED_TIME, new TextEncoder().encode(`${p(year, 4)}${rest}`));
}

/** Thrown by the reader on malformed input; callers turn it into their own error. */
export class DerError extends Error {
  override readonly name = 'DerError';
}

/** One element of a DER buffer, located by offsets. */
export interface Element {
  /** The identifier octet (only single-octet identifiers occur in the structures read here). */
  readonly tag: number;
  readonly start: number;
  readonly contentStart: number;
  readonly end: number;
}

/**
 * Reads the element at `offset`, which must end by `limit`. Definite lengths only (DER), at most 4
 * length octets; high tag numbers are refused.
 */
export function readElement(bytes: Uint8Array, offset: number, limit: number = bytes.length): Element {
  if (limit > bytes.length) limit = bytes.length;
  if (offset + 2 > limit) throw new DerError(`truncated element at offset ${offset}`);
  const tag = bytes[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError(`unsupported high tag number at offset ${offset}`);
  const first = bytes[offset + 1]!;
  let contentStart = offset + 2;
  let length: number;
  if (first < 0x80) {
    length = first;
  } else {
    const count = first & 0x7f;
    if (count === 0) throw new DerError(`indefinite length at offset ${offset} (BER, not DER)`);
    if (count > 4) throw new DerError(`length of ${count} octets at offset ${offset}`);
    if (contentStart + count > limit) throw new DerError(`truncated length at offset ${offset}`);
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + bytes[contentStart + i]!;
    contentStart += count;
  }
  if (length > limit - contentStart) throw new DerError(`element at offset ${offset} runs ${length - (limit - contentStart)} bytes past its container`);
  return { tag, start: offset, contentStart, end: contentStart + length };
}

/** Reads an element and checks its tag. */
export function expectElement(bytes: Uint8Array, offset: number, limit: number, tag: number, what: string): Element {
  const el = readElement(bytes, offset, limit);
  if (el.tag !== tag) {
    throw new DerError(`${what}: expected tag 0x${tag.toString(16)}, found 0x${el.tag.toString(16)} at offset ${offset}`);
  }
  return el;
}

/** The elements directly inside a constructed element, in order. */
export function children(bytes: Uint8Array, parent: Element): Element[] {
  const out: Element[] = [];
  for (let at = parent.contentStart; at < parent.end; ) {
    const el = readElement(bytes, at, parent.end);
    out.push(el);
    at = el.end;
  }
  return out;
}

/** The whole encoding of an element. */
export function encoding(bytes: Uint8Array, el: Element): Uint8Array {
  return bytes.subarray(el.start, el.end);
}

/** The content octets of an element. */
export function content(bytes: Uint8Array, el: Element): Uint8Array {
  return bytes.subarray(el.contentStart, el.end);
}

/** Dotted text of an OBJECT IDENTIFIER element. */
export function oidText(bytes: Uint8Array, el: Element): string {
  if (el.tag !== Tag.OID) throw new DerError(`expected an OID at offset ${el.start}`);
  const body = content(bytes, el);
  if (body.length === 0) throw new DerError(`empty OID at offset ${el.start}`);
  const arcs: bigint[] = [];
  let value = 0n;
  for (let i = 0; i < body.length; i++) {
    value = (value << 7n) | BigInt(body[i]! & 0x7f);
    if ((body[i]! & 0x80) === 0) {
      arcs.push(value);
      value = 0n;
    } else if (i === body.length - 1) {
      throw new DerError(`truncated OID at offset ${el.start}`);
    }
  }
  const first = arcs[0]!;
  const head = first < 80n ? [first / 40n, first % 40n] : [2n, first - 80n];
  return [...head, ...arcs.slice(1)].map(String).join('.');
}
