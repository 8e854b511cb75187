import { describe, expect, it } from 'vitest';
import { Guids } from './guid.js';
import { secureBootValue, signerDigestIsData, variableKind } from './secure-boot.js';
import { utf16le } from './variable.js';

describe('variableKind', () => {
  it('classifies variables by name and namespace', () => {
    expect(variableKind(utf16le('PK'), Guids.GLOBAL_VARIABLE)).toBe('PK');
    expect(variableKind(utf16le('KEK'), Guids.GLOBAL_VARIABLE)).toBe('KEK');
    expect(variableKind(utf16le('db'), Guids.IMAGE_SECURITY_DATABASE)).toBe('db');
    expect(variableKind(utf16le('dbx'), Guids.IMAGE_SECURITY_DATABASE)).toBe('dbx');
    expect(variableKind(utf16le('dbt'), Guids.IMAGE_SECURITY_DATABASE)).toBe('dbt');
    expect(variableKind(utf16le('db'), Guids.GLOBAL_VARIABLE)).toBe('private');
    expect(variableKind(utf16le('PK'), Guids.IMAGE_SECURITY_DATABASE)).toBe('private');
    expect(variableKind(utf16le('dbr'), Guids.IMAGE_SECURITY_DATABASE)).toBe('private');
    expect(variableKind(utf16le('pk'), Guids.GLOBAL_VARIABLE)).toBe('private');
    expect(variableKind(utf16le('PKx'), Guids.GLOBAL_VARIABLE)).toBe('private');
  });

  it('takes a signer digest as data only for a private time-based authenticated variable', () => {
    const g = Guids.GLOBAL_VARIABLE;
    expect(signerDigestIsData({ name: utf16le('Mine'), guid: g, attributes: 0x27 })).toBe(true);
    expect(signerDigestIsData({ name: utf16le('Mine'), guid: g, attributes: 0x07 })).toBe(false);
    expect(signerDigestIsData({ name: utf16le('PK'), guid: g, attributes: 0x27 })).toBe(false);
    expect(signerDigestIsData({ name: utf16le('db'), guid: Guids.IMAGE_SECURITY_DATABASE, attributes: 0x27 })).toBe(
      false,
    );
  });
});

describe('secureBootValue', () => {
  it("varstored's rule: PK and the platform setting; SecureBootEnable is not consulted", () => {
    const v = (pkEnrolled: boolean, platformSecureBoot: boolean, secureBootEnable?: number) =>
      secureBootValue('varstored', { pkEnrolled, platformSecureBoot, secureBootEnable });
    expect([v(true, true), v(true, true, 0), v(true, false), v(false, true)]).toEqual([1, 1, 0, 0]);
  });

  it("edk2's rule: user mode and SecureBootEnable 1 or absent", () => {
    const v = (pkEnrolled: boolean, secureBootEnable?: number) =>
      secureBootValue('edk2', { pkEnrolled, platformSecureBoot: false, secureBootEnable });
    expect([v(true), v(true, 1), v(true, 0), v(true, 2), v(false, 1)]).toEqual([1, 1, 0, 0, 0]);
  });
});
