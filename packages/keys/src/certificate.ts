import { createHash, createPublicKey, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { algorithmWithNull, asn1Schema, toDer } from './asn1.js';
import { keyBits, loadPrivateKey, subjectPublicKeyInfo, type PrivateKeyInput } from './keys.js';
import { decodePem, encodePem, looksLikePem, pemText } from './pem.js';
import { bytesEqual } from '@vmsb/protocol';
import { nameAttributes, Oid, parseCertificate, type NameAttribute } from '@vmsb/auth';

/** A certificate: DER bytes, PEM text or bytes, or a node:crypto X509Certificate. */
export type CertificateInput = Uint8Array | string | X509Certificate;

/** A certificate as created here, in both encodings. */
export interface EncodedCertificate {
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
export function createCertificate(options: CreateCertificateOptions): EncodedCertificate {
  if (options.cn.length === 0) throw new TypeError('the certificate needs a common name');
  const subjectKey = loadPrivateKey(options.key);
  const days = options.days ?? 3650;
  if (!Number.isInteger(days) || days < 1)
    throw new RangeError(`validity must be a positive whole number of days, got ${days}`);
  const notBefore = new Date(Math.floor((options.notBefore ?? new Date()).getTime() / 1000) * 1000);
  const notAfter = new Date(notBefore.getTime() + days * 86_400_000);

  const spki = new pkijs.PublicKeyInfo({
    schema: asn1Schema(subjectPublicKeyInfo(subjectKey), 'SubjectPublicKeyInfo'),
  });
  const ski = keyIdentifier(spki);
  const subject = distinguishedName(options.cn, options.organization);

  let issuerName: pkijs.RelativeDistinguishedNames;
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
    // The issuer's subject Name, carried over byte for byte (pkijs re-emits a decoded Name as decoded).
    issuerName = new pkijs.RelativeDistinguishedNames({ schema: asn1Schema(fields.subject, 'issuer Name') });
    authorityKeyId =
      fields.subjectKeyIdentifier ??
      keyIdentifier(new pkijs.PublicKeyInfo({ schema: asn1Schema(fields.spki, 'SubjectPublicKeyInfo') }));
  }
  const ca = options.ca ?? options.issuer === undefined;

  const certificate = new pkijs.Certificate({
    version: 2,
    serialNumber: new asn1js.Integer({ valueHex: serialContent(options.serial) }),
    signature: algorithmWithNull(Oid.SHA256_WITH_RSA),
    issuer: issuerName,
    notBefore: x509Time(notBefore),
    notAfter: x509Time(notAfter),
    subject,
    subjectPublicKeyInfo: spki,
    extensions: [
      // pkijs leaves cA out when false (DEFAULT FALSE), giving the empty SEQUENCE DER requires.
      extension(Oid.BASIC_CONSTRAINTS, true, new pkijs.BasicConstraints({ cA: ca }).toSchema()),
      // keyUsage bits: digitalSignature (0), keyCertSign (5), cRLSign (6); trailing zero bits dropped.
      extension(
        Oid.KEY_USAGE,
        true,
        ca
          ? new asn1js.BitString({ valueHex: Uint8Array.of(0x86), unusedBits: 1 })
          : new asn1js.BitString({ valueHex: Uint8Array.of(0x80), unusedBits: 7 }),
      ),
      extension(Oid.SUBJECT_KEY_IDENTIFIER, false, new asn1js.OctetString({ valueHex: ski })),
      extension(
        Oid.AUTHORITY_KEY_IDENTIFIER,
        false,
        new pkijs.AuthorityKeyIdentifier({
          keyIdentifier: new asn1js.OctetString({ valueHex: authorityKeyId }),
        }).toSchema(),
      ),
    ],
    signatureAlgorithm: algorithmWithNull(Oid.SHA256_WITH_RSA),
  });
  const tbs = toDer(certificate.encodeTBS());
  // Signed here rather than with pkijs' asynchronous WebCrypto engine, so creation stays synchronous.
  certificate.tbsView = tbs;
  certificate.signatureValue = new asn1js.BitString({ valueHex: new Uint8Array(sign('sha256', tbs, issuerKey)) });
  const der = toDer(certificate.toSchema());
  return { der, pem: certificateToPem(der) };
}

/** INTEGER content octets of a serial number: positive, minimal, at most 20 octets. */
function serialContent(serial: bigint | undefined): Uint8Array {
  if (serial === undefined) {
    const bytes = new Uint8Array(randomBytes(16));
    // Positive and exactly 16 octets: clear the sign bit, keep the top octet non-zero.
    bytes[0] = (bytes[0]! & 0x7f) | 0x40;
    return bytes;
  }
  if (serial <= 0n) throw new RangeError('a certificate serial number must be positive');
  const hex = serial.toString(16);
  const magnitude = Buffer.from(hex.length % 2 === 0 ? hex : `0${hex}`, 'hex');
  // A sign octet keeps a magnitude with its top bit set positive.
  const bytes = Uint8Array.from((magnitude[0]! & 0x80) !== 0 ? [0, ...magnitude] : magnitude);
  if (bytes.length > 20) throw new RangeError('a certificate serial number is at most 20 octets');
  return bytes;
}

/** UTCTime for years 1950..2049, GeneralizedTime otherwise (RFC 5280 §4.1.2.5), to the second. */
function x509Time(date: Date): pkijs.Time {
  const year = date.getUTCFullYear();
  if (year < 0 || year > 9999) throw new RangeError(`year ${year} cannot be encoded in a certificate`);
  return new pkijs.Time({
    type: year >= 1950 && year < 2050 ? pkijs.TimeType.UTCTime : pkijs.TimeType.GeneralizedTime,
    value: date,
  });
}

/**
 * O (when given) then CN, one RDN each. Built as a Name encoding and decoded again because pkijs'
 * own RelativeDistinguishedNames encoder puts every attribute into a single (multi-valued) RDN.
 */
function distinguishedName(cn: string, organization: string | undefined): pkijs.RelativeDistinguishedNames {
  const rdn = (type: string, value: string): asn1js.Set =>
    new asn1js.Set({
      value: [new pkijs.AttributeTypeAndValue({ type, value: new asn1js.Utf8String({ value }) }).toSchema()],
    });
  const rdns: asn1js.Set[] = [];
  if (organization !== undefined && organization.length > 0) rdns.push(rdn(Oid.ORGANIZATION_NAME, organization));
  rdns.push(rdn(Oid.COMMON_NAME, cn));
  return new pkijs.RelativeDistinguishedNames({
    schema: asn1Schema(toDer(new asn1js.Sequence({ value: rdns })), 'Name'),
  });
}

function extension(extnID: string, critical: boolean, value: asn1js.AsnType): pkijs.Extension {
  return new pkijs.Extension({ extnID, critical, extnValue: value.toBER(false) });
}

/** SHA-1 of the subjectPublicKey BIT STRING contents (RFC 5280 §4.2.1.2, method 1). */
function keyIdentifier(spki: pkijs.PublicKeyInfo): Uint8Array {
  return new Uint8Array(createHash('sha1').update(spki.subjectPublicKey.valueBlock.valueHexView).digest());
}

/** The parts of a certificate other structures copy byte for byte. */
export interface CertificateFields {
  readonly der: Uint8Array;
  readonly tbs: Uint8Array;
  /** The serialNumber INTEGER content octets (two's complement, as encoded). */
  readonly serialNumber: Uint8Array;
  /** The issuer Name element. */
  readonly issuer: Uint8Array;
  /** The subject Name element. */
  readonly subject: Uint8Array;
  /** The SubjectPublicKeyInfo element. */
  readonly spki: Uint8Array;
  readonly subjectKeyIdentifier?: Uint8Array;
  /** basicConstraints cA. */
  readonly ca: boolean;
  readonly notBefore: string;
  readonly notAfter: string;
}

/**
 * Reads a certificate with @vmsb/auth's parser (the one the daemon verifies with) and returns the
 * fields other structures copy, as views of their original encodings. Throws a TypeError on
 * anything that is not one X.509 certificate.
 */
export function certificateFields(der: Uint8Array): CertificateFields {
  const r = parseCertificate(der);
  if (!r.ok) throw new TypeError(r.reason);
  const c = r.certificate;
  return {
    der,
    tbs: c.tbs,
    serialNumber: c.serialNumber,
    issuer: c.issuer,
    subject: c.subject,
    spki: c.spki,
    ...(c.subjectKeyIdentifier !== undefined ? { subjectKeyIdentifier: c.subjectKeyIdentifier } : {}),
    ca: c.basicConstraints?.ca === true,
    notBefore: c.notBefore,
    notAfter: c.notAfter,
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

/** What tools show about a certificate, read with @vmsb/auth's parser and OpenSSL's key import. */
export function describeCertificate(input: CertificateInput): CertificateInfo {
  const der = certificateDer(input);
  const fields = certificateFields(der);
  const hex = (algorithm: string, bytes: Uint8Array): string => createHash(algorithm).update(bytes).digest('hex');
  let publicKey: KeyObject | undefined;
  try {
    publicKey = createPublicKey({ key: Buffer.from(fields.spki), format: 'der', type: 'spki' });
  } catch {
    publicKey = undefined; // a key type node:crypto does not know
  }
  let selfSigned = false;
  if (bytesEqual(fields.issuer, fields.subject) && publicKey !== undefined) {
    try {
      // The signature check is node:crypto's (every algorithm OpenSSL knows).
      selfSigned = new X509Certificate(der).verify(publicKey);
    } catch {
      selfSigned = false;
    }
  }
  const subject = nameParts(fields.subject);
  return {
    der,
    subject: formatName(subject),
    issuer: formatName(nameParts(fields.issuer)),
    commonName: subject
      .flat()
      .reverse()
      .find((a) => a.type === Oid.COMMON_NAME && a.value !== undefined)?.value,
    serialNumber: serialHex(fields.serialNumber),
    notBefore: new Date(fields.notBefore),
    notAfter: new Date(fields.notAfter),
    sha256: hex('sha256', der),
    sha1: hex('sha1', der),
    spkiSha256: hex('sha256', fields.spki),
    keyType: publicKey?.asymmetricKeyType ?? 'unknown',
    keyBits: publicKey === undefined ? 0 : keyBits(publicKey),
    selfSigned,
    ca: fields.ca,
  };
}

/** Short names OpenSSL prints for the attribute types met in certificate names. */
const attributeNames: Readonly<Record<string, string>> = {
  '2.5.4.3': 'CN',
  '2.5.4.4': 'SN',
  '2.5.4.5': 'serialNumber',
  '2.5.4.6': 'C',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.9': 'street',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '2.5.4.12': 'title',
  '2.5.4.17': 'postalCode',
  '2.5.4.42': 'GN',
  '2.5.4.43': 'initials',
  '2.5.4.46': 'dnQualifier',
  '2.5.4.97': 'organizationIdentifier',
  '0.9.2342.19200300.100.1.1': 'UID',
  '0.9.2342.19200300.100.1.25': 'DC',
  '1.2.840.113549.1.9.1': 'emailAddress',
};

interface NamePart {
  readonly type: string;
  /** The value when it is a string. */
  readonly value: string | undefined;
  /** As printed: the string escaped, or `#` and the hex of the encoding for any other value (RFC 4514). */
  readonly text: string;
}

/** A Name's attributes grouped by RDN, in encoding order, with string values decoded. */
function nameParts(name: Uint8Array): NamePart[][] {
  const rdns = nameAttributes(name);
  if (rdns === undefined) throw new TypeError('not an X.509 certificate: a Name is malformed');
  return rdns.map((rdn) =>
    rdn.map((a) => {
      const value = stringValue(a);
      return value === undefined
        ? { type: a.type, value, text: `#${Buffer.from(a.der).toString('hex')}` }
        : { type: a.type, value, text: escapeValue(value) };
    }),
  );
}

/** The universal string types (and the times, which are strings too) and how their octets read. */
function stringValue(a: NameAttribute): string | undefined {
  const v = a.value;
  if (v === undefined) return undefined;
  switch (a.tag) {
    case 12: // UTF8String
      return new TextDecoder().decode(v);
    case 30: {
      // BMPString: UCS-2, big-endian
      let s = '';
      for (let i = 0; i + 1 < v.length; i += 2) s += String.fromCharCode((v[i]! << 8) | v[i + 1]!);
      return s;
    }
    case 28: {
      // UniversalString: UCS-4, big-endian
      let s = '';
      for (let i = 0; i + 3 < v.length; i += 4) {
        const cp = ((v[i]! << 24) | (v[i + 1]! << 16) | (v[i + 2]! << 8) | v[i + 3]!) >>> 0;
        s += cp <= 0x10ffff ? String.fromCodePoint(cp) : '\ufffd';
      }
      return s;
    }
    case 18: // NumericString
    case 19: // PrintableString
    case 20: // TeletexString
    case 21: // VideotexString
    case 22: // IA5String
    case 23: // UTCTime
    case 24: // GeneralizedTime
    case 25: // GraphicString
    case 26: // VisibleString
    case 27: // GeneralString
    case 29: // CHARACTER STRING
      return Buffer.from(v).toString('latin1');
    default:
      return undefined;
  }
}

/** One line, most significant RDN first, values escaped as RFC 4514 and node:crypto do. */
function formatName(rdns: readonly (readonly NamePart[])[]): string {
  return rdns.map((rdn) => rdn.map((a) => `${attributeNames[a.type] ?? a.type}=${a.text}`).join(' + ')).join(', ');
}

function escapeValue(value: string): string {
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    const code = c.charCodeAt(0);
    if (code < 0x20 || code === 0x7f) out += `\\${code.toString(16).toUpperCase().padStart(2, '0')}`;
    else if (',+"\\<>;'.includes(c) || (i === 0 && (c === '#' || c === ' ')) || (i === value.length - 1 && c === ' '))
      out += `\\${c}`;
    else out += c;
  }
  return out;
}

/** The serial number as upper-case hex of its content octets without leading zero octets. */
function serialHex(bytes: Uint8Array): string {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  return Buffer.from(bytes.subarray(start)).toString('hex').toUpperCase();
}

/** SHA-256 (or another hash) of a certificate's TBSCertificate: the entry of an EFI_CERT_X509_SHA* list. */
export function tbsHash(input: CertificateInput, algorithm: 'sha256' | 'sha384' | 'sha512' = 'sha256'): Uint8Array {
  return new Uint8Array(
    createHash(algorithm)
      .update(certificateFields(certificateDer(input)).tbs)
      .digest(),
  );
}
