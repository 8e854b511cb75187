import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import {
  DerError,
  Tag,
  bitFlags,
  bitStringBytes,
  booleanValue,
  children,
  content,
  encodeOid,
  expect,
  hex,
  integerBytes,
  isContext,
  isOid,
  isUniversal,
  octetString,
  oidText,
  raw,
  readRoot,
  smallInteger,
  type Tlv,
} from './der.js';
import { HANDLED_CRITICAL_EXTENSIONS, NAME_ATTRIBUTES, Oid } from './oids.js';

/** KeyUsage bits as numbered by RFC 5280 (bit 0 = digitalSignature). */
export const KeyUsage = {
  DIGITAL_SIGNATURE: 1 << 0,
  KEY_CERT_SIGN: 1 << 5,
} as const;

/** An RSA public key as the certificate carries it. */
export interface RsaPublicKey {
  /** PKCS#1 RSAPublicKey DER (fast to import, unlike SubjectPublicKeyInfo). */
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

export type CertificateResult = { readonly ok: true; readonly certificate: Certificate } | { readonly ok: false; readonly reason: string };

/** Parses one DER certificate (no trailing bytes). Never throws. */
export function parseCertificate(der: Uint8Array): CertificateResult {
  try {
    const copy = der.slice();
    return { ok: true, certificate: certificateFromTlv(readRoot(copy)) };
  } catch (e) {
    return { ok: false, reason: e instanceof DerError ? `not a valid X.509 certificate: ${e.message}` : 'not a valid X.509 certificate' };
  }
}

/** Parses the certificate encoded by `tlv` (its bytes must not change afterwards). Throws DerError. */
export function certificateFromTlv(tlv: Tlv): Certificate {
  expect(tlv, Tag.SEQUENCE, 'Certificate');
  const [tbsTlv, sigAlgTlv, sigTlv, extra] = children(tlv);
  if (extra !== undefined) throw new DerError('Certificate has extra fields');
  expect(tbsTlv, Tag.SEQUENCE, 'tbsCertificate');
  expect(sigAlgTlv, Tag.SEQUENCE, 'signatureAlgorithm');
  const signature = bitStringBytes(sigTlv!, 'signatureValue');
  const sigAlgOid = children(sigAlgTlv!)[0];
  expect(sigAlgOid, Tag.OID, 'signatureAlgorithm');

  const fields = children(tbsTlv!);
  let i = 0;
  let version = 1;
  if (fields[i] !== undefined && isContext(fields[i]!, 0)) {
    const v = children(fields[i]!);
    if (v.length !== 1) throw new DerError('version is malformed');
    const n = smallInteger(v[0]!, 'version');
    if (n > 2) throw new DerError(`version ${n + 1} is unknown`);
    version = n + 1;
    i++;
  }
  const serialNumber = integerBytes(fields[i++]!, 'serialNumber');
  const tbsSigAlg = expect(fields[i++], Tag.SEQUENCE, 'signature');
  const issuer = expect(fields[i++], Tag.SEQUENCE, 'issuer');
  const validity = expect(fields[i++], Tag.SEQUENCE, 'validity');
  const subject = expect(fields[i++], Tag.SEQUENCE, 'subject');
  const spki = expect(fields[i++], Tag.SEQUENCE, 'subjectPublicKeyInfo');
  let extensions: Tlv | undefined;
  for (; i < fields.length; i++) {
    const f = fields[i]!;
    if (isContext(f, 1) || isContext(f, 2)) continue; // issuer/subject unique identifiers
    if (isContext(f, 3)) {
      if (extensions !== undefined) throw new DerError('extensions appear twice');
      extensions = f;
      continue;
    }
    throw new DerError('tbsCertificate has an unexpected field');
  }

  const times = children(validity);
  if (times.length !== 2 || !times.every(isTime)) throw new DerError('validity is malformed');
  checkName(issuer, 'issuer');
  checkName(subject, 'subject');
  const key = parsePublicKey(spki);
  const ext = parseExtensions(extensions, version);
  return new ParsedCertificate(tlv, tbsTlv!, version, serialNumber, tbsSigAlg, sigAlgTlv!, sigAlgOid!, signature, issuer, subject, times[0]!, times[1]!, key, ext);
}

/**
 * The parsed form. Text (names, dates, OIDs) is only needed for messages, so it is decoded on
 * first use rather than on the verification path.
 */
class ParsedCertificate implements Certificate {
  readonly der: Uint8Array;
  readonly tbs: Uint8Array;
  readonly issuer: Uint8Array;
  readonly subject: Uint8Array;
  readonly tbsSignatureAlgorithm: Uint8Array;
  readonly signatureAlgorithm: Uint8Array;
  readonly rsaPublicKey: RsaPublicKey | undefined;
  readonly basicConstraints: Certificate['basicConstraints'];
  readonly keyUsage: number | undefined;
  readonly subjectKeyIdentifier: Uint8Array | undefined;
  readonly authorityKeyIdentifier: Uint8Array | undefined;
  readonly invalidExtension: string | undefined;
  readonly unhandledCriticalExtension: string | undefined;
  readonly authorityCertSerialNumber: Uint8Array | undefined;
  private readonly keyOidTlv: Tlv;
  private issuerName: ParsedName | undefined;
  private subjectName: ParsedName | undefined;
  private sigOid: string | undefined;
  private keyOid: string | undefined;

  constructor(
    tlv: Tlv,
    tbs: Tlv,
    readonly version: number,
    readonly serialNumber: Uint8Array,
    tbsSigAlg: Tlv,
    sigAlg: Tlv,
    private readonly sigAlgOidTlv: Tlv,
    readonly signature: Uint8Array,
    private readonly issuerTlv: Tlv,
    private readonly subjectTlv: Tlv,
    private readonly notBeforeTlv: Tlv,
    private readonly notAfterTlv: Tlv,
    key: ParsedKey,
    ext: ParsedExtensions,
  ) {
    this.der = raw(tlv);
    this.tbs = raw(tbs);
    this.issuer = raw(issuerTlv);
    this.subject = raw(subjectTlv);
    this.tbsSignatureAlgorithm = raw(tbsSigAlg);
    this.signatureAlgorithm = raw(sigAlg);
    this.rsaPublicKey = key.rsa;
    this.keyOidTlv = key.algorithm;
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
    this.issuerName ??= parseName(this.issuerTlv, 'issuer');
    return this.issuerName.text;
  }

  get subjectText(): string {
    this.subjectName ??= parseName(this.subjectTlv, 'subject');
    return this.subjectName.text;
  }

  get commonName(): Uint8Array | undefined {
    this.subjectName ??= parseName(this.subjectTlv, 'subject');
    return this.subjectName.commonName;
  }

  get notBefore(): string {
    return timeText(this.notBeforeTlv);
  }

  get notAfter(): string {
    return timeText(this.notAfterTlv);
  }

  get signatureAlgorithmOid(): string {
    this.sigOid ??= oidText(this.sigAlgOidTlv);
    return this.sigOid;
  }

  get publicKeyAlgorithmOid(): string {
    this.keyOid ??= oidText(this.keyOidTlv);
    return this.keyOid;
  }
}

function isTime(t: Tlv): boolean {
  return (isUniversal(t, Tag.UTC_TIME) || isUniversal(t, Tag.GENERALIZED_TIME)) && !t.constructed;
}

/** UTCTime/GeneralizedTime as `YYYY-MM-DDTHH:MM:SSZ` when it has the usual shape, else as written. */
function timeText(t: Tlv): string {
  const s = Buffer.from(content(t)).toString('latin1');
  const m = (isUniversal(t, Tag.UTC_TIME) ? /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)?Z$/ : /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)?(?:\.\d+)?Z$/).exec(s);
  if (m === null) return s.replace(/[^\x20-\x7e]/g, '?');
  let year = m[1]!;
  if (year.length === 2) year = (Number(year) >= 50 ? '19' : '20') + year;
  return `${year}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6] ?? '00'}Z`;
}

/** Structure of a Name: SEQUENCE OF SET OF SEQUENCE { OID, value }. */
function checkName(name: Tlv, what: string): void {
  for (const rdn of children(name)) {
    expect(rdn, Tag.SET, `${what} RDN`);
    for (const atv of children(rdn)) {
      expect(atv, Tag.SEQUENCE, `${what} attribute`);
      const [typeTlv, valueTlv] = children(atv);
      expect(typeTlv, Tag.OID, `${what} attribute type`);
      if (valueTlv === undefined) throw new DerError(`${what} attribute has no value`);
    }
  }
}

interface ParsedName {
  readonly text: string;
  readonly commonName: Uint8Array | undefined;
}

function parseName(name: Tlv, what: string): ParsedName {
  const parts: string[] = [];
  let commonName: Uint8Array | undefined;
  for (const rdn of children(name)) {
    expect(rdn, Tag.SET, `${what} RDN`);
    for (const atv of children(rdn)) {
      expect(atv, Tag.SEQUENCE, `${what} attribute`);
      const [typeTlv, valueTlv] = children(atv);
      const type = oidText(typeTlv!);
      if (valueTlv === undefined) throw new DerError(`${what} attribute has no value`);
      const value = valueTlv.constructed ? undefined : content(valueTlv);
      if (type === Oid.COMMON_NAME && commonName === undefined && value !== undefined) commonName = value;
      parts.push(`${NAME_ATTRIBUTES.get(type) ?? type}=${value === undefined ? '#' + hex(raw(valueTlv)) : stringText(valueTlv.tag, value)}`);
    }
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

interface ParsedKey {
  readonly algorithm: Tlv;
  readonly rsa: RsaPublicKey | undefined;
}

function parsePublicKey(spki: Tlv): ParsedKey {
  const [algTlv, keyTlv, extra] = children(spki);
  if (extra !== undefined) throw new DerError('subjectPublicKeyInfo has extra fields');
  expect(algTlv, Tag.SEQUENCE, 'subjectPublicKeyInfo algorithm');
  const algorithm = expect(children(algTlv!)[0], Tag.OID, 'public key algorithm');
  const keyBits = bitStringBytes(keyTlv!, 'subjectPublicKey');
  return { algorithm, rsa: isOid(algorithm, RSA_ENCRYPTION) ? parseRsaPublicKey(keyBits) : undefined };
}

const RSA_ENCRYPTION = encodeOid(Oid.RSA_ENCRYPTION);
const BASIC_CONSTRAINTS = encodeOid(Oid.BASIC_CONSTRAINTS);
const KEY_USAGE = encodeOid(Oid.KEY_USAGE);
const SUBJECT_KEY_IDENTIFIER = encodeOid(Oid.SUBJECT_KEY_IDENTIFIER);
const AUTHORITY_KEY_IDENTIFIER = encodeOid(Oid.AUTHORITY_KEY_IDENTIFIER);

/** RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }; undefined when unusable. */
function parseRsaPublicKey(bytes: Uint8Array): RsaPublicKey | undefined {
  try {
    const seq = readRoot(bytes);
    expect(seq, Tag.SEQUENCE, 'RSAPublicKey');
    const [nTlv, eTlv, extra] = children(seq);
    if (extra !== undefined) return undefined;
    const modulusBits = positiveBits(integerBytes(nTlv!, 'modulus'));
    const exponentBits = positiveBits(integerBytes(eTlv!, 'publicExponent'));
    if (modulusBits === 0 || exponentBits < 2) return undefined;
    return { pkcs1: bytes, modulusBits, exponentBits };
  } catch {
    return undefined;
  }
}

/** Bit length of a positive INTEGER's content, or 0 when it is negative or zero. */
function positiveBits(b: Uint8Array): number {
  if ((b[0]! & 0x80) !== 0) return 0;
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

function parseExtensions(wrapper: Tlv | undefined, version: number): ParsedExtensions {
  const out: ParsedExtensions = {
    basicConstraints: undefined,
    keyUsage: undefined,
    subjectKeyIdentifier: undefined,
    authorityKeyIdentifier: undefined,
    authorityCertSerialNumber: undefined,
    invalidExtension: undefined,
    unhandledCriticalExtension: undefined,
  };
  if (wrapper === undefined) return out;
  if (version !== 3) throw new DerError('extensions in a certificate that is not version 3');
  const inner = children(wrapper);
  if (inner.length !== 1) throw new DerError('extensions are malformed');
  const seen = new Set<string>();
  for (const extTlv of children(expect(inner[0], Tag.SEQUENCE, 'extensions'))) {
    expect(extTlv, Tag.SEQUENCE, 'extension');
    const parts = children(extTlv);
    const idTlv = expect(parts[0], Tag.OID, 'extension id');
    let critical = false;
    let valueTlv = parts[1];
    if (valueTlv !== undefined && isUniversal(valueTlv, Tag.BOOLEAN)) {
      critical = booleanValue(valueTlv, 'extension critical flag');
      valueTlv = parts[2];
    }
    const value = octetString(expect(valueTlv, Tag.OCTET_STRING, 'extension value'), 'extension value');
    const seenKey = Buffer.from(content(idTlv)).toString('latin1');
    if (seen.has(seenKey)) {
      out.invalidExtension ??= `extension ${oidText(idTlv)} appears twice`;
      continue;
    }
    seen.add(seenKey);
    try {
      if (isOid(idTlv, BASIC_CONSTRAINTS)) out.basicConstraints = parseBasicConstraints(value);
      else if (isOid(idTlv, KEY_USAGE)) out.keyUsage = bitFlags(readRoot(value), 'keyUsage');
      else if (isOid(idTlv, SUBJECT_KEY_IDENTIFIER)) out.subjectKeyIdentifier = octetString(readRoot(value), 'subjectKeyIdentifier');
      else if (isOid(idTlv, AUTHORITY_KEY_IDENTIFIER)) {
        const akid = parseAuthorityKeyId(value);
        out.authorityKeyIdentifier = akid.keyIdentifier;
        out.authorityCertSerialNumber = akid.serialNumber;
      }
      else if (critical) {
        const id = oidText(idTlv);
        if (!HANDLED_CRITICAL_EXTENSIONS.has(id)) out.unhandledCriticalExtension ??= `unhandled critical extension ${id}`;
      }
    } catch (e) {
      out.invalidExtension ??= `extension ${oidText(idTlv)} is malformed${e instanceof DerError ? `: ${e.message}` : ''}`;
    }
  }
  return out;
}

function parseBasicConstraints(value: Uint8Array): { ca: boolean; pathLength: number | undefined } {
  const seq = expect(readRoot(value), Tag.SEQUENCE, 'basicConstraints');
  let ca = false;
  let pathLength: number | undefined;
  for (const f of children(seq)) {
    if (isUniversal(f, Tag.BOOLEAN)) ca = booleanValue(f, 'cA');
    else if (isUniversal(f, Tag.INTEGER)) pathLength = smallInteger(f, 'pathLenConstraint');
    else throw new DerError('basicConstraints has an unexpected field');
  }
  return { ca, pathLength };
}

function parseAuthorityKeyId(value: Uint8Array): { keyIdentifier: Uint8Array | undefined; serialNumber: Uint8Array | undefined } {
  const seq = expect(readRoot(value), Tag.SEQUENCE, 'authorityKeyIdentifier');
  let keyIdentifier: Uint8Array | undefined;
  let serialNumber: Uint8Array | undefined;
  for (const f of children(seq)) {
    if (isContext(f, 0) || isContext(f, 2)) {
      if (f.constructed || f.contentEnd === f.contentStart) throw new DerError('authorityKeyIdentifier field is malformed');
      if (isContext(f, 0)) keyIdentifier = content(f);
      else serialNumber = content(f);
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
  if (!equalBytes(subject.issuer, issuer.subject)) return false;
  if (subject.invalidExtension !== undefined || issuer.invalidExtension !== undefined) return false;
  if (subject.authorityKeyIdentifier !== undefined && issuer.subjectKeyIdentifier !== undefined) {
    if (!equalBytes(subject.authorityKeyIdentifier, issuer.subjectKeyIdentifier)) return false;
  }
  if (subject.authorityCertSerialNumber !== undefined && !equalBytes(subject.authorityCertSerialNumber, issuer.serialNumber)) return false;
  if (isRsaSignatureAlgorithm(subject.signatureAlgorithmOid) !== (issuer.publicKeyAlgorithmOid === Oid.RSA_ENCRYPTION)) return false;
  if (issuer.keyUsage !== undefined && (issuer.keyUsage & KeyUsage.KEY_CERT_SIGN) === 0) return false;
  return true;
}

/** The certificate names itself as its issuer. */
export function selfIssued(cert: Certificate): boolean {
  return equalBytes(cert.subject, cert.issuer);
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
  if (cert.version === 1 && equalBytes(cert.subject, cert.issuer)) return 3;
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
      key = createPublicKey({ key: Buffer.from(rsa.pkcs1.buffer, rsa.pkcs1.byteOffset, rsa.pkcs1.byteLength), format: 'der', type: 'pkcs1' });
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

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
