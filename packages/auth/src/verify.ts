import { Attr, formatEfiTime } from '@vmsb/efi';
import { utf16le } from '@vmsb/protocol';
import { parseAuthentication2 } from './authentication2.js';
import { summarizeCertificate, type AuthFailureCode, type CertificateSummary } from './authenticator.js';
import { CertificateCache } from './cache.js';
import { parseSignedData, signedContent, verifyWithAnchor, VerificationContext } from './pkcs7.js';

export interface AuthenticatedDataToVerify {
  /** Variable name: a string, or its UTF-16LE bytes without terminator. */
  readonly name: string | Uint8Array;
  readonly guid: Uint8Array;
  /** Attributes exactly as they will be passed to SetVariable (APPEND_WRITE included for an append). */
  readonly attributes: number;
  /** EFI_VARIABLE_AUTHENTICATION_2 followed by the payload (the content of a .auth file). */
  readonly data: Uint8Array;
  /** DER certificates to try as trust anchors, in order (e.g. the PK, or every KEK certificate). */
  readonly trusted: readonly Uint8Array[];
}

export type AuthenticatedDataVerification =
  | {
      readonly ok: true;
      readonly timestamp: string;
      readonly signer: CertificateSummary;
      readonly trustedBy: CertificateSummary;
      readonly chain: readonly CertificateSummary[];
      /** A view of the payload inside `data`. */
      readonly payload: Uint8Array;
    }
  | {
      readonly ok: false;
      readonly code: AuthFailureCode;
      readonly reason: string;
      readonly signer?: CertificateSummary;
    };

/**
 * Checks a signed variable update (a .auth file) offline, with the same descriptor rules and PKCS#7
 * verification the store applies, against explicit trust anchors instead of the store's PK/KEK.
 * No policy: which anchors are right for which variable is the caller's choice. Never throws.
 */
export function verifyAuthenticatedData(input: AuthenticatedDataToVerify): AuthenticatedDataVerification {
  const parsed = parseAuthentication2(input.data);
  if (!parsed.ok) return { ok: false, code: parsed.problem, reason: parsed.reason };
  const d = parsed.descriptor;
  if (d.certData.length === 0)
    return { ok: false, code: 'no-signature', reason: 'the descriptor carries no signature' };
  const sd = parseSignedData(d.certData);
  if (!sd.ok) return { ok: false, code: 'malformed-signature', reason: sd.reason };
  const name = typeof input.name === 'string' ? utf16le(input.name) : input.name;
  const ctx = new VerificationContext(
    sd.signedData,
    signedContent(name, input.guid, input.attributes, d.timestamp, d.payload),
  );
  const content = ctx.contentSignature();
  if (!content.ok) {
    const code: AuthFailureCode = content.code === 'signer-missing' ? 'malformed-signature' : content.code;
    const hint =
      content.code === 'bad-signature' && (input.attributes & Attr.APPEND_WRITE) === 0
        ? ' (if this is an append update, include APPEND_WRITE 0x40 in the attributes)'
        : '';
    return {
      ok: false,
      code,
      reason: content.reason + hint,
      ...(content.signer !== undefined ? { signer: summarizeCertificate(content.signer) } : {}),
    };
  }
  const cache = new CertificateCache(input.trusted.length + 1);
  const reasons: string[] = [];
  for (const der of input.trusted) {
    const anchor = cache.parse(der);
    if (!anchor.ok) {
      reasons.push(`trusted certificate unreadable: ${anchor.reason}`);
      continue;
    }
    const r = verifyWithAnchor(ctx, anchor.certificate);
    if (r.ok) {
      return {
        ok: true,
        timestamp: formatEfiTime(d.time),
        signer: summarizeCertificate(r.signer),
        trustedBy: summarizeCertificate(anchor.certificate),
        chain: r.chain.map(summarizeCertificate),
        payload: d.payload,
      };
    }
    reasons.push(r.reason);
  }
  const signer = summarizeCertificate(content.signer);
  const why = reasons.length === 0 ? 'no trusted certificate was given' : reasons.join('; ');
  return { ok: false, code: 'wrong-signer', reason: `signed by "${signer.subject}": ${why}`, signer };
}
