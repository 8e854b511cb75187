import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  authTimestampProblem,
  compareEfiTime,
  compareEfiTimeBytes,
  efiTimeFromDate,
  efiTimeProblem,
  efiTimeToDate,
  formatEfiTime,
  laterEfiTimeBytes,
  parseEfiTime,
  serializeEfiTime,
  type EfiTime,
} from './time.js';

const efiTime: fc.Arbitrary<EfiTime> = fc.record({
  year: fc.integer({ min: 0, max: 0xffff }),
  month: fc.integer({ min: 0, max: 255 }),
  day: fc.integer({ min: 0, max: 255 }),
  hour: fc.integer({ min: 0, max: 255 }),
  minute: fc.integer({ min: 0, max: 255 }),
  second: fc.integer({ min: 0, max: 255 }),
  pad1: fc.integer({ min: 0, max: 255 }),
  nanosecond: fc.integer({ min: 0, max: 0xffff_ffff }),
  timeZone: fc.integer({ min: -0x8000, max: 0x7fff }),
  daylight: fc.integer({ min: 0, max: 255 }),
  pad2: fc.integer({ min: 0, max: 255 }),
});

describe('EFI_TIME', () => {
  it('has the packed 16-byte layout (MS DBXUpdate header: 2010-03-06 19:17:21)', () => {
    const bytes = Uint8Array.from([0xda, 0x07, 0x03, 0x06, 0x13, 0x11, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    const t = parseEfiTime(bytes)!;
    expect(formatEfiTime(t)).toBe('2010-03-06T19:17:21');
    expect(serializeEfiTime(t)).toEqual(bytes);
    expect(authTimestampProblem(t)).toBeUndefined();
    expect(efiTimeProblem(t)).toBeUndefined();
  });

  it('property: parse ∘ serialize is the identity; bytes round-trip', () => {
    fc.assert(
      fc.property(efiTime, (t) => {
        expect(parseEfiTime(serializeEfiTime(t))).toEqual(t);
      }),
    );
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (b) => {
        expect(serializeEfiTime(parseEfiTime(b)!)).toEqual(b);
      }),
    );
  });

  it('needs 16 bytes', () => {
    expect(parseEfiTime(new Uint8Array(15))).toBeUndefined();
  });

  it('authenticated timestamps need zero pads, nanoseconds, zone and daylight; calendar values are not checked', () => {
    const base = parseEfiTime(serializeEfiTime({ year: 1900, month: 1, day: 0 }))!;
    expect(authTimestampProblem(base)).toBeUndefined();
    for (const field of ['pad1', 'nanosecond', 'timeZone', 'daylight', 'pad2'] as const) {
      expect(authTimestampProblem({ ...base, [field]: 1 })).toMatch(/not zero/);
    }
  });

  it('validates UEFI field ranges', () => {
    const ok = parseEfiTime(
      serializeEfiTime({ year: 2024, month: 2, day: 29, hour: 23, minute: 59, second: 59, timeZone: 2047 }),
    )!;
    expect(efiTimeProblem(ok)).toBeUndefined();
    expect(efiTimeProblem({ ...ok, year: 2023 })).toMatch(/day 29/);
    expect(efiTimeProblem({ ...ok, month: 13 })).toMatch(/month/);
    expect(efiTimeProblem({ ...ok, hour: 24 })).toMatch(/hour/);
    expect(efiTimeProblem({ ...ok, timeZone: 1441 })).toMatch(/time zone/);
    expect(efiTimeProblem({ ...ok, daylight: 4 })).toMatch(/daylight/);
    expect(efiTimeProblem({ ...ok, nanosecond: 1e9 })).toMatch(/nanosecond/);
    expect(efiTimeProblem({ ...ok, year: 1899 })).toMatch(/year/);
  });

  it('orders by year, month, day, hour, minute, second only', () => {
    const a = parseEfiTime(serializeEfiTime({ year: 2020, month: 5, day: 1, second: 1 }))!;
    expect(compareEfiTime(a, { ...a, nanosecond: 5, timeZone: 60 })).toBe(0);
    for (const field of ['year', 'month', 'day', 'hour', 'minute', 'second'] as const) {
      expect(compareEfiTime({ ...a, [field]: a[field] + 1 }, a)).toBeGreaterThan(0);
    }
    expect(compareEfiTime({ ...a, year: 2019, month: 12 }, a)).toBeLessThan(0);
  });

  it('property: the order is total and antisymmetric; later picks the maximum', () => {
    fc.assert(
      fc.property(efiTime, efiTime, (a, b) => {
        const ab = compareEfiTime(a, b);
        expect(Math.sign(ab)).toBe(-Math.sign(compareEfiTime(b, a)));
        const later = laterEfiTimeBytes(serializeEfiTime(a), serializeEfiTime(b));
        expect(compareEfiTimeBytes(later, serializeEfiTime(ab >= 0 ? a : b))).toBe(0);
      }),
    );
  });

  it('converts from and to Date in UTC', () => {
    const d = new Date(Date.UTC(2026, 0, 27, 12, 34, 56));
    const t = efiTimeFromDate(d);
    expect(formatEfiTime(t)).toBe('2026-01-27T12:34:56');
    expect(efiTimeToDate(t).getTime()).toBe(d.getTime());
    expect(efiTimeToDate({ ...t, year: 50 }).getUTCFullYear()).toBe(50);
  });
});
