import { Attr } from './attributes.js';
import { Guids, guidEquals } from './guid.js';
import type { Variable } from './variable.js';

/**
 * Who computes the SecureBoot variable at boot, and so which rule decides it:
 * - `varstored`: under Xen the daemon's builtins decide (SecureBoot=1 when a PK is enrolled and the
 *   platform turns Secure Boot on, `platform:secureboot=true`); SecureBootEnable is not consulted.
 * - `edk2`: OVMF's own variable driver (QEMU, .fd/JSON stores) follows AuthVariableLib:
 *   SecureBoot=1 in user mode when SecureBootEnable is 1, or absent (it is then created enabled).
 */
export type SecureBootRule = 'varstored' | 'edk2';

export interface SecureBootInputs {
  /** A PK is enrolled (user mode). */
  readonly pkEnrolled: boolean;
  /** varstored: the platform turns Secure Boot on. */
  readonly platformSecureBoot: boolean;
  /** edk2: the first byte of SecureBootEnable, undefined when the variable is absent or empty. */
  readonly secureBootEnable?: number | undefined;
}

/** SECURE_BOOT_ENABLE in edk2's SecureBootConfigDxe / AuthVariableLib. */
const SECURE_BOOT_ENABLE = 1;

/** The value SecureBoot takes at boot under `rule`. */
export function secureBootValue(rule: SecureBootRule, inputs: SecureBootInputs): 0 | 1 {
  if (!inputs.pkEnrolled) return 0;
  if (rule === 'varstored') return inputs.platformSecureBoot ? 1 : 0;
  return inputs.secureBootEnable === undefined || inputs.secureBootEnable === SECURE_BOOT_ENABLE ? 1 : 0;
}

/** What a variable is to Secure Boot: one of its databases, or a private authenticated variable. */
export type VariableKind = 'PK' | 'KEK' | 'db' | 'dbx' | 'dbt' | 'private';

/** PK and KEK in the global namespace, db/dbx/dbt in the image-security namespace; anything else is private. */
export function variableKind(name: Uint8Array, guid: Uint8Array): VariableKind {
  if (guidEquals(guid, Guids.GLOBAL_VARIABLE)) {
    if (isAscii(name, 'PK')) return 'PK';
    if (isAscii(name, 'KEK')) return 'KEK';
  } else if (guidEquals(guid, Guids.IMAGE_SECURITY_DATABASE)) {
    if (isAscii(name, 'db')) return 'db';
    if (isAscii(name, 'dbx')) return 'dbx';
    if (isAscii(name, 'dbt')) return 'dbt';
  }
  return 'private';
}

/**
 * Whether the variable's signer digest is data: only a private time-based authenticated variable
 * is bound to its signer. Elsewhere the digest means nothing (VARS v1 blobs leave it uninitialised).
 */
export function signerDigestIsData(v: Pick<Variable, 'name' | 'guid' | 'attributes'>): boolean {
  return (
    (v.attributes & Attr.TIME_BASED_AUTHENTICATED_WRITE_ACCESS) !== 0 && variableKind(v.name, v.guid) === 'private'
  );
}

/** `name` (UTF-16LE) is exactly the ASCII `text`. */
function isAscii(name: Uint8Array, text: string): boolean {
  if (name.length !== text.length * 2) return false;
  for (let i = 0; i < text.length; i++) if (name[2 * i] !== text.charCodeAt(i) || name[2 * i + 1] !== 0) return false;
  return true;
}
