import { devicePathToText, fromUtf16le, Guids, guidEquals, parseLoadOption, type Variable } from '@vmsb/efi';
import { printable } from './output.js';

/** A variable's value in words (ls, get) and as data (--json), for the variables whose layout UEFI defines. */
export interface DecodedValue {
  readonly text: string;
  readonly json: unknown;
}

const LOAD_OPTION = /^(Boot|Driver|SysPrep|PlatformRecovery)[0-9A-F]{4}$/;
const ORDER = new Set(['BootOrder', 'DriverOrder', 'SysPrepOrder']);
const U16 = new Set(['BootNext', 'BootCurrent', 'Timeout']);
const U64 = new Set(['OsIndications', 'OsIndicationsSupported', 'BootOptionSupport']);
const DEVICE_PATHS = new Set(['ConIn', 'ConOut', 'ErrOut', 'ConInDev', 'ConOutDev', 'ErrOutDev']);
const ASCII = new Set(['Lang', 'PlatformLang', 'LangCodes', 'PlatformLangCodes']);
/** One-byte switches: the global ones, edk2's SecureBootEnable and CustomMode. */
const BOOLEANS: readonly (readonly [string, Uint8Array])[] = [
  ['SecureBoot', Guids.GLOBAL_VARIABLE],
  ['SetupMode', Guids.GLOBAL_VARIABLE],
  ['AuditMode', Guids.GLOBAL_VARIABLE],
  ['DeployedMode', Guids.GLOBAL_VARIABLE],
  ['VendorKeys', Guids.GLOBAL_VARIABLE],
  ['SecureBootEnable', Guids.SECURE_BOOT_ENABLE_DISABLE],
  ['CustomMode', Guids.CUSTOM_MODE_ENABLE],
];

function ascii(bytes: Uint8Array): string | undefined {
  const end = bytes.indexOf(0);
  const body = bytes.subarray(0, end < 0 ? bytes.length : end);
  if (!body.every((b) => b >= 0x20 && b < 0x7f)) return undefined;
  return Buffer.from(body).toString('latin1');
}

/**
 * The value of a variable UEFI gives a layout to, decoded: load options (Boot####, Driver####, ...)
 * with their device path in UEFI text form, BootOrder and friends, BootNext/Timeout, console device
 * paths, language strings, one-byte switches. Undefined for anything else, or a value that does
 * not have the layout (it is then shown raw).
 */
export function decodeValue(v: Variable): DecodedValue | undefined {
  const name = fromUtf16le(v.name);
  const data = v.data;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (guidEquals(v.guid, Guids.GLOBAL_VARIABLE)) {
    if (LOAD_OPTION.test(name)) {
      const parsed = parseLoadOption(data);
      if (!parsed.ok) return undefined;
      const o = parsed.option;
      const flags = o.active ? '' : ' (inactive)';
      return {
        text: `${JSON.stringify(printable(o.description))} ${printable(o.devicePath)}${flags}${o.optionalData === '' ? '' : ` +${o.optionalData.length / 2} bytes of optional data`}`,
        json: {
          type: 'load-option',
          attributes: o.attributes,
          active: o.active,
          description: o.description,
          devicePath: o.devicePath,
          optionalData: o.optionalData,
        },
      };
    }
    if (ORDER.has(name) && data.length % 2 === 0) {
      const entries: string[] = [];
      for (let i = 0; i < data.length; i += 2)
        entries.push(view.getUint16(i, true).toString(16).toUpperCase().padStart(4, '0'));
      const prefix = name.replace(/Order$/, '');
      return { text: entries.map((e) => `${prefix}${e}`).join(', ') || '(empty)', json: { type: 'order', entries } };
    }
    if (U16.has(name) && data.length === 2) {
      const n = view.getUint16(0, true);
      const text = name === 'Timeout' ? `${n} s` : `Boot${n.toString(16).toUpperCase().padStart(4, '0')}`;
      return { text, json: { type: 'uint16', value: n } };
    }
    if (U64.has(name) && data.length === 8) {
      const n = view.getBigUint64(0, true);
      return { text: `0x${n.toString(16)}`, json: { type: 'uint64', value: `0x${n.toString(16)}` } };
    }
    if (DEVICE_PATHS.has(name)) {
      const path = devicePathToText(data);
      return path.ok ? { text: printable(path.text), json: { type: 'device-path', devicePath: path.text } } : undefined;
    }
    if (ASCII.has(name)) {
      const text = ascii(data);
      return text === undefined ? undefined : { text: JSON.stringify(text), json: { type: 'string', value: text } };
    }
  }
  for (const [bool, guid] of BOOLEANS) {
    if (name === bool && guidEquals(v.guid, guid) && data.length === 1 && (data[0] === 0 || data[0] === 1))
      return { text: data[0] === 1 ? 'true' : 'false', json: { type: 'boolean', value: data[0] === 1 } };
  }
  return undefined;
}
