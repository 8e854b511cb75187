import { createHash, verify, X509Certificate } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { algorithmWithNull, asn1Schema, toDer } from './asn1.js';
import { certificateFields } from './certificate.js';
import { bytesEqual } from '@vmsb/protocol';
import { Oid } from '@vmsb/auth';
import {
  DerError,
  Tag,
  algorithmOid,
  children,
  decodeDer,
  expect,
  integerBytes,
  isContext,
  isUniversal,
  octetString,
  oidString,
  smallInteger,
  tlvBytes,
  tlvContent,
  type Tlv,
} from '@vmsb/auth/der';

/**
 * The signed attributes of a SignerInfo as a DER SET (tag 0x31, the form the signature covers):
 * contentType = id-data and messageDigest = `digest`. Nothing time-dependent, so output stays
 * reproducible.
 */
export function signedAttributesFor(digest: Uint8Array): Uint8Array {
  const attributes = [
    new pkijs.Attribute({ type: Oid.CONTENT_TYPE, values: [new asn1js.ObjectIdentifier({ value: Oid.DATA })] }),
    new pkijs.Attribute({ type: Oid.MESSAGE_DIGEST, values: [new asn1js.OctetString({ valueHex: digest })] }),
  ].map((a) => ({ schema: a.toSchema(), der: toDer(a.toSchema()) }));
  // DER orders a SET OF by the encodings of its elements (X.690 §11.6); asn1js keeps insertion order.
  attributes.sort((a, b) => compareBytes(a.der, b.der));
  return toDer(new asn1js.Set({ value: attributes.map((a) => a.schema) }));
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
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
 * algorithm rsaEncryption. The signature is made by the caller (synchronously, with node:crypto).
 */
export function buildSignedData(parts: SignedDataParts): Uint8Array {
  const signer = certificateFields(parts.signer);
  const certificates = [parts.signer, ...(parts.chain ?? [])].map(carriedCertificate);
  let signedAttrs: pkijs.SignedAndUnsignedAttributes | undefined;
  if (parts.signedAttributes !== undefined) {
    const set = asn1Schema(parts.signedAttributes, 'signed attributes');
    if (!(set instanceof asn1js.Set)) throw new TypeError('signed attributes must be a DER SET');
    // type 0: carried as [0] IMPLICIT, same content as the SET the signature covers.
    signedAttrs = new pkijs.SignedAndUnsignedAttributes({
      type: 0,
      attributes: set.valueBlock.value.map((a) => new pkijs.Attribute({ schema: a })),
    });
  }
  const signerInfo = new pkijs.SignerInfo({
    version: 1,
    sid: new pkijs.IssuerAndSerialNumber({
      // The signer's issuer Name and serial number, carried over byte for byte.
      issuer: new pkijs.RelativeDistinguishedNames({ schema: asn1Schema(signer.issuer, 'issuer Name') }),
      serialNumber: new asn1js.Integer({ valueHex: signer.serialNumber }),
    }),
    digestAlgorithm: algorithmWithNull(Oid.SHA256),
    ...(signedAttrs !== undefined ? { signedAttrs } : {}),
    signatureAlgorithm: algorithmWithNull(Oid.RSA_ENCRYPTION),
    signature: new asn1js.OctetString({ valueHex: parts.signature }),
  });
  const signedData = new pkijs.SignedData({
    // pkijs derives the version from the contents: 1 here (id-data, issuerAndSerialNumber, X.509 only).
    digestAlgorithms: [algorithmWithNull(Oid.SHA256)],
    // No eContent: the signature is detached from the data it covers.
    encapContentInfo: new pkijs.EncapsulatedContentInfo({ eContentType: Oid.DATA }),
    certificates,
    signerInfos: [signerInfo],
  });
  return toDer(signedData.toSchema());
}

/**
 * A certificate to embed. pkijs re-emits a decoded certificate from its parts, which reproduces a DER
 * certificate exactly; anything else would change the signed bytes, so it is refused.
 */
function carriedCertificate(der: Uint8Array): pkijs.Certificate {
  certificateFields(der);
  const certificate = new pkijs.Certificate({ schema: asn1Schema(der, 'certificate') });
  if (!bytesEqual(toDer(certificate.toSchema()), der)) throw new TypeError('a certificate to embed is not in DER form');
  return certificate;
}

/** `SignedData` inside a ContentInfo (what `openssl cms -sign` writes and some firmware tools expect). */
export function wrapContentInfo(signedData: Uint8Array): Uint8Array {
  const contentInfo = new pkijs.ContentInfo({
    contentType: Oid.SIGNED_DATA,
    content: asn1Schema(signedData, 'SignedData'),
  });
  const out = toDer(contentInfo.toSchema());
  // The decoded SignedData is re-emitted; make sure it came out as it went in.
  if (!bytesEqual(out.subarray(out.length - signedData.length), signedData))
    throw new TypeError('the SignedData is not in DER form');
  return out;
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
    /** issuer Name encoding and serialNumber INTEGER content octets, when identified by issuerAndSerialNumber. */
    readonly issuer?: Uint8Array;
    readonly serialNumber?: Uint8Array;
    readonly digestAlgorithm: string;
    /** Signed attributes re-tagged as the DER SET the signature covers. */
    readonly signedAttributes?: Uint8Array;
    readonly signatureAlgorithm: string;
    readonly signature: Uint8Array;
  };
}

/** Thrown when bytes are not PKCS#7 SignedData; the message is for the user. */
export class Pkcs7Error extends Error {
  override readonly name = 'Pkcs7Error';
}

/** Largest signature file read (the daemon takes 64 KiB; a tool may see a bigger one and say why it fails). */
const MAX_SIGNED_DATA_SIZE = 1 << 20;

/**
 * Parses PKCS#7/CMS SignedData, bare or in a ContentInfo, with `@vmsb/auth`'s bounded DER reader.
 * Throws Pkcs7Error when the bytes are not SignedData. `bytes` is only read; the views returned are
 * of a private copy.
 */
export function parseSignedData(bytes: Uint8Array): ParsedSignedData {
  try {
    return readSignedData(bytes);
  } catch (err) {
    if (err instanceof Pkcs7Error) throw err;
    throw new Pkcs7Error(`not PKCS#7 SignedData: ${err instanceof DerError ? err.message : String(err)}`);
  }
}

function readSignedData(bytes: Uint8Array): ParsedSignedData {
  let block = decodeDer(bytes, MAX_SIGNED_DATA_SIZE);
  if (!isUniversal(block, Tag.SEQUENCE) || !block.constructed) throw new Pkcs7Error('PKCS#7: not a SEQUENCE');
  const top = children(block);
  if (isUniversal(top[0], Tag.OID)) {
    const contentType = oidString(top[0]);
    if (contentType !== Oid.SIGNED_DATA) throw new Pkcs7Error(`ContentInfo holds ${contentType}, not signedData`);
    const inner = isContext(top[1], 0) && top[1].constructed ? children(top[1])[0] : undefined;
    if (inner === undefined) throw new Pkcs7Error('not PKCS#7 SignedData: the ContentInfo has no content');
    block = expect(inner, Tag.SEQUENCE, 'SignedData');
  }
  // version, digestAlgorithms, encapContentInfo, [0] certificates, [1] crls, signerInfos.
  const fields = children(block);
  integerBytes(fields[0], 'SignedData version');
  const digestAlgorithms = children(expect(fields[1], Tag.SET, 'digestAlgorithms')).map((a) =>
    algorithmOid(a, 'a digest algorithm'),
  );
  const eci = children(expect(fields[2], Tag.SEQUENCE, 'encapContentInfo'));
  if (!isUniversal(eci[0], Tag.OID)) throw new DerError('encapContentInfo has no content type');
  const eContent = eci[1];
  let at = 3;
  const certificateSet = isContext(fields[at], 0) ? fields[at++] : undefined;
  if (isContext(fields[at], 1)) at++;
  const signerInfos = children(expect(fields[at], Tag.SET, 'signerInfos'));
  // The certificates as carried, original bytes (other certificate choices carry tags).
  const certificates = (certificateSet?.constructed === true ? children(certificateSet) : [])
    .filter((c) => isUniversal(c, Tag.SEQUENCE))
    .map(tlvBytes);
  const first = signerInfos[0];
  if (first === undefined) throw new Pkcs7Error('SignedData: no SignerInfo');
  // SignerInfo: version, sid, digestAlgorithm, [0] signedAttrs, signatureAlgorithm, signature, [1] unsignedAttrs.
  const f = children(expect(first, Tag.SEQUENCE, 'SignerInfo'));
  const version = smallInteger(f[0], 'SignerInfo version');
  const sid = f[1];
  let identified: { issuer: Uint8Array; serialNumber: Uint8Array } | undefined;
  if (isUniversal(sid, Tag.SEQUENCE) && sid.constructed) {
    const ias = children(sid);
    identified = {
      issuer: tlvBytes(expect(ias[0], Tag.SEQUENCE, 'issuer')),
      serialNumber: integerBytes(ias[1], 'serial'),
    };
  } else if (!isContext(sid, 0)) throw new DerError('SignerInfo has no signer identifier');
  const digestAlgorithm = algorithmOid(f[2], 'SignerInfo digestAlgorithm');
  let i = 3;
  let signedAttributes: Uint8Array | undefined;
  if (isContext(f[i], 0)) {
    // Re-tagged as the SET the signature covers (RFC 5652 §5.4).
    signedAttributes = tlvBytes(f[i++]!).slice();
    signedAttributes[0] = 0x31;
  }
  const signatureAlgorithm = algorithmOid(f[i++], 'SignerInfo signatureAlgorithm');
  const signature = octetString(f[i], 'SignerInfo signature');
  return {
    signedData: tlvBytes(block),
    digestAlgorithms,
    hasContent: isContext(eContent, 0) && eContent.constructed && children(eContent).length > 0,
    certificates,
    signerInfoCount: signerInfos.length,
    signer: {
      version,
      ...(identified ?? {}),
      digestAlgorithm,
      ...(signedAttributes !== undefined ? { signedAttributes } : {}),
      signatureAlgorithm,
      signature,
    },
  };
}

/**
 * A copy of `signedData` (bare) whose certificates field is replaced by `certificates`. Used when a
 * signature was made without embedding the signer's certificate (`openssl cms -nocerts`). The rest
 * is re-emitted by pkijs from the decoded structure, which reproduces DER exactly.
 */
export function withCertificates(signedData: Uint8Array, certificates: readonly Uint8Array[]): Uint8Array {
  const parsed = new pkijs.SignedData({ schema: asn1Schema(signedData, 'SignedData') });
  parsed.certificates = certificates.map(carriedCertificate);
  return toDer(parsed.toSchema());
}

/**
 * Checks that a SignedData's one SignerInfo signs `data` (SHA-256, RSA PKCS#1 v1.5), with or without
 * signed attributes, using the signer certificate it carries. This says nothing about trust; it only
 * catches a signature made over other bytes or with another key. Returns the signer certificate, or
 * throws an Error saying what does not match.
 */
export function checkDetachedSignature(parsed: ParsedSignedData, data: Uint8Array): Uint8Array {
  if (parsed.signerInfoCount !== 1)
    throw new Error(`UEFI needs exactly one SignerInfo, found ${parsed.signerInfoCount}`);
  if (parsed.hasContent)
    throw new Error('the signature is not detached (it carries content); sign with -binary and without -nodetach');
  const s = parsed.signer;
  if (s.digestAlgorithm !== Oid.SHA256)
    throw new Error(`the digest algorithm is ${s.digestAlgorithm}, UEFI needs SHA-256 (${Oid.SHA256})`);
  if (s.signatureAlgorithm !== Oid.RSA_ENCRYPTION && s.signatureAlgorithm !== Oid.SHA256_WITH_RSA) {
    throw new Error(`the signature algorithm is ${s.signatureAlgorithm}, UEFI needs RSA PKCS#1 v1.5`);
  }
  if (s.issuer === undefined || s.serialNumber === undefined)
    throw new Error('the SignerInfo does not name its signer by issuer and serial number');
  const signer = parsed.certificates.find((der) => {
    try {
      const f = certificateFields(der);
      return bytesEqual(f.issuer, s.issuer!) && bytesEqual(f.serialNumber, s.serialNumber!);
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
    if (!bytesEqual(md, digest)) throw new Error('the messageDigest attribute is not the SHA-256 of the bytes to sign');
    covered = s.signedAttributes;
  }
  const publicKey = new X509Certificate(signer).publicKey;
  if (!verify('sha256', covered, publicKey, s.signature))
    throw new Error("the signature does not verify with the signer's key over the bytes to sign");
  return signer;
}

function messageDigestOf(attributes: Uint8Array): Uint8Array | undefined {
  let set: Tlv;
  try {
    set = decodeDer(attributes, MAX_SIGNED_DATA_SIZE);
  } catch {
    return undefined;
  }
  if (!isUniversal(set, Tag.SET) || !set.constructed) return undefined;
  for (const attribute of children(set)) {
    const parts = isUniversal(attribute, Tag.SEQUENCE) && attribute.constructed ? children(attribute) : [];
    if (!isUniversal(parts[0], Tag.OID) || oidString(parts[0]) !== Oid.MESSAGE_DIGEST) continue;
    const value = isUniversal(parts[1], Tag.SET) && parts[1].constructed ? children(parts[1])[0] : undefined;
    if (isUniversal(value, Tag.OCTET_STRING) && !value.constructed) return tlvContent(value);
  }
  return undefined;
}
