import * as asn1js from 'asn1js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  bitFlags,
  children,
  DerError,
  encodeOid,
  integerBytes,
  isOid,
  MAX_DER_DEPTH,
  octetString,
  oid,
  raw,
  readRoot,
  readTlv,
  type Tlv,
} from './der.js';

// asn1js (an independent BER decoder) is the oracle for the structure this reader finds.

type Node =
  | { readonly cls: number; readonly tag: number; readonly constructed: true; readonly indefinite: boolean; readonly children: readonly Node[] }
  | { readonly cls: number; readonly tag: number; readonly constructed: false; readonly value: Uint8Array };

function identifier(cls: number, constructed: boolean, tag: number): number[] {
  const first = (cls << 6) | (constructed ? 0x20 : 0);
  if (tag < 31) return [first | tag];
  const groups: number[] = [];
  let t = tag;
  do {
    groups.unshift(t & 0x7f);
    t >>>= 7;
  } while (t > 0);
  return [first | 0x1f, ...groups.map((g, i) => (i < groups.length - 1 ? g | 0x80 : g))];
}

function lengthOctets(n: number, padded: boolean): number[] {
  if (n < 0x80 && !padded) return [n];
  const bytes: number[] = [];
  let x = n;
  do {
    bytes.unshift(x & 0xff);
    x = Math.floor(x / 256);
  } while (x > 0);
  if (padded) bytes.unshift(0); // non-minimal long form, which BER (and OpenSSL) accept
  return [0x80 | bytes.length, ...bytes];
}

function encode(node: Node, padded = false): Uint8Array {
  if (!node.constructed) {
    return Uint8Array.from([...identifier(node.cls, false, node.tag), ...lengthOctets(node.value.length, padded), ...node.value]);
  }
  const body = node.children.flatMap((c) => [...encode(c, padded)]);
  if (node.indefinite) return Uint8Array.from([...identifier(node.cls, true, node.tag), 0x80, ...body, 0, 0]);
  return Uint8Array.from([...identifier(node.cls, true, node.tag), ...lengthOctets(body.length, padded), ...body]);
}

// Context, application and private tags keep asn1js generic; universal SEQUENCE/SET/OCTET STRING too.
const tagClass = fc.constantFrom(1, 2, 3);
const tagNumber = fc.oneof(fc.integer({ min: 0, max: 30 }), fc.integer({ min: 31, max: 5000 }));
const { node: nodeArb } = fc.letrec<{ node: Node }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({ cls: tagClass, tag: tagNumber, constructed: fc.constant(false as const), value: fc.uint8Array({ maxLength: 40 }) }),
    fc.record({ cls: fc.constant(0), tag: fc.constant(4), constructed: fc.constant(false as const), value: fc.uint8Array({ maxLength: 300 }) }),
    fc.record({
      cls: fc.oneof(tagClass, fc.constant(0)),
      tag: tagNumber,
      constructed: fc.constant(true as const),
      indefinite: fc.boolean(),
      children: fc.array(tie('node'), { maxLength: 4 }),
    }).map((n) => (n.cls === 0 ? { ...n, tag: n.tag % 2 === 0 ? 16 : 17 } : n)),
  ),
}));

function compare(ours: Tlv, theirs: asn1js.AsnType, node: Node): void {
  const id = theirs.idBlock;
  expect(ours.cls).toBe(id.tagClass - 1);
  expect(ours.tag).toBe(id.tagNumber);
  expect(ours.constructed).toBe(id.isConstructed);
  expect(ours.cls).toBe(node.cls);
  expect(ours.tag).toBe(node.tag);
  expect(raw(ours)).toEqual(new Uint8Array(theirs.valueBeforeDecodeView));
  if (!node.constructed) {
    expect(ours.bytes.subarray(ours.contentStart, ours.contentEnd)).toEqual(node.value);
    return;
  }
  const mine = children(ours);
  const theirChildren = ((theirs as asn1js.Constructed).valueBlock.value ?? []).filter((c) => !(c instanceof asn1js.EndOfContent));
  expect(mine.length).toBe(node.children.length);
  expect(theirChildren.length).toBe(node.children.length);
  mine.forEach((c, i) => compare(c, theirChildren[i]!, node.children[i]!));
}

describe('DER reader', () => {
  it('finds the same structure as asn1js in random BER trees (indefinite and padded lengths included)', () => {
    fc.assert(
      fc.property(nodeArb, fc.boolean(), (node, padded) => {
        const bytes = encode(node, padded);
        const theirs = asn1js.fromBER(bytes, { parseEmbedded: false });
        expect(theirs.offset).toBe(bytes.length);
        compare(readRoot(bytes), theirs.result, node);
      }),
      { numRuns: 400 },
    );
  });

  it('fails only with DerError on arbitrary bytes, and never reads outside the input', () => {
    const walk = (t: Tlv): void => {
      expect(t.end).toBeLessThanOrEqual(t.bytes.length);
      if (t.constructed) children(t).forEach(walk);
    };
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          walk(readRoot(bytes));
        } catch (e) {
          expect(e).toBeInstanceOf(DerError);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('fails with DerError on truncations of valid encodings', () => {
    fc.assert(
      fc.property(nodeArb, fc.nat(), (node, cut) => {
        const bytes = encode(node);
        const short = bytes.subarray(0, cut % bytes.length);
        expect(() => readRoot(short)).toThrow(DerError);
      }),
      { numRuns: 300 },
    );
  });

  it('refuses trailing bytes, lengths past the end, indefinite primitives and deep nesting', () => {
    expect(() => readRoot(Uint8Array.from([0x04, 0x01, 0xaa, 0x00]))).toThrow(/1 bytes follow/);
    expect(() => readRoot(Uint8Array.from([0x04, 0x05, 0xaa]))).toThrow(/only 1 remain/);
    expect(() => readRoot(Uint8Array.from([0x04, 0x84, 0xff, 0xff, 0xff, 0xff]))).toThrow(DerError);
    expect(() => readRoot(Uint8Array.from([0x04, 0x80, 0x00, 0x00]))).toThrow(/indefinite length on a primitive/);
    expect(() => readRoot(Uint8Array.from([0x30, 0x80, 0x04, 0x00]))).toThrow(/end-of-contents/);
    const deep = new Uint8Array(2 * (MAX_DER_DEPTH + 2));
    for (let i = 0; i < MAX_DER_DEPTH + 2; i++) deep.set([0x30, 0x80], 2 * i);
    expect(() => readTlv(deep, 0, deep.length)).toThrow(/nesting deeper/);
    // Definite lengths: depth is only met when walking down.
    let nested: Uint8Array = Uint8Array.from([0x05, 0x00]);
    for (let i = 0; i < MAX_DER_DEPTH + 2; i++) nested = wrap(nested);
    let t = readRoot(nested);
    expect(() => {
      for (;;) t = children(t)[0]!;
    }).toThrow(DerError);
  });

  it('decodes OIDs as asn1js does, and compares them encoded', () => {
    const arcs = fc.tuple(fc.constantFrom(0, 1, 2), fc.integer({ min: 0, max: 39 }), fc.array(fc.integer({ min: 0, max: 2 ** 40 }), { maxLength: 8 }));
    fc.assert(
      fc.property(arcs, ([a, b, rest]) => {
        const dotted = [a, b, ...rest].join('.');
        const encoded = encodeOid(dotted);
        const der = Uint8Array.from([0x06, encoded.length, ...encoded]);
        const theirs = asn1js.fromBER(der).result as asn1js.ObjectIdentifier;
        expect(theirs.valueBlock.toString()).toBe(dotted);
        const tlv = readRoot(der);
        expect(oid(tlv, 'oid')).toBe(dotted);
        expect(isOid(tlv, encoded)).toBe(true);
      }),
    );
    expect(() => oid(readRoot(Uint8Array.from([0x06, 0x02, 0x80, 0x01])), 'x')).toThrow(/padded/);
    expect(() => oid(readRoot(Uint8Array.from([0x06, 0x01, 0x81])), 'x')).toThrow(/truncated/);
  });

  it('reads negative INTEGERs, BIT STRING flags and constructed OCTET STRINGs', () => {
    expect(integerBytes(readRoot(Uint8Array.from([0x02, 0x02, 0xed, 0xcc])), 'i')).toEqual(Uint8Array.from([0xed, 0xcc]));
    expect(() => integerBytes(readRoot(Uint8Array.from([0x02, 0x00])), 'i')).toThrow(DerError);
    // keyUsage digitalSignature | keyCertSign | cRLSign = bits 0, 5, 6.
    expect(bitFlags(readRoot(Uint8Array.from([0x03, 0x02, 0x01, 0x86])), 'ku')).toBe(0b1100001);
    const pieces = Uint8Array.from([0x24, 0x80, 0x04, 0x02, 1, 2, 0x04, 0x01, 3, 0x00, 0x00]);
    expect(octetString(readRoot(pieces), 'os')).toEqual(Uint8Array.from([1, 2, 3]));
  });
});

function wrap(inner: Uint8Array): Uint8Array {
  return Uint8Array.from([0x30, ...(inner.length < 0x80 ? [inner.length] : [0x81, inner.length]), ...inner]);
}
