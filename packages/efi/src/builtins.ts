import { utf16le } from '@vmsb/protocol';
import { Attrs } from './attributes.js';
import { Guids } from './guid.js';

/** A variable the store creates and maintains itself. */
export interface BuiltinName {
  readonly text: string;
  readonly name: Uint8Array;
  readonly guid: Uint8Array;
  readonly attributes: number;
}

function builtin(text: string, guid: Uint8Array, attributes: number): BuiltinName {
  return { text, name: utf16le(text), guid, attributes };
}

/** Names of the variables the store manages, and of the Secure Boot policy variables. */
export const Names = {
  SignatureSupport: builtin('SignatureSupport', Guids.GLOBAL_VARIABLE, Attrs.BS_RT),
  SetupMode: builtin('SetupMode', Guids.GLOBAL_VARIABLE, Attrs.BS_RT),
  AuditMode: builtin('AuditMode', Guids.GLOBAL_VARIABLE, Attrs.BS_RT),
  DeployedMode: builtin('DeployedMode', Guids.GLOBAL_VARIABLE, Attrs.BS_RT),
  SecureBoot: builtin('SecureBoot', Guids.GLOBAL_VARIABLE, Attrs.BS_RT),
  VendorKeys: builtin('VendorKeys', Guids.GLOBAL_VARIABLE, Attrs.BS_RT),
  MemoryOverwriteRequestControl: builtin(
    'MemoryOverwriteRequestControl',
    Guids.MEMORY_OVERWRITE_CONTROL,
    Attrs.NV_BS_RT,
  ),
  MemoryOverwriteRequestControlLock: builtin(
    'MemoryOverwriteRequestControlLock',
    Guids.MEMORY_OVERWRITE_CONTROL_LOCK,
    Attrs.NV_BS_RT,
  ),
  PPIBuffer: builtin('PPIBuffer', Guids.TCG2_PHYSICAL_PRESENCE, Attrs.NV_BS_RT),
  Tcg2PhysicalPresenceFlagsLock: builtin('Tcg2PhysicalPresenceFlagsLock', Guids.TCG2_PHYSICAL_PRESENCE, Attrs.NV_BS_RT),
  /** Written by OVMF; guarded by Tcg2PhysicalPresenceFlagsLock. */
  Tcg2PhysicalPresenceFlags: builtin('Tcg2PhysicalPresenceFlags', Guids.TCG2_PHYSICAL_PRESENCE, Attrs.NV_BS_RT),
  PK: builtin('PK', Guids.GLOBAL_VARIABLE, Attrs.NV_BS_RT_AT),
  KEK: builtin('KEK', Guids.GLOBAL_VARIABLE, Attrs.NV_BS_RT_AT),
  db: builtin('db', Guids.IMAGE_SECURITY_DATABASE, Attrs.NV_BS_RT_AT),
  dbx: builtin('dbx', Guids.IMAGE_SECURITY_DATABASE, Attrs.NV_BS_RT_AT),
  dbt: builtin('dbt', Guids.IMAGE_SECURITY_DATABASE, Attrs.NV_BS_RT_AT),
} as const;

/** The Secure Boot mode variables, in enumeration order (they come first in a new store). */
export const MODE_BUILTINS: readonly BuiltinName[] = [
  Names.SignatureSupport,
  Names.SetupMode,
  Names.AuditMode,
  Names.DeployedMode,
  Names.SecureBoot,
  Names.VendorKeys,
];

/**
 * SignatureSupport as varstored publishes it: EFI_CERT_SHA1, SHA256, RSA2048, X509 (the GUIDs
 * are concatenated in that order).
 */
export function signatureSupportValue(): Uint8Array {
  const out = new Uint8Array(64);
  [Guids.CERT_SHA1, Guids.CERT_SHA256, Guids.CERT_RSA2048, Guids.CERT_X509].forEach((g, i) => {
    out.set(g, i * 16);
  });
  return out;
}

/** Bytes of the non-volatile TCG2 PPI area (PPIBuffer). */
export const PPI_BUFFER_SIZE = 48;
/** Bytes of the volatile TCG2 PPI function area. */
export const PPI_FUNC_SIZE = 0x100;
/** The PPI I/O region: function area then PPIBuffer. */
export const PPI_REGION_SIZE = PPI_FUNC_SIZE + PPI_BUFFER_SIZE;

export const MorLockState = { UNLOCKED: 0, LOCKED_WITHOUT_KEY: 1, LOCKED_WITH_KEY: 2 } as const;
export const MOR_KEY_SIZE = 8;
