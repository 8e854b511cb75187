import { hex } from '@vmsb/protocol';
import { guidToText } from './guid.js';

/**
 * EFI_DEVICE_PATH_PROTOCOL to text, in the forms UEFI 2.10 §10.6 defines and edk2's
 * DevicePathToText prints with
 * DisplayOnly and AllowShortcuts false: `PciRoot(0x0)/Pci(0x1,0x1)/Ata(Primary,Master,0x0)`,
 * `HD(1,GPT,<guid>,0x800,0x100000)/\EFI\BOOT\BOOTX64.EFI`. Nodes without a text form of their
 * own are printed generically as `Path(<type>,<subtype>,<hex data>)`. Never throws; a malformed
 * path gives what could be read, then `Path(…)` of the rest marked as malformed.
 */
export function devicePathToText(bytes: Uint8Array): { text: string; ok: boolean } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const instances: string[][] = [[]];
  let at = 0;
  while (at < bytes.length) {
    if (bytes.length - at < 4) return { text: join(instances, `malformed(${hexOf(bytes.subarray(at))})`), ok: false };
    const type = bytes[at]!;
    const subtype = bytes[at + 1]!;
    const length = view.getUint16(at + 2, true);
    if (length < 4 || length > bytes.length - at)
      return { text: join(instances, `malformed(${hexOf(bytes.subarray(at))})`), ok: false };
    const node = bytes.subarray(at + 4, at + length);
    at += length;
    if (type === 0x7f) {
      if (subtype === 0xff) return { text: join(instances), ok: at === bytes.length };
      if (subtype === 0x01) {
        instances.push([]);
        continue;
      }
    }
    instances[instances.length - 1]!.push(nodeText(type, subtype, node));
  }
  // A path must end with End Entire; one that does not is printed but flagged.
  return { text: join(instances), ok: false };
}

function join(instances: string[][], tail?: string): string {
  const parts = instances.map((nodes) => nodes.join('/'));
  if (tail !== undefined) parts[parts.length - 1] = [parts[parts.length - 1], tail].filter((p) => p !== '').join('/');
  return parts.filter((p) => p !== '').join(',');
}

function hexOf(bytes: Uint8Array): string {
  return hex(bytes).toUpperCase();
}

/** Numbers and GUIDs as edk2's PrintLib prints them: upper-case hex digits. */
const x = (n: number | bigint): string => `0x${n.toString(16).toUpperCase()}`;
const g = (guid: Uint8Array): string => guidToText(guid).toUpperCase();

function utf16z(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i + 1 < bytes.length; i += 2) {
    const c = bytes[i]! | (bytes[i + 1]! << 8);
    if (c === 0) break;
    out += String.fromCharCode(c);
  }
  return out;
}

function ipv4(bytes: Uint8Array, at: number): string {
  return [...bytes.subarray(at, at + 4)].join('.');
}

/** Vendor messaging nodes edk2 names: the terminal types of a console. */
const TERMINALS: Readonly<Record<string, string>> = {
  'E0C14753-F9BE-11D2-9A0C-0090273FC14D': 'VenPcAnsi',
  'DFA66065-B419-11D3-9A2D-0090273FC14D': 'VenVt100',
  '7BAEC70B-57E0-4C76-8E87-2F9E28088343': 'VenVt100Plus',
  'AD15A0D6-8BEC-4ACF-A073-D01DE77E2D88': 'VenUtf8',
};

/** One node's text; `data` is the node without its 4-byte header. */
function nodeText(type: number, subtype: number, data: Uint8Array): string {
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const has = (n: number): boolean => data.length >= n;
  const u8 = (o: number): number => data[o]!;
  const u16 = (o: number): number => v.getUint16(o, true);
  const u32 = (o: number): number => v.getUint32(o, true);
  const u64 = (o: number): bigint => v.getBigUint64(o, true);
  const vendor = (name: string): string =>
    has(16) ? `${name}(${g(data.subarray(0, 16))}${data.length > 16 ? `,${hexOf(data.subarray(16))}` : ''})` : '';
  let text = '';
  switch (type) {
    case 0x01: // Hardware
      if (subtype === 0x01 && has(2)) text = `Pci(${x(u8(1))},${x(u8(0))})`;
      else if (subtype === 0x02 && has(1)) text = `PcCard(${x(u8(0))})`;
      else if (subtype === 0x03 && has(20)) text = `MemoryMapped(${x(u32(0))},${x(u64(4))},${x(u64(12))})`;
      else if (subtype === 0x04) text = vendor('VenHw');
      else if (subtype === 0x05 && has(4)) text = `Ctrl(${x(u32(0))})`;
      break;
    case 0x02: // ACPI
      if (subtype === 0x01 && has(8)) {
        const hid = u32(0);
        const uid = u32(4);
        if ((hid & 0xffff) === 0x41d0) {
          const id = hid >>> 16;
          const named: Record<number, string> = {
            2563: 'PciRoot',
            2568: 'PcieRoot',
            1540: 'Floppy',
            769: 'Keyboard',
            1281: 'Serial',
            1025: 'ParallelPort',
          };
          text =
            named[id] !== undefined
              ? `${named[id]}(${x(uid)})`
              : `Acpi(PNP${id.toString(16).toUpperCase().padStart(4, '0')},${x(uid)})`;
        } else {
          text = `Acpi(${x(hid)},${x(uid)})`;
        }
      } else if (subtype === 0x03 && has(4)) {
        const adrs: string[] = [];
        for (let o = 0; o + 4 <= data.length; o += 4) adrs.push(x(u32(o)));
        text = `AcpiAdr(${adrs.join(',')})`;
      }
      break;
    case 0x03: // Messaging
      if (subtype === 0x01 && has(4))
        text = `Ata(${u8(0) === 0 ? 'Primary' : 'Secondary'},${u8(1) === 0 ? 'Master' : 'Slave'},${x(u16(2))})`;
      else if (subtype === 0x02 && has(4)) text = `Scsi(${x(u16(0))},${x(u16(2))})`;
      else if (subtype === 0x05 && has(2)) text = `USB(${x(u8(0))},${x(u8(1))})`;
      else if (subtype === 0x0a) {
        const terminal = has(16) && data.length === 16 ? TERMINALS[g(data.subarray(0, 16))] : undefined;
        text = terminal !== undefined ? `${terminal}()` : vendor('VenMsg');
      } else if (subtype === 0x0f && has(7)) {
        text = `UsbClass(${x(u16(0))},${x(u16(2))},${x(u8(4))},${x(u8(5))},${x(u8(6))})`;
      } else if (subtype === 0x0e && has(15)) {
        const baud = u64(4);
        const parity = ['D', 'N', 'E', 'O', 'M', 'S'][u8(13)] ?? 'x';
        const stop = ['D', '1', '1.5', '2'][u8(14)] ?? 'x';
        text = `Uart(${baud === 0n ? 'DEFAULT' : baud},${u8(12) === 0 ? 'DEFAULT' : u8(12)},${parity},${stop})`;
      } else if (subtype === 0x0b && has(33)) {
        const size = u8(32) === 0 || u8(32) === 1 ? 6 : 32;
        text = `MAC(${hexOf(data.subarray(0, size))},${x(u8(32))})`;
      } else if (subtype === 0x0c && has(15)) {
        const protocol = u16(12) === 6 ? 'TCP' : u16(12) === 0x11 ? 'UDP' : x(u16(12));
        text = `IPv4(${ipv4(data, 4)},${protocol},${u8(14) ? 'Static' : 'DHCP'},${ipv4(data, 0)}`;
        if (has(23)) text += `,${ipv4(data, 15)},${ipv4(data, 19)}`;
        text += ')';
      } else if (subtype === 0x12 && has(6)) text = `Sata(${x(u16(0))},${x(u16(2))},${x(u16(4))})`;
      else if (subtype === 0x17 && has(12)) {
        const eui = [...data.subarray(4, 12)]
          .reverse()
          .map((b) => b.toString(16).toUpperCase().padStart(2, '0'))
          .join('-');
        text = `NVMe(${x(u32(0))},${eui})`;
      } else if (subtype === 0x18) text = `Uri(${Buffer.from(data).toString('latin1')})`;
      break;
    case 0x04: // Media
      if (subtype === 0x01 && has(38)) {
        const number = u32(0);
        const start = x(u64(4));
        const size = x(u64(12));
        const signatureType = u8(37);
        const signature =
          signatureType === 1
            ? `MBR,0x${u32(20).toString(16).toUpperCase().padStart(8, '0')}`
            : signatureType === 2
              ? `GPT,${g(data.subarray(20, 36))}`
              : `${signatureType},0`;
        text = `HD(${number},${signature},${start},${size})`;
      } else if (subtype === 0x02 && has(20)) text = `CDROM(${x(u32(0))},${x(u64(4))},${x(u64(12))})`;
      else if (subtype === 0x03) text = vendor('VenMedia');
      else if (subtype === 0x04) text = utf16z(data);
      else if (subtype === 0x05 && has(16)) text = `Media(${g(data.subarray(0, 16))})`;
      else if (subtype === 0x06 && has(16)) text = `FvFile(${g(data.subarray(0, 16))})`;
      else if (subtype === 0x07 && has(16)) text = `Fv(${g(data.subarray(0, 16))})`;
      else if (subtype === 0x08 && has(20)) text = `Offset(${x(u64(4))},${x(u64(12))})`;
      break;
    case 0x05: // BIOS Boot Specification
      if (subtype === 0x01 && has(4)) {
        const types: Record<number, string> = { 1: 'Floppy', 2: 'HD', 3: 'CDROM', 4: 'PCMCIA', 5: 'USB', 6: 'Network' };
        const end = data.indexOf(0, 4);
        const description = Buffer.from(data.subarray(4, end < 0 ? data.length : end)).toString('latin1');
        text = `BBS(${types[u16(0)] ?? x(u16(0))},${description},${x(u16(2))})`;
      }
      break;
  }
  return text !== '' ? text : `Path(${type},${subtype},${hexOf(data)})`;
}
