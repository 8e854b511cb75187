/**
 * A bounded structural pre-check of guest-supplied DER, run before asn1js sees the bytes.
 *
 * Parsing proper is asn1js + pkijs. This check only bounds what they are asked to do with hostile
 * input (deep nesting, huge or inconsistent lengths, unclosed indefinite lengths): the size, the
 * nesting depth, every length within its enclosing element, indefinite lengths only on constructed
 * elements and closed by their end-of-contents (BER that OpenSSL, and so edk2 and varstored, accept
 * from streaming signers), and no trailing bytes. It reads tags and lengths, never values.
 */

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
    let q = p;
    for (;;) {
      if (q + 2 > limit) throw new DerError(`missing end-of-contents for the element at offset ${offset}`);
      if (bytes[q] === 0 && bytes[q + 1] === 0)
        return { bytes, cls, constructed, tag, start: offset, contentStart: p, contentEnd: q, end: q + 2, depth };
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
 */
export function precheckDer(bytes: Uint8Array, maxSize: number): Tlv {
  if (bytes.length > maxSize) throw new DerError(`${bytes.length} bytes (limit ${maxSize})`);
  const root = readRoot(bytes);
  let elements = 1;
  // Iterative, without building child lists: one header read per element.
  const stack: { contentEnd: number; end: number; depth: number }[] = [];
  let at = root.contentStart;
  if (root.constructed) stack.push({ contentEnd: root.contentEnd, end: root.end, depth: root.depth + 1 });
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (at >= top.contentEnd) {
      // Done with this element's children: continue after it (past an end-of-contents if any).
      stack.pop();
      at = top.end;
      continue;
    }
    const t = readTlv(bytes, at, top.contentEnd, top.depth);
    if (++elements > MAX_DER_ELEMENTS) throw new DerError(`more than ${MAX_DER_ELEMENTS} elements`);
    if (t.constructed) {
      stack.push({ contentEnd: t.contentEnd, end: t.end, depth: t.depth + 1 });
      at = t.contentStart;
    } else {
      at = t.end;
    }
  }
  return root;
}

export function isContextTlv(tlv: Tlv, tag: number): boolean {
  return tlv.cls === 2 && tlv.tag === tag;
}

export { bytesEqual, hex } from '@vmsb/protocol';

/** Dotted text of OBJECT IDENTIFIER content octets; undefined when malformed. */
export function oidText(c: Uint8Array): string | undefined {
  const arcs: number[] = [];
  let v = 0;
  for (let i = 0; i < c.length; i++) {
    if (v === 0 && c[i] === 0x80) return undefined;
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
