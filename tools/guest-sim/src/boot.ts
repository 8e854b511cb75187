/**
 * A realistic OVMF boot, as its drivers use variable services through XenVariable, then an OS
 * after ExitBootServices. The order and attributes follow edk2's OVMF: MonotonicCounterRuntimeDxe
 * (MTC), the memory-type statistics, the Secure Boot variables DxeImageVerificationLib and
 * SecureBootConfigDxe read, BDS (languages, timeout, consoles, boot options), then the OS.
 */
import { EfiStatus, guidFromText, guidToText, statusName, utf16le } from '@vmsb/protocol';
import { Attributes, type Firmware, type TraceEntry, type VariableRef, VendorGuids } from './firmware.js';

const G = VendorGuids;
const ref = (name: string, guid: Uint8Array = G.GLOBAL): VariableRef => ({ name, guid });

// ---- the data OVMF writes -------------------------------------------------------------------

function concat(...parts: (Uint8Array | number[])[]): Uint8Array {
  const arrays = parts.map((p) => (p instanceof Uint8Array ? p : Uint8Array.from(p)));
  const out = new Uint8Array(arrays.reduce((n, a) => n + a.length, 0));
  let o = 0;
  for (const a of arrays) {
    out.set(a, o);
    o += a.length;
  }
  return out;
}

function u16(v: number): number[] {
  return [v & 0xff, v >>> 8];
}
function u32(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];
}
function guidBytes(text: string): Uint8Array {
  const bytes = guidFromText(text);
  if (bytes === undefined) throw new TypeError(`not a GUID: ${text}`);
  return bytes;
}

/** Device-path nodes (UEFI spec ch. 10). */
const DevicePath = {
  node: (type: number, subtype: number, body: number[] | Uint8Array): Uint8Array =>
    concat([type, subtype, ...u16(4 + body.length)], body),
  end: (): Uint8Array => Uint8Array.from([0x7f, 0xff, 0x04, 0x00]),
  pciRoot: (): Uint8Array => DevicePath.node(0x02, 0x01, [...u32(0x0a0341d0), ...u32(0)]),
  pci: (device: number, fn: number): Uint8Array => DevicePath.node(0x01, 0x01, [fn, device]),
  acpiAdr: (adr: number): Uint8Array => DevicePath.node(0x02, 0x03, u32(adr)),
  acpi: (hid: number, uid: number): Uint8Array => DevicePath.node(0x02, 0x01, [...u32(hid), ...u32(uid)]),
  ata: (secondary: number, slave: number, lun: number): Uint8Array =>
    DevicePath.node(0x03, 0x01, [secondary, slave, ...u16(lun)]),
  mac: (mac: number[]): Uint8Array =>
    DevicePath.node(0x03, 0x0b, [...mac, ...new Array(32 - mac.length).fill(0), 0x01]),
  fv: (text: string): Uint8Array => DevicePath.node(0x04, 0x07, guidBytes(text)),
  fvFile: (text: string): Uint8Array => DevicePath.node(0x04, 0x06, guidBytes(text)),
};

/** EFI_LOAD_OPTION: attributes, FilePathListLength, Description (NUL-terminated UTF-16), FilePathList. */
function loadOption(attributes: number, description: string, path: Uint8Array): Uint8Array {
  return concat(u32(attributes), u16(path.length), utf16le(`${description}\0`), path);
}

const LOAD_OPTION_ACTIVE = 0x1;
const LOAD_OPTION_HIDDEN = 0x8;
const LOAD_OPTION_CATEGORY_APP = 0x100;
const OVMF_FV = '7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1';

/** The boot options OVMF's BDS registers for a VM with one disk and one NIC. */
export const BOOT_OPTIONS: readonly { readonly number: number; readonly data: Uint8Array }[] = [
  {
    number: 0x0000,
    data: loadOption(
      LOAD_OPTION_CATEGORY_APP | LOAD_OPTION_HIDDEN | LOAD_OPTION_ACTIVE,
      'UiApp',
      concat(DevicePath.fv(OVMF_FV), DevicePath.fvFile('462caa21-7614-4503-836e-8ab6f4662331'), DevicePath.end()),
    ),
  },
  {
    number: 0x0001,
    data: loadOption(
      LOAD_OPTION_ACTIVE,
      'UEFI QEMU HARDDISK QM00001',
      concat(DevicePath.pciRoot(), DevicePath.pci(1, 1), DevicePath.ata(0, 0, 0), DevicePath.end()),
    ),
  },
  {
    number: 0x0002,
    data: loadOption(
      LOAD_OPTION_ACTIVE,
      'UEFI PXEv4 (MAC:525400123456)',
      concat(
        DevicePath.pciRoot(),
        DevicePath.pci(4, 0),
        DevicePath.mac([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]),
        DevicePath.end(),
      ),
    ),
  },
  {
    number: 0x0003,
    data: loadOption(
      LOAD_OPTION_ACTIVE,
      'EFI Internal Shell',
      concat(DevicePath.fv(OVMF_FV), DevicePath.fvFile('7c04a583-9e3e-4f1c-ad65-e05268d0b4d1'), DevicePath.end()),
    ),
  },
];

const CON_OUT = concat(DevicePath.pciRoot(), DevicePath.pci(2, 0), DevicePath.acpiAdr(0x80010100), DevicePath.end());
const CON_IN = concat(DevicePath.pciRoot(), DevicePath.pci(1, 0), DevicePath.acpi(0x0303d041, 0), DevicePath.end());

/** EFI_MEMORY_TYPE_INFORMATION[]: (type, pages) pairs ending with EfiMaxMemoryType. */
const MEMORY_TYPE_INFORMATION = Uint8Array.from(
  [
    [10, 4], // ACPI NVS
    [9, 0x15], // ACPI reclaim
    [0, 4], // reserved
    [6, 0x33], // runtime data
    [5, 0x30], // runtime code
    [3, 0x7e9], // boot services code
    [4, 0x1a40], // boot services data
    [15, 0], // EfiMaxMemoryType
  ].flatMap(([type, pages]) => [...u32(type!), ...u32(pages!)]),
);

const bootName = (n: number): string => `Boot${n.toString(16).toUpperCase().padStart(4, '0')}`;

// ---- the boot -------------------------------------------------------------------------------

export interface BootReport {
  readonly trace: readonly TraceEntry[];
  /** Variables this boot wrote that did not exist before it (volatile ones included). */
  readonly created: readonly string[];
  /** SecureBoot / SetupMode as the OS read them (undefined when absent). */
  readonly secureBoot: number | undefined;
  readonly setupMode: number | undefined;
  /** The monotonic counter this boot stored. */
  readonly monotonicCounter: number;
  readonly bootOrder: readonly string[];
  readonly storage: { readonly maximum?: number; readonly remaining?: number; readonly maximumVariable?: number };
}

function expectSuccess(what: string, status: bigint): void {
  if (status !== EfiStatus.SUCCESS) throw new Error(`${what}: ${statusName(status)}`);
}

const key = (r: VariableRef): string => `${guidToText(r.guid)}:${r.name}`;

/** Runs the boot on `fw` and reports what happened. Throws when the daemon refuses what OVMF needs. */
export async function runOvmfBoot(fw: Firmware): Promise<BootReport> {
  fw.atRuntime = false;
  fw.phase = 'DXE';
  const before = new Set((await fw.enumerate()).map(key));

  // MonotonicCounterRuntimeDxe: the high 32 bits of the counter persist in MTC, +1 every boot.
  const mtc = await fw.readVariable(ref('MTC', G.MTC));
  const counter =
    (mtc && mtc.data.length >= 4 ? new DataView(mtc.data.buffer, mtc.data.byteOffset).getUint32(0, true) : 0) + 1;
  expectSuccess(
    'SetVariable MTC',
    await fw.setVariable(ref('MTC', G.MTC), Attributes.NV_BS_RT, Uint8Array.from(u32(counter))),
  );

  // The memory-type statistics PEI/DXE use to size memory; rewritten when they change.
  const mti = await fw.readVariable(ref('MemoryTypeInformation', G.MEMORY_TYPE_INFORMATION));
  if (mti === undefined || Buffer.compare(mti.data, MEMORY_TYPE_INFORMATION) !== 0) {
    expectSuccess(
      'SetVariable MemoryTypeInformation',
      await fw.setVariable(
        ref('MemoryTypeInformation', G.MEMORY_TYPE_INFORMATION),
        Attributes.NV_BS,
        MEMORY_TYPE_INFORMATION,
      ),
    );
  }

  // Secure Boot: image verification and the configuration driver read the mode and the databases.
  for (const r of [
    ref('SecureBoot'),
    ref('SetupMode'),
    ref('PK'),
    ref('KEK'),
    ref('db', G.IMAGE_SECURITY_DATABASE),
    ref('dbx', G.IMAGE_SECURITY_DATABASE),
    ref('dbt', G.IMAGE_SECURITY_DATABASE),
    ref('SignatureSupport'),
    ref('CustomMode', G.CUSTOM_MODE),
  ]) {
    await fw.readVariable(r);
  }

  fw.phase = 'BDS';
  // What the platform supports: volatile, rebuilt every boot.
  expectSuccess(
    'SetVariable OsIndicationsSupported',
    await fw.setVariable(ref('OsIndicationsSupported'), Attributes.BS_RT, Uint8Array.from([0x07, 0, 0, 0, 0, 0, 0, 0])),
  );
  expectSuccess(
    'SetVariable BootOptionSupport',
    await fw.setVariable(ref('BootOptionSupport'), Attributes.BS_RT, Uint8Array.from(u32(0x301))),
  );
  expectSuccess(
    'SetVariable PlatformLangCodes',
    await fw.setVariable(ref('PlatformLangCodes'), Attributes.BS_RT, new TextEncoder().encode('en-US;fr-FR\0')),
  );
  expectSuccess(
    'SetVariable LangCodes',
    await fw.setVariable(ref('LangCodes'), Attributes.BS_RT, new TextEncoder().encode('engfra\0')),
  );

  // Languages and timeout: defaults written on the first boot only.
  const defaults: [string, Uint8Array][] = [
    ['PlatformLang', new TextEncoder().encode('en-US\0')],
    ['Lang', new TextEncoder().encode('eng\0')],
    ['Timeout', Uint8Array.from(u16(3))],
    ['ConOut', CON_OUT],
    ['ConIn', CON_IN],
    ['ErrOut', CON_OUT],
  ];
  for (const [name, value] of defaults) {
    if ((await fw.readVariable(ref(name))) === undefined) {
      expectSuccess(`SetVariable ${name}`, await fw.setVariable(ref(name), Attributes.NV_BS_RT, value));
    }
  }
  expectSuccess('SetVariable ConOutDev', await fw.setVariable(ref('ConOutDev'), Attributes.BS_RT, CON_OUT));
  expectSuccess('SetVariable ConInDev', await fw.setVariable(ref('ConInDev'), Attributes.BS_RT, CON_IN));

  // Boot options: BDS walks every variable (Key####, orphaned Boot####), then BootOrder and each
  // option, registering those that are missing.
  await fw.enumerate();
  const order = await fw.readVariable(ref('BootOrder'));
  const numbers: number[] = [];
  if (order)
    for (let i = 0; i + 1 < order.data.length; i += 2) numbers.push(order.data[i]! | (order.data[i + 1]! << 8));
  for (const n of numbers) await fw.readVariable(ref(bootName(n)));
  for (const option of BOOT_OPTIONS) {
    const existing = await fw.readVariable(ref(bootName(option.number)));
    if (existing === undefined) {
      expectSuccess(
        `SetVariable ${bootName(option.number)}`,
        await fw.setVariable(ref(bootName(option.number)), Attributes.NV_BS_RT, option.data),
      );
    }
    if (!numbers.includes(option.number)) numbers.push(option.number);
  }
  const newOrder = Uint8Array.from(numbers.flatMap(u16));
  if (order === undefined || Buffer.compare(order.data, newOrder) !== 0) {
    expectSuccess('SetVariable BootOrder', await fw.setVariable(ref('BootOrder'), Attributes.NV_BS_RT, newOrder));
  }
  await fw.readVariable(ref('BootNext'));
  await fw.readVariable(ref('OsIndications'));
  const current = numbers.includes(1) ? 1 : numbers[0]!;
  expectSuccess(
    'SetVariable BootCurrent',
    await fw.setVariable(ref('BootCurrent'), Attributes.BS_RT, Uint8Array.from(u16(current))),
  );
  await fw.queryVariableInfo(Attributes.NV_BS_RT);

  // ExitBootServices: from now on the OS calls through the runtime services.
  fw.phase = 'OS';
  fw.atRuntime = true;
  await fw.enumerate();
  const secureBoot = (await fw.readVariable(ref('SecureBoot')))?.data[0];
  const setupMode = (await fw.readVariable(ref('SetupMode')))?.data[0];
  for (const name of ['BootCurrent', 'BootOrder', 'Timeout', 'PlatformLang', 'OsIndicationsSupported'])
    await fw.readVariable(ref(name));
  for (const n of numbers) await fw.readVariable(ref(bootName(n)));
  await fw.readVariable(ref('db', G.IMAGE_SECURITY_DATABASE));
  await fw.readVariable(ref('dbx', G.IMAGE_SECURITY_DATABASE));
  // Boot-services-only: invisible at runtime.
  await fw.readVariable(ref('MemoryTypeInformation', G.MEMORY_TYPE_INFORMATION));
  const storage = await fw.queryVariableInfo(Attributes.NV_BS_RT);

  fw.phase = 'end';
  fw.atRuntime = false;
  const created: string[] = [];
  for (const t of fw.trace) {
    if (t.command !== 'SetVariable' || t.status !== EfiStatus.SUCCESS || t.name === undefined || t.guid === undefined)
      continue;
    if (!before.has(`${t.guid}:${t.name}`) && !created.includes(t.name)) created.push(t.name);
  }
  return {
    trace: fw.trace,
    created,
    secureBoot,
    setupMode,
    monotonicCounter: counter,
    bootOrder: numbers.map(bootName),
    storage: {
      ...(storage.maximumStorageSize !== undefined ? { maximum: storage.maximumStorageSize } : {}),
      ...(storage.remainingStorageSize !== undefined ? { remaining: storage.remainingStorageSize } : {}),
      ...(storage.maximumVariableSize !== undefined ? { maximumVariable: storage.maximumVariableSize } : {}),
    },
  };
}

/** Calls per command and status, e.g. { GetVariable: { SUCCESS: 40, NOT_FOUND: 9 } }. */
export function summarizeTrace(trace: readonly TraceEntry[]): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const t of trace) {
    const byStatus = out[t.command] ?? {};
    out[t.command] = byStatus;
    const s = statusName(t.status);
    byStatus[s] = (byStatus[s] ?? 0) + 1;
  }
  return out;
}
