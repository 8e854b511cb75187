/**
 * The boot traces: the variable-service calls of an OVMF boot followed by a Debian guest (shim,
 * GRUB, Linux, systemd, a few admin tools), recorded as guest frames against an in-process store
 * holding the VM's NVRAM, with the replies that store gives. Replaying the frames to the daemon
 * must produce exactly those replies; replaying them to the echo server measures the transport.
 *
 * The sequence is modelled on what the firmware and OS components do (edk2's GetVariable2 pattern
 * of a size probe then a read; enumerations that grow the name buffer on BUFFER_TOO_SMALL), not
 * captured from a running VM. Its composition is listed in BENCHMARKS.md.
 */
import { Attrs, Guids, type VariableStore } from '@vmsb/efi';
import { encodeVarsBlob } from '@vmsb/nvram';
import { EfiStatus, FirmwareClient, type GetVariableResult, fromUtf16le, utf16le } from '@vmsb/protocol';
import { CON_IN, CON_OUT, DEBIAN_BOOT, ERR_OUT, Vendor, vmStore } from './vm-state.js';

export interface Trace {
  /** Each request as the guest sends it: `u32 LE n` + n bytes. */
  readonly frames: readonly Buffer[];
  /** Each reply as the daemon must send it: `u32 LE m` + m bytes. */
  readonly replies: readonly Buffer[];
  /** Calls by command. */
  readonly counts: Readonly<Record<string, number>>;
  /** SetVariable calls that changed non-volatile state (each one a durable save). */
  readonly nvWrites: number;
  /** Size of the NVRAM blob after the trace. */
  readonly blobBytes: number;
}

type Ref = { readonly name: string; readonly guid: Uint8Array };
const G = Vendor.GLOBAL;
const ref = (name: string, guid: Uint8Array = G): Ref => ({ name, guid });

function framed(bytes: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(4 + bytes.length);
  out.writeUInt32LE(bytes.length, 0);
  out.set(bytes, 4);
  return out;
}

/** Plays the guest against an in-process store and records every frame and reply. */
class Recorder {
  readonly frames: Buffer[] = [];
  readonly replies: Buffer[] = [];
  readonly counts: Record<string, number> = {};
  nvWrites = 0;
  private readonly fw: FirmwareClient;

  constructor(readonly store: VariableStore) {
    // The daemon sees the 64 KiB guest buffer (the frame, then zeros); the frame is what the guest sends.
    this.fw = new FirmwareClient(
      (buffer, length) => {
        this.frames.push(framed(buffer.subarray(0, length)));
        const outcome = this.store.dispatch(buffer);
        if (outcome.pending !== undefined) {
          outcome.pending.commit();
          this.nvWrites++;
        }
        this.replies.push(framed(outcome.response));
        return outcome.response;
      },
      (request) => {
        this.counts[request.command] = (this.counts[request.command] ?? 0) + 1;
      },
    );
  }

  set atRuntime(value: boolean) {
    this.fw.atRuntime = value;
  }

  get(r: Ref, dataSize: number): GetVariableResult {
    return this.fw.getVariable(utf16le(r.name), r.guid, dataSize);
  }

  /** edk2's GetVariable2(): a size probe, then a read of exactly that size. */
  read(r: Ref): Uint8Array | undefined {
    const probe = this.get(r, 0);
    if (probe.status !== EfiStatus.BUFFER_TOO_SMALL) return undefined;
    return this.get(r, probe.requiredSize!).data;
  }

  /** A caller with a fixed buffer (Linux efivarfs and most OS tools use 1024 bytes or more). */
  readInto(r: Ref, size: number): void {
    this.get(r, size);
  }

  set(r: Ref, attributes: number, data: Uint8Array): void {
    const status = this.fw.setVariable(utf16le(r.name), r.guid, attributes, data);
    if (status !== EfiStatus.SUCCESS) throw new Error(`SetVariable ${r.name}: status 0x${status.toString(16)}`);
  }

  /** GetNextVariableName over everything, growing the buffer when told to. */
  enumerate(initialNameSize: number): Ref[] {
    return this.fw.listVariables(initialNameSize).map((v) => ({ name: fromUtf16le(v.name), guid: v.guid }));
  }

  query(): void {
    this.fw.queryVariableInfo(Attrs.NV_BS_RT);
  }
}

const bootName = (n: number): string => `Boot${n.toString(16).toUpperCase().padStart(4, '0')}`;

function bootOrder(rec: Recorder): number[] {
  const data = rec.read(ref('BootOrder'));
  const out: number[] = [];
  if (data !== undefined) for (let i = 0; i + 1 < data.length; i += 2) out.push(data[i]! | (data[i + 1]! << 8));
  return out;
}

/** Polls of three variables at the end of the session: sizes the trace to about 2,000 calls. */
const POLLS = 260;

/** Writes only in the boot trace; `changed` keeps every one of them a real NV change. */
type Writer = (r: Ref, attributes: number, data: Uint8Array) => void;

function sequence(rec: Recorder, write: Writer, boot: boolean): void {
  const counter = (data: Uint8Array | undefined): number =>
    data && data.length >= 4 ? new DataView(data.buffer, data.byteOffset).getUint32(0, true) : 0;

  // ---- DXE: drivers read their settings ----------------------------------------------------
  rec.atRuntime = false;
  const mtc = rec.read(ref('MTC', Vendor.MTC));
  write(
    ref('MTC', Vendor.MTC),
    Attrs.NV_BS_RT,
    Uint8Array.of(...new Uint8Array(new Uint32Array([counter(mtc) + 1]).buffer)),
  );
  const mti = rec.read(ref('MemoryTypeInformation', Vendor.MEMORY_TYPE_INFORMATION));
  if (mti)
    write(
      ref('MemoryTypeInformation', Vendor.MEMORY_TYPE_INFORMATION),
      Attrs.NV_BS,
      Uint8Array.from(mti, (b, i) => (i === 12 ? b + 1 : b)),
    );
  for (const r of [
    ref('PlatformConfig', Vendor.PLATFORM_CONFIG),
    ref('82C63FDB4491', Vendor.NIC_CONFIG),
    ref('RTCALARM', Vendor.RTC),
    ref('TCG2_CONFIGURATION', Vendor.TCG2_CONFIG),
    ref('TCG2_VERSION', Vendor.TCG2_CONFIG),
    ref('Tcg2PhysicalPresence', Vendor.TCG2_PHYSICAL_PRESENCE),
    ref('Tcg2PhysicalPresenceFlags', Vendor.TCG2_PHYSICAL_PRESENCE),
    ref('MemoryOverwriteRequestControl', Guids.MEMORY_OVERWRITE_CONTROL),
    ref('MemoryOverwriteRequestControlLock', Guids.MEMORY_OVERWRITE_CONTROL_LOCK),
  ]) {
    rec.read(r);
  }
  // SecureBootConfigDxe and the image verification library.
  for (const name of [
    'SecureBoot',
    'SetupMode',
    'AuditMode',
    'DeployedMode',
    'VendorKeys',
    'SignatureSupport',
    'PK',
    'KEK',
  ])
    rec.read(ref(name));
  for (const name of ['db', 'dbx', 'dbt', 'dbr']) rec.read(ref(name, Vendor.DB));
  rec.read(ref('SecureBootEnable', Vendor.SECURE_BOOT_ENABLE));
  rec.read(ref('CustomMode', Vendor.CUSTOM_MODE));

  // ---- BDS ---------------------------------------------------------------------------------
  for (const name of [
    'Timeout',
    'PlatformLang',
    'Lang',
    'PlatformLangCodes',
    'LangCodes',
    'ConIn',
    'ConOut',
    'ErrOut',
    'BootNext',
    'OsIndications',
    'DriverOrder',
    'SysPrepOrder',
    'PlatformRecovery0000',
  ]) {
    rec.read(ref(name));
  }
  // Consoles: the platform updates them when devices change.
  // (the PCI function of the first device changes: a byte of each device path)
  const moved = (path: Uint8Array): Uint8Array => path.map((b, i) => (i === 16 ? b ^ 1 : b));
  write(ref('ConOut'), Attrs.NV_BS_RT, moved(CON_OUT));
  write(ref('ErrOut'), Attrs.NV_BS_RT, moved(ERR_OUT));
  write(ref('ConIn'), Attrs.NV_BS_RT, moved(CON_IN));
  // Boot options: loaded, refreshed and cleaned up several times over (load options, hot keys,
  // refresh of auto-created options, orphan cleanup, the boot manager menu's own pass).
  for (let pass = 0; pass < 4; pass++) {
    const all = rec.enumerate(pass === 0 ? 0x40 : 0x100);
    for (const n of bootOrder(rec)) rec.read(ref(bootName(n)));
    for (const r of all) if (/^(Key|Boot)[0-9A-F]{4}$/.test(r.name)) rec.read(r);
    if (pass === 1) {
      write(
        ref('Boot0002'),
        Attrs.NV_BS_RT,
        Uint8Array.from(rec.read(ref('Boot0002'))!).map((b, i) => (i === 8 ? b ^ 1 : b)),
      );
      write(
        ref('Boot0003'),
        Attrs.NV_BS_RT,
        Uint8Array.from(rec.read(ref('Boot0003'))!).map((b, i) => (i === 8 ? b ^ 1 : b)),
      );
    }
    if (pass === 2) write(ref('BootOrder'), Attrs.NV_BS_RT, Uint8Array.of(4, 0, 1, 0, 2, 0, 3, 0, 0, 0));
  }
  if (boot) rec.query();
  // Two external images verified against db/dbx (shim from the disk, a NIC option ROM).
  for (let image = 0; image < 2; image++) {
    rec.read(ref('SecureBoot'));
    rec.read(ref('dbx', Vendor.DB));
    rec.read(ref('db', Vendor.DB));
    rec.read(ref('dbt', Vendor.DB));
    rec.read(ref('dbx', Vendor.DB));
  }

  // ---- shim and GRUB (still boot services) -------------------------------------------------
  for (const name of [
    'SbatLevel',
    'SbatPolicy',
    'MokList',
    'MokListX',
    'MokSBState',
    'MokDBState',
    'MokIgnoreDB',
    'MokPolicy',
    'HSIStatus',
    'MokListTrusted',
  ])
    rec.read(ref(name, Vendor.SHIM));
  write(
    ref('SbatLevel', Vendor.SHIM),
    Attrs.NV_BS,
    new TextEncoder().encode('sbat,1,2024010900\nshim,4\ngrub,3\ngrub.debian,4\n'),
  );
  for (const name of ['SecureBoot', 'SetupMode', 'PK', 'KEK']) rec.read(ref(name));
  rec.read(ref('db', Vendor.DB));
  rec.read(ref('dbx', Vendor.DB));
  for (const name of ['SecureBoot', 'Timeout']) rec.read(ref(name));
  rec.read(ref('MokSBState', Vendor.SHIM));

  // ---- Linux after ExitBootServices: runtime services ---------------------------------------
  rec.atRuntime = true;
  for (const name of ['SecureBoot', 'SetupMode']) rec.readInto(ref(name), 1024);
  rec.readInto(ref('MokSBStateRT', Vendor.SHIM), 1024);
  // efivarfs is mounted: one enumeration; its files are stat'ed (a size probe each) by udev/systemd.
  const runtimeVars = rec.enumerate(1024);
  for (const r of runtimeVars) rec.get(r, 0);
  // The platform keyring: db, dbx and shim's mirrors.
  for (const r of [
    ref('db', Vendor.DB),
    ref('MokListRT', Vendor.SHIM),
    ref('MokListXRT', Vendor.SHIM),
    ref('dbx', Vendor.DB),
    ref('MokListTrustedRT', Vendor.SHIM),
    ref('MokIgnoreDB', Vendor.SHIM),
  ])
    rec.read(r);
  // efi-pstore looks for crash records.
  rec.enumerate(1024);
  // systemd: loader interface, Secure Boot state, firmware-setup support.
  for (const name of [
    'LoaderTimeInitUSec',
    'LoaderTimeExecUSec',
    'LoaderDevicePartUUID',
    'LoaderFeatures',
    'LoaderEntries',
    'LoaderEntryDefault',
    'LoaderEntrySelected',
    'LoaderInfo',
    'LoaderFirmwareInfo',
    'LoaderFirmwareType',
    'StubInfo',
    'LoaderTpm2ActivePcrBanks',
    'LoaderSystemToken',
  ]) {
    rec.readInto(ref(name, Vendor.LOADER), 1024);
  }
  for (const name of [
    'SecureBoot',
    'SetupMode',
    'AuditMode',
    'DeployedMode',
    'OsIndicationsSupported',
    'OsIndications',
    'BootCurrent',
    'Timeout',
  ])
    rec.readInto(ref(name), 1024);
  // Kernel crash record written and collected by systemd-pstore.
  write(ref('dump-type0-1-1-1732262400-C-acpi', Vendor.PSTORE), Attrs.NV_BS_RT, new Uint8Array(1024).fill(0x2a));
  rec.enumerate(1024);
  rec.read(ref('dump-type0-1-1-1732262400-C-acpi', Vendor.PSTORE));
  write(ref('dump-type0-1-1-1732262400-C-acpi', Vendor.PSTORE), Attrs.NV_BS_RT, new Uint8Array(0));
  // grub-install / efibootmgr after a package update, then mokutil and fwupd.
  for (let tool = 0; tool < 3; tool++) {
    const all = rec.enumerate(1024);
    for (const name of ['BootCurrent', 'BootNext', 'BootOrder', 'Timeout']) rec.read(ref(name));
    for (const r of all) if (/^Boot[0-9A-F]{4}$/.test(r.name)) rec.read(r);
    if (tool === 0) {
      write(
        ref('Boot0005'),
        Attrs.NV_BS_RT,
        DEBIAN_BOOT.map((b, i) => (i === 8 ? 0x44 : b)),
      );
      write(ref('BootOrder'), Attrs.NV_BS_RT, Uint8Array.of(5, 0, 4, 0, 1, 0, 2, 0, 3, 0, 0, 0));
      write(ref('Timeout'), Attrs.NV_BS_RT, Uint8Array.of(5, 0));
    }
  }
  for (const name of ['SecureBoot', 'SetupMode']) rec.read(ref(name));
  for (const name of ['MokSBStateRT', 'MokListRT', 'MokListXRT', 'SbatLevelRT']) rec.read(ref(name, Vendor.SHIM));
  // fwupd: capsule support, the ESRT-related variables, its own bookkeeping.
  rec.read(ref('OsIndicationsSupported'));
  rec.read(ref('OsIndications'));
  const fwupd = rec.enumerate(1024);
  for (const r of fwupd) rec.get(r, 0);
  write(
    ref('fwupd-c34cb672-a81e-5d32-9d89-cbcabe8ec37b-0', Vendor.FWUPD),
    Attrs.NV_BS_RT,
    new Uint8Array(300).fill(0x46),
  );
  write(ref('OsIndications'), Attrs.NV_BS_RT, Uint8Array.of(4, 0, 0, 0, 0, 0, 0, 0));
  write(ref('fwupd-c34cb672-a81e-5d32-9d89-cbcabe8ec37b-0', Vendor.FWUPD), Attrs.NV_BS_RT, new Uint8Array(0));
  write(ref('OsIndications'), Attrs.NV_BS_RT, new Uint8Array(0));
  // Reboot into a chosen entry once, then clear it.
  write(ref('BootNext'), Attrs.NV_BS_RT, Uint8Array.of(4, 0));
  rec.read(ref('BootNext'));
  write(ref('BootNext'), Attrs.NV_BS_RT, new Uint8Array(0));
  // bootctl status, efivar -p, fwupd: every variable read in full, four times in the session.
  for (let pass = 0; pass < 4; pass++) for (const r of rec.enumerate(1024)) rec.read(r);
  // Monitoring services polling the Secure Boot state and the boot entry for the rest of the session.
  for (let poll = 0; poll < POLLS; poll++) {
    rec.readInto(ref('SecureBoot'), 1024);
    rec.readInto(ref('SetupMode'), 1024);
    rec.readInto(ref('BootCurrent'), 1024);
  }
}

/**
 * The read trace (GetVariable and GetNextVariableName only) or the boot trace (the same calls with
 * the non-volatile writes a boot and an OS session make, about 1 % of the calls).
 */
export function buildTrace(kind: 'read' | 'boot'): Trace {
  const store = vmStore();
  const rec = new Recorder(store);
  const write: Writer = kind === 'boot' ? (r, a, d) => rec.set(r, a, d) : () => undefined;
  sequence(rec, write, kind === 'boot');
  const blobBytes = encodeVarsBlob(store.state(), { nonVolatileOnly: true }).length;
  return { frames: rec.frames, replies: rec.replies, counts: rec.counts, nvWrites: rec.nvWrites, blobBytes };
}
