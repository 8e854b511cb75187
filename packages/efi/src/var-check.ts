import { EfiStatus } from '@vmsb/protocol';
import { Attr, Attrs } from './attributes.js';
import { Guids, guidEquals } from './guid.js';

/**
 * The SetVariable checks edk2 applies to variables of the UEFI-owned namespaces
 * (VarCheckLib + VarCheckUefiLib): read-only variables, required attributes, sizes, data shapes,
 * and no creation of names the specification does not define in EFI_GLOBAL_VARIABLE,
 * EFI_IMAGE_SECURITY_DATABASE_GUID or EFI_HARDWARE_ERROR_VARIABLE.
 */

type DataCheck = (data: Uint8Array, property: VariableProperty) => string | undefined;

export interface VariableProperty {
  readonly readOnly: boolean;
  /** Exact attributes (without APPEND_WRITE) a non-delete write must carry. */
  readonly attributes: number;
  readonly minSize: number;
  readonly maxSize: number;
  readonly check?: DataCheck;
}

const MAX = Number.MAX_SAFE_INTEGER;
const HR_ATTRS = Attrs.NV_BS_RT | Attr.HARDWARE_ERROR_RECORD;
/** sizeof(EFI_DEVICE_PATH_PROTOCOL): Type, SubType, u16 Length. */
const DEVICE_PATH_HEADER = 4;
/** sizeof(EFI_KEY_OPTION), packed: u32 KeyData, u32 BootOptionCrc, u16 BootOption. */
const KEY_OPTION_SIZE = 10;
/** sizeof(EFI_INPUT_KEY): u16 ScanCode, CHAR16 UnicodeChar. */
const INPUT_KEY_SIZE = 4;

const asciiString: DataCheck = (data) =>
  data.includes(0) ? undefined : 'the value is not a NUL-terminated ASCII string';

const sizeArray: DataCheck = (data, p) =>
  data.length % p.minSize === 0 ? undefined : `the size is not a multiple of ${p.minSize}`;

const devicePath: DataCheck = (data) => devicePathProblem(data, 0, data.length);

const keyOption: DataCheck = (data) =>
  (data.length - KEY_OPTION_SIZE) % INPUT_KEY_SIZE === 0
    ? undefined
    : 'the value is not an EFI_KEY_OPTION followed by whole EFI_INPUT_KEYs';

const loadOption: DataCheck = (data) => {
  // EFI_LOAD_OPTION: u32 Attributes, u16 FilePathListLength, CHAR16 Description[] (NUL-terminated), FilePathList.
  const filePathListLength = data[4]! | (data[5]! << 8);
  let at = 6;
  while (at + 2 <= data.length && (data[at] !== 0 || data[at + 1] !== 0)) at += 2;
  if (at + 2 > data.length) return 'the load option description is not NUL-terminated';
  at += 2;
  if (at + filePathListLength > data.length) return 'the load option file path list runs past the value';
  if (filePathListLength < DEVICE_PATH_HEADER)
    return 'the load option file path list is shorter than a device path node';
  const problem = devicePathProblem(data, at, filePathListLength);
  return problem === undefined ? undefined : `load option: ${problem}`;
};

/**
 * edk2's IsDevicePathValid over `size` bytes at `offset`: nodes of at least 4 bytes, each followed
 * by room for another header, FILEPATH nodes NUL-terminated, ending with a 4-byte End Entire node.
 */
export function devicePathProblem(bytes: Uint8Array, offset: number, size: number): string | undefined {
  const END_LENGTH = 4;
  if (size < END_LENGTH) return 'the device path is shorter than an end node';
  let at = offset;
  let total = 0;
  for (;;) {
    const type = bytes[at]!;
    const subType = bytes[at + 1]!;
    const length = bytes[at + 2]! | (bytes[at + 3]! << 8);
    if (type === 0x7f && subType === 0xff) {
      return length === END_LENGTH ? undefined : 'the device path end node is not 4 bytes';
    }
    if (length < DEVICE_PATH_HEADER) return 'a device path node is shorter than its header';
    total += length;
    if (total > size - END_LENGTH) return 'a device path node runs past the value';
    // MEDIA_DEVICE_PATH / MEDIA_FILEPATH_DP: the path string must be NUL-terminated.
    if (type === 0x04 && subType === 0x04 && (bytes[at + length - 2] !== 0 || bytes[at + length - 1] !== 0)) {
      return 'a file path node is not NUL-terminated';
    }
    at += length;
  }
}

function prop(
  attributes: number,
  minSize: number,
  maxSize: number,
  check?: DataCheck,
  readOnly = false,
): VariableProperty {
  return check === undefined
    ? { readOnly, attributes, minSize, maxSize }
    : { readOnly, attributes, minSize, maxSize, check };
}
function ro(attributes: number, minSize: number, maxSize: number, check?: DataCheck): VariableProperty {
  return prop(attributes, minSize, maxSize, check, true);
}

const { BS_RT, NV_BS_RT, NV_BS_RT_AT } = Attrs;

/** EFI_GLOBAL_VARIABLE names edk2 knows, with their properties. */
const GLOBAL: ReadonlyMap<string, VariableProperty> = new Map([
  ['LangCodes', prop(BS_RT, 1, MAX, asciiString)],
  ['Lang', prop(NV_BS_RT, 1, MAX, asciiString)],
  ['Timeout', prop(NV_BS_RT, 2, 2)],
  ['PlatformLangCodes', prop(BS_RT, 1, MAX, asciiString)],
  ['PlatformLang', prop(NV_BS_RT, 1, MAX, asciiString)],
  ['ConIn', prop(NV_BS_RT, DEVICE_PATH_HEADER, MAX, devicePath)],
  ['ConOut', prop(NV_BS_RT, DEVICE_PATH_HEADER, MAX, devicePath)],
  ['ErrOut', prop(NV_BS_RT, DEVICE_PATH_HEADER, MAX, devicePath)],
  ['ConInDev', prop(BS_RT, DEVICE_PATH_HEADER, MAX, devicePath)],
  ['ConOutDev', prop(BS_RT, DEVICE_PATH_HEADER, MAX, devicePath)],
  ['ErrOutDev', prop(BS_RT, DEVICE_PATH_HEADER, MAX, devicePath)],
  ['BootOrder', prop(NV_BS_RT, 2, MAX, sizeArray)],
  ['BootNext', prop(NV_BS_RT, 2, 2)],
  ['BootCurrent', prop(BS_RT, 2, 2)],
  ['BootOptionSupport', prop(BS_RT, 4, 4)],
  ['DriverOrder', prop(NV_BS_RT, 2, MAX, sizeArray)],
  ['SysPrepOrder', prop(NV_BS_RT, 2, MAX, sizeArray)],
  ['HwErrRecSupport', prop(NV_BS_RT, 2, 2)],
  ['SetupMode', ro(BS_RT, 1, 1)],
  ['KEK', prop(NV_BS_RT_AT, 1, MAX)],
  ['PK', prop(NV_BS_RT_AT, 1, MAX)],
  ['SignatureSupport', ro(BS_RT, 16, MAX, sizeArray)],
  ['SecureBoot', ro(BS_RT, 1, 1)],
  ['KEKDefault', ro(BS_RT, 1, MAX)],
  ['PKDefault', ro(BS_RT, 1, MAX)],
  ['dbDefault', ro(BS_RT, 1, MAX)],
  ['dbxDefault', ro(BS_RT, 1, MAX)],
  ['dbtDefault', ro(BS_RT, 1, MAX)],
  ['OsIndicationsSupported', prop(BS_RT, 8, 8)],
  ['OsIndications', prop(NV_BS_RT, 8, 8)],
  ['VendorKeys', ro(BS_RT, 1, 1)],
  // Not in edk2's table: this store serves them as read-only builtins (as varstored does).
  ['AuditMode', ro(BS_RT, 1, 1)],
  ['DeployedMode', ro(BS_RT, 1, 1)],
]);

/** Names ending in four hex digits (Boot0001, ...). */
const GLOBAL_NUMBERED: readonly [string, VariableProperty][] = [
  ['Boot', prop(NV_BS_RT, 6, MAX, loadOption)],
  ['Driver', prop(NV_BS_RT, 6, MAX, loadOption)],
  ['SysPrep', prop(NV_BS_RT, 6, MAX, loadOption)],
  ['Key', prop(NV_BS_RT, KEY_OPTION_SIZE, KEY_OPTION_SIZE + 3 * INPUT_KEY_SIZE, keyOption)],
  ['PlatformRecovery', prop(BS_RT, 6, MAX, loadOption)],
];

const IMAGE_SECURITY: ReadonlyMap<string, VariableProperty> = new Map([
  ['db', prop(NV_BS_RT_AT, 1, MAX)],
  ['dbx', prop(NV_BS_RT_AT, 1, MAX)],
  ['dbt', prop(NV_BS_RT_AT, 1, MAX)],
]);

const HW_ERR_REC = prop(HR_ATTRS, 1, MAX);

const HEX4 = /^[0-9A-Fa-f]{4}$/;

/** The property edk2 registers for (name, guid), or undefined. */
export function variableProperty(name: string, guid: Uint8Array): VariableProperty | undefined {
  if (guidEquals(guid, Guids.GLOBAL_VARIABLE)) {
    const exact = GLOBAL.get(name);
    if (exact !== undefined) return exact;
    for (const [prefix, p] of GLOBAL_NUMBERED) {
      if (name.length === prefix.length + 4 && name.startsWith(prefix) && HEX4.test(name.slice(prefix.length)))
        return p;
    }
    return undefined;
  }
  if (guidEquals(guid, Guids.IMAGE_SECURITY_DATABASE)) return IMAGE_SECURITY.get(name);
  if (guidEquals(guid, Guids.HARDWARE_ERROR_VARIABLE)) return isHwErrRecName(name) ? HW_ERR_REC : undefined;
  return undefined;
}

/** HwErrRec#### (four hex digits). */
export function isHwErrRecName(name: string): boolean {
  return name.length === 12 && name.startsWith('HwErrRec') && HEX4.test(name.slice(8));
}

function isUefiNamespace(guid: Uint8Array): boolean {
  return (
    guidEquals(guid, Guids.GLOBAL_VARIABLE) ||
    guidEquals(guid, Guids.IMAGE_SECURITY_DATABASE) ||
    guidEquals(guid, Guids.HARDWARE_ERROR_VARIABLE)
  );
}

export interface CheckFailure {
  readonly status: bigint;
  readonly reason: string;
}

/**
 * edk2's VarCheckLibSetVariableCheck for an untrusted caller. `payload` is the data after any
 * EFI_VARIABLE_AUTHENTICATION_2 descriptor. Returns the failure, or undefined when the write may
 * proceed.
 */
export function uefiVariableCheck(
  name: string,
  guid: Uint8Array,
  attributes: number,
  payload: Uint8Array,
): CheckFailure | undefined {
  const isDelete = ((attributes & Attr.APPEND_WRITE) === 0 && payload.length === 0) || attributes === 0;
  const property = variableProperty(name, guid);
  if (property !== undefined) {
    if (property.readOnly) return { status: EfiStatus.WRITE_PROTECTED, reason: `${name} is read-only` };
    if (!isDelete) {
      if ((attributes & ~Attr.APPEND_WRITE) !== property.attributes) {
        return {
          status: EfiStatus.INVALID_PARAMETER,
          reason: `${name} requires attributes 0x${property.attributes.toString(16)}`,
        };
      }
      if (payload.length !== 0 && (payload.length < property.minSize || payload.length > property.maxSize)) {
        return {
          status: EfiStatus.INVALID_PARAMETER,
          reason: `${name} has a size of ${payload.length} bytes outside ${property.minSize}..${property.maxSize === MAX ? 'any' : property.maxSize}`,
        };
      }
    }
  }
  // SetVariableCheckHandlerUefiDefined: deletes are not checked.
  if (isDelete) return undefined;
  if (
    (attributes & Attr.HARDWARE_ERROR_RECORD) !== 0 &&
    !(guidEquals(guid, Guids.HARDWARE_ERROR_VARIABLE) && isHwErrRecName(name))
  ) {
    return {
      status: EfiStatus.INVALID_PARAMETER,
      reason: 'a hardware error record must be HwErrRec#### in the hardware error GUID',
    };
  }
  if (isUefiNamespace(guid) && property === undefined) {
    return {
      status: EfiStatus.INVALID_PARAMETER,
      reason: `${name} is not defined by the UEFI specification in its namespace`,
    };
  }
  if (payload.length === 0 || property?.check === undefined) return undefined;
  const problem = property.check(payload, property);
  return problem === undefined ? undefined : { status: EfiStatus.INVALID_PARAMETER, reason: `${name}: ${problem}` };
}
