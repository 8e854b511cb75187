import { createHash, verify as cryptoVerify, X509Certificate, type KeyObject } from 'node:crypto';
import {
  DerError,
  Tag,
  algorithmOid,
  bytesEqual,
  checkPrimitives,
  children,
  countElements,
  expect,
  integerBytes,
  isContext,
  isContextTlv,
  isUniversal,
  octetString,
  oidString,
  oidText,
  precheckDer,
  tlvBytes,
  tlvContent,
  type Tlv,
} from './der.js';
import { CERTIFICATE_SIGNATURE_HASH, Oid, oidName } from './oids.js';
import {
  caKind,
  checkName,
  issuedBy,
  parseCertificate,
  rsaKeyObject,
  selfIssued,
  type Certificate,
  type CertificateResult,
} from './x509.js';

/** Bounds on the work one signature may cause (docs/architecture.md §5). */
export const Pkcs7Limits = {
  /** Largest encoded SignedData accepted. */
  MAX_SIZE: 65536,
  /** Most certificates a SignedData may carry. */
  MAX_CERTIFICATES: 32,
  /** Most certificates in a chain from the signer to a trust anchor, both included. */
  MAX_CHAIN_LENGTH: 8,
  /** Most RSA verifications one authenticated write may trigger. */
  MAX_SIGNATURE_CHECKS: 64,
  /**
   * Most DER elements in what is decoded besides the certificates: version, digest algorithms,
   * content info and the SignerInfo with its signed attributes (real signers use under 100).
   */
  MAX_ENVELOPE_ELEMENTS: 256,
  /**
   * Most carried certificates parsed in full for one message: the signer and the chain's issuers
   * need at most MAX_CHAIN_LENGTH. Candidates beyond are not considered (OpenSSL would look further;
   * only a message built to cost work carries that many certificates with the same subject).
   */
  MAX_PARSED_CERTIFICATES: 10,
} as const;

export interface SignerInfo {
  /** issuerAndSerialNumber: the encoded issuer Name and the serial's INTEGER content octets. */
  readonly issuer: Uint8Array;
  readonly serialNumber: Uint8Array;
  readonly digestAlgorithmOid: string;
  /** The encoded [0] IMPLICIT signedAttrs, when present. */
  readonly signedAttributes: Uint8Array | undefined;
  /** The messageDigest attribute value, when signed attributes are present and carry one. */
  readonly messageDigest: Uint8Array | undefined;
  readonly signatureAlgorithmOid: string;
  readonly signature: Uint8Array;
}

/** A PKCS#7 SignedData as UEFI uses it: detached content, one signer. */
export interface SignedData {
  /** True when the input was a ContentInfo wrapping the SignedData, false for a bare SignedData. */
  readonly wrapped: boolean;
  readonly digestAlgorithmOids: readonly string[];
  readonly contentTypeOid: string;
  /**
   * True when the message embeds content. It is ignored and the detached serialization verified, as
   * OpenSSL's PKCS7_verify with external data does (without PKCS7_NO_DUAL_CONTENT, as edk2 calls it).
   */
  readonly hasEmbeddedContent: boolean;
  /** The carried X.509 certificates this package can parse, in order (parsed on first use). */
  readonly certificates: readonly Certificate[];
  /** The carried X.509 certificates, in order, each parsed only when verification needs it. */
  readonly carried: readonly CarriedCertificate[];
  readonly signerInfo: SignerInfo;
}

export type SignedDataResult =
  | { readonly ok: true; readonly signedData: SignedData }
  | { readonly ok: false; readonly reason: string };

/**
 * Parses a DER PKCS#7 SignedData, bare or wrapped in a ContentInfo, as found in
 * WIN_CERTIFICATE_UEFI_GUID.CertData, with the bounded DER reader (der.ts) and OpenSSL. Parsed
 * messages are kept in a small cache keyed by their SHA-256 (a guest re-sends the same update), so
 * a repeat costs a hash and a compare; the signature over the current content is still verified
 * every time by VerificationContext. Never throws.
 */
export function parseSignedData(der: Uint8Array): SignedDataResult {
  if (der.length === 0) return { ok: false, reason: 'the descriptor carries no PKCS#7 signature' };
  if (der.length > Pkcs7Limits.MAX_SIZE)
    return { ok: false, reason: `the PKCS#7 signature is ${der.length} bytes (limit ${Pkcs7Limits.MAX_SIZE})` };
  const key = createHash('sha256').update(der).digest('hex');
  const hit = signedDataCache.get(key, der);
  if (hit !== undefined) return { ok: true, signedData: hit };
  try {
    const signedData = signedDataFromBytes(der);
    signedDataCache.set(key, der, signedData);
    return { ok: true, signedData };
  } catch (e) {
    return { ok: false, reason: `malformed PKCS#7 signature: ${e instanceof DerError ? e.message : 'unreadable'}` };
  }
}

/**
 * A small LRU of parsed signatures keyed by the SHA-256 of their bytes. Only parsed structures are
 * kept, never verdicts; an entry also keeps the bytes, compared on a hit.
 */
class SignedDataCache {
  private readonly entries = new Map<string, { readonly der: Uint8Array; readonly signedData: SignedData }>();

  constructor(readonly capacity: number) {}

  get(key: string, der: Uint8Array): SignedData | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined || !bytesEqual(entry.der, der)) return undefined;
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.signedData;
  }

  set(key: string, der: Uint8Array, signedData: SignedData): void {
    this.entries.delete(key);
    if (this.entries.size >= this.capacity) {
      const oldest = this.entries.keys().next();
      if (oldest.done !== true) this.entries.delete(oldest.value);
    }
    this.entries.set(key, { der: der.slice(), signedData });
  }

  clear(): void {
    this.entries.clear();
  }
}

const signedDataCache = new SignedDataCache(16);

/** Forgets every cached parsed signature (for measurements and tests; verification never needs it). */
export function clearSignedDataCache(): void {
  signedDataCache.clear();
}

const SIGNED_DATA_OID = Uint8Array.of(0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02);

/**
 * Reads the message in three steps, each bounded before the next costs anything:
 *
 * 1. the structural pre-check over guest bytes (size, depth, lengths, no trailing bytes) and the
 *    certificate count;
 * 2. the envelope read from that pre-checked structure: the certificate and CRL sets and the
 *    SignerInfo's unsigned attributes, which PKCS7_verify never looks into (CRLs, countersignatures)
 *    or reads lazily (certificates), are set aside; what remains (version, digest algorithms,
 *    content info, the SignerInfo) is held to MAX_ENVELOPE_ELEMENTS, its values checked as a BER
 *    decoder checks them, and read field by field (only what verification uses is kept);
 * 3. each carried certificate decoded by OpenSSL (node:crypto X509Certificate, as d2i_PKCS7 would
 *    refuse a message with a malformed one) and its issuer, serial and subject read from the
 *    structure: the full parse waits until verification needs that certificate (the signer, a
 *    chain candidate), so carried certificates cost tens of microseconds each, not a millisecond.
 */
function signedDataFromBytes(input: Uint8Array): SignedData {
  // A private copy: carried certificates keep views into it.
  const der = input.slice();
  const root = precheckDer(der, Pkcs7Limits.MAX_SIZE);
  const count = certificateCount(root);
  if (count > Pkcs7Limits.MAX_CERTIFICATES)
    throw new DerError(`more than ${Pkcs7Limits.MAX_CERTIFICATES} certificates`);
  if (!isUniversalTlv(root, Tag.SEQUENCE, true)) throw new DerError('PKCS#7 has an unexpected type');
  let node = root;
  let wrapped = false;
  const top = children(root);
  if (isUniversalTlv(top[0], Tag.OID, false)) {
    const holder = top[1];
    if (top.length !== 2 || holder === undefined || !isContextTlv(holder, 0) || !holder.constructed)
      throw new DerError('not a valid ContentInfo');
    const type = tlvContent(top[0]!);
    if (!bytesEqual(type, SIGNED_DATA_OID))
      throw new DerError(`ContentInfo holds ${oidText(type) ?? 'an invalid OID'}, not SignedData`);
    const inner = children(holder);
    if (inner.length !== 1) throw new DerError('ContentInfo content is malformed');
    node = inner[0]!;
    if (!isUniversalTlv(node, Tag.SEQUENCE, true)) throw new DerError('SignedData has an unexpected type');
    wrapped = true;
  }

  // SignedData: version, digestAlgorithms, encapContentInfo, [0] certificates, [1] crls, signerInfos.
  const fields = children(node);
  let at = 3;
  const certSet = fields[at] !== undefined && isContextTlv(fields[at]!, 0) ? fields[at++] : undefined;
  const crlSet = fields[at] !== undefined && isContextTlv(fields[at]!, 1) ? fields[at++] : undefined;
  const signerInfos = fields[at++];
  if (fields.length < 4 || signerInfos === undefined) throw new DerError('not a valid SignedData (fields are missing)');
  if (at !== fields.length) throw new DerError('SignedData has extra fields');
  if (certSet?.constructed === false || crlSet?.constructed === false)
    throw new DerError('not a valid SignedData (certificates or CRLs are not a SET)');
  if (!isUniversalTlv(signerInfos, Tag.SET, true))
    throw new DerError('not a valid SignedData (signerInfos is not a SET)');
  const infos = children(signerInfos);
  if (infos.length !== 1) throw new DerError(`${infos.length} SignerInfos (UEFI requires exactly one)`);
  const info = infos[0]!;
  if (!isUniversalTlv(info, Tag.SEQUENCE, true))
    throw new DerError('not a valid SignedData (SignerInfo is not a SEQUENCE)');
  const infoFields = children(info);
  const unsigned = infoFields[infoFields.length - 1];
  const kept = unsigned !== undefined && isContextTlv(unsigned, 1) ? infoFields.slice(0, -1) : infoFields;
  if (kept !== infoFields) checkAttributes(unsigned!, 'unsigned attributes');
  // CRLs: PKCS7_verify never consults them (no CRL_CHECK flag), so they are only bounded and
  // checked in outline (CertificateList: SEQUENCE { tbsCertList, signatureAlgorithm, signature }).
  const crls = crlSet === undefined ? [] : children(crlSet);
  if (crls.length > Pkcs7Limits.MAX_CERTIFICATES) throw new DerError(`more than ${Pkcs7Limits.MAX_CERTIFICATES} CRLs`);
  for (const crl of crls) {
    const parts = isUniversalTlv(crl, Tag.SEQUENCE, true) ? children(crl) : [];
    if (
      parts.length !== 3 ||
      !isUniversalTlv(parts[0], Tag.SEQUENCE, true) ||
      !isUniversalTlv(parts[1], Tag.SEQUENCE, true) ||
      !isUniversalTlv(parts[2], Tag.BIT_STRING, false)
    )
      throw new DerError('not a valid SignedData (a CRL is not a CertificateList)');
  }

  const envelope = [fields[0]!, fields[1]!, fields[2]!, ...kept];
  let elements = 3;
  for (const f of envelope) elements += countElements(f, Pkcs7Limits.MAX_ENVELOPE_ELEMENTS);
  if (elements > Pkcs7Limits.MAX_ENVELOPE_ELEMENTS)
    throw new DerError(
      `more than ${Pkcs7Limits.MAX_ENVELOPE_ELEMENTS} DER elements in the digest algorithms, content info and SignerInfo`,
    );
  // What a BER decoder checks of the values it meets (certificates are OpenSSL's to check, below).
  for (const f of envelope) checkPrimitives(f);
  // version, digestAlgorithms (SET OF AlgorithmIdentifier), encapContentInfo.
  integerBytes(fields[0], 'SignedData version');
  const digestAlgorithmOids = children(expect(fields[1], Tag.SET, 'digestAlgorithms')).map((a) =>
    algorithmOid(a, 'a digest algorithm'),
  );
  // EncapsulatedContentInfo ::= SEQUENCE { eContentType OID, eContent [0] EXPLICIT ANY OPTIONAL }.
  const eci = children(expect(fields[2], Tag.SEQUENCE, 'encapContentInfo'));
  if (!isUniversal(eci[0], Tag.OID)) throw new DerError('encapContentInfo has no content type');
  const contentTypeOid = oidString(eci[0]);
  const eContent = eci[1];
  const hasEmbeddedContent = isContext(eContent, 0) && eContent.constructed && children(eContent).length > 0;

  const carried: CarriedCertificate[] = [];
  if (certSet !== undefined) {
    const budget = { left: Pkcs7Limits.MAX_PARSED_CERTIFICATES };
    children(certSet).forEach((c, i) => {
      // Only X.509 certificates (SEQUENCE); the obsolete extended and attribute certificate choices carry tags.
      if (isUniversalTlv(c, Tag.SEQUENCE, true)) carried.push(carriedCertificate(c, i, budget));
    });
  }

  const signerInfo = signerInfoFrom(kept);
  return new ParsedSignedData(wrapped, digestAlgorithmOids, contentTypeOid, hasEmbeddedContent, carried, signerInfo);
}

/** How many entries the SignedData's certificate set holds, read from the pre-checked structure. */
function certificateCount(root: Tlv): number {
  let fields = children(root);
  if (
    fields[0] !== undefined &&
    fields[0].cls === 0 &&
    fields[0].tag === Tag.OID &&
    fields[1] !== undefined &&
    isContextTlv(fields[1], 0)
  ) {
    const inner = children(fields[1])[0];
    if (inner === undefined || !inner.constructed) return 0;
    fields = children(inner);
  }
  const set = fields.find((f) => isContextTlv(f, 0) && f.constructed);
  return set === undefined ? 0 : children(set).length;
}

/** Attributes ::= SET OF SEQUENCE { type OID, values SET }, checked in structure only. */
function checkAttributes(set: Tlv, what: string): void {
  if (!set.constructed) throw new DerError(`${what} are malformed`);
  for (const a of children(set)) {
    const parts = isUniversalTlv(a, Tag.SEQUENCE, true) ? children(a) : [];
    if (parts.length !== 2 || !isUniversalTlv(parts[0], Tag.OID, false) || !isUniversalTlv(parts[1], Tag.SET, true))
      throw new DerError(`${what} are malformed`);
  }
}

function isUniversalTlv(t: Tlv | undefined, tag: number, constructed: boolean): t is Tlv {
  return t !== undefined && t.cls === 0 && t.tag === tag && t.constructed === constructed;
}

/**
 * A certificate the message carries: its encoding, checked by OpenSSL, and the fields the signer
 * and issuer searches compare, read from the structure. `certificate()` parses it in full, once.
 */
export interface CarriedCertificate {
  readonly der: Uint8Array;
  /** Encoded issuer and subject Names, serialNumber content octets (as Certificate has them). */
  readonly issuer: Uint8Array;
  readonly subject: Uint8Array;
  readonly serialNumber: Uint8Array;
  /** The full parse, or undefined when this package cannot use the certificate (`problem` says why). */
  certificate(): Certificate | undefined;
  readonly problem: string | undefined;
  /** Whether the full parse has run (it runs at most once, when verification needs the certificate). */
  readonly parsed: boolean;
}

class Carried implements CarriedCertificate {
  private result: CertificateResult | undefined;

  constructor(
    readonly der: Uint8Array,
    readonly issuer: Uint8Array,
    readonly subject: Uint8Array,
    readonly serialNumber: Uint8Array,
    /** Full parses left for the whole message (shared by its certificates). */
    private readonly budget: { left: number },
  ) {}

  certificate(): Certificate | undefined {
    if (this.result === undefined) {
      if (this.budget.left <= 0) return undefined;
      this.budget.left--;
      this.result = parseCertificate(this.der);
    }
    return this.result.ok ? this.result.certificate : undefined;
  }

  /** The full parse whatever the budget (explanations for administrators, never the guest path). */
  unbounded(): Certificate | undefined {
    this.result ??= parseCertificate(this.der);
    return this.result.ok ? this.result.certificate : undefined;
  }

  get parsed(): boolean {
    return this.result !== undefined;
  }

  get problem(): string | undefined {
    this.certificate();
    if (this.result === undefined)
      return `not read: the message needs more than ${Pkcs7Limits.MAX_PARSED_CERTIFICATES} of its certificates`;
    return this.result.ok ? undefined : this.result.reason;
  }
}

function carriedCertificate(cert: Tlv, index: number, budget: { left: number }): CarriedCertificate {
  const bad = `certificate ${index} is not a valid X.509 certificate`;
  const der = tlvBytes(cert);
  try {
    new X509Certificate(Buffer.from(der.buffer, der.byteOffset, der.byteLength));
  } catch {
    throw new DerError(bad);
  }
  // TBSCertificate: [0] version (optional), serialNumber, signature, issuer, validity, subject, ...
  const tbs = children(cert)[0];
  if (tbs === undefined || !tbs.constructed) throw new DerError(bad);
  const f = children(tbs);
  const v = f[0] !== undefined && isContextTlv(f[0], 0) ? 1 : 0;
  const serial = f[v];
  const issuer = f[v + 2];
  const subject = f[v + 4];
  if (
    !isUniversalTlv(serial, Tag.INTEGER, false) ||
    !isUniversalTlv(issuer, Tag.SEQUENCE, true) ||
    !isUniversalTlv(subject, Tag.SEQUENCE, true)
  )
    throw new DerError(bad);
  return new Carried(der, tlvBytes(issuer), tlvBytes(subject), tlvContent(serial), budget);
}

class ParsedSignedData implements SignedData {
  private all: readonly Certificate[] | undefined;

  constructor(
    readonly wrapped: boolean,
    readonly digestAlgorithmOids: readonly string[],
    readonly contentTypeOid: string,
    readonly hasEmbeddedContent: boolean,
    readonly carried: readonly CarriedCertificate[],
    readonly signerInfo: SignerInfo,
  ) {}

  /** Every carried certificate this package can parse (for explanations: verification parses only what it needs). */
  get certificates(): readonly Certificate[] {
    this.all ??= this.carried.flatMap((c) => (c instanceof Carried ? c.unbounded() : c.certificate()) ?? []);
    return this.all;
  }
}

/**
 * SignerInfo ::= SEQUENCE { version, sid, digestAlgorithm, [0] IMPLICIT signedAttrs OPTIONAL,
 * signatureAlgorithm, signature OCTET STRING } (the unsigned attributes already set aside).
 */
function signerInfoFrom(f: readonly Tlv[]): SignerInfo {
  const hasSigned = f.length === 6;
  if (f.length !== 5 && !hasSigned) throw new DerError('SignerInfo has extra fields');
  integerBytes(f[0], 'SignerInfo version');
  const sid = f[1]!;
  if (isContext(sid, 0))
    throw new DerError(
      'SignerInfo identifies its signer by key identifier (PKCS#7 as UEFI uses it needs issuer and serial number)',
    );
  // IssuerAndSerialNumber ::= SEQUENCE { issuer Name, serialNumber INTEGER }.
  const ias = children(expect(sid, Tag.SEQUENCE, 'signer identifier'));
  const issuer = tlvBytes(checkName(ias[0], 'signer issuer'));
  if (!isUniversal(ias[1], Tag.INTEGER)) throw new DerError('signer serial number is missing');
  const serialNumber = tlvContent(ias[1]);
  if (serialNumber.length === 0) throw new DerError('signer serial number is not a valid INTEGER');
  const digestAlgorithmOid = algorithmOid(f[2], 'SignerInfo digestAlgorithm');
  let signedAttributes: Uint8Array | undefined;
  let messageDigest: Uint8Array | undefined;
  if (hasSigned) {
    const attrs = f[3]!;
    if (!isContext(attrs, 0) || !attrs.constructed) throw new DerError('signed attributes are malformed');
    signedAttributes = tlvBytes(attrs);
    messageDigest = findMessageDigest(attrs);
  }
  const signatureAlgorithmOid = algorithmOid(f[hasSigned ? 4 : 3], 'SignerInfo signatureAlgorithm');
  const signatureNode = f[hasSigned ? 5 : 4];
  // A primitive OCTET STRING, as the schema-driven decoders that came before required.
  if (!isUniversal(signatureNode, Tag.OCTET_STRING) || signatureNode.constructed)
    throw new DerError('SignerInfo signature is not an OCTET STRING');
  const signature = octetString(signatureNode, 'SignerInfo signature');
  return {
    issuer,
    serialNumber,
    digestAlgorithmOid,
    signedAttributes,
    messageDigest,
    signatureAlgorithmOid,
    signature,
  };
}

/**
 * The first messageDigest attribute's value. Every signed attribute must be an Attribute
 * (SEQUENCE { type OID, values SET }); what follows its values is ignored.
 */
function findMessageDigest(attrs: Tlv): Uint8Array | undefined {
  let digest: Uint8Array | undefined;
  let found = false;
  for (const a of children(attrs)) {
    const parts = isUniversal(a, Tag.SEQUENCE) && a.constructed ? children(a) : [];
    if (parts.length < 2 || !isUniversal(parts[0], Tag.OID) || !isUniversal(parts[1], Tag.SET) || !parts[1].constructed)
      throw new DerError('signed attributes are malformed');
    if (found || oidString(parts[0]) !== Oid.MESSAGE_DIGEST) continue;
    found = true;
    digest = octetString(children(parts[1])[0], 'messageDigest');
  }
  return digest;
}

/** The certificate in the message that SignerInfo names, if any (parsed only then). */
export function findSigner(sd: SignedData): Certificate | undefined {
  return carriedSigner(sd)?.certificate();
}

function carriedSigner(sd: SignedData): CarriedCertificate | undefined {
  const { issuer, serialNumber } = sd.signerInfo;
  return sd.carried.find((c) => bytesEqual(c.issuer, issuer) && bytesEqual(c.serialNumber, serialNumber));
}

/**
 * Per-write verification state: results that do not depend on the trust anchor (the content
 * signature, certificate-to-issuer signatures) are computed once, and RSA work is counted.
 */
export class VerificationContext {
  private signatureChecks = 0;
  private readonly links = new Map<Certificate, Map<Certificate, boolean>>();
  private contentResult: ContentSignatureResult | undefined;

  constructor(
    readonly signedData: SignedData,
    readonly content: Uint8Array,
  ) {}

  /** How many RSA verifications this write has cost so far. */
  get checks(): number {
    return this.signatureChecks;
  }

  /** Verifies the SignerInfo's signature over the detached content (once). */
  contentSignature(): ContentSignatureResult {
    this.contentResult ??= this.checkContentSignature();
    return this.contentResult;
  }

  private checkContentSignature(): ContentSignatureResult {
    const sd = this.signedData;
    const si = sd.signerInfo;
    const carried = carriedSigner(sd);
    const signer = carried?.certificate();
    if (signer === undefined)
      return {
        ok: false,
        code: 'signer-missing',
        reason:
          carried === undefined
            ? 'the signer certificate named by SignerInfo is not in the message'
            : `the signer certificate cannot be read: ${carried.problem}`,
      };
    if (sd.digestAlgorithmOids[0] !== Oid.SHA256) {
      const first = sd.digestAlgorithmOids[0];
      return {
        ok: false,
        code: 'unsupported-algorithm',
        signer,
        reason: `the message's digest algorithm is ${first === undefined ? 'missing' : oidName(first)} (only SHA-256 is accepted)`,
      };
    }
    if (si.digestAlgorithmOid !== Oid.SHA256) {
      return {
        ok: false,
        code: 'unsupported-algorithm',
        signer,
        reason: `the signer's digest algorithm is ${oidName(si.digestAlgorithmOid)} (only SHA-256 is accepted)`,
      };
    }
    if (si.signatureAlgorithmOid !== Oid.RSA_ENCRYPTION && si.signatureAlgorithmOid !== Oid.SHA256_WITH_RSA) {
      return {
        ok: false,
        code: 'unsupported-algorithm',
        signer,
        reason: `the signature algorithm is ${oidName(si.signatureAlgorithmOid)} (only RSA PKCS#1 v1.5 is accepted)`,
      };
    }
    const key = rsaKeyObject(signer);
    if (key === undefined)
      return {
        ok: false,
        code: 'unsupported-algorithm',
        signer,
        reason: `the signer's public key (${oidName(signer.publicKeyAlgorithmOid)}) is not a usable RSA key`,
      };
    let signed: Uint8Array = this.content;
    if (si.signedAttributes !== undefined) {
      if (si.messageDigest === undefined)
        return { ok: false, code: 'bad-signature', signer, reason: 'the signed attributes carry no messageDigest' };
      const digest = createHash('sha256').update(this.content).digest();
      if (!bytesEqual(digest, si.messageDigest))
        return {
          ok: false,
          code: 'bad-signature',
          signer,
          reason: 'the messageDigest attribute does not match the signed content',
        };
      // The signature covers the attributes re-tagged as a SET OF (RFC 5652 §5.4).
      const set = si.signedAttributes.slice();
      set[0] = 0x31;
      signed = set;
    }
    if (!this.rsaVerify('sha256', signed, key, si.signature))
      return {
        ok: false,
        code: 'bad-signature',
        signer,
        reason: 'the signature does not verify over the signed content',
      };
    return { ok: true, signer };
  }

  /** Whether `issuer`'s key verifies `subject`'s certificate signature (memoised). */
  linkVerifies(subject: Certificate, issuer: Certificate): boolean {
    let byIssuer = this.links.get(subject);
    if (byIssuer === undefined) {
      byIssuer = new Map();
      this.links.set(subject, byIssuer);
    }
    let ok = byIssuer.get(issuer);
    if (ok === undefined) {
      ok = this.checkLink(subject, issuer);
      byIssuer.set(issuer, ok);
    }
    return ok;
  }

  private checkLink(subject: Certificate, issuer: Certificate): boolean {
    // OpenSSL refuses a certificate whose inner and outer signature algorithms differ.
    if (!bytesEqual(subject.tbsSignatureAlgorithm, subject.signatureAlgorithm)) return false;
    const hash = CERTIFICATE_SIGNATURE_HASH.get(subject.signatureAlgorithmOid);
    const key = rsaKeyObject(issuer);
    if (hash === undefined || key === undefined) return false;
    return this.rsaVerify(hash, subject.tbs, key, subject.signature);
  }

  private rsaVerify(hash: string, data: Uint8Array, key: KeyObject, signature: Uint8Array): boolean {
    if (this.signatureChecks >= Pkcs7Limits.MAX_SIGNATURE_CHECKS) return false;
    this.signatureChecks++;
    try {
      return cryptoVerify(hash, data, key, signature);
    } catch {
      return false;
    }
  }

  get exhausted(): boolean {
    return this.signatureChecks >= Pkcs7Limits.MAX_SIGNATURE_CHECKS;
  }
}

export type ContentSignatureResult =
  | { readonly ok: true; readonly signer: Certificate }
  | {
      readonly ok: false;
      readonly code: 'signer-missing' | 'unsupported-algorithm' | 'bad-signature';
      readonly reason: string;
      readonly signer?: Certificate;
    };

export type ChainResult =
  | { readonly ok: true; readonly signer: Certificate; readonly chain: readonly Certificate[] }
  | { readonly ok: false; readonly reason: string; readonly signer?: Certificate };

/**
 * Verifies the message under UEFI's rules against one trusted certificate, the way edk2 and
 * varstored do with OpenSSL (PKCS7_verify with PARTIAL_CHAIN, NO_CHECK_TIME, PURPOSE_ANY and the
 * anchor as the only trusted certificate):
 *
 * 1. the content signature verifies with the signer's key;
 * 2. a chain is built from the signer, at each step preferring the anchor as issuer, otherwise the
 *    first carried certificate that names and admits being the issuer (no backtracking);
 * 3. it is trusted when it reached the anchor, or when the signer itself is the anchor;
 * 4. every certificate above the signer is a CA (basicConstraints cA below the top), no
 *    certificate has an invalid or unhandled critical extension, path lengths hold;
 * 5. each certificate's signature verifies with the key of the next one.
 *
 * Validity dates, extended key usage and revocation are never considered.
 */
export function verifyWithAnchor(ctx: VerificationContext, anchor: Certificate): ChainResult {
  const content = ctx.contentSignature();
  if (!content.ok) return content;
  const signer = content.signer;
  const pool = ctx.signedData.carried;
  const chain: Certificate[] = [signer];
  let trusted = false;
  for (;;) {
    const cur = chain[chain.length - 1]!;
    if (issuedBy(cur, anchor)) {
      // A self-issued certificate identical to the anchor is replaced by it, not chained to it.
      if (bytesEqual(cur.der, anchor.der)) chain[chain.length - 1] = anchor;
      else chain.push(anchor);
      trusted = true;
      break;
    }
    if (chain.length >= Pkcs7Limits.MAX_CHAIN_LENGTH || selfIssued(cur)) break;
    const next = nextIssuer(pool, chain, cur);
    if (next === undefined) break;
    chain.push(next);
  }
  // Last resort, as OpenSSL's partial-chain rule: the signer is itself the trusted certificate.
  if (!trusted && bytesEqual(signer.der, anchor.der)) trusted = true;
  if (!trusted) {
    return {
      ok: false,
      signer,
      reason: `signer ${signer.subjectText} (issuer ${signer.issuerText}) does not chain to ${anchor.subjectText}`,
    };
  }
  if (chain.length > Pkcs7Limits.MAX_CHAIN_LENGTH) {
    return {
      ok: false,
      signer,
      reason: `the chain from ${signer.subjectText} to ${anchor.subjectText} is longer than ${Pkcs7Limits.MAX_CHAIN_LENGTH} certificates`,
    };
  }
  const problem = extensionProblem(chain);
  if (problem !== undefined) return { ok: false, signer, reason: problem };
  // A self-issued top is trusted as is; a partial chain's top is trusted as the anchor.
  for (let i = chain.length - 2; i >= 0; i--) {
    if (!ctx.linkVerifies(chain[i]!, chain[i + 1]!)) {
      const why = ctx.exhausted ? ' (signature-check budget exhausted)' : '';
      return {
        ok: false,
        signer,
        reason: `the signature of ${chain[i]!.subjectText} does not verify with the key of ${chain[i + 1]!.subjectText}${why}`,
      };
    }
  }
  return { ok: true, signer, chain };
}

/**
 * The first carried certificate, not yet in the chain, that may have issued `cur`. Only those
 * whose subject is `cur`'s issuer (issuedBy's first test) are parsed in full.
 */
function nextIssuer(
  pool: readonly CarriedCertificate[],
  chain: readonly Certificate[],
  cur: Certificate,
): Certificate | undefined {
  for (const c of pool) {
    if (!bytesEqual(c.subject, cur.issuer) || chain.some((x) => bytesEqual(x.der, c.der))) continue;
    const cert = c.certificate();
    if (cert !== undefined && issuedBy(cur, cert)) return cert;
  }
  return undefined;
}

/** OpenSSL's check_chain_extensions over a built chain (signer first). */
function extensionProblem(chain: readonly Certificate[]): string | undefined {
  let below = 0;
  for (let i = 0; i < chain.length; i++) {
    const c = chain[i]!;
    if (c.chainProblem !== undefined) return `certificate ${c.subjectText}: ${c.chainProblem}`;
    if (i > 0) {
      const kind = caKind(c);
      const top = i === chain.length - 1;
      if (kind === 0 || (!top && kind !== 1))
        return `certificate ${c.subjectText} issues ${chain[i - 1]!.subjectText} but is not a CA`;
      const pathLength = c.basicConstraints?.pathLength;
      if (i > 1 && pathLength !== undefined && below > pathLength) {
        return `certificate ${c.subjectText} allows ${pathLength} intermediate CAs below it, the chain has ${below}`;
      }
      if (!selfIssued(c)) below++;
    }
  }
  return undefined;
}

/** The UEFI serialization that an EFI_VARIABLE_AUTHENTICATION_2 signature covers (UEFI 2.10 §8.2.6). */
export function signedContent(
  name: Uint8Array,
  guid: Uint8Array,
  attributes: number,
  timestamp: Uint8Array,
  payload: Uint8Array,
): Uint8Array {
  const out = new Uint8Array(name.length + 16 + 4 + 16 + payload.length);
  let at = 0;
  out.set(name, at);
  at += name.length;
  out.set(guid.subarray(0, 16), at);
  at += 16;
  new DataView(out.buffer).setUint32(at, attributes >>> 0, true);
  at += 4;
  out.set(timestamp.subarray(0, 16), at);
  at += 16;
  out.set(payload, at);
  return out;
}
