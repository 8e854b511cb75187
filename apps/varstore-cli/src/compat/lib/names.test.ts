import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { efiStatusText } from './efi-errors.js';
import { argumentBytes, guidText, parseGuidArgument, printableName, widenName } from './names.js';

describe('names', () => {
  it('widens ASCII to UTF-16LE and prints it back unchanged', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)) }), (s) => {
        const name = widenName(argumentBytes(s));
        expect(Buffer.from(name).toString('utf16le')).toBe(s);
        expect(printableName(name)).toBe(s);
      }),
    );
  });

  it('widens the UTF-8 bytes of other characters one by one', () => {
    expect([...widenName(argumentBytes('é'))]).toEqual([0xc3, 0, 0xa9, 0]);
  });

  it('prints only the printable low byte of each UTF-16 unit', () => {
    const name = new Uint8Array(Buffer.from('Ła\u00e9\u0009b', 'utf16le'));
    expect(printableName(name)).toBe('Aab');
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const text = printableName(bytes);
        expect(text).toMatch(/^[\x20-\x7e]*$/);
        expect(text.length).toBeLessThanOrEqual(Math.ceil(bytes.length / 2));
      }),
    );
  });
});

describe('GUID arguments', () => {
  it('round-trips every GUID, in either case', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (bytes) => {
        const text = guidText(bytes);
        expect(text).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
        expect(parseGuidArgument(text)).toEqual(bytes);
        expect(parseGuidArgument(text.toUpperCase())).toEqual(bytes);
      }),
    );
  });

  it('is in EFI byte order', () => {
    expect([...parseGuidArgument('8be4df61-93ca-11d2-aa0d-00e098032b8c')!]).toEqual([
      0x61, 0xdf, 0xe4, 0x8b, 0xca, 0x93, 0xd2, 0x11, 0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c,
    ]);
  });

  it('accepts nothing but the 36-character form', () => {
    const good = '8be4df61-93ca-11d2-aa0d-00e098032b8c';
    for (const bad of [
      ` ${good}`,
      `${good} `,
      `{${good}}`,
      good.replace(/-/g, ''),
      good.slice(0, 35),
      `${good.slice(0, 8)}_${good.slice(9)}`,
      good.replace('8', 'g'),
      good.replace('8', 'é'),
    ]) {
      expect(parseGuidArgument(bad)).toBeUndefined();
    }
    fc.assert(fc.property(fc.string({ maxLength: 40 }), (s) => void parseGuidArgument(s)));
  });
});

describe('EFI status text', () => {
  it('matches the C tools for errors, warnings and unknown values', () => {
    expect(efiStatusText(0x800000000000000en)).toBe('Not Found');
    expect(efiStatusText(0x800000000000001an)).toBe('Security Violation');
    expect(efiStatusText(0x8000000000000007n)).toBe('Device Error');
    expect(efiStatusText(0x8000000000000009n)).toBe('Out of Resources');
    expect(efiStatusText(0x800000000000000an)).toBe('Volume Corrupt');
    expect(efiStatusText(0x8000000000000011n)).toBe('No mapping');
    expect(efiStatusText(0x8000000000000021n)).toBe('Compromised Data');
    expect(efiStatusText(4n)).toBe('Warning Buffer Too Small');
    expect(efiStatusText(0n)).toBe('Success');
    expect(efiStatusText(0x800000000000001dn)).toBe('Unknown error: 0x800000000000001d');
    expect(efiStatusText(0x63n)).toBe('Unknown error: 0x0000000000000063');
  });
});
