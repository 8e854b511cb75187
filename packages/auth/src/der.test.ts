import * as asn1js from 'asn1js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  bitFlags,
  checkPrimitives,
  children,
  decodeDer,
  DerError,
  integerBytes,
  octetString,
  oid,
  primitiveProblem,
  tlvBytes,
  MAX_DER_DEPTH,
  MAX_DER_ELEMENTS,
  precheckDer,
  readRoot,
  readTlv,
  type Tlv,
} from './der.js';

/** precheckDer's walk done element by element with readTlv: the reference scanElements is tested against. */
function walkElements(bytes: Uint8Array, maxSize: number): Tlv {
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

describe('the allocation-free walk', () => {
  const verdict = (f: () => Tlv): string => {
    try {
      const t = f();
      return `ok ${t.start} ${t.contentStart} ${t.end}`;
    } catch (e) {
      expect(e).toBeInstanceOf(DerError);
      return 'refused';
    }
  };

  it('accepts exactly what the element-by-element walk accepts (random trees, damaged and arbitrary bytes)', () => {
    fc.assert(
      fc.property(
        nodeArb,
        fc.boolean(),
        fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 3 }),
        (node, padded, edits) => {
          const bytes = encode(node, padded);
          for (const [at, value] of edits) bytes[at % bytes.length] = value;
          expect(verdict(() => precheckDer(bytes, 65536))).toBe(verdict(() => walkElements(bytes, 65536)));
        },
      ),
      { numRuns: 3000 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        expect(verdict(() => precheckDer(bytes, 65536))).toBe(verdict(() => walkElements(bytes, 65536)));
      }),
      { numRuns: 3000 },
    );
    const deep = (n: number, indefinite: boolean): Uint8Array => {
      let inner: Uint8Array = Uint8Array.from([0x05, 0x00]);
      for (let i = 0; i < n; i++) inner = indefinite ? Uint8Array.from([0x30, 0x80, ...inner, 0, 0]) : wrap(inner);
      return inner;
    };
    const many = (count: number): Uint8Array => {
      const body = new Uint8Array(2 * count).map((_, i) => (i % 2 === 0 ? 0x05 : 0));
      return Uint8Array.from([0x30, 0x83, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff, ...body]);
    };
    const edges: Uint8Array[] = [
      Uint8Array.from([0x04, 0x88, 0, 0, 0, 0, 0, 0, 0, 1, 0xaa]),
      Uint8Array.from([0x04, 0x89, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xaa]),
      Uint8Array.from([0x04, 0xff, 0xaa]),
      Uint8Array.from([0x9f, 0x81, 0x81, 0x81, 0x01, 0x00]),
      Uint8Array.from([0x9f, 0x81, 0x81, 0x81, 0x81, 0x01, 0x00]),
      Uint8Array.from([0x30, 0x80, 0x30, 0x80, 0x00, 0x00]),
      Uint8Array.from([0x30, 0x80, 0x30, 0x02, 0x00, 0x00, 0x00, 0x00]),
      Uint8Array.from([0x30, 0x03, 0x30, 0x80, 0x00]),
      deep(MAX_DER_DEPTH, false),
      deep(MAX_DER_DEPTH + 1, false),
      deep(MAX_DER_DEPTH, true),
      deep(MAX_DER_DEPTH + 1, true),
      many(MAX_DER_ELEMENTS - 1),
      many(MAX_DER_ELEMENTS),
    ];
    for (const bytes of [...edges, ...edges.map(wrap)])
      expect(verdict(() => precheckDer(bytes, 65536))).toBe(verdict(() => walkElements(bytes, 65536)));
  });
});

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

describe('decodeDer: the reader with value checks', () => {
  it('fails only with DerError on arbitrary bytes, and hands out views of a private copy', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          const t = decodeDer(bytes, 65536);
          expect(tlvBytes(t)).toEqual(bytes);
          expect(t.bytes.buffer).not.toBe(bytes.buffer);
        } catch (e) {
          expect(e).toBeInstanceOf(DerError);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('reads OIDs, negative INTEGERs, BIT STRING flags and constructed OCTET STRINGs', () => {
    expect(
      oid(decodeDer(Uint8Array.from([0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02]), 100), 'oid'),
    ).toBe('1.2.840.113549.1.7.2');
    expect(integerBytes(decodeDer(Uint8Array.from([0x02, 0x02, 0xed, 0xcc]), 100), 'i')).toEqual(
      Uint8Array.from([0xed, 0xcc]),
    );
    expect(() => integerBytes(decodeDer(Uint8Array.from([0x02, 0x00]), 100), 'i')).toThrow(DerError);
    // keyUsage digitalSignature | keyCertSign | cRLSign = bits 0, 5, 6.
    expect(bitFlags(decodeDer(Uint8Array.from([0x03, 0x02, 0x01, 0x86]), 100), 'ku')).toBe(0b1100001);
    const pieces = Uint8Array.from([0x24, 0x07, 0x04, 0x02, 1, 2, 0x04, 0x01, 3]);
    expect(octetString(decodeDer(pieces, 100), 'os')).toEqual(Uint8Array.from([1, 2, 3]));
    expect(children(decodeDer(Uint8Array.from([0x30, 0x04, 0x05, 0x00, 0x05, 0x00]), 100)).length).toBe(2);
  });

  it('refuses what BER decoders refuse in values', () => {
    const bad: [number[], RegExp][] = [
      [[0x22, 0x03, 0x02, 0x01, 0x01], /constructed encoding of a primitive type/], // constructed INTEGER
      [[0x30, 0x04, 0x05, 0x00, 0x00, 0x00], /unexpected end-of-contents/], // end-of-contents, definite length
      [[0x03, 0x02, 0x08, 0x00], /more than 7 unused bits/],
      [[0x06, 0x02, 0x2a, 0x86], /unfinished OBJECT IDENTIFIER/],
      [[0x1e, 0x01, 0x41], /BMPString of an odd length/],
      [[0x1c, 0x02, 0, 0x41], /UniversalString/],
      [[0x18, 0x04, 0x32, 0x30, 0x32, 0x30], /GeneralizedTime/],
      [[0x24, 0x03, 0x02, 0x01, 0x01], /constructed string holds another type/],
      [[0x04, 0x89, 0, 0, 0, 0, 0, 0, 0, 0, 0], /length of 9 octets/],
    ];
    for (const [bytes, why] of bad) expect(() => decodeDer(Uint8Array.from(bytes), 100)).toThrow(why);
    // Inside OCTET and BIT STRING values nothing is looked into.
    expect(() => decodeDer(Uint8Array.from([0x04, 0x03, 0x06, 0x01, 0x86]), 100)).not.toThrow();
    for (const time of ['20250101000000Z', '2025010100Z', '202501010000.5Z', '20250101000000+0100', '20250101000000'])
      expect(() => decodeDer(Uint8Array.from([0x18, time.length, ...Buffer.from(time, 'latin1')]), 100)).not.toThrow();
  });

  // asn1js is the oracle: what it decodes without an error, decodeDer accepts, and the other way round.
  const primitiveValue = fc.oneof(
    fc.uint8Array({ maxLength: 12 }),
    fc
      .constantFrom('20250101000000Z', '2025010100Z', '20250101Z', '2025010100.5Z', '2025.5Z', '202501010000Z+01', '')
      .map((t) => Uint8Array.from(Buffer.from(t, 'latin1'))),
  );
  const { value: valueArb } = fc.letrec<{ value: Node }>((tie) => ({
    value: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fc.record({
        cls: fc.constant(0),
        tag: fc.constantFrom(1, 2, 3, 4, 5, 6, 12, 13, 16, 17, 19, 23, 24, 28, 30),
        constructed: fc.constant(false as const),
        value: primitiveValue,
      }),
      fc.record({
        cls: fc.constant(0),
        tag: fc.constantFrom(3, 4, 16, 17, 2, 6, 24),
        constructed: fc.constant(true as const),
        indefinite: fc.boolean(),
        children: fc.array(tie('value'), { maxLength: 3 }),
      }),
    ),
  }));

  it('accepts exactly the values asn1js decodes without error (random universal trees)', () => {
    fc.assert(
      fc.property(valueArb, (node) => {
        const bytes = encode(node);
        let theirs: boolean;
        try {
          const r = asn1js.fromBER(bytes, { parseEmbedded: false });
          theirs = r.offset === bytes.length;
        } catch {
          theirs = false;
        }
        let ours: boolean;
        try {
          decodeDer(bytes, 65536);
          ours = true;
        } catch (e) {
          expect(e).toBeInstanceOf(DerError);
          ours = false;
        }
        // A primitive SEQUENCE or SET is refused as OpenSSL refuses it (asn1js reads its content as children).
        expect(ours).toBe(theirs && !primitiveConstructedType(node));
      }),
      { numRuns: 3000 },
    );
  });

  it('checks every element once, below the root too', () => {
    const nested = Uint8Array.from([0x30, 0x06, 0x30, 0x04, 0x06, 0x02, 0x2a, 0x86]);
    expect(() => checkPrimitives(readRoot(nested))).toThrow(/unfinished OBJECT IDENTIFIER at offset 4/);
    expect(primitiveProblem(readRoot(Uint8Array.from([0x05, 0x00])))).toBeUndefined();
  });
});

function primitiveConstructedType(node: Node): boolean {
  if (!node.constructed) return node.cls === 0 && (node.tag === 16 || node.tag === 17);
  return node.children.some(primitiveConstructedType);
}
