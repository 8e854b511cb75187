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
