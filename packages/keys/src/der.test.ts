import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  children,
  content,
  DerError,
  oid,
  oidText,
  readElement,
  sequence,
  setOf,
  smallInteger,
  Tag,
  tlv,
  unsignedInteger,
  x509Time,
} from './der.js';
import { parseSignedData } from './pkcs7.js';

/** A random DER tree: primitive leaves and constructed SEQUENCE/SET/[n] nodes. */
type Tree = { tag: number; bytes: Uint8Array } | { tag: number; items: Tree[] };
const tree: fc.Arbitrary<Tree> = fc.letrec<{ node: Tree }>((t) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({ tag: fc.constantFrom(Tag.INTEGER, Tag.OCTET_STRING, Tag.OID, Tag.UTF8_STRING, 0x80), bytes: fc.uint8Array({ maxLength: 300 }) }),
    fc.record({ tag: fc.constantFrom(Tag.SEQUENCE, Tag.SET, 0xa0, 0xa3), items: fc.array(t('node'), { maxLength: 4 }) }),
  ),
})).node;

function encode(t: Tree): Uint8Array {
  return 'bytes' in t ? tlv(t.tag, t.bytes) : tlv(t.tag, ...t.items.map(encode));
}

function decode(bytes: Uint8Array, offset: number, limit: number): Tree {
  const el = readElement(bytes, offset, limit);
  if ((el.tag & 0x20) === 0) return { tag: el.tag, bytes: content(bytes, el).slice() };
  return { tag: el.tag, items: children(bytes, el).map((c) => decode(bytes, c.start, c.end)) };
}

describe('DER encoder and reader', () => {
  it('round-trip arbitrary trees, with definite minimal lengths', () => {
    fc.assert(
      fc.property(tree, (t) => {
        const bytes = encode(t);
        expect(decode(bytes, 0, bytes.length)).toEqual(t);
        expect(readElement(bytes, 0).end).toBe(bytes.length);
      }),
    );
  });

  it('never read past the limit and fail only with DerError on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.nat({ max: 70 }), (bytes, limit) => {
        try {
          const el = readElement(bytes, 0, limit);
          expect(el.end).toBeLessThanOrEqual(Math.min(limit, bytes.length));
          if ((el.tag & 0x20) !== 0) for (const c of children(bytes, el)) expect(c.end).toBeLessThanOrEqual(el.end);
        } catch (err) {
          expect(err).toBeInstanceOf(DerError);
        }
      }),
    );
  });

  it('PKCS#7 parsing of arbitrary or mutated input fails with DerError only', () => {
    const sample = sequence(smallInteger(1), setOf(), sequence(oid('1.2.840.113549.1.7.1')), setOf(sequence(smallInteger(1))));
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 96 }), fc.nat(), fc.integer({ min: 0, max: 255 }), (random, at, value) => {
        for (const input of [random, Uint8Array.from(sample, (b, i) => (i === at % sample.length ? value : b))]) {
          try {
            parseSignedData(input);
          } catch (err) {
            expect(err).toBeInstanceOf(DerError);
          }
        }
      }),
    );
  });

  it('encode INTEGERs minimally with a sign octet when needed', () => {
    expect(Array.from(unsignedInteger(Uint8Array.of(0, 0, 0x7f)))).toEqual([2, 1, 0x7f]);
    expect(Array.from(unsignedInteger(Uint8Array.of(0x80)))).toEqual([2, 2, 0, 0x80]);
    expect(Array.from(unsignedInteger(new Uint8Array(0)))).toEqual([2, 1, 0]);
    expect(Array.from(smallInteger(256))).toEqual([2, 2, 1, 0]);
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 200n) - 1n }), (n) => {
        const hex = n.toString(16);
        const enc = unsignedInteger(Uint8Array.from(Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex')));
        const body = content(enc, readElement(enc, 0));
        expect(body[0]! & 0x80).toBe(0);
        expect(body.length === 1 || body[0] !== 0 || (body[1]! & 0x80) !== 0).toBe(true);
        expect(BigInt(`0x${Buffer.from(body).toString('hex') || '0'}`)).toBe(n);
      }),
    );
  });

  it('encode OIDs that read back the same', () => {
    fc.assert(
      fc.property(fc.constantFrom(0, 1, 2), fc.nat({ max: 39 }), fc.array(fc.bigInt({ min: 0n, max: 1n << 40n }), { maxLength: 8 }), (a, b, rest) => {
        const text = [a, b, ...rest].join('.');
        const enc = oid(text);
        expect(oidText(enc, readElement(enc, 0))).toBe(text);
      }),
    );
    expect(Array.from(oid('1.2.840.113549.1.7.2'))).toEqual([6, 9, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02]);
  });

  it('sort SET OF by encoding and pick UTCTime or GeneralizedTime by year', () => {
    expect(Array.from(setOf(Uint8Array.of(4, 1, 9), Uint8Array.of(2, 1, 1)))).toEqual([0x31, 6, 2, 1, 1, 4, 1, 9]);
    expect(new TextDecoder().decode(x509Time(new Date('2049-12-31T23:59:59Z')).subarray(2))).toBe('491231235959Z');
    expect(new TextDecoder().decode(x509Time(new Date('2050-01-01T00:00:00Z')).subarray(2))).toBe('20500101000000Z');
    expect(new TextDecoder().decode(x509Time(new Date('1949-06-01T00:00:00Z')).subarray(2))).toBe('19490601000000Z');
  });

  it('refuse BER indefinite lengths, oversized length fields and high tags', () => {
    expect(() => readElement(Uint8Array.of(0x30, 0x80, 0, 0), 0)).toThrow(/indefinite/);
    expect(() => readElement(Uint8Array.of(0x04, 0x85, 1, 0, 0, 0, 0), 0)).toThrow(/5 octets/);
    expect(() => readElement(Uint8Array.of(0x1f, 0x81, 0x01, 0), 0)).toThrow(/high tag/);
    expect(() => readElement(Uint8Array.of(0x04, 0x82, 0xff, 0xff, 0), 0)).toThrow(/past its container/);
  });
});
