import { describe, expect, it } from 'vitest';
import {
  Attr,
  formatAttributes,
  hasAppendAttr,
  hasRuntimeAccess,
  hasTimeBasedAttr,
  isNonVolatile,
} from './attributes.js';
import { Guids, guid, guidEquals, guidToText } from './guid.js';
import { isVariable, makeVariable, nameProblem, utf16le, variableName, variablesEqual } from './variable.js';

describe('GUIDs', () => {
  it('use EFI byte order (docs/variable-services.md §1)', () => {
    expect(Buffer.from(Guids.GLOBAL_VARIABLE).toString('hex')).toBe('61dfe48bca93d211aa0d00e098032b8c');
    expect(Buffer.from(Guids.IMAGE_SECURITY_DATABASE).toString('hex')).toBe('cbb219d73a3d9645a3bcdad00e67656f');
    expect(Buffer.from(Guids.CERT_PKCS7).toString('hex')).toBe('9dd2af4adf68ee498aa9347d375665a7');
    expect(Buffer.from(Guids.CERT_X509).toString('hex')).toBe('a159c0a5e494a74a87b5ab155c2bf072');
    expect(Buffer.from(Guids.HARDWARE_ERROR_VARIABLE).toString('hex')).toBe('dd6b4e417be4cc47b244bb61020cf516');
    expect(Buffer.from(Guids.MICROSOFT).toString('hex')).toBe('bd9afa7759 03324dbd6028f4e78f784b'.replace(' ', ''));
    expect(guidToText(Guids.TCG2_PHYSICAL_PRESENCE)).toBe('9d1947eb-09bb-4780-a3cd-bea956e0e056');
  });

  it('compare byte-exact; a malformed literal throws', () => {
    expect(guidEquals(guid('8BE4DF61-93CA-11D2-AA0D-00E098032B8C'), Guids.GLOBAL_VARIABLE)).toBe(true);
    expect(guidEquals(Guids.GLOBAL_VARIABLE, Guids.IMAGE_SECURITY_DATABASE)).toBe(false);
    expect(guidEquals(new Uint8Array(15), new Uint8Array(15))).toBe(false);
    expect(() => guid('not-a-guid')).toThrow(TypeError);
  });
});

describe('attributes', () => {
  it('format and test bits', () => {
    expect(formatAttributes(0x27)).toBe('NV|BS|RT|AT');
    expect(formatAttributes(0x67)).toBe('NV|BS|RT|AT|AP');
    expect(formatAttributes(0)).toBe('0');
    expect(formatAttributes(0x107)).toBe('NV|BS|RT|0x100');
    expect(hasTimeBasedAttr(0x27)).toBe(true);
    expect(hasTimeBasedAttr(Attr.AUTHENTICATED_WRITE_ACCESS)).toBe(false);
    expect(hasAppendAttr(0x40)).toBe(true);
    expect(isNonVolatile(0x6)).toBe(false);
    expect(hasRuntimeAccess(0x6)).toBe(true);
  });
});

describe('names and variables', () => {
  it('a name is non-empty, even-length, without NUL', () => {
    expect(nameProblem(utf16le('Boot0001'))).toBeUndefined();
    expect(nameProblem(new Uint8Array(0))).toMatch(/empty/);
    expect(nameProblem(Uint8Array.of(0x41))).toMatch(/odd/);
    expect(nameProblem(Uint8Array.of(0x41, 0, 0, 0))).toMatch(/NUL/);
    // 0x0100 is not NUL even though one byte is zero.
    expect(nameProblem(Uint8Array.of(0, 1))).toBeUndefined();
  });

  it('makeVariable copies its inputs and pads timestamp and digest', () => {
    const data = Uint8Array.of(1, 2);
    const v = makeVariable({ name: utf16le('X'), guid: Guids.GLOBAL_VARIABLE, attributes: 7, data });
    data[0] = 9;
    expect(v.data).toEqual(Uint8Array.of(1, 2));
    expect(v.timestamp).toEqual(new Uint8Array(16));
    expect(v.signerDigest).toEqual(new Uint8Array(32));
    expect(Object.isFrozen(v)).toBe(true);
    expect(variableName(v)).toBe('X');
    expect(isVariable(v, utf16le('X'), Guids.GLOBAL_VARIABLE)).toBe(true);
    expect(variablesEqual(v, makeVariable({ ...v }))).toBe(true);
    expect(variablesEqual(v, makeVariable({ ...v, timestamp: Uint8Array.of(1) }))).toBe(false);
  });
});
