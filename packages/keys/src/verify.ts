import { verifyAuthenticatedData, type AuthenticatedDataVerification } from '@vmsb/auth';
import { Attr, Attrs, utf16le } from '@vmsb/efi';
import { vendorGuid } from './authenticated-variable.js';
import { certificateDer, type CertificateInput } from './certificate.js';
import type { GuidInput } from './signature-list.js';

export interface VerifyAuthenticatedVariableOptions {
  /** Variable name: text, or UTF-16LE bytes without terminator. */
  readonly name: string | Uint8Array;
  /** Vendor GUID; default as in `prepareVariable` (global for PK/KEK, image-security for db/dbx/dbt/dbr). */
  readonly guid?: GuidInput;
  /** Attributes the update is written with. Default NV|BS|RT|AT (0x27). */
  readonly attributes?: number;
  /** The update is an append (adds APPEND_WRITE, which the signature covers). */
  readonly append?: boolean;
  /** The .auth bytes: EFI_VARIABLE_AUTHENTICATION_2 followed by the payload. */
  readonly auth: Uint8Array;
  /** Certificates to try as trust anchors, in order (e.g. the PK's, or each KEK certificate). */
  readonly trusted: readonly CertificateInput[];
}

/**
 * Checks a signed update offline with @vmsb/auth: the same descriptor rules and PKCS#7 verification
 * the variable store applies (partial chains, no validity dates), against the given anchors.
 * Never throws for bad .auth data; throws a TypeError only for unusable options (no GUID, a
 * trusted entry that is not a certificate).
 */
export function verifyAuthenticatedVariable(
  options: VerifyAuthenticatedVariableOptions,
): AuthenticatedDataVerification {
  const guid = vendorGuid(options.name, options.guid);
  let attributes = (options.attributes ?? Attrs.NV_BS_RT_AT) >>> 0;
  if (options.append === true) attributes |= Attr.APPEND_WRITE;
  return verifyAuthenticatedData({
    name: typeof options.name === 'string' ? utf16le(options.name) : options.name,
    guid,
    attributes,
    data: options.auth,
    trusted: options.trusted.map(certificateDer),
  });
}

export type { AuthenticatedDataVerification };
