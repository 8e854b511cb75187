import * as asn1js from 'asn1js';
import { DerError, MAX_DER_DEPTH, precheckDer } from './der.js';

/** A decoded ASN.1 element (asn1js). */
export type Node = asn1js.BaseBlock;

/** asn1js identifier classes. */
const UNIVERSAL = 1;
const CONTEXT = 3;

export const Tag = {
  BOOLEAN: 1,
  INTEGER: 2,
  BIT_STRING: 3,
  OCTET_STRING: 4,
  OID: 6,
  UTF8_STRING: 12,
  SEQUENCE: 16,
  SET: 17,
  UTC_TIME: 23,
  GENERALIZED_TIME: 24,
  UNIVERSAL_STRING: 28,
  BMP_STRING: 30,
} as const;

/**
 * Decodes guest-supplied DER (or BER) with asn1js. The bounded structural pre-check runs first, so
 * asn1js only ever sees input of bounded size and depth, every length consistent, every indefinite
 * length closed, and no trailing bytes; the
 * same bounds are passed to asn1js as a second line (with its default node-count cap). Both work
 * on a private copy of `bytes`, and every `valueBeforeDecodeView` points into it. Throws DerError.
 */
export function decodeDer(bytes: Uint8Array, maxSize: number): Node {
  if (bytes.length > maxSize) throw new DerError(`${bytes.length} bytes (limit ${maxSize})`);
  const copy = bytes.slice();
  precheckDer(copy, maxSize);
  const decoded = asn1js.fromBER(copy, {
    copyInput: false,
    maxDepth: MAX_DER_DEPTH + 1,
    maxContentLength: maxSize,
    // Values inside OCTET/BIT STRINGs are decoded only where a field is known to hold DER.
    parseEmbedded: false,
  });
  if (decoded.offset === -1) throw new DerError(decoded.result.error || 'undecodable');
  if (decoded.offset !== bytes.length)
    throw new DerError(`${bytes.length - decoded.offset} bytes follow the encoded value`);
  return decoded.result as Node;
}

export function kids(node: Node): Node[] {
  const value = (node.valueBlock as unknown as { value?: unknown }).value;
  if (!node.idBlock.isConstructed || !Array.isArray(value)) throw new DerError('element is not constructed');
  return (value as Node[]).filter((n) => !(n instanceof asn1js.EndOfContent));
}

/** The whole encoding of an element (header included). */
export function raw(node: Node): Uint8Array {
  return node.valueBeforeDecodeView;
}

/** The content octets of a primitive element (primitives have definite lengths: the pre-check saw to it). */
export function content(node: Node): Uint8Array {
  const r = node.valueBeforeDecodeView;
  return r.subarray(r.length - node.lenBlock.length);
}

export function isUniversal(node: Node | undefined, tag: number): node is Node {
  return node !== undefined && node.idBlock.tagClass === UNIVERSAL && node.idBlock.tagNumber === tag;
}

export function isContext(node: Node | undefined, tag: number): node is Node {
  return node !== undefined && node.idBlock.tagClass === CONTEXT && node.idBlock.tagNumber === tag;
}

/** Fails unless `node` is the universal element `tag` in the form the tag needs. */
export function expect(node: Node | undefined, tag: number, what: string): Node {
  if (node === undefined) throw new DerError(`${what} is missing`);
  if (!isUniversal(node, tag)) throw new DerError(`${what} has an unexpected type`);
  const mustConstruct = tag === Tag.SEQUENCE || tag === Tag.SET;
  if (mustConstruct !== node.idBlock.isConstructed && tag !== Tag.OCTET_STRING)
    throw new DerError(`${what} has the wrong form`);
  return node;
}

/** INTEGER content octets (two's complement, as encoded). */
export function integerBytes(node: Node | undefined, what: string): Uint8Array {
  const c = content(expect(node, Tag.INTEGER, what));
  if (c.length === 0) throw new DerError(`${what} is not a valid INTEGER`);
  return c;
}

/** A small non-negative INTEGER as a number (version fields, path lengths). */
export function smallInteger(node: Node | undefined, what: string): number {
  const b = integerBytes(node, what);
  if (b.length > 4 || (b[0]! & 0x80) !== 0) throw new DerError(`${what} is out of range`);
  let v = 0;
  for (const x of b) v = v * 256 + x;
  return v;
}

/** OBJECT IDENTIFIER in dotted form (asn1js decodes it). */
export function oid(node: Node | undefined, what: string): string {
  const n = expect(node, Tag.OID, what) as asn1js.ObjectIdentifier;
  const text = n.valueBlock.toString();
  if (n.valueBlock.error !== '' || text === '' || content(n).length === 0)
    throw new DerError(`${what} is not a valid OID`);
  return text;
}

/** OCTET STRING value; a constructed OCTET STRING is joined from its primitive pieces. */
export function octetString(node: Node | undefined, what: string): Uint8Array {
  const n = expect(node, Tag.OCTET_STRING, what);
  if (!n.idBlock.isConstructed) return content(n);
  const parts = kids(n).map((c) => {
    if (!isUniversal(c, Tag.OCTET_STRING) || c.idBlock.isConstructed)
      throw new DerError(`${what} has a piece that is not a primitive OCTET STRING`);
    return content(c);
  });
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** BIT STRING value whose unused-bit count is zero (signatures, public keys). */
export function bitStringBytes(node: Node | undefined, what: string): Uint8Array {
  const c = content(expect(node, Tag.BIT_STRING, what));
  if (c.length === 0 || c[0] !== 0) throw new DerError(`${what} is not a whole number of bytes`);
  return c.subarray(1);
}

/** BIT STRING as a flag word: bit 0 of the ASN.1 string is the value 1 (KeyUsage numbering). */
export function bitFlags(node: Node | undefined, what: string): number {
  const c = content(expect(node, Tag.BIT_STRING, what));
  if (c.length === 0 || c[0]! > 7) throw new DerError(`${what} is not a valid BIT STRING`);
  let flags = 0;
  for (let i = 1; i < c.length && i <= 4; i++) {
    const byte = c[i]!;
    for (let bit = 0; bit < 8; bit++) if ((byte & (0x80 >>> bit)) !== 0) flags |= 1 << ((i - 1) * 8 + bit);
  }
  return flags >>> 0;
}

/** BOOLEAN (any non-zero octet is TRUE, as BER allows). */
export function booleanValue(node: Node | undefined, what: string): boolean {
  const c = content(expect(node, Tag.BOOLEAN, what));
  if (c.length !== 1) throw new DerError(`${what} is not a valid BOOLEAN`);
  return c[0] !== 0;
}
