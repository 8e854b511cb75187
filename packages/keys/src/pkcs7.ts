import { createHash, verify, X509Certificate } from 'node:crypto';
import { certificateFields } from './certificate.js';
import {
  children,
  concatBytes,
  content,
  contextTag,
  DerError,
  encoding,
  expectElement,
  nullValue,
  octetString,
  oid,
  oidText,
  readElement,
  sequence,
  setOf,
  smallInteger,
  Tag,
  tlv,
  type Element,
} from './der.js';
import { Oid } from './oids.js';

/**
 * The signed attributes of a SignerInfo as a DER SET (tag 0x31, the form the signature covers):
 * contentType = id-data and messageDigest = `digest`. Nothing time-dependent, so output stays
 * reproducible.
 */
export function signedAttributesFor(digest: Uint8Array): Uint8Array {
  return setOf(
    sequence(oid(Oid.contentType), setOf(oid(Oid.data))),
    sequence(oid(Oid.messageDigest), setOf(octetString(digest))),
  );
}

export interface SignedDataParts {
  /** The signer's certificate (DER). */
  readonly signer: Uint8Array;
  /** Further certificates to carry (intermediates), in order. */
  readonly chain?: readonly Uint8Array[];
  /** RSASSA-PKCS1-v1_5 signature (SHA-256) over the content, or over `signedAttributes` when given. */
  readonly signature: Uint8Array;
  /** DER SET of signed attributes (from `signedAttributesFor`), when the signature covers them. */
  readonly signedAttributes?: Uint8Array;
}

/**
 * A detached PKCS#7 SignedData (no ContentInfo wrapper) in the profile UEFI specifies and efitools
 * and OpenSSL's PKCS7_sign produce: version 1, digest SHA-256, content type id-data with the content
 * absent, the certificates, one SignerInfo v1 identified by issuer and serial number, signature
 * algorithm rsaEncryption.
 */
export function buildSignedData(parts: SignedDataParts): Uint8Array {
  const signer = certificateFields(parts.signer);
  const sha256 = sequence(oid(Oid.sha256), nullValue());
  const attributes: Uint8Array[] = [];
  if (parts.signedAttributes !== undefined) {
    if (parts.signedAttributes[0] !== Tag.SET) throw new TypeError('signed attributes must be a DER SET');
    // In SignerInfo the SET is carried as [0] IMPLICIT: same content, context tag.
    attributes.push(concatBytes([Uint8Array.of(contextTag(0)), parts.signedAttributes.subarray(1)]));
  }
  const signerInfo = sequence(
    smallInteger(1),
    sequence(signer.issuer, signer.serialNumber),
    sha256,
    ...attributes,
    sequence(oid(Oid.rsaEncryption), nullValue()),
    octetString(parts.signature),
  );
  return sequence(
    smallInteger(1),
    setOf(sha256),
    sequence(oid(Oid.data)),
    tlv(contextTag(0), parts.signer, ...(parts.chain ?? [])),
    setOf(signerInfo),
  );
}

/** `SignedData` inside a ContentInfo (what `openssl cms -sign` writes and some firmware tools expect). */
export function wrapContentInfo(signedData: Uint8Array): Uint8Array {
  return sequence(oid(Oid.signedData), tlv(contextTag(0), signedData));
}

/** A SignedData taken apart, with offsets resolved to byte views. */
export interface ParsedSignedData {
  /** The bare SignedData encoding (a ContentInfo wrapper removed). */
  readonly signedData: Uint8Array;
  readonly digestAlgorithms: readonly string[];
  /** encapContentInfo carries content (an attached signature). */
  readonly hasContent: boolean;
  readonly certificates: readonly Uint8Array[];
  readonly signerInfoCount: number;
  /** The first SignerInfo. */
  readonly signer: {
    readonly version: number;
    /** issuer Name and serialNumber INTEGER encodings, when identified by issuerAndSerialNumber. */
    readonly issuer?: Uint8Array;
    readonly serialNumber?: Uint8Array;
    readonly digestAlgorithm: string;
    /** Signed attributes re-tagged as the DER SET the signature covers. */
    readonly signedAttributes?: Uint8Array;
    readonly signatureAlgorithm: string;
    readonly signature: Uint8Array;
  };
}

/**
 * Parses PKCS#7/CMS SignedData, bare or in a ContentInfo. Throws DerError (a message for the user)
 * when the bytes are not DER SignedData. `bytes` is only read.
 */
export function parseSignedData(bytes: Uint8Array): ParsedSignedData {
  let top = expectElement(bytes, 0, bytes.length, Tag.SEQUENCE, 'PKCS#7');
  if (top.end !== bytes.length) throw new DerError(`${bytes.length - top.end} bytes after the PKCS#7 structure`);
  let parts = children(bytes, top);
  if (parts[0]?.tag === Tag.OID) {
    // ContentInfo { contentType, [0] EXPLICIT content }.
    if (oidText(bytes, parts[0]) !== Oid.signedData) throw new DerError(`ContentInfo holds ${oidText(bytes, parts[0])}, not signedData`);
    const wrapped = parts[1];
    if (wrapped === undefined || wrapped.tag !== contextTag(0)) throw new DerError('ContentInfo without content');
    top = expectElement(bytes, wrapped.contentStart, wrapped.end, Tag.SEQUENCE, 'SignedData');
    parts = children(bytes, top);
  }
  const [version, digestSet, encap, ...rest] = parts;
  if (version?.tag !== Tag.INTEGER) throw new DerError('SignedData: missing version');
  if (digestSet?.tag !== Tag.SET) throw new DerError('SignedData: missing digestAlgorithms');
  if (encap?.tag !== Tag.SEQUENCE) throw new DerError('SignedData: missing encapContentInfo');
  const digestAlgorithms = children(bytes, digestSet).map((alg) => algorithmOid(bytes, alg));
  const encapParts = children(bytes, encap);
  const certificates: Uint8Array[] = [];
  let signerInfos: Element | undefined;
  for (const el of rest) {
    if (el.tag === contextTag(0)) {
      for (const c of children(bytes, el)) if (c.tag === Tag.SEQUENCE) certificates.push(encoding(bytes, c));
    } else if (el.tag === Tag.SET) {
      signerInfos = el;
    }
  }
  if (signerInfos === undefined) throw new DerError('SignedData: missing signerInfos');
  const infos = children(bytes, signerInfos);
  const first = infos[0];
  if (first === undefined || first.tag !== Tag.SEQUENCE) throw new DerError('SignedData: no SignerInfo');
  const f = children(bytes, first);
  if (f[0]?.tag !== Tag.INTEGER || f[1] === undefined || f[2] === undefined) throw new DerError('SignerInfo: truncated');
  const signerVersion = content(bytes, f[0]).reduce((n, b) => n * 256 + b, 0);
  let issuer: Uint8Array | undefined;
  let serialNumber: Uint8Array | undefined;
  if (f[1].tag === Tag.SEQUENCE) {
    const ias = children(bytes, f[1]);
    if (ias[0]?.tag !== Tag.SEQUENCE || ias[1]?.tag !== Tag.INTEGER) throw new DerError('SignerInfo: malformed issuerAndSerialNumber');
    issuer = encoding(bytes, ias[0]);
    serialNumber = encoding(bytes, ias[1]);
  }
  const digestAlgorithm = algorithmOid(bytes, f[2]);
  let i = 3;
  let signedAttributes: Uint8Array | undefined;
  if (f[i]?.tag === contextTag(0)) {
    const el = f[i]!;
    signedAttributes = concatBytes([Uint8Array.of(Tag.SET), bytes.subarray(el.start + 1, el.end)]);
    i++;
  }
  const sigAlg = f[i];
  const sig = f[i + 1];
  if (sigAlg === undefined || sig?.tag !== Tag.OCTET_STRING) throw new DerError('SignerInfo: missing signature');
  return {
    signedData: encoding(bytes, top),
    digestAlgorithms,
    hasContent: encapParts.length > 1,
    certificates,
    signerInfoCount: infos.length,
    signer: {
      version: signerVersion,
      ...(issuer !== undefined ? { issuer } : {}),
      ...(serialNumber !== undefined ? { serialNumber } : {}),
      digestAlgorithm,
      ...(signedAttributes !== undefined ? { signedAttributes } : {}),
      signatureAlgorithm: algorithmOid(bytes, sigAlg),
      signature: content(bytes, sig),
    },
  };
}

function algorithmOid(bytes: Uint8Array, alg: Element): string {
  if (alg.tag !== Tag.SEQUENCE) throw new DerError(`expected an AlgorithmIdentifier at offset ${alg.start}`);
  const first = readElement(bytes, alg.contentStart, alg.end);
  return oidText(bytes, first);
}

/**
 * A copy of `signedData` (bare) whose certificates field is replaced by `certificates`. Used when a
 * signature was made without embedding the signer's certificate (`openssl cms -nocerts`).
 */
export function withCertificates(signedData: Uint8Array, certificates: readonly Uint8Array[]): Uint8Array {
  const top = expectElement(signedData, 0, signedData.length, Tag.SEQUENCE, 'SignedData');
  const parts = children(signedData, top);
  const kept = parts.filter((el) => el.tag !== contextTag(0)).map((el) => encoding(signedData, el));
  // certificates sits right after version, digestAlgorithms and encapContentInfo.
  return sequence(...kept.slice(0, 3), tlv(contextTag(0), ...certificates), ...kept.slice(3));
}

/**
 * Checks that a SignedData's one SignerInfo signs `data` (SHA-256, RSA PKCS#1 v1.5), with or without
 * signed attributes, using the signer certificate it carries. This says nothing about trust; it only
 * catches a signature made over other bytes or with another key. Returns the signer certificate, or
 * throws an Error saying what does not match.
 */
export function checkDetachedSignature(parsed: ParsedSignedData, data: Uint8Array): Uint8Array {
  if (parsed.signerInfoCount !== 1) throw new Error(`UEFI needs exactly one SignerInfo, found ${parsed.signerInfoCount}`);
  if (parsed.hasContent) throw new Error('the signature is not detached (it carries content); sign with -binary and without -nodetach');
  const s = parsed.signer;
  if (s.digestAlgorithm !== Oid.sha256) throw new Error(`the digest algorithm is ${s.digestAlgorithm}, UEFI needs SHA-256 (${Oid.sha256})`);
  if (s.signatureAlgorithm !== Oid.rsaEncryption && s.signatureAlgorithm !== Oid.sha256WithRSAEncryption) {
    throw new Error(`the signature algorithm is ${s.signatureAlgorithm}, UEFI needs RSA PKCS#1 v1.5`);
  }
  if (s.issuer === undefined || s.serialNumber === undefined) throw new Error('the SignerInfo does not name its signer by issuer and serial number');
  const signer = parsed.certificates.find((der) => {
    try {
      const f = certificateFields(der);
      return equal(f.issuer, s.issuer!) && equal(f.serialNumber, s.serialNumber!);
    } catch {
      return false;
    }
  });
  if (signer === undefined) throw new Error("the signer's certificate is not in the signature; supply it");
  const digest = new Uint8Array(createHash('sha256').update(data).digest());
  let covered = data;
  if (s.signedAttributes !== undefined) {
    const md = messageDigestOf(s.signedAttributes);
    if (md === undefined) throw new Error('the signed attributes have no messageDigest');
    if (!equal(md, digest)) throw new Error('the messageDigest attribute is not the SHA-256 of the bytes to sign');
    covered = s.signedAttributes;
  }
  const publicKey = new X509Certificate(signer).publicKey;
  if (!verify('sha256', covered, publicKey, s.signature)) throw new Error("the signature does not verify with the signer's key over the bytes to sign");
  return signer;
}

function messageDigestOf(attributes: Uint8Array): Uint8Array | undefined {
  const set = expectElement(attributes, 0, attributes.length, Tag.SET, 'signed attributes');
  for (const attr of children(attributes, set)) {
    const [type, values] = children(attributes, attr);
    if (type?.tag !== Tag.OID || values?.tag !== Tag.SET || oidText(attributes, type) !== Oid.messageDigest) continue;
    const value = children(attributes, values)[0];
    if (value?.tag === Tag.OCTET_STRING) return content(attributes, value);
  }
  return undefined;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
