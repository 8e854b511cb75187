import { describe, expect, it } from 'vitest';
import { Attrs } from './attributes.js';
import { Guids } from './guid.js';
import { devicePathProblem, isHwErrRecName, uefiVariableCheck, variableProperty } from './var-check.js';

const b = (...x: number[]) => Uint8Array.from(x);
const END = b(0x7f, 0xff, 4, 0);
/** A MEDIA_FILEPATH_DP node holding L"a" + NUL. */
const FILE = b(4, 4, 8, 0, 0x61, 0, 0, 0);

describe('device paths (edk2 IsDevicePathValid)', () => {
  const cases: [string, Uint8Array, boolean][] = [
    ['a lone end node', END, true],
    ['a node then the end', b(1, 1, 6, 0, 0, 0, ...END), true],
    ['a terminated file path then the end', b(...FILE, ...END), true],
    ['data after the end node is ignored', b(...END, 9, 9), true],
    ['an end-instance node continues the path', b(0x7f, 0x01, 4, 0, ...END), true],
    ['shorter than an end node', b(0x7f, 0xff, 4), false],
    ['no end node', b(1, 1, 4, 0, 1, 1, 4, 0), false],
    ['a node shorter than its header', b(1, 1, 3, 0, ...END), false],
    ['a node running past the value', b(1, 1, 200, 0, ...END), false],
    ['an end node of the wrong length', b(0x7f, 0xff, 5, 0, 0), false],
    ['an unterminated file path', b(4, 4, 8, 0, 0x61, 0, 0x62, 0, ...END), false],
  ];
  it.each(cases)('%s', (_what, bytes, valid) => {
    expect(devicePathProblem(bytes, 0, bytes.length) === undefined).toBe(valid);
  });
});

describe('UEFI variable properties', () => {
  it('finds exact and numbered names in their GUID only', () => {
    expect(variableProperty('BootOrder', Guids.GLOBAL_VARIABLE)?.attributes).toBe(Attrs.NV_BS_RT);
    expect(variableProperty('Boot00FF', Guids.GLOBAL_VARIABLE)?.minSize).toBe(6);
    expect(variableProperty('Boot00FF', Guids.IMAGE_SECURITY_DATABASE)).toBeUndefined();
    expect(variableProperty('Boot00001', Guids.GLOBAL_VARIABLE)).toBeUndefined();
    expect(variableProperty('PlatformRecovery0000', Guids.GLOBAL_VARIABLE)?.attributes).toBe(Attrs.BS_RT);
    expect(variableProperty('dbx', Guids.IMAGE_SECURITY_DATABASE)?.attributes).toBe(Attrs.NV_BS_RT_AT);
    expect(variableProperty('SecureBoot', Guids.GLOBAL_VARIABLE)?.readOnly).toBe(true);
    expect(isHwErrRecName('HwErrRec00aF')).toBe(true);
    expect(isHwErrRecName('HwErrRec00aG')).toBe(false);
  });

  it('leaves other vendor GUIDs alone', () => {
    const vendor = new Uint8Array(16).fill(3);
    expect(uefiVariableCheck('BootOrder', vendor, Attrs.BS, b(1))).toBeUndefined();
  });

  it('checks Key#### sizes: an EFI_KEY_OPTION plus 0..3 EFI_INPUT_KEYs', () => {
    for (const [size, ok] of [
      [10, true],
      [14, true],
      [22, true],
      [26, false],
      [9, false],
      [12, false],
    ] as const) {
      expect(
        uefiVariableCheck('Key0000', Guids.GLOBAL_VARIABLE, Attrs.NV_BS_RT, new Uint8Array(size)) === undefined,
        `size ${size}`,
      ).toBe(ok);
    }
  });

  it('ASCII strings may end anywhere after a NUL (edk2 scans back for one)', () => {
    expect(uefiVariableCheck('Lang', Guids.GLOBAL_VARIABLE, Attrs.NV_BS_RT, b(0x65, 0x6e, 0x67, 0))).toBeUndefined();
    expect(uefiVariableCheck('Lang', Guids.GLOBAL_VARIABLE, Attrs.NV_BS_RT, b(0x65, 0, 0x67))).toBeUndefined();
    expect(uefiVariableCheck('Lang', Guids.GLOBAL_VARIABLE, Attrs.NV_BS_RT, b(0x65, 0x6e, 0x67))).toBeDefined();
  });

  it('read-only is decided before the size rules (SignatureSupport)', () => {
    expect(
      uefiVariableCheck('SignatureSupport', Guids.GLOBAL_VARIABLE, Attrs.BS_RT, new Uint8Array(17))?.reason,
    ).toMatch(/read-only/);
  });
});
