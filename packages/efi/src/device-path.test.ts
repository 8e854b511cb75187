import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { devicePathToText } from './device-path.js';
import { parseLoadOption } from './load-option.js';
import { utf16le } from './variable.js';

function node(type: number, subtype: number, data: number[] | Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + data.length);
  out[0] = type;
  out[1] = subtype;
  new DataView(out.buffer).setUint16(2, out.length, true);
  out.set(data, 4);
  return out;
}
const le = (n: number | bigint, size: number): number[] => {
  const out: number[] = [];
  let v = BigInt(n);
  for (let i = 0; i < size; i++) {
    out.push(Number(v & 0xffn));
    v >>= 8n;
  }
  return out;
};
const END = node(0x7f, 0xff, []);
const cat = (...parts: Uint8Array[]): Uint8Array => Uint8Array.from(parts.flatMap((p) => [...p]));
const pciRoot = node(2, 1, [...le(0x0a0341d0, 4), ...le(0, 4)]);
const pci = (dev: number, fn: number) => node(1, 1, [fn, dev]);
const file = (path: string) => node(4, 4, [...utf16le(path), 0, 0]);

describe('devicePathToText (edk2 DevicePathToText forms)', () => {
  it('prints the nodes OVMF boot entries use', () => {
    const gpt = Uint8Array.from([
      0x2c, 0x7f, 0x9d, 0x0c, 0x34, 0x12, 0x78, 0x56, 0x9a, 0xbc, 0xde, 0xf0, 0x11, 0x22, 0x33, 0x44,
    ]);
    const hd = node(4, 1, [...le(1, 4), ...le(0x800, 8), ...le(0x100000, 8), ...gpt, 2, 2]);
    const sata = node(3, 0x12, [...le(0, 2), ...le(0xffff, 2), ...le(0, 2)]);
    expect(devicePathToText(cat(pciRoot, pci(0x1f, 2), sata, hd, file('\\EFI\\BOOT\\BOOTX64.EFI'), END))).toEqual({
      text: 'PciRoot(0x0)/Pci(0x1F,0x2)/Sata(0x0,0xFFFF,0x0)/HD(1,GPT,0C9D7F2C-1234-5678-9ABC-DEF011223344,0x800,0x100000)/\\EFI\\BOOT\\BOOTX64.EFI',
      ok: true,
    });
    const ata = node(3, 1, [1, 0, 0, 0]);
    const mbr = node(4, 1, [
      ...le(2, 4),
      ...le(63, 8),
      ...le(1000, 8),
      ...le(0xdeadbeef, 4),
      ...new Array(12).fill(0),
      1,
      1,
    ]);
    expect(devicePathToText(cat(pciRoot, pci(1, 1), ata, mbr, END)).text).toBe(
      'PciRoot(0x0)/Pci(0x1,0x1)/Ata(Secondary,Master,0x0)/HD(2,MBR,0xDEADBEEF,0x3F,0x3E8)',
    );
    const mac = node(3, 11, [0x82, 0xc6, 0x3f, 0xdb, 0x44, 0x91, ...new Array(26).fill(0), 1]);
    const ip = node(3, 12, [...new Array(12).fill(0), 0x11, 0, 0, ...new Array(8).fill(0)]);
    expect(devicePathToText(cat(pciRoot, pci(4, 0), mac, ip, END)).text).toBe(
      'PciRoot(0x0)/Pci(0x4,0x0)/MAC(82C63FDB4491,0x1)/IPv4(0.0.0.0,UDP,DHCP,0.0.0.0,0.0.0.0,0.0.0.0)',
    );
  });

  it('separates instances with commas, prints unknown nodes generically, flags malformed paths', () => {
    const multi = cat(pciRoot, node(0x7f, 0x01, []), pciRoot, pci(2, 0), END);
    expect(devicePathToText(multi)).toEqual({ text: 'PciRoot(0x0),PciRoot(0x0)/Pci(0x2,0x0)', ok: true });
    expect(devicePathToText(cat(node(9, 9, [0xab]), END)).text).toBe('Path(9,9,AB)');
    expect(devicePathToText(cat(pciRoot)).ok).toBe(false);
    const bad = devicePathToText(Uint8Array.from([1, 1, 0xff, 0]));
    expect(bad.ok).toBe(false);
    expect(bad.text).toContain('malformed');
  });

  it('never throws on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        expect(typeof devicePathToText(bytes).text).toBe('string');
        parseLoadOption(bytes);
      }),
    );
  });
});

describe('parseLoadOption', () => {
  it('reads attributes, description, device path and optional data', () => {
    const path = cat(pciRoot, pci(3, 0), END);
    const bytes = cat(
      Uint8Array.from([...le(1, 4), ...le(path.length, 2)]),
      utf16le('UEFI Misc Device'),
      Uint8Array.from([0, 0]),
      path,
      Uint8Array.from([0xaa, 0xbb]),
    );
    expect(parseLoadOption(bytes)).toEqual({
      ok: true,
      option: {
        attributes: 1,
        active: true,
        description: 'UEFI Misc Device',
        devicePath: 'PciRoot(0x0)/Pci(0x3,0x0)',
        optionalData: 'aabb',
      },
    });
    expect(parseLoadOption(bytes.subarray(0, 20)).ok).toBe(false);
  });
});
