import { createHash } from 'node:crypto';
import {
  Attr,
  bytesEqual,
  compareEfiTimeBytes,
  formatEfiTime,
  Guids,
  guidToText,
  parseEfiTime,
  parseSignatureLists,
  variableKind,
  type VariableKind,
  utf16le,
  x509Certificates,
  type AuthenticatedWrite,
  type Authenticator,
  type AuthResult,
  type StoreView,
  type Variable,
} from '@vmsb/efi';
import { EfiStatus, fromUtf16le, statusName } from '@vmsb/protocol';
import { parseAuthentication2, type Authentication2 } from './authentication2.js';
import { CertificateCache } from './cache.js';
import { checkSignatureDatabase, filterAppendedSignatures, platformKeyCertificate } from './lists.js';
import {
  parseSignedData,
  signedContent,
  verifyWithAnchor,
  VerificationContext,
  type ChainResult,
  type SignedData,
} from './pkcs7.js';
import { certificateSubject, fingerprint, serialHex, type Certificate } from './x509.js';

/** Which rule set a variable falls under. */

/** How writes to PK/KEK/db/dbx/dbt are authorised right now. */
export type AuthMode = 'setup' | 'user' | 'permissive';

/** Why an authenticated write was refused, for administrators and tools. */
export type AuthFailureCode =
  /** DataSize/dwLength do not frame a descriptor. */
  | 'malformed-descriptor'
  /** Timestamp Pad1/Nanosecond/TimeZone/Daylight/Pad2 not zero. */
  | 'timestamp-fields'
  /** Not a PKCS#7 WIN_CERTIFICATE_UEFI_GUID. */
  | 'certificate-type'
  /** PK/KEK/db/dbx/dbt with attributes other than NV|BS|RT|AT. */
  | 'attributes'
  /** APPEND_WRITE to an enrolled PK. */
  | 'pk-append'
  /** Timestamp not later than the stored one. */
  | 'stale-timestamp'
  /** The descriptor carries no signature. */
  | 'no-signature'
  /** The PKCS#7 does not parse, or does not name a signer it carries. */
  | 'malformed-signature'
  /** Digest or signature algorithm other than SHA-256 with RSA PKCS#1 v1.5, or a non-RSA signer key. */
  | 'unsupported-algorithm'
  /** The signature does not verify over the signed content. */
  | 'bad-signature'
  /** Signed, correctly, by someone not allowed to sign this variable. */
  | 'wrong-signer'
  /** The payload is not an acceptable signature database. */
  | 'malformed-list';

/** A certificate as an administrator needs to recognise it. */
export interface CertificateSummary {
  readonly subject: string;
  readonly issuer: string;
  readonly serialNumber: string;
  /** SHA-256 of the DER encoding, hex. */
  readonly sha256: string;
  readonly notBefore: string;
  readonly notAfter: string;
}

/** Everything known about one authenticated write's verification. `verify` reports `reason` only. */
export interface AuthExplanation {
  readonly status: bigint;
  readonly statusName: string;
  /** Undefined on success. */
  readonly code: AuthFailureCode | undefined;
  /** One line: why it failed, or how it was authorised. */
  readonly reason: string;
  readonly variable: string;
  readonly kind: VariableKind;
  readonly mode: AuthMode;
  readonly append: boolean;
  /** The descriptor's timestamp, `YYYY-MM-DDTHH:MM:SS`, when the descriptor parsed. */
  readonly timestamp?: string;
  /** The stored variable's timestamp, when it exists. */
  readonly storedTimestamp?: string;
  /** The certificate that signed, when the signature could be read. */
  readonly signer?: CertificateSummary;
  /** Every certificate the message carries. */
  readonly certificates?: readonly CertificateSummary[];
  /** Who may sign this variable now (PK, KEK certificates), when that is a certificate list. */
  readonly allowedSigners?: readonly CertificateSummary[];
  /** On success: the trusted certificate that verified it, and the chain from the signer to it. */
  readonly trustedBy?: CertificateSummary;
  readonly chain?: readonly CertificateSummary[];
  /** Payload bytes as sent, and as stored after de-duplication of an append. */
  readonly payloadSize?: number;
  readonly storedPayloadSize?: number;
  /** RSA verifications performed. */
  readonly signatureChecks: number;
}

export interface AuthenticatorOptions {
  /** Parsed trust-anchor certificates kept (default 256). */
  readonly cacheSize?: number;
  /** The cache (and so the parser) of trust-anchor certificates, e.g. an instrumented one; `cacheSize` then does not apply. */
  readonly certificateCache?: CertificateCache;
}

/** The Authenticator @vmsb/efi's VariableStore calls, plus the same decision explained in full. */
export interface UefiAuthenticator extends Authenticator {
  verify(request: AuthenticatedWrite, view: StoreView): AuthResult;
  /** The same decision as `verify`, with the evidence (signer, allowed signers, chain). Never throws. */
  explain(request: AuthenticatedWrite, view: StoreView): AuthExplanation;
}

/** Most KEK certificates tried as trust anchors for one write (real KEKs hold a handful). */
const MAX_KEK_ANCHORS_TRIED = 8;
/** Most allowed signers a refusal names (an explanation lists them all). */
const MAX_LISTED_SIGNERS = 8;

const PK_NAME = utf16le('PK');
const KEK_NAME = utf16le('KEK');
const SECURE_BOOT_ATTRIBUTES =
  Attr.NON_VOLATILE | Attr.BOOTSERVICE_ACCESS | Attr.RUNTIME_ACCESS | Attr.TIME_BASED_AUTHENTICATED_WRITE_ACCESS;

/** Creates the authenticator for one store (its anchor cache lives as long as it does). */
export function createAuthenticator(options: AuthenticatorOptions = {}): UefiAuthenticator {
  const cache = options.certificateCache ?? new CertificateCache(options.cacheSize);
  return {
    verify(request, view) {
      const e = evaluate(request, view, cache);
      const result: { -readonly [K in keyof AuthResult]: AuthResult[K] } = { status: e.status, reason: e.reason };
      if (e.status === EfiStatus.SUCCESS) {
        if (e.payload !== undefined) result.payload = e.payload;
        if (e.timestamp !== undefined) result.timestamp = e.timestamp;
        if (e.signerDigest !== undefined) result.signerDigest = e.signerDigest;
      }
      return result;
    },
    explain(request, view) {
      return evaluate(request, view, cache).explanation();
    },
  };
}

let sharedCache: CertificateCache | undefined;

/** Explains, for administrators, what `createAuthenticator().verify` decides for this write and why. Never throws. */
export function explainAuthenticatedWrite(request: AuthenticatedWrite, view: StoreView): AuthExplanation {
  sharedCache ??= new CertificateCache();
  return evaluate(request, view, sharedCache).explanation();
}

interface Evaluation {
  readonly status: bigint;
  readonly reason: string;
  readonly payload?: Uint8Array;
  readonly timestamp?: Uint8Array;
  readonly signerDigest?: Uint8Array;
  /** Built only when asked for: the hot path needs the status and one line. */
  readonly explanation: () => AuthExplanation;
}

function evaluate(request: AuthenticatedWrite, view: StoreView, cache: CertificateCache): Evaluation {
  try {
    return new Decision(request, view, cache).run();
  } catch (e) {
    // Defensive: the parsers return values, but nothing a guest sends may throw out of the store.
    const reason = `internal error while verifying: ${e instanceof Error ? e.message : String(e)}`;
    return {
      status: EfiStatus.SECURITY_VIOLATION,
      reason,
      explanation: () => ({
        status: EfiStatus.SECURITY_VIOLATION,
        statusName: statusName(EfiStatus.SECURITY_VIOLATION),
        code: undefined,
        reason,
        variable: describeVariable(request.name, request.guid),
        kind: variableKind(request.name, request.guid),
        mode: modeOf(view),
        append: request.append,
        signatureChecks: 0,
      }),
    };
  }
}

function modeOf(view: StoreView): AuthMode {
  if (!view.authEnforce) return 'permissive';
  return view.setupMode ? 'setup' : 'user';
}

function describeVariable(name: Uint8Array, guid: Uint8Array): string {
  const text = fromUtf16le(name).replace(/[\u0000-\u001f\u007f]/g, '?');
  return `${text} (${guid.length === 16 ? guidToText(guid) : 'bad GUID'})`;
}

/** Summary of a certificate for admin output. */
export function summarizeCertificate(cert: Certificate): CertificateSummary {
  return {
    subject: cert.subjectText,
    issuer: cert.issuerText,
    serialNumber: serialHex(cert),
    sha256: fingerprint(cert),
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
  };
}

/** A private copy (the request's bytes belong to the caller). */
function copy(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

/** A certificate in one line: subject and the start of its fingerprint. */
function short(cert: Certificate): string {
  return `"${cert.subjectText}" (sha256 ${fingerprint(cert).slice(0, 16)}…)`;
}

/**
 * varstored's private-variable signer binding: SHA-256 of the signer's first commonName (its raw
 * string bytes, cut at 127 bytes and at the first NUL, as OpenSSL's X509_NAME_get_text_by_NID with
 * a 128-byte buffer leaves them) followed by the top-level certificate's tbsCertificate. With the one
 * SignerInfo UEFI allows, the top-level certificate is the signer's own. Undefined without a CN.
 */
export function privateSignerDigest(signer: Certificate): Uint8Array | undefined {
  const cn = signer.commonName;
  if (cn === undefined) return undefined;
  let end = Math.min(cn.length, 127);
  const nul = cn.subarray(0, end).indexOf(0);
  if (nul >= 0) end = nul;
  return new Uint8Array(createHash('sha256').update(cn.subarray(0, end)).update(signer.tbs).digest());
}

class Decision {
  private readonly kind: VariableKind;
  private readonly mode: AuthMode;
  private readonly existing: Variable | undefined;
  private descriptor: Authentication2 | undefined;
  private ctx: VerificationContext | undefined;
  private signer: Certificate | undefined;
  /** The parsed signature; its certificates are parsed in full only if an explanation lists them. */
  private signedData: SignedData | undefined;
  private allowed: readonly Certificate[] | undefined;
  /** KEK entries beyond those listed in the reason (parsed only for an explanation). */
  private unlisted: readonly Uint8Array[] = [];
  private trustedBy: Certificate | undefined;
  private chain: readonly Certificate[] | undefined;

  constructor(
    private readonly request: AuthenticatedWrite,
    private readonly view: StoreView,
    private readonly cache: CertificateCache,
  ) {
    this.kind = variableKind(request.name, request.guid);
    this.mode = modeOf(view);
    this.existing = request.existing;
  }

  run(): Evaluation {
    const { request } = this;
    const parsed = parseAuthentication2(request.data);
    if (!parsed.ok) return this.fail(parsed.status, parsed.problem, parsed.reason);
    const d = parsed.descriptor;
    this.descriptor = d;
    const secureBootVariable = this.kind !== 'private';

    if (secureBootVariable && request.attributes >>> 0 !== SECURE_BOOT_ATTRIBUTES) {
      return this.fail(
        EfiStatus.INVALID_PARAMETER,
        'attributes',
        `${this.kind} must have attributes NV|BS|RT|AT (0x27), got 0x${(request.attributes >>> 0).toString(16)}`,
      );
    }
    if (this.kind === 'PK' && request.append && this.existing !== undefined) {
      return this.fail(
        EfiStatus.INVALID_PARAMETER,
        'pk-append',
        'APPEND_WRITE to an enrolled PK (it holds exactly one certificate)',
      );
    }

    // Setup mode (PK/KEK/db/dbx/dbt only) and permissive mode skip signatures and timestamp order.
    // Private variables are always verified: even permissive mode only relaxes their signer binding.
    const verifySignature = secureBootVariable ? this.mode === 'user' : true;
    const checkOrder = this.mode !== 'permissive' && !(secureBootVariable && this.mode === 'setup');
    if (
      checkOrder &&
      !request.append &&
      this.existing !== undefined &&
      compareEfiTimeBytes(d.timestamp, this.existing.timestamp) <= 0
    ) {
      return this.fail(
        EfiStatus.SECURITY_VIOLATION,
        'stale-timestamp',
        `timestamp ${formatEfiTime(d.time)} is not later than the stored ${this.storedTimestamp()}`,
      );
    }

    let signerDigest: Uint8Array | undefined;
    if (verifySignature) {
      const content = signedContent(
        request.name,
        request.guid,
        request.attributes | (request.append ? Attr.APPEND_WRITE : 0),
        d.timestamp,
        d.payload,
      );
      const failure = this.readSignature(d, content);
      if (failure !== undefined) return failure;
      const outcome = secureBootVariable ? this.authorizeSecureBootWrite() : this.authorizePrivateWrite();
      if ('evaluation' in outcome) return outcome.evaluation;
      signerDigest = outcome.signerDigest;
    }

    let payload: Uint8Array;
    if (secureBootVariable) {
      const database = checkSignatureDatabase(d.payload, this.kind === 'PK', this.cache);
      if (!database.ok)
        return this.fail(EfiStatus.INVALID_PARAMETER, 'malformed-list', `${this.kind} payload: ${database.reason}`);
      // Appends to KEK/db/dbx/dbt add only what is not there yet (a PK append cannot reach here).
      payload =
        request.append && this.existing !== undefined
          ? filterAppendedSignatures(this.existing.data, d.payload, database.lists)
          : copy(d.payload);
    } else {
      payload = copy(d.payload);
    }
    return this.succeed(payload, copy(d.timestamp), signerDigest);
  }

  /** Parses the PKCS#7 and checks its content signature (independent of who may sign). */
  private readSignature(d: Authentication2, content: Uint8Array): Evaluation | undefined {
    if (d.certData.length === 0)
      return this.fail(EfiStatus.SECURITY_VIOLATION, 'no-signature', 'the descriptor carries no signature');
    const sd = parseSignedData(d.certData);
    if (!sd.ok) return this.fail(EfiStatus.SECURITY_VIOLATION, 'malformed-signature', sd.reason);
    this.signedData = sd.signedData;
    this.ctx = new VerificationContext(sd.signedData, content);
    const result = this.ctx.contentSignature();
    if (result.signer !== undefined) this.signer = result.signer;
    if (!result.ok) {
      const code: AuthFailureCode = result.code === 'signer-missing' ? 'malformed-signature' : result.code;
      return this.fail(EfiStatus.SECURITY_VIOLATION, code, result.reason);
    }
    return undefined;
  }

  private authorizeSecureBootWrite(): { evaluation: Evaluation } | { signerDigest: undefined } {
    const ctx = this.ctx!;
    const signer = this.signer!;
    const pkVar = this.view.get(PK_NAME, Guids.GLOBAL_VARIABLE);
    const pkDer = pkVar === undefined ? undefined : platformKeyCertificate(pkVar.data);
    const pk = pkDer === undefined ? undefined : this.cache.parse(pkDer);
    const pkCert = pk?.ok === true ? pk.certificate : undefined;
    const allowed: Certificate[] = pkCert === undefined ? [] : [pkCert];

    // PK rule (edk2 "no chaining for PK"): the signer is byte-for-byte the enrolled PK certificate.
    const reasons: string[] = [];
    if (pkCert !== undefined && bytesEqual(signer.der, pkCert.der)) {
      const r = verifyWithAnchor(ctx, pkCert);
      if (r.ok) return this.authorized(r, pkCert, allowed);
      reasons.push(r.reason);
    }
    if (this.kind === 'PK' || this.kind === 'KEK') {
      this.allowed = allowed;
      const expected = pkCert === undefined ? 'no PK certificate is enrolled' : `the enrolled PK ${short(pkCert)}`;
      const why = reasons.length > 0 ? reasons.join('; ') : `signed by ${short(signer)}, expected ${expected}`;
      return {
        evaluation: this.fail(
          EfiStatus.SECURITY_VIOLATION,
          'wrong-signer',
          `${this.kind} must be signed by the PK: ${why}`,
        ),
      };
    }

    // db/dbx/dbt: otherwise any X.509 certificate in KEK, each tried as a (partial-chain) trust anchor.
    // Only a certificate that is the signer, or whose subject is the issuer named by the signer or
    // a carried certificate (issuedBy's first test), can verify the message; the others are listed
    // (the first few, parsed once and cached) but not tried. At most MAX_KEK_ANCHORS_TRIED are.
    const kekVar = this.view.get(KEK_NAME, Guids.GLOBAL_VARIABLE);
    const kekLists = kekVar === undefined ? undefined : parseSignatureLists(kekVar.data);
    const issuerNames = [signer.issuer, ...ctx.signedData.carried.map((c) => c.issuer)];
    const unlisted: Uint8Array[] = [];
    let tried = 0;
    if (kekLists?.ok === true) {
      for (const { der } of x509Certificates(kekLists.lists)) {
        const subject = certificateSubject(der);
        const reachable =
          bytesEqual(der, signer.der) || (subject !== undefined && issuerNames.some((n) => bytesEqual(n, subject)));
        if (!reachable || tried >= MAX_KEK_ANCHORS_TRIED) {
          if (allowed.length >= MAX_LISTED_SIGNERS) {
            unlisted.push(der);
            continue;
          }
          const listed = this.cache.parse(der);
          if (listed.ok) allowed.push(listed.certificate);
          continue;
        }
        tried++;
        const parsed = this.cache.parse(der);
        if (!parsed.ok) continue;
        allowed.push(parsed.certificate);
        const r = verifyWithAnchor(ctx, parsed.certificate);
        if (r.ok) return this.authorized(r, parsed.certificate, allowed);
        reasons.push(r.reason);
      }
    }
    this.allowed = allowed;
    this.unlisted = unlisted;
    const more = unlisted.length === 0 ? '' : ` and ${unlisted.length} more KEK entries`;
    const who =
      allowed.length === 0
        ? 'no PK or KEK certificate is enrolled'
        : `allowed: ${allowed.map((c) => short(c)).join('; ')}${more}`;
    const detail = reasons.filter((r) => !r.startsWith('signer ')).join('; ');
    return {
      evaluation: this.fail(
        EfiStatus.SECURITY_VIOLATION,
        'wrong-signer',
        `${this.kind} must be signed by the PK or a KEK certificate: signed by ${short(signer)} (issuer "${signer.issuerText}"), which chains to none of them; ${who}${detail === '' ? '' : ` (${detail})`}`,
      ),
    };
  }

  private authorized(
    r: ChainResult & { ok: true },
    anchor: Certificate,
    allowed: readonly Certificate[],
  ): { signerDigest: undefined } {
    this.trustedBy = anchor;
    this.chain = r.chain;
    this.allowed = allowed;
    return { signerDigest: undefined };
  }

  /** Private authenticated variables: bound to the first signer by varstored's digest. */
  private authorizePrivateWrite(): { evaluation: Evaluation } | { signerDigest: Uint8Array } {
    const signer = this.signer!;
    const digest = privateSignerDigest(signer);
    if (digest === undefined) {
      return {
        evaluation: this.fail(
          EfiStatus.SECURITY_VIOLATION,
          'wrong-signer',
          `the signer ${short(signer)} has no commonName to bind the variable to`,
        ),
      };
    }
    const existing = this.existing;
    if (existing !== undefined && this.mode !== 'permissive' && !bytesEqual(digest, existing.signerDigest)) {
      return {
        evaluation: this.fail(
          EfiStatus.SECURITY_VIOLATION,
          'wrong-signer',
          `the variable is bound to another signer (digest ${Buffer.from(existing.signerDigest).toString('hex').slice(0, 16)}…); signed by ${short(signer)} (digest ${Buffer.from(digest).toString('hex').slice(0, 16)}…)`,
        ),
      };
    }
    // The signer vouches for itself: its own certificate is the trust anchor.
    const r = verifyWithAnchor(this.ctx!, signer);
    if (!r.ok) return { evaluation: this.fail(EfiStatus.SECURITY_VIOLATION, 'bad-signature', r.reason) };
    this.trustedBy = signer;
    this.chain = r.chain;
    // An update keeps the binding made at creation (varstored does not rebind, even when permissive).
    return { signerDigest: existing !== undefined ? copy(existing.signerDigest) : digest };
  }

  private storedTimestamp(): string | undefined {
    if (this.existing === undefined) return undefined;
    const t = parseEfiTime(this.existing.timestamp);
    return t === undefined ? undefined : formatEfiTime(t);
  }

  private explanation(
    status: bigint,
    code: AuthFailureCode | undefined,
    reason: string,
    payloadSize?: number,
    storedPayloadSize?: number,
  ): AuthExplanation {
    const d = this.descriptor;
    const stored = this.storedTimestamp();
    return {
      status,
      statusName: statusName(status),
      code,
      reason,
      variable: describeVariable(this.request.name, this.request.guid),
      kind: this.kind,
      mode: this.mode,
      append: this.request.append,
      ...(d !== undefined ? { timestamp: formatEfiTime(d.time) } : {}),
      ...(stored !== undefined ? { storedTimestamp: stored } : {}),
      ...(this.signer !== undefined ? { signer: summarizeCertificate(this.signer) } : {}),
      ...(this.signedData !== undefined
        ? { certificates: this.signedData.certificates.map(summarizeCertificate) }
        : {}),
      ...(this.allowed !== undefined
        ? {
            allowedSigners: [
              ...this.allowed,
              ...this.unlisted.flatMap((der) => {
                const p = this.cache.parse(der);
                return p.ok ? [p.certificate] : [];
              }),
            ].map(summarizeCertificate),
          }
        : {}),
      ...(this.trustedBy !== undefined ? { trustedBy: summarizeCertificate(this.trustedBy) } : {}),
      ...(this.chain !== undefined ? { chain: this.chain.map(summarizeCertificate) } : {}),
      ...(payloadSize !== undefined ? { payloadSize } : {}),
      ...(storedPayloadSize !== undefined ? { storedPayloadSize } : {}),
      signatureChecks: this.ctx?.checks ?? 0,
    };
  }

  private fail(status: bigint, code: AuthFailureCode, why: string): Evaluation {
    const reason = `${describeVariable(this.request.name, this.request.guid)}: ${why}`;
    return {
      status,
      reason,
      explanation: () => this.explanation(status, code, reason, this.descriptor?.payload.length),
    };
  }

  private succeed(payload: Uint8Array, timestamp: Uint8Array, signerDigest: Uint8Array | undefined): Evaluation {
    const how =
      this.trustedBy === undefined
        ? this.mode === 'permissive'
          ? 'accepted without signature check (auth-enforce=false)'
          : 'accepted without signature check (setup mode)'
        : this.kind === 'private'
          ? `signed by ${short(this.trustedBy)}, the variable's signer`
          : `signed by ${short(this.signer!)}, trusted through ${short(this.trustedBy)}`;
    const reason = `${describeVariable(this.request.name, this.request.guid)}: ${how}`;
    return {
      status: EfiStatus.SUCCESS,
      reason,
      payload,
      timestamp,
      ...(signerDigest !== undefined ? { signerDigest } : {}),
      explanation: () =>
        this.explanation(EfiStatus.SUCCESS, undefined, reason, this.descriptor?.payload.length, payload.length),
    };
  }
}
