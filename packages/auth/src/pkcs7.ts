import { createHash, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import * as pkijs from 'pkijs';
import { Tag, content, decodeDer, expect, isContext, isUniversal, kids, octetString, raw, type Node } from './asn1.js';
import { DerError, bytesEqual, children, isContextTlv, precheckDer, type Tlv } from './der.js';
import { CERTIFICATE_SIGNATURE_HASH, Oid, oidName } from './oids.js';
import { caKind, certificateFromNode, issuedBy, rsaKeyObject, selfIssued, type Certificate } from './x509.js';

/** Bounds on the work one signature may cause (DESIGN.md §5). */
export const Pkcs7Limits = {
  /** Largest encoded SignedData accepted. */
  MAX_SIZE: 65536,
  /** Most certificates a SignedData may carry. */
  MAX_CERTIFICATES: 32,
  /** Most certificates in a chain from the signer to a trust anchor, both included. */
  MAX_CHAIN_LENGTH: 8,
  /** Most RSA verifications one authenticated write may trigger. */
  MAX_SIGNATURE_CHECKS: 64,
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
  readonly certificates: readonly Certificate[];
  readonly signerInfo: SignerInfo;
}

export type SignedDataResult =
  | { readonly ok: true; readonly signedData: SignedData }
  | { readonly ok: false; readonly reason: string };

/**
 * Parses a DER PKCS#7 SignedData, bare or wrapped in a ContentInfo, as found in
 * WIN_CERTIFICATE_UEFI_GUID.CertData, with asn1js and pkijs after the bounded pre-check. Parsed
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

function signedDataFromBytes(der: Uint8Array): SignedData {
  // Bounds first: the structural pre-check (size, depth, definite lengths, no trailing bytes) and
  // the certificate count, before asn1js and pkijs are asked to build anything.
  const count = certificateCount(precheckDer(der, Pkcs7Limits.MAX_SIZE));
  if (count > Pkcs7Limits.MAX_CERTIFICATES)
    throw new DerError(`more than ${Pkcs7Limits.MAX_CERTIFICATES} certificates`);
  const root = expect(decodeDer(der, Pkcs7Limits.MAX_SIZE), Tag.SEQUENCE, 'PKCS#7');
  let node = root;
  let wrapped = false;
  if (isUniversal(kids(root)[0], Tag.OID)) {
    const info = pkijsRead(() => new pkijs.ContentInfo({ schema: root }), 'ContentInfo');
    if (info.contentType !== Oid.SIGNED_DATA)
      throw new DerError(`ContentInfo holds ${info.contentType}, not SignedData`);
    if (kids(root).length !== 2 || kids(kids(root)[1]!).length !== 1)
      throw new DerError('ContentInfo content is malformed');
    node = expect(info.content as Node, Tag.SEQUENCE, 'SignedData');
    wrapped = true;
  }
  const fields = kids(node);
  const sd = pkijsRead(() => new pkijs.SignedData({ schema: node }), 'SignedData');
  if (fields.length !== 4 + (sd.certificates !== undefined ? 1 : 0) + (sd.crls !== undefined ? 1 : 0))
    throw new DerError('SignedData has extra fields');

  const digestAlgorithmOids = (sd.digestAlgorithms ?? []).map((a) => a.algorithmId);
  const contentTypeOid = sd.encapContentInfo.eContentType;
  const hasEmbeddedContent = sd.encapContentInfo.eContent !== undefined;

  // pkijs reads the certificate set in order; the asn1js nodes give each one's exact encoding.
  const certificates: Certificate[] = [];
  const certNodes = fields.find((f) => isContext(f, 0));
  if (sd.certificates !== undefined && certNodes !== undefined) {
    const nodes = kids(certNodes);
    sd.certificates.forEach((c, i) => {
      const n = nodes[i];
      // Only X.509 certificates (SEQUENCE); the obsolete extended and attribute certificate choices carry tags.
      if (!(c instanceof pkijs.Certificate) || !isUniversal(n, Tag.SEQUENCE)) return;
      certificates.push(certificateFromNode(n, c));
    });
  }

  const signerInfos = sd.signerInfos;
  if (signerInfos.length !== 1) throw new DerError(`${signerInfos.length} SignerInfos (UEFI requires exactly one)`);
  const signerNode = kids(fields[fields.length - 1]!)[0]!;
  const signerInfo = signerInfoFrom(signerInfos[0]!, signerNode);
  return { wrapped, digestAlgorithmOids, contentTypeOid, hasEmbeddedContent, certificates, signerInfo };
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

/** Runs a pkijs constructor, turning its schema errors into DerError. */
function pkijsRead<T>(read: () => T, what: string): T {
  try {
    return read();
  } catch (e) {
    if (e instanceof DerError) throw e;
    throw new DerError(`not a valid ${what}${e instanceof Error ? ` (${e.message.slice(0, 120)})` : ''}`);
  }
}

function signerInfoFrom(si: pkijs.SignerInfo, node: Node): SignerInfo {
  const f = kids(node);
  if (f.length !== 5 + (si.signedAttrs !== undefined ? 1 : 0) + (si.unsignedAttrs !== undefined ? 1 : 0))
    throw new DerError('SignerInfo has extra fields');
  if (!(si.sid instanceof pkijs.IssuerAndSerialNumber)) {
    throw new DerError(
      'SignerInfo identifies its signer by key identifier (PKCS#7 as UEFI uses it needs issuer and serial number)',
    );
  }
  const sid = kids(f[1]!);
  const issuer = raw(expect(sid[0], Tag.SEQUENCE, 'signer issuer'));
  const serialNumber = content(si.sid.serialNumber as unknown as Node);
  if (serialNumber.length === 0) throw new DerError('signer serial number is not a valid INTEGER');
  let signedAttributes: Uint8Array | undefined;
  let messageDigest: Uint8Array | undefined;
  if (si.signedAttrs !== undefined) {
    const attrs = f[3]!;
    if (!isContext(attrs, 0) || !attrs.idBlock.isConstructed) throw new DerError('signed attributes are malformed');
    signedAttributes = raw(attrs);
    messageDigest = findMessageDigest(si.signedAttrs);
  }
  const signature = octetString(si.signature as unknown as Node, 'SignerInfo signature');
  return {
    issuer,
    serialNumber,
    digestAlgorithmOid: si.digestAlgorithm.algorithmId,
    signedAttributes,
    messageDigest,
    signatureAlgorithmOid: si.signatureAlgorithm.algorithmId,
    signature,
  };
}

function findMessageDigest(attrs: pkijs.SignedAndUnsignedAttributes): Uint8Array | undefined {
  for (const attr of attrs.attributes) {
    if (attr.type !== Oid.MESSAGE_DIGEST) continue;
    return octetString(attr.values[0] as Node | undefined, 'messageDigest');
  }
  return undefined;
}

/** The certificate in the message that SignerInfo names, if any. */
export function findSigner(sd: SignedData): Certificate | undefined {
  return sd.certificates.find(
    (c) => bytesEqual(c.issuer, sd.signerInfo.issuer) && bytesEqual(c.serialNumber, sd.signerInfo.serialNumber),
  );
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
    const signer = findSigner(sd);
    if (signer === undefined)
      return {
        ok: false,
        code: 'signer-missing',
        reason: 'the signer certificate named by SignerInfo is not in the message',
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
  const pool = ctx.signedData.certificates;
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
    const next = pool.find((c) => !chain.some((x) => bytesEqual(x.der, c.der)) && issuedBy(cur, c));
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
