import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bitFlags, decodeDer, integerBytes, kids, octetString, oid, raw } from './asn1.js';
import { DerError, MAX_DER_DEPTH } from './der.js';

describe('bounded asn1js decoding', () => {
  it('fails only with DerError on arbitrary bytes, and hands out views of a private copy', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          const node = decodeDer(bytes, 65536);
          expect(raw(node)).toEqual(bytes);
          expect(raw(node).buffer).not.toBe(bytes.buffer);
        } catch (e) {
          expect(e).toBeInstanceOf(DerError);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('never lets asn1js see unclosed indefinite lengths, excess depth or trailing bytes', () => {
    expect(() => decodeDer(Uint8Array.from([0x30, 0x80, 0x05, 0x00]), 100)).toThrow(/end-of-contents/);
    // A closed one is fine, and its end-of-contents is not a child.
    expect(kids(decodeDer(Uint8Array.from([0x30, 0x80, 0x05, 0x00, 0x00, 0x00]), 100)).length).toBe(1);
    expect(() => decodeDer(Uint8Array.from([0x05, 0x00, 0x00]), 100)).toThrow(/1 bytes follow/);
    let nested: Uint8Array = Uint8Array.from([0x05, 0x00]);
    for (let i = 0; i < MAX_DER_DEPTH + 1; i++) nested = Uint8Array.from([0x30, nested.length, ...nested]);
    expect(() => decodeDer(nested, 65536)).toThrow(/nesting deeper/);
    // The deepest nesting the pre-check allows is within what asn1js is told to accept.
    const inner = kids(decodeDer(nested.subarray(2), 65536));
    expect(inner.length).toBe(1);
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
    expect(kids(decodeDer(Uint8Array.from([0x30, 0x04, 0x05, 0x00, 0x05, 0x00]), 100)).length).toBe(2);
  });
});
