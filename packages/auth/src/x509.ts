import { createHash, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import {
  DerError,
  Tag,
  algorithmOid,
  bitFlags,
  bitStringBytes,
  booleanValue,
  bytesEqual,
  children,
  decodeDer,
  expect,
  hex,
  integerBytes,
  isContext,
  isUniversal,
  octetString,
  oidString,
  oidText,
  precheckDer,
  smallInteger,
  tlvBytes,
  tlvContent,
  type Tlv,
} from './der.js';
import { HANDLED_CRITICAL_EXTENSIONS, NAME_ATTRIBUTES, Oid, oidName } from './oids.js';

/** KeyUsage bits as numbered by RFC 5280 (bit 0 = digitalSignature). */
export const KeyUsage = {
  DIGITAL_SIGNATURE: 1 << 0,
  KEY_CERT_SIGN: 1 << 5,
} as const;

/** An RSA public key as the certificate carries it. */
export interface RsaPublicKey {
  /** PKCS#1 RSAPublicKey DER (the subjectPublicKey bits). */
  readonly pkcs1: Uint8Array;
  readonly modulusBits: number;
  readonly exponentBits: number;
}

/** An X.509 certificate, parsed leniently (dates and usage are kept for display, never enforced). */
export interface Certificate {
  /** The certificate's encoding, a private copy. Byte identity is what UEFI compares. */
  readonly der: Uint8Array;
  /** The tbsCertificate encoding (what the issuer signed). */
  readonly tbs: Uint8Array;
  /** 1, 2 or 3. */
  readonly version: number;
  /** serialNumber INTEGER content octets, two's complement (may be negative). */
  readonly serialNumber: Uint8Array;
  /** Encoded issuer and subject Names. */
  readonly issuer: Uint8Array;
  readonly subject: Uint8Array;
  readonly issuerText: string;
  readonly subjectText: string;
  /** Content octets of the subject's first commonName value, if any. */
  readonly commonName: Uint8Array | undefined;
  readonly notBefore: string;
  readonly notAfter: string;
  /** AlgorithmIdentifier encodings: inside tbsCertificate and outside it (they must match). */
  readonly tbsSignatureAlgorithm: Uint8Array;
  readonly signatureAlgorithm: Uint8Array;
  readonly signatureAlgorithmOid: string;
  readonly signature: Uint8Array;
  readonly publicKeyAlgorithmOid: string;
  /** The subjectPublicKeyInfo encoding (what node:crypto imports a public key from). */
  readonly spki: Uint8Array;
  /** Present when the key is rsaEncryption and well-formed. */
  readonly rsaPublicKey: RsaPublicKey | undefined;
  readonly basicConstraints: { readonly ca: boolean; readonly pathLength: number | undefined } | undefined;
  /** KeyUsage flags, or undefined when the extension is absent. */
  readonly keyUsage: number | undefined;
  readonly subjectKeyIdentifier: Uint8Array | undefined;
  readonly authorityKeyIdentifier: Uint8Array | undefined;
  /** A malformed or duplicated extension (OpenSSL then refuses the certificate as an issuer and in any chain). */
  readonly invalidExtension: string | undefined;
  /** A critical extension no verifier here handles (refused in any chain, RFC 5280 §4.2). */
  readonly unhandledCriticalExtension: string | undefined;
  /** Why the certificate cannot take part in a chain although it parsed; undefined when it can. */
  readonly chainProblem: string | undefined;
  /** The authorityKeyIdentifier's authorityCertSerialNumber content octets, when present. */
  readonly authorityCertSerialNumber: Uint8Array | undefined;
}

export type CertificateResult =
  | { readonly ok: true; readonly certificate: Certificate }
  | { readonly ok: false; readonly reason: string };

/** Largest certificate accepted on its own (trust anchors, signature-list entries). */
const MAX_CERTIFICATE_SIZE = 65536;

/** Parses one DER certificate (no trailing bytes) from a private copy. Never throws. */
export function parseCertificate(der: Uint8Array): CertificateResult {
  try {
    return { ok: true, certificate: certificateFromTlv(decodeDer(der, MAX_CERTIFICATE_SIZE)) };
  } catch (e) {
    return {
      ok: false,
      reason: e instanceof DerError ? `not a valid X.509 certificate: ${e.message}` : 'not a valid X.509 certificate',
    };
  }
}

/**
 * Why `der` is not one X.509 certificate with an RSA key usable here (the bounds of rsaKeyObject),
 * or undefined when it is. This is all a signature-list entry needs (edk2 and varstored check each
 * X.509 entry with OpenSSL's d2i_X509 and RsaGetPublicKeyFromX509), so it asks OpenSSL the same
 * question through node:crypto, after the structural pre-check: tens of microseconds where the
 * full parse, which only certificates used for verification need, costs a millisecond.
 */
export function certificateKeyProblem(der: Uint8Array): string | undefined {
  let algorithmOid: string | undefined;
  try {
    algorithmOid = publicKeyAlgorithmOf(precheckDer(der, MAX_CERTIFICATE_SIZE));
  } catch (e) {
    return e instanceof DerError ? `not a valid X.509 certificate: ${e.message}` : 'not a valid X.509 certificate';
  }
  let key: KeyObject | undefined;
  try {
    const cert = new X509Certificate(Buffer.from(der.buffer, der.byteOffset, der.byteLength));
    try {
      key = cert.publicKey;
    } catch {
      key = undefined;
    }
  } catch {
    return 'not a valid X.509 certificate';
  }
  const details = key?.asymmetricKeyDetails;
  const bits = details?.modulusLength ?? 0;
  const exponent = details?.publicExponent ?? 0n;
  if (
    algorithmOid === Oid.RSA_ENCRYPTION &&
    key?.asymmetricKeyType === 'rsa' &&
    bits >= 512 &&
    bits <= 16384 &&
    exponent >= 2n &&
    exponent < 1n << 64n
  )
    return undefined;
  return `the certificate's key (${algorithmOid === undefined ? 'unknown' : oidName(algorithmOid)}) is not a usable RSA key`;
}

/**
 * The encoded subject Name of a certificate, read from its structure without parsing the rest
 * (to tell which certificates a chain could reach before parsing any); undefined when unreadable.
 */
export function certificateSubject(der: Uint8Array): Uint8Array | undefined {
  try {
    const tbs = children(precheckDer(der, MAX_CERTIFICATE_SIZE))[0];
    if (tbs === undefined || !tbs.constructed) return undefined;
    const f = children(tbs);
    const subject = f[f[0] !== undefined && f[0].cls === 2 && f[0].tag === 0 ? 5 : 4];
    if (subject === undefined || subject.cls !== 0 || subject.tag !== Tag.SEQUENCE || !subject.constructed)
      return undefined;
    return der.subarray(subject.start, subject.end);
  } catch {
    return undefined;
  }
}

/** The subjectPublicKeyInfo algorithm OID of a pre-checked certificate, read without parsing the rest. */
function publicKeyAlgorithmOf(cert: Tlv): string | undefined {
  if (cert.cls !== 0 || cert.tag !== Tag.SEQUENCE || !cert.constructed) throw new DerError('not a SEQUENCE');
  const tbs = children(cert)[0];
  if (tbs === undefined || !tbs.constructed) throw new DerError('tbsCertificate is missing');
  const fields = children(tbs);
  const first = fields[0];
  const spki = fields[first !== undefined && first.cls === 2 && first.tag === 0 ? 6 : 5];
  const algorithm = spki?.constructed === true ? children(spki)[0] : undefined;
  const id = algorithm?.constructed === true ? children(algorithm)[0] : undefined;
  if (id === undefined || id.cls !== 0 || id.tag !== Tag.OID || id.constructed) return undefined;
  return oidText(id.bytes.subarray(id.contentStart, id.contentEnd));
}

/**
 * Reads a decoded certificate (RFC 5280 §4.1) from the bounded reader's view of it. The parts UEFI
 * hashes or compares byte for byte are views of the input; names, dates and OIDs are turned into
 * text only when a message needs them. As the schema-driven decoders it replaces, elements after
 * the ones the structure defines are ignored inside AlgorithmIdentifier, Name attributes and
 * Extension, and refused after the certificate's, tbsCertificate's and key info's own fields.
 * Throws DerError.
 */
export function certificateFromTlv(root: Tlv): Certificate {
  const top = children(expect(root, Tag.SEQUENCE, 'Certificate'));
  if (top.length !== 3) throw new DerError('Certificate has extra fields');
  const [tbsNode, sigAlgNode, sigNode] = top as [Tlv, Tlv, Tlv];
  const signatureAlgorithmOid = algorithmOid(sigAlgNode, 'signatureAlgorithm');
  const signature = bitStringBytes(sigNode, 'signatureValue');

  const fields = children(expect(tbsNode, Tag.SEQUENCE, 'tbsCertificate'));
  let i = 0;
  let version = 1;
  if (isContext(fields[0], 0)) {
    if (!fields[0].constructed) throw new DerError('version is malformed');
    const v = children(fields[0]);
    if (v.length !== 1) throw new DerError('version is malformed');
    const n = smallInteger(v[0], 'version');
    if (n > 2) throw new DerError(`version ${n + 1} is unknown`);
    version = n + 1;
    i++;
  }
  const serialNumber = integerBytes(fields[i++], 'serialNumber');
  const tbsSigAlg = fields[i++];
  algorithmOid(tbsSigAlg, 'signature');
  const issuer = checkName(fields[i++], 'issuer');
  const validity = children(expect(fields[i++], Tag.SEQUENCE, 'validity'));
  const subject = checkName(fields[i++], 'subject');
  const spki = expect(fields[i++], Tag.SEQUENCE, 'subjectPublicKeyInfo');
  let extensions: Tlv | undefined;
  for (; i < fields.length; i++) {
    if (isContext(fields[i], 1) || isContext(fields[i], 2)) continue; // issuer/subject unique identifiers
    if (isContext(fields[i], 3) && extensions === undefined) {
      extensions = fields[i];
      continue;
    }
    throw new DerError('tbsCertificate has an unexpected field');
  }
  if (validity.length !== 2 || !validity.every(isTime)) throw new DerError('validity is malformed');
  if (extensions !== undefined && version !== 3)
    throw new DerError('extensions in a certificate that is not version 3');

  const spkiParts = children(spki);
  if (spkiParts.length !== 2) throw new DerError('subjectPublicKeyInfo has extra fields');
  const publicKeyAlgorithmOid = algorithmOid(spkiParts[0], 'subjectPublicKeyInfo algorithm');
  const keyBits = bitStringBytes(spkiParts[1], 'subjectPublicKey');
  const key = publicKeyAlgorithmOid === Oid.RSA_ENCRYPTION ? parseRsaPublicKey(keyBits) : undefined;
  const ext = parseExtensions(extensions === undefined ? [] : extensionList(extensions));
  return new ParsedCertificate(
    tlvBytes(root),
    tlvBytes(tbsNode),
    version,
    serialNumber,
    tlvBytes(tbsSigAlg!),
    tlvBytes(sigAlgNode),
    signatureAlgorithmOid,
    signature,
    issuer,
    subject,
    validity[0]!,
    validity[1]!,
    tlvBytes(spki),
    publicKeyAlgorithmOid,
    key,
    ext,
  );
}

/** Name ::= SEQUENCE OF SET OF SEQUENCE { type OID, value ANY }, checked; its whole encoding. */
export function checkName(t: Tlv | undefined, what: string): Tlv {
  for (const rdn of children(expect(t, Tag.SEQUENCE, what))) {
    if (!isUniversal(rdn, Tag.SET) || !rdn.constructed) throw new DerError(`${what} is not a valid Name`);
    for (const atv of children(rdn)) attributeTypeAndValue(atv, what);
  }
  return t!;
}

function attributeTypeAndValue(atv: Tlv, what: string): { type: Tlv; value: Tlv } {
  const parts = isUniversal(atv, Tag.SEQUENCE) && atv.constructed ? children(atv) : [];
  if (parts.length < 2 || !isUniversal(parts[0], Tag.OID)) throw new DerError(`${what} is not a valid Name`);
  return { type: parts[0]!, value: parts[1]! };
}

/**
 * extensions [3] EXPLICIT SEQUENCE OF Extension. Elements after the SEQUENCE are ignored, as the
 * schema-driven decoder this replaces ignored them (OpenSSL refuses such a certificate earlier).
 */
function extensionList(t: Tlv): Tlv[] {
  const inner = t.constructed ? children(t) : [];
  if (!isUniversal(inner[0], Tag.SEQUENCE) || !inner[0].constructed) throw new DerError('extensions are malformed');
  return children(inner[0]);
}

interface ExtensionFields {
  readonly id: string;
  readonly critical: boolean;
  readonly value: Uint8Array;
}

/** Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }. */
function extensionFields(t: Tlv): ExtensionFields {
  const parts = isUniversal(t, Tag.SEQUENCE) && t.constructed ? children(t) : [];
  if (!isUniversal(parts[0], Tag.OID)) throw new DerError('an extension is malformed');
  let at = 1;
  let critical = false;
  if (isUniversal(parts[at], Tag.BOOLEAN)) {
    // Any non-zero octet is TRUE (BER); an empty BOOLEAN reads as FALSE.
    critical = tlvContent(parts[at]!).some((b) => b !== 0);
    at++;
  }
  // extnValue is a primitive OCTET STRING (schema-driven decoders refuse the constructed form here).
  if (!isUniversal(parts[at], Tag.OCTET_STRING) || parts[at]!.constructed)
    throw new DerError('an extension is malformed');
  return { id: oidString(parts[0]!), critical, value: octetString(parts[at], 'extension value') };
}

/**
 * The parsed form. Text (names, dates) is only needed for messages, so it is built on first use
 * rather than on the verification path.
 */
class ParsedCertificate implements Certificate {
  readonly rsaPublicKey: RsaPublicKey | undefined;
  readonly basicConstraints: Certificate['basicConstraints'];
  readonly keyUsage: number | undefined;
  readonly subjectKeyIdentifier: Uint8Array | undefined;
  readonly authorityKeyIdentifier: Uint8Array | undefined;
  readonly invalidExtension: string | undefined;
  readonly unhandledCriticalExtension: string | undefined;
  readonly authorityCertSerialNumber: Uint8Array | undefined;
  readonly issuer: Uint8Array;
  readonly subject: Uint8Array;
  private issuerName: ParsedName | undefined;
  private subjectName: ParsedName | undefined;

  constructor(
    readonly der: Uint8Array,
    readonly tbs: Uint8Array,
    readonly version: number,
    readonly serialNumber: Uint8Array,
    readonly tbsSignatureAlgorithm: Uint8Array,
    readonly signatureAlgorithm: Uint8Array,
    readonly signatureAlgorithmOid: string,
    readonly signature: Uint8Array,
    private readonly issuerNode: Tlv,
    private readonly subjectNode: Tlv,
    private readonly notBeforeNode: Tlv,
    private readonly notAfterNode: Tlv,
    /** subjectPublicKeyInfo encoding, which node:crypto imports the key from. */
    readonly spki: Uint8Array,
    readonly publicKeyAlgorithmOid: string,
    key: RsaPublicKey | undefined,
    ext: ParsedExtensions,
  ) {
    this.issuer = tlvBytes(issuerNode);
    this.subject = tlvBytes(subjectNode);
    this.rsaPublicKey = key;
    this.basicConstraints = ext.basicConstraints;
    this.keyUsage = ext.keyUsage;
    this.subjectKeyIdentifier = ext.subjectKeyIdentifier;
    this.authorityKeyIdentifier = ext.authorityKeyIdentifier;
    this.invalidExtension = ext.invalidExtension;
    this.unhandledCriticalExtension = ext.unhandledCriticalExtension;
    this.authorityCertSerialNumber = ext.authorityCertSerialNumber;
  }

  get chainProblem(): string | undefined {
    return this.invalidExtension ?? this.unhandledCriticalExtension;
  }

  get issuerText(): string {
    this.issuerName ??= nameOf(this.issuerNode);
    return this.issuerName.text;
  }

  get subjectText(): string {
    this.subjectName ??= nameOf(this.subjectNode);
    return this.subjectName.text;
  }

  get commonName(): Uint8Array | undefined {
    this.subjectName ??= nameOf(this.subjectNode);
    return this.subjectName.commonName;
  }

  get notBefore(): string {
    return timeText(this.notBeforeNode);
  }

  get notAfter(): string {
    return timeText(this.notAfterNode);
  }
}

function isTime(t: Tlv): boolean {
  return (isUniversal(t, Tag.UTC_TIME) || isUniversal(t, Tag.GENERALIZED_TIME)) && !t.constructed;
}

/** UTCTime/GeneralizedTime as `YYYY-MM-DDTHH:MM:SSZ` when it has the usual shape, else as written. */
function timeText(t: Tlv): string {
  const s = Buffer.from(tlvContent(t)).toString('latin1');
  const m = (
    isUniversal(t, Tag.UTC_TIME)
      ? /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)?Z$/
      : /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)?(?:\.\d+)?Z$/
  ).exec(s);
  if (m === null) return s.replace(/[^\x20-\x7e]/g, '?');
  let year = m[1]!;
  if (year.length === 2) year = (Number(year) >= 50 ? '19' : '20') + year;
  return `${year}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6] ?? '00'}Z`;
}

interface ParsedName {
  readonly text: string;
  readonly commonName: Uint8Array | undefined;
}

/** One attribute of a Name. */
export interface NameAttribute {
  /** The attribute type, dotted. */
  readonly type: string;
  /** The value's universal tag number, or -1 for another class. */
  readonly tag: number;
  /** The value's content octets; undefined when the value is constructed. */
  readonly value: Uint8Array | undefined;
  /** The value's whole encoding. */
  readonly der: Uint8Array;
}

/**
 * The attributes of an encoded Name (RFC 5280 §4.1.2.4), grouped by RDN in encoded order (the
 * reverse of how RFC 4514 prints them), or undefined when `name` is not a Name.
 */
export function nameAttributes(name: Uint8Array): NameAttribute[][] | undefined {
  try {
    return nameAttributesOf(checkName(decodeDer(name, MAX_CERTIFICATE_SIZE), 'Name'));
  } catch (e) {
    if (e instanceof DerError) return undefined;
    throw e;
  }
}

function nameAttributesOf(name: Tlv): NameAttribute[][] {
  return children(name).map((rdn) =>
    children(rdn).map((atv) => {
      const { type, value } = attributeTypeAndValue(atv, 'Name');
      return {
        type: oidString(type),
        tag: value.cls === 0 ? value.tag : -1,
        value: value.constructed ? undefined : tlvContent(value),
        der: tlvBytes(value),
      };
    }),
  );
}

/** Display text and first commonName of a Name (its attributes in encoded order, RDNs flattened). */
function nameOf(name: Tlv): ParsedName {
  const parts: string[] = [];
  let commonName: Uint8Array | undefined;
  for (const a of nameAttributesOf(name).flat()) {
    if (a.type === Oid.COMMON_NAME && commonName === undefined && a.value !== undefined) commonName = a.value;
    parts.push(
      `${NAME_ATTRIBUTES.get(a.type) ?? a.type}=${a.value === undefined ? `#${hex(a.der)}` : stringText(a.tag, a.value)}`,
    );
  }
  return { text: parts.join(', '), commonName };
}

/** Display text of a directory string. */
function stringText(tag: number, value: Uint8Array): string {
  let s: string;
  if (tag === Tag.BMP_STRING) {
    s = '';
    for (let i = 0; i + 1 < value.length; i += 2) s += String.fromCharCode((value[i]! << 8) | value[i + 1]!);
  } else if (tag === Tag.UNIVERSAL_STRING) {
    s = '';
    for (let i = 0; i + 3 < value.length; i += 4) {
      const cp = ((value[i]! << 24) | (value[i + 1]! << 16) | (value[i + 2]! << 8) | value[i + 3]!) >>> 0;
      s += cp <= 0x10ffff ? String.fromCodePoint(cp) : '\ufffd';
    }
  } else if (tag === Tag.UTF8_STRING) {
    s = Buffer.from(value).toString('utf8');
  } else {
    s = Buffer.from(value).toString('latin1');
  }
  // Control characters would let a subject forge log lines; show them escaped.
  return s.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** Most bytes of DER inside one certificate field (extension values, public keys). */
const MAX_INNER_SIZE = 16384;

/** RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }; undefined when unusable. */
function parseRsaPublicKey(bytes: Uint8Array): RsaPublicKey | undefined {
  try {
    const parts = children(expect(decodeDer(bytes, MAX_INNER_SIZE), Tag.SEQUENCE, 'RSAPublicKey'));
    if (parts.length !== 2) return undefined;
    const modulusBits = positiveBits(integerBytes(parts[0], 'modulus'));
    const exponentBits = positiveBits(integerBytes(parts[1], 'publicExponent'));
    if (modulusBits === 0 || exponentBits < 2) return undefined;
    return { pkcs1: bytes, modulusBits, exponentBits };
  } catch {
    return undefined;
  }
}

/** Bit length of a positive INTEGER's content, or 0 when it is negative, zero or empty. */
function positiveBits(b: Uint8Array): number {
  if (b.length === 0 || (b[0]! & 0x80) !== 0) return 0;
  let i = 0;
  while (i < b.length && b[i] === 0) i++;
  if (i === b.length) return 0;
  return (b.length - i - 1) * 8 + (32 - Math.clz32(b[i]!));
}

interface ParsedExtensions {
  basicConstraints: Certificate['basicConstraints'];
  keyUsage: number | undefined;
  subjectKeyIdentifier: Uint8Array | undefined;
  authorityKeyIdentifier: Uint8Array | undefined;
  authorityCertSerialNumber: Uint8Array | undefined;
  invalidExtension: string | undefined;
  unhandledCriticalExtension: string | undefined;
}

/**
 * The extensions chain building needs. A malformed Extension fails the certificate; a malformed
 * value only marks it (invalidExtension), as OpenSSL does.
 */
function parseExtensions(extensions: readonly Tlv[]): ParsedExtensions {
  const out: ParsedExtensions = {
    basicConstraints: undefined,
    keyUsage: undefined,
    subjectKeyIdentifier: undefined,
    authorityKeyIdentifier: undefined,
    authorityCertSerialNumber: undefined,
    invalidExtension: undefined,
    unhandledCriticalExtension: undefined,
  };
  const seen = new Set<string>();
  for (const ext of extensions.map(extensionFields)) {
    const { id, value } = ext;
    if (seen.has(id)) {
      out.invalidExtension ??= `extension ${id} appears twice`;
      continue;
    }
    seen.add(id);
    try {
      if (id === Oid.BASIC_CONSTRAINTS) out.basicConstraints = parseBasicConstraints(value);
      else if (id === Oid.KEY_USAGE) out.keyUsage = bitFlags(decodeDer(value, MAX_INNER_SIZE), 'keyUsage');
      else if (id === Oid.SUBJECT_KEY_IDENTIFIER)
        out.subjectKeyIdentifier = octetString(decodeDer(value, MAX_INNER_SIZE), 'subjectKeyIdentifier');
      else if (id === Oid.AUTHORITY_KEY_IDENTIFIER) {
        const akid = parseAuthorityKeyId(value);
        out.authorityKeyIdentifier = akid.keyIdentifier;
        out.authorityCertSerialNumber = akid.serialNumber;
      } else if (ext.critical && !HANDLED_CRITICAL_EXTENSIONS.has(id)) {
        out.unhandledCriticalExtension ??= `unhandled critical extension ${id}`;
      }
    } catch (e) {
      out.invalidExtension ??= `extension ${id} is malformed${e instanceof DerError ? `: ${e.message}` : ''}`;
    }
  }
  return out;
}

function parseBasicConstraints(value: Uint8Array): { ca: boolean; pathLength: number | undefined } {
  const seq = expect(decodeDer(value, MAX_INNER_SIZE), Tag.SEQUENCE, 'basicConstraints');
  let ca = false;
  let pathLength: number | undefined;
  for (const f of children(seq)) {
    if (isUniversal(f, Tag.BOOLEAN)) ca = booleanValue(f, 'cA');
    else if (isUniversal(f, Tag.INTEGER)) pathLength = smallInteger(f, 'pathLenConstraint');
    else throw new DerError('basicConstraints has an unexpected field');
  }
  return { ca, pathLength };
}

function parseAuthorityKeyId(value: Uint8Array): {
  keyIdentifier: Uint8Array | undefined;
  serialNumber: Uint8Array | undefined;
} {
  const seq = expect(decodeDer(value, MAX_INNER_SIZE), Tag.SEQUENCE, 'authorityKeyIdentifier');
  let keyIdentifier: Uint8Array | undefined;
  let serialNumber: Uint8Array | undefined;
  for (const f of children(seq)) {
    if (isContext(f, 0) || isContext(f, 2)) {
      const c = tlvContent(f);
      if (f.constructed || c.length === 0) throw new DerError('authorityKeyIdentifier field is malformed');
      if (isContext(f, 0)) keyIdentifier = c;
      else serialNumber = c;
    } else if (!isContext(f, 1)) {
      throw new DerError('authorityKeyIdentifier has an unexpected field');
    }
  }
  return { keyIdentifier, serialNumber };
}

/**
 * Whether `issuer` may have issued `subject`, as OpenSSL's X509_check_issued decides it when it
 * builds a chain (no signature check yet): the names match, the authority key identifier (key id
 * and serial, when present) points at the issuer, the signature algorithm suits the issuer's key
 * type, both certificates' extensions are valid, and a keyUsage on the issuer allows keyCertSign.
 * Names are compared byte for byte (OpenSSL compares a case-folded canonical form).
 */
export function issuedBy(subject: Certificate, issuer: Certificate): boolean {
  if (!bytesEqual(subject.issuer, issuer.subject)) return false;
  if (subject.invalidExtension !== undefined || issuer.invalidExtension !== undefined) return false;
  if (subject.authorityKeyIdentifier !== undefined && issuer.subjectKeyIdentifier !== undefined) {
    if (!bytesEqual(subject.authorityKeyIdentifier, issuer.subjectKeyIdentifier)) return false;
  }
  if (
    subject.authorityCertSerialNumber !== undefined &&
    !bytesEqual(subject.authorityCertSerialNumber, issuer.serialNumber)
  )
    return false;
  if (isRsaSignatureAlgorithm(subject.signatureAlgorithmOid) !== (issuer.publicKeyAlgorithmOid === Oid.RSA_ENCRYPTION))
    return false;
  if (issuer.keyUsage !== undefined && (issuer.keyUsage & KeyUsage.KEY_CERT_SIGN) === 0) return false;
  return true;
}

/** The certificate names itself as its issuer. */
export function selfIssued(cert: Certificate): boolean {
  return bytesEqual(cert.subject, cert.issuer);
}

function isRsaSignatureAlgorithm(oid: string): boolean {
  return oid.startsWith('1.2.840.113549.1.1.');
}

/**
 * OpenSSL's X509_check_ca, which edk2 and varstored rely on: 1 for basicConstraints cA with (if
 * present) keyCertSign usage, 3 for a self-issued version 1 certificate, 4 for keyCertSign without
 * basicConstraints, 0 when not a CA.
 */
export function caKind(cert: Certificate): number {
  if (cert.keyUsage !== undefined && (cert.keyUsage & KeyUsage.KEY_CERT_SIGN) === 0) return 0;
  if (cert.basicConstraints !== undefined) return cert.basicConstraints.ca ? 1 : 0;
  if (cert.version === 1 && bytesEqual(cert.subject, cert.issuer)) return 3;
  if (cert.keyUsage !== undefined) return 4;
  return 0;
}

const keyObjects = new WeakMap<Certificate, KeyObject | null>();

/** The certificate's RSA key for node:crypto, created once per parsed certificate; undefined when unusable. */
export function rsaKeyObject(cert: Certificate): KeyObject | undefined {
  const cached = keyObjects.get(cert);
  if (cached !== undefined) return cached ?? undefined;
  let key: KeyObject | null = null;
  const rsa = cert.rsaPublicKey;
  // Bounds keep every verification cheap: OpenSSL's own modulus cap, and a 64-bit exponent cap
  // (65537 in practice) so a hostile certificate cannot turn a verification into a private-key-sized job.
  if (rsa !== undefined && rsa.modulusBits >= 512 && rsa.modulusBits <= 16384 && rsa.exponentBits <= 64) {
    try {
      key =
        cert instanceof ParsedCertificate
          ? createPublicKey({
              key: Buffer.from(cert.spki.buffer, cert.spki.byteOffset, cert.spki.byteLength),
              format: 'der',
              type: 'spki',
            })
          : createPublicKey({
              key: Buffer.from(rsa.pkcs1.buffer, rsa.pkcs1.byteOffset, rsa.pkcs1.byteLength),
              format: 'der',
              type: 'pkcs1',
            });
    } catch {
      key = null;
    }
  }
  keyObjects.set(cert, key);
  return key ?? undefined;
}

/** SHA-256 of the certificate encoding, hex (the usual fingerprint). */
export function fingerprint(cert: Certificate): string {
  let f = fingerprints.get(cert);
  if (f === undefined) {
    f = createHash('sha256').update(cert.der).digest('hex');
    fingerprints.set(cert, f);
  }
  return f;
}

const fingerprints = new WeakMap<Certificate, string>();

/** Serial number as hex (two's complement bytes, as tools print it). */
export function serialHex(cert: Certificate): string {
  return hex(cert.serialNumber);
}
