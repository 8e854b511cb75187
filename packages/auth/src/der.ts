/**
 * The one bounded DER reader of the project: every certificate, SignedData and SignerInfo a guest,
 * a file or an administrator hands over is read through it.
 *
 * It reads tags and lengths into `Tlv` views of the caller's bytes, never building a tree:
 * `precheckDer` walks a whole encoding once and bounds it (size, element count, nesting depth, every
 * length within its enclosing element, indefinite lengths only on constructed elements and closed by
 * their end-of-contents, BER that OpenSSL and so edk2 accept from streaming signers, no trailing
 * bytes); `decodeDer` adds the checks on primitive values a BER decoder makes (`primitiveProblem`);
 * the typed accessors below read one value each and throw DerError on anything else.
 */
import { hex } from '@vmsb/protocol';

/** Thrown inside the parsers of this package only; each public parser turns it into a result value. */
export class DerError extends Error {
  override readonly name = 'DerError';
}

/** Deepest nesting accepted; real certificates and SignedData stay below 16. */
export const MAX_DER_DEPTH = 32;

/** One element: where its header, content and end are in `bytes`. */
export interface Tlv {
  readonly bytes: Uint8Array;
  /** 0 universal, 1 application, 2 context, 3 private. */
  readonly cls: number;
  readonly constructed: boolean;
  readonly tag: number;
  readonly start: number;
  readonly contentStart: number;
  /** Offset just past the content (before the end-of-contents marker of an indefinite length). */
  readonly contentEnd: number;
  /** Offset just past the whole element. */
  readonly end: number;
  readonly depth: number;
}

/**
 * Where the indefinite-length elements of an encoding precheckDer accepted end, by offset: reading
 * a child list (children) then finds each end without reading the element's contents again.
 */
const indefiniteEnds = new WeakMap<Uint8Array, Map<number, number>>();

/** Reads the header of the element at `offset`, which must end at or before `limit`. */
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
    // Children follow until an end-of-contents marker (00 00); each is bounded by `limit` and depth.
    // Found in one pass without recursion: a nested indefinite length is read once, not once per level.
    const known = indefiniteEnds.get(bytes)?.get(offset);
    const scan =
      known !== undefined && known <= limit
        ? known
        : scanElements(bytes, p, limit, depth + 1, offset, false, Number.POSITIVE_INFINITY);
    if (typeof scan === 'string') throw new DerError(scan);
    return { bytes, cls, constructed, tag, start: offset, contentStart: p, contentEnd: scan - 2, end: scan, depth };
  }
  let length: number;
  if (first < 0x80) {
    length = first;
  } else {
    const count = first & 0x7f;
    if (count === 0x7f) throw new DerError(`reserved length octet at offset ${offset}`);
    // More than 8 length octets is refused by every BER decoder (OpenSSL's ASN1_get_object among them).
    if (count > 8) throw new DerError(`length of ${count} octets at offset ${offset}`);
    if (p + count > limit) throw new DerError(`truncated length at offset ${offset}`);
    length = 0;
    for (let i = 0; i < count; i++) {
      const b = bytes[p++]!;
      if (length > 0xffffff) throw new DerError(`length too large at offset ${offset}`);
      length = length * 256 + b;
    }
  }
  if (length > limit - p)
    throw new DerError(`element at offset ${offset} is ${length} bytes but only ${limit - p} remain`);
  return {
    bytes,
    cls,
    constructed,
    tag,
    start: offset,
    contentStart: p,
    contentEnd: p + length,
    end: p + length,
    depth,
  };
}

/** The header of `bytes` as exactly one element (no trailing bytes). */
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

/**
 * Most elements a guest-supplied encoding may hold. Real certificates hold under 300 and a SignedData
 * with 32 of them under 10,000; without a bound, 64 KiB of two-byte elements is 32,768 of them.
 */
export const MAX_DER_ELEMENTS = 8192;

/**
 * Walks the whole tree of `bytes` (constructed elements only; primitive contents are not looked
 * into) and returns its root, or throws DerError when it is larger than `maxSize`, holds more than
 * MAX_DER_ELEMENTS elements, nests deeper than MAX_DER_DEPTH, overruns an enclosing element, leaves
 * an indefinite length unclosed (or puts one on a primitive) or has trailing bytes.
 *
 * Every certificate of a signature list and every SignedData goes through here, so the walk
 * allocates nothing per element and reads each header once (scanElements): its cost is linear
 * in the input whatever the nesting (readTlv, which finds an indefinite length's end by reading its
 * children, would read a deeply nested one once per level).
 */
export function precheckDer(bytes: Uint8Array, maxSize: number): Tlv {
  if (bytes.length > maxSize) throw new DerError(`${bytes.length} bytes (limit ${maxSize})`);
  const ends = new Map<number, number>();
  const end = scanElements(bytes, 0, bytes.length, 0, undefined, true, MAX_DER_ELEMENTS, ends);
  if (typeof end === 'string') throw new DerError(end);
  if (ends.size > 0) indefiniteEnds.set(bytes, ends);
  if (end !== bytes.length) throw new DerError(`${bytes.length - end} bytes follow the encoded value`);
  return readRoot(bytes);
}

/**
 * Reads elements from `start` without recursion or allocation per element and returns the offset
 * just past what it read, or what is wrong (as readTlv would say it). With `openAt` undefined it
 * reads one element and, when `descend`, everything inside it; with `openAt` it starts inside the
 * indefinite-length element that begins there and reads up to its end-of-contents, skipping the
 * contents of definite-length children unless `descend`. Two number stacks hold each open
 * element's end (-1 while an indefinite length awaits its end-of-contents) and the limit its
 * children must stay within; the cost is linear in what is read, whatever the nesting. `record`
 * collects where each indefinite-length element read ends (its offset → just past its
 * end-of-contents).
 */
function scanElements(
  bytes: Uint8Array,
  start: number,
  limit0: number,
  depth0: number,
  openAt: number | undefined,
  descend: boolean,
  maxElements: number,
  record?: Map<number, number>,
): number | string {
  const ends: number[] = [];
  const limits: number[] = [];
  const starts: number[] = [];
  if (openAt !== undefined) {
    ends.push(-1);
    limits.push(limit0);
    starts.push(openAt);
  }
  const base = depth0 - ends.length;
  let p = start;
  let elements = 0;
  for (;;) {
    const open = ends.length;
    let limit = limit0;
    if (open > 0) {
      const end = ends[open - 1]!;
      limit = limits[open - 1]!;
      if (end === -1) {
        if (p + 2 > limit) return `missing end-of-contents for the element at offset ${starts[open - 1]}`;
        if (bytes[p] === 0 && bytes[p + 1] === 0) {
          p += 2;
          ends.pop();
          limits.pop();
          record?.set(starts.pop()!, p);
          if (ends.length === 0) return p;
          continue;
        }
      } else if (p >= end) {
        ends.pop();
        limits.pop();
        starts.pop();
        if (ends.length === 0) return p;
        continue;
      } else {
        limit = end;
      }
    } else if (elements > 0) {
      return p;
    }
    // One header at p, within limit, as readTlv reads it.
    const offset = p;
    if (base + open > MAX_DER_DEPTH) return `nesting deeper than ${MAX_DER_DEPTH}`;
    if (p >= limit) return `element expected at offset ${offset}`;
    if (++elements > maxElements) return `more than ${maxElements} elements`;
    const id = bytes[p++]!;
    const constructed = (id & 0x20) !== 0;
    if ((id & 0x1f) === 0x1f) {
      for (let k = 0; ; k++) {
        if (p >= limit) return `truncated tag at offset ${offset}`;
        if (k === 4) return `tag number too large at offset ${offset}`;
        if ((bytes[p++]! & 0x80) === 0) break;
      }
    }
    if (p >= limit) return `truncated length at offset ${offset}`;
    const first = bytes[p++]!;
    if (first === 0x80) {
      if (!constructed) return `indefinite length on a primitive element at offset ${offset}`;
      ends.push(-1);
      limits.push(limit);
      starts.push(offset);
      continue;
    }
    let length = first;
    if (first > 0x80) {
      const count = first & 0x7f;
      if (count === 0x7f) return `reserved length octet at offset ${offset}`;
      if (count > 8) return `length of ${count} octets at offset ${offset}`;
      if (p + count > limit) return `truncated length at offset ${offset}`;
      length = 0;
      for (let k = 0; k < count; k++) {
        if (length > 0xffffff) return `length too large at offset ${offset}`;
        length = length * 256 + bytes[p++]!;
      }
    }
    if (length > limit - p) return `element at offset ${offset} is ${length} bytes but only ${limit - p} remain`;
    if (constructed && (descend || open === 0)) {
      ends.push(p + length);
      limits.push(p + length);
      starts.push(offset);
    } else {
      p += length;
    }
  }
}

export function isContextTlv(tlv: Tlv, tag: number): boolean {
  return tlv.cls === 2 && tlv.tag === tag;
}

export { bytesEqual, hex } from '@vmsb/protocol';

/** Universal tag numbers read here. */
export const Tag = {
  END_OF_CONTENTS: 0,
  BOOLEAN: 1,
  INTEGER: 2,
  BIT_STRING: 3,
  OCTET_STRING: 4,
  NULL: 5,
  OID: 6,
  RELATIVE_OID: 13,
  UTF8_STRING: 12,
  SEQUENCE: 16,
  SET: 17,
  UTC_TIME: 23,
  GENERALIZED_TIME: 24,
  UNIVERSAL_STRING: 28,
  BMP_STRING: 30,
} as const;

/** Universal types that have only a primitive encoding (X.690 §8; what BER decoders refuse constructed). */
const PRIMITIVE_ONLY: ReadonlySet<number> = new Set([1, 2, 5, 6, 9, 13, 14, 23, 24, 31, 32, 33, 34]);

/**
 * Decodes `bytes` as exactly one element: the bounded walk of precheckDer, then the checks a BER
 * decoder makes of the values it meets outside OCTET and BIT STRINGs (primitiveProblem). Works on a
 * private copy; every Tlv of the result is a view of that copy. Throws DerError.
 */
export function decodeDer(bytes: Uint8Array, maxSize: number): Tlv {
  if (bytes.length > maxSize) throw new DerError(`${bytes.length} bytes (limit ${maxSize})`);
  const root = precheckDer(bytes.slice(), maxSize);
  checkPrimitives(root);
  return root;
}

/**
 * Applies primitiveProblem to `tlv` and every element inside it (not inside OCTET or BIT STRING
 * values), iteratively. The walk is bounded by what precheckDer already bounded. Throws DerError.
 */
export function checkPrimitives(tlv: Tlv): void {
  const stack: Tlv[] = [tlv];
  while (stack.length > 0) {
    const t = stack.pop()!;
    const problem = primitiveProblem(t);
    if (problem !== undefined) throw new DerError(`${problem} at offset ${t.start}`);
    if (t.constructed) for (const c of children(t)) stack.push(c);
  }
}

/**
 * What a BER decoder (asn1js, OpenSSL) refuses in one element, or undefined: a constructed encoding
 * of a primitive-only type, a primitive SEQUENCE or SET, an end-of-contents marker outside an indefinite length, a BIT STRING
 * with more than 7 unused bits, constructed strings made of other types, an OBJECT IDENTIFIER whose
 * last arc is unfinished, BMPString/UniversalString of a length their code units cannot fill, and a
 * GeneralizedTime that is not a time.
 */
export function primitiveProblem(t: Tlv): string | undefined {
  if (t.cls !== 0) return undefined;
  if (t.constructed) {
    if (PRIMITIVE_ONLY.has(t.tag)) return 'constructed encoding of a primitive type';
    if (t.tag === Tag.END_OF_CONTENTS) return 'unexpected end-of-contents';
    if (t.tag === Tag.OCTET_STRING || t.tag === Tag.BIT_STRING) {
      let unused = 0;
      for (const piece of children(t)) {
        if (piece.cls !== 0 || piece.tag !== t.tag) return 'a constructed string holds another type';
        if (t.tag === Tag.BIT_STRING && !piece.constructed && piece.contentEnd > piece.contentStart) {
          if (piece.bytes[piece.contentStart]! > 0 && unused++ > 0) return 'unused bits in more than one piece';
        }
      }
    }
    return undefined;
  }
  const c = tlvContent(t);
  switch (t.tag) {
    case Tag.SEQUENCE:
    case Tag.SET:
      // OpenSSL refuses these (ASN1_R_TYPE_NOT_CONSTRUCTED) even where any type may stand.
      return 'primitive encoding of a constructed type';
    case Tag.END_OF_CONTENTS:
      return 'unexpected end-of-contents';
    case Tag.BIT_STRING:
      return c.length > 0 && c[0]! > 7 ? 'BIT STRING with more than 7 unused bits' : undefined;
    case Tag.OID:
    case Tag.RELATIVE_OID:
      return c.length > 0 && (c[c.length - 1]! & 0x80) !== 0 ? 'unfinished OBJECT IDENTIFIER' : undefined;
    case Tag.BMP_STRING:
      return c.length % 2 !== 0 ? 'BMPString of an odd length' : undefined;
    case Tag.UNIVERSAL_STRING:
      return c.length % 4 !== 0 ? 'UniversalString of a length not a multiple of 4' : undefined;
    case Tag.GENERALIZED_TIME:
      return generalizedTimeValid(c) ? undefined : 'malformed GeneralizedTime';
    default:
      return undefined;
  }
}

/**
 * GeneralizedTime as BER decoders read it (X.680 §46): YYYYMMDD[HH[MM[SS]]] with a fraction only
 * after an hour, then `Z`, or a local time with an optional ±HH[MM] offset.
 */
function generalizedTimeValid(c: Uint8Array): boolean {
  const s = Buffer.from(c).toString('latin1');
  const m = /^(\d{8}|\d{10}|\d{12}|\d{14})(?:[.,](\d*))?(Z|[+-]\d\d(?:\d\d)?)?$/.exec(s);
  if (m === null) return false;
  // A comma fraction is not a number to a BER decoder that reads it as one (asn1js), nor an empty one
  // after a full date; a date alone takes no fraction; a local time must end in a digit.
  if (m[2] !== undefined && (m[1]!.length === 8 || s.includes(','))) return false;
  if (m[3] === undefined && !/\d$/.test(s)) return false;
  return true;
}

export function isUniversal(t: Tlv | undefined, tag: number): t is Tlv {
  return t !== undefined && t.cls === 0 && t.tag === tag;
}

export function isContext(t: Tlv | undefined, tag: number): t is Tlv {
  return t !== undefined && t.cls === 2 && t.tag === tag;
}

/** Fails unless `t` is the universal element `tag` in the form the tag needs. */
export function expect(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (t === undefined) throw new DerError(`${what} is missing`);
  if (!isUniversal(t, tag)) throw new DerError(`${what} has an unexpected type`);
  const mustConstruct = tag === Tag.SEQUENCE || tag === Tag.SET;
  if (mustConstruct !== t.constructed && tag !== Tag.OCTET_STRING) throw new DerError(`${what} has the wrong form`);
  return t;
}

/** INTEGER content octets (two's complement, as encoded). */
export function integerBytes(t: Tlv | undefined, what: string): Uint8Array {
  const c = tlvContent(expect(t, Tag.INTEGER, what));
  if (c.length === 0) throw new DerError(`${what} is not a valid INTEGER`);
  return c;
}

/** A small non-negative INTEGER as a number (version fields, path lengths). */
export function smallInteger(t: Tlv | undefined, what: string): number {
  const b = integerBytes(t, what);
  if (b.length > 4 || (b[0]! & 0x80) !== 0) throw new DerError(`${what} is out of range`);
  let v = 0;
  for (const x of b) v = v * 256 + x;
  return v;
}

/** OBJECT IDENTIFIER in dotted form. */
export function oid(t: Tlv | undefined, what: string): string {
  const text = oidText(tlvContent(expect(t, Tag.OID, what)));
  if (text === undefined) throw new DerError(`${what} is not a valid OID`);
  return text;
}

/** OCTET STRING value; a constructed OCTET STRING is joined from its primitive pieces. */
export function octetString(t: Tlv | undefined, what: string): Uint8Array {
  const n = expect(t, Tag.OCTET_STRING, what);
  if (!n.constructed) return tlvContent(n);
  const parts = children(n).map((c) => {
    if (!isUniversal(c, Tag.OCTET_STRING) || c.constructed)
      throw new DerError(`${what} has a piece that is not a primitive OCTET STRING`);
    return tlvContent(c);
  });
  const out = new Uint8Array(parts.reduce((k, p) => k + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** BIT STRING value whose unused-bit count is zero (signatures, public keys), primitive form. */
export function bitStringBytes(t: Tlv | undefined, what: string): Uint8Array {
  const n = expect(t, Tag.BIT_STRING, what);
  const c = n.constructed ? undefined : tlvContent(n);
  if (c === undefined || c.length === 0 || c[0] !== 0) throw new DerError(`${what} is not a whole number of bytes`);
  return c.subarray(1);
}

/** BIT STRING as a flag word: bit 0 of the ASN.1 string is the value 1 (KeyUsage numbering). */
export function bitFlags(t: Tlv | undefined, what: string): number {
  const n = expect(t, Tag.BIT_STRING, what);
  const c = n.constructed ? undefined : tlvContent(n);
  if (c === undefined || c.length === 0 || c[0]! > 7) throw new DerError(`${what} is not a valid BIT STRING`);
  let flags = 0;
  for (let i = 1; i < c.length && i <= 4; i++) {
    const byte = c[i]!;
    for (let bit = 0; bit < 8; bit++) if ((byte & (0x80 >>> bit)) !== 0) flags |= 1 << ((i - 1) * 8 + bit);
  }
  return flags >>> 0;
}

/** BOOLEAN of exactly one octet (any non-zero octet is TRUE, as BER allows). */
export function booleanValue(t: Tlv | undefined, what: string): boolean {
  const c = tlvContent(expect(t, Tag.BOOLEAN, what));
  if (c.length !== 1) throw new DerError(`${what} is not a valid BOOLEAN`);
  return c[0] !== 0;
}

/**
 * Dotted text of OBJECT IDENTIFIER content octets; undefined when malformed. `lenient` accepts arcs
 * padded with leading 0x80 octets, as BER decoders do when they only display the OID.
 */
export function oidText(c: Uint8Array, lenient = false): string | undefined {
  const arcs: number[] = [];
  let v = 0;
  let fresh = true;
  for (let i = 0; i < c.length; i++) {
    if (fresh && c[i] === 0x80 && !lenient) return undefined;
    fresh = (c[i]! & 0x80) === 0;
    v = v * 128 + (c[i]! & 0x7f);
    if (v > Number.MAX_SAFE_INTEGER / 128) return undefined;
    if ((c[i]! & 0x80) === 0) {
      arcs.push(v);
      v = 0;
    }
  }
  if (arcs.length === 0 || (c[c.length - 1]! & 0x80) !== 0) return undefined;
  const head = arcs[0]!;
  const [a, b] = head < 40 ? [0, head] : head < 80 ? [1, head - 40] : [2, head - 80];
  return [a, b, ...arcs.slice(1)].join('.');
}

/** Dotted text of an OBJECT IDENTIFIER as found (`#` and hex when it has no dotted form here). */
export function oidString(t: Tlv): string {
  const c = tlvContent(t);
  return oidText(c, true) ?? (c.length === 0 ? '' : `#${hex(c)}`);
}

/**
 * AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters ANY OPTIONAL }: the algorithm.
 * Elements after the parameters are ignored, as schema-driven decoders do.
 */
export function algorithmOid(t: Tlv | undefined, what: string): string {
  const id = children(expect(t, Tag.SEQUENCE, what))[0];
  if (!isUniversal(id, Tag.OID)) throw new DerError(`${what} is malformed`);
  return oidString(id);
}

/** The whole encoding of an element (header included, and an indefinite length's end-of-contents). */
export function tlvBytes(tlv: Tlv): Uint8Array {
  return tlv.bytes.subarray(tlv.start, tlv.end);
}

/** The content octets of an element (without an indefinite length's end-of-contents). */
export function tlvContent(tlv: Tlv): Uint8Array {
  return tlv.bytes.subarray(tlv.contentStart, tlv.contentEnd);
}

/** How many elements `tlv` holds, itself included, counting no further than `limit`. */
export function countElements(tlv: Tlv, limit: number): number {
  let n = 1;
  if (tlv.constructed) {
    for (const c of children(tlv)) {
      n += countElements(c, limit - n);
      if (n > limit) return n;
    }
  }
  return n;
}

/** A definite-length DER element (`tag` one octet) around `parts`. */
export function encodeElement(tag: number, parts: readonly Uint8Array[]): Uint8Array {
  const length = parts.reduce((n, p) => n + p.length, 0);
  const head: number[] = [tag];
  if (length < 0x80) head.push(length);
  else if (length < 0x100) head.push(0x81, length);
  else if (length < 0x10000) head.push(0x82, length >> 8, length & 0xff);
  else head.push(0x83, length >> 16, (length >> 8) & 0xff, length & 0xff);
  const out = new Uint8Array(head.length + length);
  out.set(head, 0);
  let at = head.length;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
