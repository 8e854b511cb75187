import { createHash, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import {
  bitString,
  booleanValue,
  children,
  content,
  DerError,
  encoding,
  explicit,
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
  unsignedInteger,
  utf8String,
  x509Time,
  contextPrimitiveTag,
  contextTag,
  type Element,
} from './der.js';
import { keyBits, loadPrivateKey, subjectPublicKeyInfo, type PrivateKeyInput } from './keys.js';
import { Oid } from './oids.js';
import { decodePem, encodePem, looksLikePem, pemText } from './pem.js';

/** A certificate: DER bytes, PEM text or bytes, or a node:crypto X509Certificate. */
export type CertificateInput = Uint8Array | string | X509Certificate;

/** A certificate in both encodings. */
export interface Certificate {
  readonly der: Uint8Array;
  readonly pem: string;
}

export interface CreateCertificateOptions {
  /** Subject common name. */
  readonly cn: string;
  /** Subject organisation (O), optional. */
  readonly organization?: string;
  /** The subject's RSA private key (its public half goes into the certificate). */
  readonly key: PrivateKeyInput;
  /** Who signs: absent for a self-signed certificate. */
  readonly issuer?: { readonly certificate: CertificateInput; readonly key: PrivateKeyInput };
  /** Validity in days from notBefore. Default 3650. */
  readonly days?: number;
  /** Start of validity. Default: now, to the second. */
  readonly notBefore?: Date;
  /** Serial number (positive, at most 20 octets). Default: 16 random octets. */
  readonly serial?: bigint;
  /**
   * basicConstraints cA. Default: true for self-signed certificates (they are roots and may issue),
   * false for issued ones.
   */
  readonly ca?: boolean;
}

/**
 * An X.509 v3 certificate signed with sha256WithRSAEncryption. Extensions: basicConstraints
 * (critical), keyUsage (critical: digitalSignature, plus keyCertSign and cRLSign for a CA),
 * subjectKeyIdentifier and authorityKeyIdentifier (SHA-1 of the public key, RFC 5280 method 1).
 * UEFI firmware ignores validity and usage, but OpenSSL and other verifiers read them.
 */
export function createCertificate(options: CreateCertificateOptions): Certificate {
  if (options.cn.length === 0) throw new TypeError('the certificate needs a common name');
  const subjectKey = loadPrivateKey(options.key);
  const days = options.days ?? 3650;
  if (!Number.isInteger(days) || days < 1) throw new RangeError(`validity must be a positive whole number of days, got ${days}`);
  const notBefore = new Date(Math.floor((options.notBefore ?? new Date()).getTime() / 1000) * 1000);
  const notAfter = new Date(notBefore.getTime() + days * 86_400_000);

  const spki = subjectPublicKeyInfo(subjectKey);
  const ski = keyIdentifier(spki);
  const subject = distinguishedName(options.cn, options.organization);

  let issuerName: Uint8Array;
  let issuerKey: KeyObject;
  let authorityKeyId: Uint8Array;
  if (options.issuer === undefined) {
    issuerName = subject;
    issuerKey = subjectKey;
    authorityKeyId = ski;
  } else {
    const issuerDer = certificateDer(options.issuer.certificate);
    const fields = certificateFields(issuerDer);
    issuerKey = loadPrivateKey(options.issuer.key);
    if (!bytesEqual(subjectPublicKeyInfo(issuerKey), fields.spki)) {
      throw new TypeError('the issuer key does not belong to the issuer certificate');
    }
    issuerName = fields.subject;
    authorityKeyId = fields.subjectKeyIdentifier ?? keyIdentifier(fields.spki);
  }
  const ca = options.ca ?? options.issuer === undefined;

  const extensions = sequence(
    extension(Oid.basicConstraints, true, ca ? sequence(booleanValue(true)) : sequence()),
    // keyUsage bits: digitalSignature (0), keyCertSign (5), cRLSign (6); trailing zero bits dropped.
    extension(Oid.keyUsage, true, ca ? bitString(Uint8Array.of(0x86), 1) : bitString(Uint8Array.of(0x80), 7)),
    extension(Oid.subjectKeyIdentifier, false, octetString(ski)),
    extension(Oid.authorityKeyIdentifier, false, sequence(tlv(contextPrimitiveTag(0), authorityKeyId))),
  );
  const signatureAlgorithm = sequence(oid(Oid.sha256WithRSAEncryption), nullValue());
  const tbs = sequence(
    explicit(0, smallInteger(2)),
    unsignedInteger(serialMagnitude(options.serial)),
    signatureAlgorithm,
    issuerName,
    sequence(x509Time(notBefore), x509Time(notAfter)),
    subject,
    spki,
    explicit(3, extensions),
  );
  const signature = new Uint8Array(sign('sha256', tbs, issuerKey));
  const der = sequence(tbs, signatureAlgorithm, bitString(signature));
  return { der, pem: certificateToPem(der) };
}

function serialMagnitude(serial: bigint | undefined): Uint8Array {
  if (serial === undefined) {
    const bytes = new Uint8Array(randomBytes(16));
    // Positive and exactly 16 octets: clear the sign bit, keep the top octet non-zero.
    bytes[0] = (bytes[0]! & 0x7f) | 0x40;
    return bytes;
  }
  if (serial <= 0n) throw new RangeError('a certificate serial number must be positive');
  const hex = serial.toString(16);
  const bytes = Uint8Array.from(Buffer.from(hex.length % 2 === 0 ? hex : `0${hex}`, 'hex'));
  if (bytes.length > 20 || (bytes.length === 20 && (bytes[0]! & 0x80) !== 0)) throw new RangeError('a certificate serial number is at most 20 octets');
  return bytes;
}

function distinguishedName(cn: string, organization: string | undefined): Uint8Array {
  const rdns: Uint8Array[] = [];
  if (organization !== undefined && organization.length > 0) rdns.push(setOf(sequence(oid(Oid.organizationName), utf8String(organization))));
  rdns.push(setOf(sequence(oid(Oid.commonName), utf8String(cn))));
  return sequence(...rdns);
}

function extension(id: string, critical: boolean, value: Uint8Array): Uint8Array {
  return critical ? sequence(oid(id), booleanValue(true), octetString(value)) : sequence(oid(id), octetString(value));
}

/** SHA-1 of the subjectPublicKey BIT STRING contents (RFC 5280 §4.2.1.2, method 1). */
function keyIdentifier(spki: Uint8Array): Uint8Array {
  const outer = expectElement(spki, 0, spki.length, Tag.SEQUENCE, 'SubjectPublicKeyInfo');
  const [, key] = children(spki, outer);
  if (key === undefined || key.tag !== Tag.BIT_STRING) throw new DerError('SubjectPublicKeyInfo without a key');
  return new Uint8Array(createHash('sha1').update(spki.subarray(key.contentStart + 1, key.end)).digest());
}

/** The parts of a certificate other structures copy byte for byte. */
export interface CertificateFields {
  readonly der: Uint8Array;
  readonly tbs: Uint8Array;
  /** The serialNumber INTEGER element (tag and length included). */
  readonly serialNumber: Uint8Array;
  /** The issuer Name element. */
  readonly issuer: Uint8Array;
  /** The subject Name element. */
  readonly subject: Uint8Array;
  /** The SubjectPublicKeyInfo element. */
  readonly spki: Uint8Array;
  readonly subjectKeyIdentifier?: Uint8Array;
}

/** Locates the TBSCertificate fields. Throws DerError on a malformed certificate. */
export function certificateFields(der: Uint8Array): CertificateFields {
  const cert = expectElement(der, 0, der.length, Tag.SEQUENCE, 'Certificate');
  if (cert.end !== der.length) throw new DerError(`${der.length - cert.end} bytes after the certificate`);
  const tbsEl = expectElement(der, cert.contentStart, cert.end, Tag.SEQUENCE, 'TBSCertificate');
  const fields = children(der, tbsEl);
  let i = 0;
  if (fields[0]?.tag === contextTag(0)) i++;
  const need = (el: Element | undefined, tag: number, what: string): Element => {
    if (el === undefined || el.tag !== tag) throw new DerError(`TBSCertificate: missing or malformed ${what}`);
    return el;
  };
  const serial = need(fields[i], Tag.INTEGER, 'serialNumber');
  need(fields[i + 1], Tag.SEQUENCE, 'signature');
  const issuer = need(fields[i + 2], Tag.SEQUENCE, 'issuer');
  need(fields[i + 3], Tag.SEQUENCE, 'validity');
  const subject = need(fields[i + 4], Tag.SEQUENCE, 'subject');
  const spki = need(fields[i + 5], Tag.SEQUENCE, 'subjectPublicKeyInfo');
  let subjectKeyIdentifier: Uint8Array | undefined;
  const extensions = fields.slice(i + 6).find((el) => el.tag === contextTag(3));
  if (extensions !== undefined) {
    const list = readElement(der, extensions.contentStart, extensions.end);
    for (const ext of children(der, list)) {
      const parts = children(der, ext);
      if (parts[0]?.tag !== Tag.OID || oidText(der, parts[0]) !== Oid.subjectKeyIdentifier) continue;
      const value = parts[parts.length - 1];
      if (value?.tag !== Tag.OCTET_STRING) continue;
      const inner = readElement(der, value.contentStart, value.end);
      if (inner.tag === Tag.OCTET_STRING) subjectKeyIdentifier = content(der, inner);
    }
  }
  return {
    der,
    tbs: encoding(der, tbsEl),
    serialNumber: encoding(der, serial),
    issuer: encoding(der, issuer),
    subject: encoding(der, subject),
    spki: encoding(der, spki),
    ...(subjectKeyIdentifier !== undefined ? { subjectKeyIdentifier } : {}),
  };
}

/** DER of one certificate. PEM input must hold exactly one CERTIFICATE block. */
export function certificateDer(input: CertificateInput): Uint8Array {
  if (input instanceof X509Certificate) return new Uint8Array(input.raw);
  const certs = readCertificates(input);
  if (certs.length !== 1) throw new TypeError(`expected one certificate, found ${certs.length}`);
  return certs[0]!;
}

/**
 * Every certificate in `input`: all CERTIFICATE blocks of PEM text (a bundle), or the one DER
 * certificate. Each is checked to parse.
 */
export function readCertificates(input: string | Uint8Array): Uint8Array[] {
  let ders: Uint8Array[];
  if (typeof input === 'string' || looksLikePem(input)) {
    ders = decodePem(pemText(input))
      .filter((b) => b.label === 'CERTIFICATE' || b.label === 'X509 CERTIFICATE' || b.label === 'TRUSTED CERTIFICATE')
      .map((b) => b.der);
  } else {
    ders = [input.slice()];
  }
  for (const der of ders) {
    try {
      certificateFields(der);
      new X509Certificate(der);
    } catch (err) {
      throw new TypeError(`not an X.509 certificate: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return ders;
}

export function certificateToPem(der: Uint8Array): string {
  return encodePem('CERTIFICATE', der);
}

/** What tools show about a certificate. */
export interface CertificateInfo {
  readonly der: Uint8Array;
  /** RFC 4514-style one-line subject, most significant RDN first (e.g. `C=US, O=Microsoft Corporation, CN=...`). */
  readonly subject: string;
  readonly issuer: string;
  /** Subject CN, or undefined when there is none. */
  readonly commonName: string | undefined;
  /** Serial number, upper-case hex. */
  readonly serialNumber: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** SHA-256 of the DER certificate, lower-case hex. */
  readonly sha256: string;
  /** SHA-1 of the DER certificate (Windows' "thumbprint"), lower-case hex. */
  readonly sha1: string;
  /** SHA-256 of the SubjectPublicKeyInfo, lower-case hex: identifies the key across re-issued certificates. */
  readonly spkiSha256: string;
  /** Key algorithm as node:crypto names it ('rsa', 'ec', ...). */
  readonly keyType: string;
  /** RSA modulus size; 0 for other key types. */
  readonly keyBits: number;
  /** Issuer equals subject and the certificate's own key verifies its signature. */
  readonly selfSigned: boolean;
  /** basicConstraints cA. */
  readonly ca: boolean;
}

export function parseCertificate(input: CertificateInput): CertificateInfo {
  const der = certificateDer(input);
  const fields = certificateFields(der);
  const x = new X509Certificate(der);
  const hex = (algorithm: string, bytes: Uint8Array): string => createHash(algorithm).update(bytes).digest('hex');
  let selfSigned = false;
  try {
    selfSigned = x.checkIssued(x) && x.verify(x.publicKey);
  } catch {
    selfSigned = false;
  }
  return {
    der,
    subject: oneLine(x.subject),
    issuer: oneLine(x.issuer),
    commonName: commonNameOf(x.subject),
    serialNumber: x.serialNumber.toUpperCase(),
    notBefore: new Date(x.validFrom),
    notAfter: new Date(x.validTo),
    sha256: hex('sha256', der),
    sha1: hex('sha1', der),
    spkiSha256: hex('sha256', fields.spki),
    keyType: x.publicKey.asymmetricKeyType ?? 'unknown',
    keyBits: keyBits(x.publicKey),
    selfSigned,
    ca: x.ca,
  };
}

/** node:crypto prints a DN as one `KEY=value` per line. */
function oneLine(dn: string): string {
  return dn.split('\n').filter((l) => l.length > 0).join(', ');
}

function commonNameOf(dn: string): string | undefined {
  const line = dn.split('\n').reverse().find((l) => l.startsWith('CN='));
  return line?.slice(3);
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** SHA-256 (or another hash) of a certificate's TBSCertificate: the entry of an EFI_CERT_X509_SHA* list. */
export function tbsHash(input: CertificateInput, algorithm: 'sha256' | 'sha384' | 'sha512' = 'sha256'): Uint8Array {
  return new Uint8Array(createHash(algorithm).update(certificateFields(certificateDer(input)).tbs).digest());
}
