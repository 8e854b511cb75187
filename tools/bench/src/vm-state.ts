/**
 * The NVRAM of a realistic Secure Boot VM after a few boots: OVMF's own variables (boot options,
 * consoles, languages, the monotonic counter, memory-type statistics, platform and TCG2
 * configuration), Microsoft's KEK and db certificates and the 443-entry dbx, a PK, shim's
 * SbatLevel. Names, attributes and sizes follow what OVMF and a Debian guest (shim + GRUB) keep.
 */
import { Attrs, Guids, VariableStore, makeVariable, utf16le, type StoreState, type Variable } from '@vmsb/efi';
import { FUZZ_PLATFORM, testKeys } from '@vmsb/fuzz';
import { BOOT_OPTIONS } from '@vmsb/guest-sim';
import { bundledDbxUpdate, buildSignatureList, microsoftSignatureList, timestampBytes } from '@vmsb/keys';
import { encodeVarsBlob } from '@vmsb/nvram';
import { guidFromText } from '@vmsb/protocol';

function guid(text: string): Uint8Array {
  const g = guidFromText(text);
  if (g === undefined) throw new TypeError(`not a GUID: ${text}`);
  return g;
}

/** Vendor GUIDs of the variables a VM's firmware and OS use. */
export const Vendor = {
  GLOBAL: Guids.GLOBAL_VARIABLE,
  DB: Guids.IMAGE_SECURITY_DATABASE,
  MTC: guid('eb704011-1402-11d3-8e77-00a0c969723b'),
  MEMORY_TYPE_INFORMATION: guid('4c19049f-4137-4dd3-9c10-8b97a83ffdfa'),
  PLATFORM_CONFIG: guid('7235c51c-0c80-4cab-87ac-3b084a6304b1'),
  NIC_CONFIG: guid('5b446ed1-e30b-4faa-871a-3654eca36080'),
  RTC: guid('378d7b65-8da9-4773-b6e4-a47826a833e1'),
  TCG2_CONFIG: guid('6339d487-26ba-424b-9a5d-687e25d740bc'),
  TCG2_PHYSICAL_PRESENCE: guid('aeb9c5c1-94f1-4d02-bfd9-4602db2d3c54'),
  SECURE_BOOT_ENABLE: Guids.SECURE_BOOT_ENABLE_DISABLE,
  CUSTOM_MODE: Guids.CUSTOM_MODE_ENABLE,
  SHIM: Guids.SHIM_LOCK,
  /** systemd's loader interface (LoaderTimeInitUSec, LoaderDevicePartUUID, ...). */
  LOADER: guid('4a67b082-0a4c-41cf-b6c7-440b29bb8c4f'),
  /** fwupd's capsule bookkeeping. */
  FWUPD: guid('0abba7dc-e516-4167-bbf5-4d9d1c739416'),
  /** Linux efi-pstore records. */
  PSTORE: guid('cfc8fc79-be2e-4ddc-97f0-9f98bfe298a0'),
} as const;

function u16(v: number): number[] {
  return [v & 0xff, v >>> 8];
}
function u32(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];
}
function cat(...parts: (Uint8Array | number[])[]): Uint8Array {
  return Uint8Array.from(parts.flatMap((p) => [...p]));
}

/** Device-path nodes (UEFI spec, chapter 10). */
const node = (type: number, subtype: number, body: (Uint8Array | number[])[]): Uint8Array => {
  const b = cat(...body);
  return cat([type, subtype, ...u16(4 + b.length)], b);
};
const END = Uint8Array.of(0x7f, 0xff, 0x04, 0x00);
const pciRoot = node(0x02, 0x01, [u32(0x0a0341d0), u32(0)]);
const pci = (device: number, fn: number): Uint8Array => node(0x01, 0x01, [[fn, device]]);
const acpi = (hid: number, uid: number): Uint8Array => node(0x02, 0x01, [u32(hid), u32(uid)]);
const uart = node(0x03, 0x0e, [u32(0), [0x00, 0xc2, 0x01, 0, 0, 0, 0, 0], [8, 1, 1]]);
const vendorVt100 = node(0x03, 0x0a, [guid('dfa66065-b419-11d3-9a2d-0090273fc14d')]);
const gop = node(0x02, 0x03, [u32(0x80010100)]);
const hd = node(0x04, 0x01, [
  u32(1),
  [0, 8, 0, 0, 0, 0, 0, 0],
  [0, 0, 0x10, 0, 0, 0, 0, 0],
  guid('9c7e2a4f-1b6d-4c3e-8f5a-2d1e0b7c6a93'),
  [2, 2],
]);
const file = (path: string): Uint8Array => node(0x04, 0x04, [utf16le(`${path}\0`)]);

/** EFI_LOAD_OPTION: attributes, FilePathListLength, NUL-terminated description, file path list. */
function loadOption(attributes: number, description: string, path: Uint8Array): Uint8Array {
  return cat(u32(attributes), u16(path.length), utf16le(`${description}\0`), path);
}

export const CON_OUT = cat(
  pciRoot,
  pci(2, 0),
  gop,
  END,
  pciRoot,
  pci(1, 0),
  acpi(0x0501d041, 0),
  uart,
  vendorVt100,
  END,
);
export const CON_IN = cat(
  pciRoot,
  pci(1, 0),
  acpi(0x0303d041, 0),
  END,
  pciRoot,
  pci(1, 0),
  acpi(0x0501d041, 0),
  uart,
  vendorVt100,
  END,
);
export const ERR_OUT = cat(pciRoot, pci(1, 0), acpi(0x0501d041, 0), uart, vendorVt100, END);
export const DEBIAN_BOOT = loadOption(1, 'debian', cat(hd, file('\\EFI\\debian\\shimx64.efi'), END));

const MEMORY_TYPE_INFORMATION = Uint8Array.from(
  [
    [10, 4],
    [9, 0x15],
    [0, 4],
    [6, 0x33],
    [5, 0x30],
    [3, 0x7e9],
    [4, 0x1a40],
    [15, 0],
  ].flatMap(([t, p]) => [...u32(t!), ...u32(p!)]),
);

const enrolled = timestampBytes(new Date(Date.UTC(2024, 2, 1, 9, 30, 0)));

function v(name: string, g: Uint8Array, attributes: number, data: Uint8Array, timestamp?: Uint8Array): Variable {
  return makeVariable({ name: utf16le(name), guid: g, attributes, data, ...(timestamp ? { timestamp } : {}) });
}

/** The VM's variables as its NVRAM holds them (non-volatile ones), in the order they were created. */
export function vmVariables(): Variable[] {
  const pk = buildSignatureList({
    type: 'x509',
    certificates: [testKeys().PK.certificate],
    owner: '5d1a9b2e-7c44-4e0f-9b1d-2f6c3a8e4b17',
  });
  const boot = (n: number): string => `Boot${n.toString(16).toUpperCase().padStart(4, '0')}`;
  const G = Vendor.GLOBAL;
  return [
    v('MTC', Vendor.MTC, Attrs.NV_BS_RT, Uint8Array.from(u32(7))),
    v('MemoryTypeInformation', Vendor.MEMORY_TYPE_INFORMATION, Attrs.NV_BS, MEMORY_TYPE_INFORMATION),
    v('PlatformConfig', Vendor.PLATFORM_CONFIG, Attrs.NV_BS_RT, Uint8Array.of(0, 4, 0, 0, 0, 3, 0, 0)),
    v('82C63FDB4491', Vendor.NIC_CONFIG, Attrs.NV_BS, new Uint8Array(20).fill(0x11)),
    v('RTCALARM', Vendor.RTC, Attrs.NV_BS_RT, new Uint8Array(16)),
    v('TCG2_CONFIGURATION', Vendor.TCG2_CONFIG, Attrs.NV_BS, Uint8Array.of(1)),
    v('TCG2_VERSION', Vendor.TCG2_CONFIG, Attrs.NV_BS, Uint8Array.of(1, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0)),
    v('Tcg2PhysicalPresence', Vendor.TCG2_PHYSICAL_PRESENCE, Attrs.NV_BS, new Uint8Array(17)),
    v('SecureBootEnable', Vendor.SECURE_BOOT_ENABLE, Attrs.NV_BS, Uint8Array.of(1)),
    v('CustomMode', Vendor.CUSTOM_MODE, Attrs.NV_BS, Uint8Array.of(0)),
    v('PK', G, Attrs.NV_BS_RT_AT, pk, enrolled),
    v('KEK', G, Attrs.NV_BS_RT_AT, microsoftSignatureList({ role: 'KEK' }), enrolled),
    v('db', Vendor.DB, Attrs.NV_BS_RT_AT, microsoftSignatureList({ role: 'db' }), enrolled),
    v('dbx', Vendor.DB, Attrs.NV_BS_RT_AT, bundledDbxUpdate().payload, bundledDbxUpdate().timestamp),
    v('Timeout', G, Attrs.NV_BS_RT, Uint8Array.of(...u16(3))),
    v('PlatformLang', G, Attrs.NV_BS_RT, new TextEncoder().encode('en-US\0')),
    v('Lang', G, Attrs.NV_BS_RT, new TextEncoder().encode('eng\0')),
    v('ConOut', G, Attrs.NV_BS_RT, CON_OUT),
    v('ConIn', G, Attrs.NV_BS_RT, CON_IN),
    v('ErrOut', G, Attrs.NV_BS_RT, ERR_OUT),
    ...BOOT_OPTIONS.map((o) => v(boot(o.number), G, Attrs.NV_BS_RT, o.data)),
    v('Boot0004', G, Attrs.NV_BS_RT, DEBIAN_BOOT),
    v('BootOrder', G, Attrs.NV_BS_RT, Uint8Array.of(...u16(4), ...u16(1), ...u16(2), ...u16(0), ...u16(3))),
    v('Key0000', G, Attrs.NV_BS_RT, Uint8Array.of(0, 0, 0, 0x40, ...u32(0x9c2d1f4e), ...u16(0), 0x17, 0)),
    v('Key0001', G, Attrs.NV_BS_RT, Uint8Array.of(0, 0, 0, 0x40, ...u32(0x1b77ac30), ...u16(0), 0x0c, 0)),
    v(
      'SbatLevel',
      Vendor.SHIM,
      Attrs.NV_BS,
      new TextEncoder().encode('sbat,1,2023012900\nshim,2\ngrub,3\ngrub.debian,4\n'),
    ),
  ];
}

export function vmState(): StoreState {
  return { variables: vmVariables(), morKey: new Uint8Array(8), ppi: { index: 0, func: new Uint8Array(256) } };
}

/** A store holding the VM's variables as the daemon would restore them at boot. */
export function vmStore(options: { authenticator?: import('@vmsb/efi').Authenticator } = {}): VariableStore {
  return VariableStore.restore(vmState(), {
    platform: FUZZ_PLATFORM,
    resume: false,
    ...(options.authenticator ? { authenticator: options.authenticator } : {}),
  });
}

/** The VM's NVRAM file (VARS blob), as the file backend holds it after a boot. */
export function vmNvramBlob(): Uint8Array {
  return encodeVarsBlob(vmStore().state(), { nonVolatileOnly: true });
}
