import * as asn1js from 'asn1js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  children,
  DerError,
  MAX_DER_DEPTH,
  MAX_DER_ELEMENTS,
  precheckDer,
  readRoot,
  readTlv,
  type Tlv,
} from './der.js';

// asn1js (the decoder the pre-check guards) is the oracle for the structure the pre-check walks.

type Node =
  | {
      readonly cls: number;
      readonly tag: number;
      readonly constructed: true;
      readonly indefinite: boolean;
      readonly children: readonly Node[];
    }
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
    return Uint8Array.from([
      ...identifier(node.cls, false, node.tag),
      ...lengthOctets(node.value.length, padded),
      ...node.value,
    ]);
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
    fc.record({
      cls: tagClass,
      tag: tagNumber,
      constructed: fc.constant(false as const),
      value: fc.uint8Array({ maxLength: 40 }),
    }),
    fc.record({
      cls: fc.constant(0),
      tag: fc.constant(4),
      constructed: fc.constant(false as const),
      value: fc.uint8Array({ maxLength: 300 }),
    }),
    fc
      .record({
        cls: fc.oneof(tagClass, fc.constant(0)),
        tag: tagNumber,
        constructed: fc.constant(true as const),
        indefinite: fc.boolean(),
        children: fc.array(tie('node'), { maxLength: 4 }),
      })
      .map((n) => (n.cls === 0 ? { ...n, tag: n.tag % 2 === 0 ? 16 : 17 } : n)),
  ),
}));

function compare(ours: Tlv, theirs: asn1js.AsnType, node: Node): void {
  const id = theirs.idBlock;
  expect(ours.cls).toBe(id.tagClass - 1);
  expect(ours.tag).toBe(id.tagNumber);
  expect(ours.constructed).toBe(id.isConstructed);
  expect(ours.cls).toBe(node.cls);
  expect(ours.tag).toBe(node.tag);
  expect(ours.bytes.subarray(ours.start, ours.end)).toEqual(new Uint8Array(theirs.valueBeforeDecodeView));
  if (!node.constructed) {
    expect(ours.bytes.subarray(ours.contentStart, ours.contentEnd)).toEqual(node.value);
    return;
  }
  const mine = children(ours);
  const theirChildren = ((theirs as asn1js.Constructed).valueBlock.value ?? []).filter(
    (c) => !(c instanceof asn1js.EndOfContent),
  );
  expect(mine.length).toBe(node.children.length);
  expect(theirChildren.length).toBe(node.children.length);
  mine.forEach((c, i) => {
    compare(c, theirChildren[i]!, node.children[i]!);
  });
}

describe('DER pre-check', () => {
  it('finds the same structure as asn1js in random BER trees (indefinite and padded lengths included)', () => {
    fc.assert(
      fc.property(nodeArb, fc.boolean(), (node, padded) => {
        const bytes = encode(node, padded);
        const theirs = asn1js.fromBER(bytes, { parseEmbedded: false });
        expect(theirs.offset).toBe(bytes.length);
        compare(precheckDer(bytes, 65536), theirs.result, node);
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
          walk(precheckDer(bytes, 65536));
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
        expect(() => precheckDer(short, 65536)).toThrow(DerError);
      }),
      { numRuns: 300 },
    );
  });

  it('refuses trailing bytes, lengths past the end, bad indefinite lengths, deep nesting and oversized input', () => {
    expect(() => precheckDer(Uint8Array.from([0x04, 0x01, 0xaa, 0x00]), 100)).toThrow(/1 bytes follow/);
    expect(() => precheckDer(Uint8Array.from([0x04, 0x05, 0xaa]), 100)).toThrow(/only 1 remain/);
    expect(() => precheckDer(Uint8Array.from([0x04, 0x84, 0xff, 0xff, 0xff, 0xff]), 100)).toThrow(DerError);
    expect(() => precheckDer(Uint8Array.from([0x04, 0x80, 0x00, 0x00]), 100)).toThrow(
      /indefinite length on a primitive/,
    );
    expect(() => precheckDer(Uint8Array.from([0x30, 0x80, 0x04, 0x00]), 100)).toThrow(/end-of-contents/);
    // An unclosed indefinite length below the root is caught before anything is decoded.
    expect(() => precheckDer(Uint8Array.from([0x30, 0x04, 0x30, 0x80, 0x05, 0x00]), 100)).toThrow(
      /end-of-contents for the element at offset 2/,
    );
    expect(() => precheckDer(Uint8Array.from([0x30, 0x80, 0x05, 0x00, 0x00, 0x00]), 100)).not.toThrow();
    expect(() => precheckDer(Uint8Array.from([0x05, 0x00]), 1)).toThrow(/limit 1/);
    const deep = new Uint8Array(2 * (MAX_DER_DEPTH + 2));
    for (let i = 0; i < MAX_DER_DEPTH + 2; i++) deep.set([0x30, 0x80], 2 * i);
    expect(() => readTlv(deep, 0, deep.length)).toThrow(/nesting deeper/);
    // Definite lengths: the whole tree is walked, so depth is met up front.
    let nested: Uint8Array = Uint8Array.from([0x05, 0x00]);
    for (let i = 0; i < MAX_DER_DEPTH; i++) nested = wrap(nested);
    expect(() => precheckDer(nested, 65536)).not.toThrow();
    expect(() => precheckDer(wrap(nested), 65536)).toThrow(/nesting deeper/);
    // Primitive contents are not looked into (asn1js is told not to either).
    expect(() => precheckDer(Uint8Array.from([0x04, 0x02, 0x30, 0x80]), 100)).not.toThrow();
  });

  it('reads high tag numbers and stays inside the enclosing element', () => {
    const t = readRoot(Uint8Array.from([0x9f, 0x81, 0x00, 0x01, 0xaa]));
    expect([t.cls, t.tag, t.constructed, t.contentStart, t.end]).toEqual([2, 128, false, 4, 5]);
    expect(() => children(readRoot(Uint8Array.from([0x30, 0x03, 0x04, 0x02, 0xaa])))).toThrow(/only 1 remain/);
  });
});

function wrap(inner: Uint8Array): Uint8Array {
  return Uint8Array.from([0x30, ...(inner.length < 0x80 ? [inner.length] : [0x81, inner.length]), ...inner]);
}

describe('element bound', () => {
  it('refuses more than MAX_DER_ELEMENTS elements before anything is built from them', () => {
    const many = (n: number): Uint8Array => {
      const body = new Uint8Array(2 * n);
      for (let i = 0; i < n; i++) body[2 * i] = 0x05;
      const len = body.length;
      return Uint8Array.from([0x30, 0x83, len >> 16, (len >> 8) & 0xff, len & 0xff, ...body]);
    };
    expect(() => precheckDer(many(MAX_DER_ELEMENTS - 1), 65536)).not.toThrow();
    expect(() => precheckDer(many(MAX_DER_ELEMENTS), 65536)).toThrow(/more than 8192 elements/);
    expect(() => precheckDer(many(30000), 65536)).toThrow(/more than 8192 elements/);
  });
});
