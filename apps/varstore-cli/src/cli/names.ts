import {
  Attr,
  Attrs,
  efiTimeFromDate,
  efiTimeProblem,
  fromUtf16le,
  guidEquals,
  Guids,
  guidToText,
  serializeEfiTime,
  utf16le,
  type EfiTime,
  type Variable,
} from '@vmsb/efi';
import { guidFromText } from '@vmsb/protocol';
import { CliError, ExitCode, usageError } from './errors.js';

/** GUID aliases accepted wherever a GUID is. */
const GUID_ALIASES: Readonly<Record<string, Uint8Array>> = {
  global: Guids.GLOBAL_VARIABLE,
  'image-security': Guids.IMAGE_SECURITY_DATABASE,
  security: Guids.IMAGE_SECURITY_DATABASE,
  shim: Guids.SHIM_LOCK,
  microsoft: Guids.MICROSOFT,
  zero: new Uint8Array(16),
};

/** A GUID from text (`8be4df61-…`, with or without braces) or an alias (global, image-security, shim, microsoft, zero). */
export function parseGuid(text: string, what = 'GUID'): Uint8Array {
  const alias = GUID_ALIASES[text.toLowerCase()];
  if (alias !== undefined) return alias.slice();
  const bytes = guidFromText(text.replace(/^\{(.*)\}$/, '$1'));
  if (bytes === undefined)
    throw usageError(
      `${what} ${JSON.stringify(text)} is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, or global, image-security, shim, microsoft, zero)`,
    );
  return bytes;
}

interface KnownName {
  readonly guid: Uint8Array;
  readonly attributes: number;
}

const GLOBAL_NV = { guid: Guids.GLOBAL_VARIABLE, attributes: Attrs.NV_BS_RT };
const SB = (guid: Uint8Array): KnownName => ({ guid, attributes: Attrs.NV_BS_RT_AT });

/** Names whose vendor GUID and usual attributes are known, so `--guid` can be left out. */
const KNOWN: Readonly<Record<string, KnownName>> = {
  PK: SB(Guids.GLOBAL_VARIABLE),
  KEK: SB(Guids.GLOBAL_VARIABLE),
  db: SB(Guids.IMAGE_SECURITY_DATABASE),
  dbx: SB(Guids.IMAGE_SECURITY_DATABASE),
  dbt: SB(Guids.IMAGE_SECURITY_DATABASE),
  dbr: SB(Guids.IMAGE_SECURITY_DATABASE),
  BootOrder: GLOBAL_NV,
  BootNext: GLOBAL_NV,
  Timeout: GLOBAL_NV,
  Lang: GLOBAL_NV,
  PlatformLang: GLOBAL_NV,
  ConIn: GLOBAL_NV,
  ConOut: GLOBAL_NV,
  ErrOut: GLOBAL_NV,
  DriverOrder: GLOBAL_NV,
  SysPrepOrder: GLOBAL_NV,
  OsIndications: GLOBAL_NV,
  SecureBoot: { guid: Guids.GLOBAL_VARIABLE, attributes: Attrs.BS_RT },
  SetupMode: { guid: Guids.GLOBAL_VARIABLE, attributes: Attrs.BS_RT },
  AuditMode: { guid: Guids.GLOBAL_VARIABLE, attributes: Attrs.BS_RT },
  DeployedMode: { guid: Guids.GLOBAL_VARIABLE, attributes: Attrs.BS_RT },
  VendorKeys: { guid: Guids.GLOBAL_VARIABLE, attributes: Attrs.BS_RT },
  SignatureSupport: { guid: Guids.GLOBAL_VARIABLE, attributes: Attrs.BS_RT },
  MokList: { guid: Guids.SHIM_LOCK, attributes: Attrs.NV_BS },
  MokListX: { guid: Guids.SHIM_LOCK, attributes: Attrs.NV_BS },
  SbatLevel: { guid: Guids.SHIM_LOCK, attributes: Attrs.NV_BS },
  SecureBootEnable: { guid: Guids.SECURE_BOOT_ENABLE_DISABLE, attributes: Attrs.NV_BS },
  CustomMode: { guid: Guids.CUSTOM_MODE_ENABLE, attributes: Attrs.NV_BS },
  VendorKeysNv: {
    guid: Guids.VENDOR_KEYS_NV,
    attributes: Attr.NON_VOLATILE | Attr.BOOTSERVICE_ACCESS | Attr.TIME_BASED_AUTHENTICATED_WRITE_ACCESS,
  },
  certdb: { guid: Guids.CERT_DB, attributes: Attrs.NV_BS_RT_AT },
  MemoryOverwriteRequestControl: { guid: Guids.MEMORY_OVERWRITE_CONTROL, attributes: Attrs.NV_BS_RT },
  MemoryOverwriteRequestControlLock: { guid: Guids.MEMORY_OVERWRITE_CONTROL_LOCK, attributes: Attrs.NV_BS_RT },
  PPIBuffer: { guid: Guids.TCG2_PHYSICAL_PRESENCE, attributes: Attrs.NV_BS_RT },
  Tcg2PhysicalPresenceFlags: { guid: Guids.TCG2_PHYSICAL_PRESENCE, attributes: Attrs.NV_BS_RT },
  Tcg2PhysicalPresenceFlagsLock: { guid: Guids.TCG2_PHYSICAL_PRESENCE, attributes: Attrs.NV_BS_RT },
};

function knownName(name: string): KnownName | undefined {
  if (Object.hasOwn(KNOWN, name)) return KNOWN[name];
  if (/^(Boot|Driver|SysPrep|Key|PlatformRecovery)[0-9A-F]{4}$/.test(name)) return GLOBAL_NV;
  return undefined;
}

/** Whether `name`/`guid` is one of the Secure Boot signature databases (PK, KEK, db, dbx, dbt, dbr). */
export function isSignatureDatabase(name: Uint8Array, guid: Uint8Array): boolean {
  const text = fromUtf16le(name);
  const known = ['PK', 'KEK', 'db', 'dbx', 'dbt', 'dbr'].includes(text) ? KNOWN[text] : undefined;
  return known !== undefined && guidEquals(known.guid, guid);
}

export interface ResolvedName {
  readonly text: string;
  readonly name: Uint8Array;
  readonly guid: Uint8Array;
  /** Attributes a new variable of this name usually has. */
  readonly defaultAttributes: number;
}

/**
 * The (name, GUID) a command means: `--guid` when given, else the well-known GUID of the name,
 * else the GUID of the one variable of that name in the store. Usage error when ambiguous or unknown.
 */
export function resolveName(
  text: string,
  guidText: string | undefined,
  existing: readonly Variable[] = [],
  /** For commands that read or delete: an unknown name is a missing variable (exit 1), not a usage error. */
  options: { mustExist?: boolean } = {},
): ResolvedName {
  if (text.length === 0) throw usageError('the variable name is empty');
  if (text.includes('\u0000')) throw usageError('the variable name holds a NUL character');
  const name = utf16le(text);
  const known = knownName(text);
  if (guidText !== undefined) {
    const guid = parseGuid(guidText);
    return {
      text,
      name,
      guid,
      defaultAttributes: known !== undefined && guidEquals(known.guid, guid) ? known.attributes : Attrs.NV_BS_RT,
    };
  }
  if (known !== undefined) return { text, name, guid: known.guid.slice(), defaultAttributes: known.attributes };
  const matches = existing.filter((v) => fromUtf16le(v.name) === text);
  if (matches.length === 1)
    return { text, name, guid: matches[0]!.guid.slice(), defaultAttributes: matches[0]!.attributes };
  if (matches.length > 1) {
    throw usageError(
      `several variables are named ${JSON.stringify(text)}: give --guid (${matches.map((v) => guidToText(v.guid)).join(', ')})`,
    );
  }
  if (options.mustExist === true)
    throw new CliError(
      `no variable named ${JSON.stringify(text)} in the store`,
      ExitCode.FAILED,
      'list them with `varstore ls <store>`; give --guid if the name lives under another GUID',
    );
  throw usageError(`the vendor GUID of ${JSON.stringify(text)} is not known: give --guid`);
}

const ATTRIBUTE_NAMES: Readonly<Record<string, number>> = {
  NV: Attr.NON_VOLATILE,
  NON_VOLATILE: Attr.NON_VOLATILE,
  BS: Attr.BOOTSERVICE_ACCESS,
  BOOTSERVICE_ACCESS: Attr.BOOTSERVICE_ACCESS,
  RT: Attr.RUNTIME_ACCESS,
  RUNTIME_ACCESS: Attr.RUNTIME_ACCESS,
  HR: Attr.HARDWARE_ERROR_RECORD,
  HARDWARE_ERROR_RECORD: Attr.HARDWARE_ERROR_RECORD,
  AW: Attr.AUTHENTICATED_WRITE_ACCESS,
  AUTHENTICATED_WRITE_ACCESS: Attr.AUTHENTICATED_WRITE_ACCESS,
  AT: Attr.TIME_BASED_AUTHENTICATED_WRITE_ACCESS,
  TIME_BASED_AUTHENTICATED_WRITE_ACCESS: Attr.TIME_BASED_AUTHENTICATED_WRITE_ACCESS,
  AP: Attr.APPEND_WRITE,
  APPEND_WRITE: Attr.APPEND_WRITE,
  EA: Attr.ENHANCED_AUTHENTICATED_ACCESS,
  ENHANCED_AUTHENTICATED_ACCESS: Attr.ENHANCED_AUTHENTICATED_ACCESS,
};

/** Attributes as a number (`0x27`, `39`) or names (`NV|BS|RT|AT`, `NV,BS`, `EFI_VARIABLE_NON_VOLATILE`). */
export function parseAttributes(text: string): number {
  const t = text.trim();
  if (/^(0x[0-9a-f]+|[0-9]+)$/i.test(t)) {
    const n = Number(t);
    if (!Number.isSafeInteger(n) || n > 0xffff_ffff) throw usageError(`attributes ${t} do not fit 32 bits`);
    return n >>> 0;
  }
  let value = 0;
  for (const part of t.split(/[|,+\s]+/).filter((p) => p !== '')) {
    const key = part.toUpperCase().replace(/^EFI_VARIABLE_/, '');
    const bit = ATTRIBUTE_NAMES[key];
    if (bit === undefined)
      throw usageError(
        `unknown attribute ${JSON.stringify(part)} (use NV, BS, RT, AT, AP, HR, or a number such as 0x27)`,
      );
    value |= bit;
  }
  if (value === 0) throw usageError(`no attributes in ${JSON.stringify(text)}`);
  return value >>> 0;
}

/**
 * A descriptor timestamp: `now`, `zero` (all-zero, as efitools uses for appends), `YYYY-MM-DD`,
 * `YYYY-MM-DD HH:MM:SS` (efitools' -t form) or ISO `YYYY-MM-DDTHH:MM:SS[Z]`, always UTC.
 */
export function parseTimestamp(text: string, now: Date): Uint8Array {
  const t = text.trim();
  if (t === 'now') return serializeEfiTime(efiTimeFromDate(now));
  if (t === 'zero' || t === '0') return new Uint8Array(16);
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?)?(Z|[+-]00:?00)?$/.exec(t);
  if (m === null)
    throw usageError(`timestamp ${JSON.stringify(text)}: use now, zero, YYYY-MM-DD or "YYYY-MM-DD HH:MM:SS" (UTC)`);
  const time: EfiTime = {
    year: Number(m[1]),
    month: Number(m[2]),
    day: Number(m[3]),
    hour: Number(m[4] ?? 0),
    minute: Number(m[5] ?? 0),
    second: Number(m[6] ?? 0),
    pad1: 0,
    nanosecond: 0,
    timeZone: 0,
    daylight: 0,
    pad2: 0,
  };
  const problem = efiTimeProblem({ ...time, timeZone: 0 });
  if (problem !== undefined) throw usageError(`timestamp ${JSON.stringify(text)}: ${problem}`);
  return serializeEfiTime(time);
}

/** The current time as a descriptor timestamp (UTC, to the second). */
export function nowTimestamp(now: Date): Uint8Array {
  return serializeEfiTime(efiTimeFromDate(now));
}
