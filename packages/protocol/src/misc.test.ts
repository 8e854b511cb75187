import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { copyBytes } from './bytes.js';
import { guidFromText, guidToText } from './guid.js';
import { EfiStatus, isError, statusMeaning, statusName } from './status.js';
import { fromUtf16le, utf16le } from './utf16.js';

describe('GUIDs', () => {
  it('lays out EFI_GLOBAL_VARIABLE in EFI byte order', () => {
    const bytes = guidFromText('8BE4DF61-93CA-11D2-AA0D-00E098032B8C')!;
    expect(Buffer.from(bytes).toString('hex')).toBe('61dfe48bca93d211aa0d00e098032b8c');
    expect(guidToText(bytes)).toBe('8be4df61-93ca-11d2-aa0d-00e098032b8c');
  });

  it('rejects text that is not a GUID', () => {
    for (const bad of [
      '',
      '8be4df61-93ca-11d2-aa0d-00e098032b8',
      '8be4df6193ca11d2aa0d00e098032b8c',
      'zbe4df61-93ca-11d2-aa0d-00e098032b8c',
    ]) {
      expect(guidFromText(bad)).toBeUndefined();
    }
    expect(() => guidToText(new Uint8Array(15))).toThrow(RangeError);
  });

  it('round-trips any 16 bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (bytes) => {
        expect(guidFromText(guidToText(bytes))).toEqual(bytes);
      }),
    );
  });
});

describe('EFI_STATUS', () => {
  it('names statuses and explains them', () => {
    expect(statusName(EfiStatus.SECURITY_VIOLATION)).toBe('SECURITY_VIOLATION');
    expect(EfiStatus.SECURITY_VIOLATION).toBe(0x800000000000001an);
    expect(statusName(0x8000000000000063n)).toBe('0x8000000000000063');
    expect(statusMeaning(EfiStatus.WRITE_PROTECTED)).toMatch(/read-only/);
    expect(statusMeaning(0x8000000000000063n)).toBe('an unknown status');
    expect(isError(EfiStatus.SUCCESS)).toBe(false);
    expect(isError(EfiStatus.NOT_FOUND)).toBe(true);
  });
});

describe('UTF-16LE names', () => {
  it('encodes without terminator and decodes back', () => {
    expect(Buffer.from(utf16le('PK')).toString('hex')).toBe('50004b00');
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (s) => {
        expect(fromUtf16le(utf16le(s))).toBe(s);
      }),
    );
  });
});

describe('copyBytes', () => {
  it('copies a view of a Node Buffer into new memory, where slice() would share it', () => {
    const request = Buffer.from([0, 1, 2, 3, 4, 5]);
    const view = request.subarray(2, 5);
    const copy = copyBytes(view);
    request.fill(0xee);
    expect(copy).toEqual(Uint8Array.of(2, 3, 4));
    expect(copy.buffer).not.toBe(request.buffer);
    expect(Buffer.isBuffer(copy)).toBe(false);
  });
});
