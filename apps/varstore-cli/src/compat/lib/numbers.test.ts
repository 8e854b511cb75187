import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseAttributesArgument, parseIdArgument, readCNumber } from './numbers.js';

describe('readCNumber (strtol, base 0)', () => {
  it('reads decimal, 0x hexadecimal and 0 octal with optional space and sign', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 2n ** 64n }),
        fc.constantFrom(10, 16, 8),
        fc.constantFrom('', ' ', '\t\n '),
        fc.constantFrom('', '+', '-'),
        (n, base, space, sign) => {
          const digits = base === 16 ? `0x${n.toString(16)}` : base === 8 ? `0${n.toString(8)}` : n.toString(10);
          // A decimal number cannot start with 0 (that is octal).
          const text = `${space}${sign}${base === 10 && n === 0n ? '0' : digits}`;
          const r = readCNumber(text);
          expect(r.end).toBe(text.length);
          expect(r.value).toBe(sign === '-' ? -n : n);
        },
      ),
    );
  });

  it('stops where strtol stops', () => {
    expect(readCNumber('0x')).toMatchObject({ value: 0n, end: 1 });
    expect(readCNumber('0xg')).toMatchObject({ value: 0n, end: 1 });
    expect(readCNumber('08')).toMatchObject({ value: 0n, end: 1 });
    expect(readCNumber('12abc')).toMatchObject({ value: 12n, end: 2 });
    expect(readCNumber('  ')).toMatchObject({ value: 0n, end: 0 });
    expect(readCNumber('-')).toMatchObject({ value: 0n, end: 0 });
    expect(readCNumber('')).toMatchObject({ value: 0n, end: 0 });
  });

  it('never throws', () => {
    fc.assert(fc.property(fc.string(), (s) => void readCNumber(s)));
  });
});

describe('parseIdArgument (-u, -g)', () => {
  it('accepts whole numbers up to 4294967294; empty is 0 (unchanged)', () => {
    expect(parseIdArgument('1000')).toBe(1000);
    expect(parseIdArgument('0x3e8')).toBe(1000);
    expect(parseIdArgument(' 07')).toBe(7);
    expect(parseIdArgument('')).toBe(0);
    expect(parseIdArgument('4294967294')).toBe(4294967294);
  });

  it('refuses trailing text, signs that wrap, and the (uid_t)-1 sentinel', () => {
    for (const bad of ['12 ', '12x', 'abc', '-1', '4294967295', '99999999999999999999', ' ', '-'])
      expect(parseIdArgument(bad)).toBeUndefined();
  });
});

describe('parseAttributesArgument (varstore-set)', () => {
  it('reads 32-bit numbers in C syntax', () => {
    expect(parseAttributesArgument('7')).toBe(7);
    expect(parseAttributesArgument('0x27')).toBe(0x27);
    expect(parseAttributesArgument('047')).toBe(0o47);
    expect(parseAttributesArgument('0')).toBe(0);
    expect(parseAttributesArgument('0xffffffff')).toBe(0xffffffff);
  });

  it('refuses words, partial numbers, negatives and values over 32 bits', () => {
    for (const bad of ['append', '', '7abc', '-1', '0x100000000', ' ', '0x'])
      expect(parseAttributesArgument(bad)).toBeUndefined();
  });

  it('is exactly the 32-bit values written in any base', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.constantFrom(8, 10, 16), (n, base) => {
        const text = base === 16 ? `0x${n.toString(16)}` : base === 8 ? `0${n.toString(8)}` : String(n);
        expect(parseAttributesArgument(text)).toBe(n);
      }),
    );
  });
});
