import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Random, hashSeed, parseSeed } from './random.js';

describe('Random', () => {
  it('is a pure function of its seed', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (seed) => {
        const a = new Random(seed);
        const b = new Random(seed);
        for (let i = 0; i < 32; i++) expect(a.u32()).toBe(b.u32());
      }),
    );
    expect(new Random(1).u32()).not.toBe(new Random(2).u32());
  });

  it('keeps int, range and bytes within their bounds', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 1, max: 100000 }),
        fc.integer({ min: -50, max: 50 }),
        (seed, n, lo) => {
          const r = new Random(seed);
          const i = r.int(n);
          expect(i).toBeGreaterThanOrEqual(0);
          expect(i).toBeLessThan(n);
          const x = r.range(lo, lo + 10);
          expect(x).toBeGreaterThanOrEqual(lo);
          expect(x).toBeLessThanOrEqual(lo + 10);
          expect(r.bytes(n % 37).length).toBe(n % 37);
          expect(r.size(n)).toBeLessThanOrEqual(n);
        },
      ),
    );
  });

  it('reaches every value of a small range and follows weights', () => {
    const r = new Random(7);
    const seen = new Set<number>();
    const counts = { a: 0, b: 0 };
    for (let i = 0; i < 4000; i++) {
      seen.add(r.int(8));
      counts[
        r.weighted([
          [9, 'a'],
          [1, 'b'],
        ] as const)
      ]++;
    }
    expect([...seen].sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(counts.a).toBeGreaterThan(counts.b * 5);
  });

  it('parses seeds from the command line', () => {
    expect(parseSeed('42')).toBe(42);
    expect(parseSeed('0x10')).toBe(16);
    expect(parseSeed('4294967297')).toBe(1);
    expect(parseSeed('release-1')).toBe(hashSeed('release-1'));
    expect(parseSeed('release-1')).not.toBe(parseSeed('release-2'));
  });
});
