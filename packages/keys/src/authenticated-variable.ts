import { createHash, sign } from 'node:crypto';
import {
  Attr,
  Attrs,
  AUTHENTICATION2_HEADER_SIZE,
  authentication2Length,
  buildAuthentication2,
  WIN_CERT_TYPE_EFI_GUID,
  authTimestampProblem,
  efiTimeFromDate,
  EFI_TIME_SIZE,
  fromUtf16le,
  Guids,
  guidEquals,
  nameProblem,
  parseEfiTime,
  serializeEfiTime,
  utf16le,
  type EfiTime,
} from '@vmsb/efi';
import { signatureDatabaseProblem } from '@vmsb/auth';
import { certificateDer, certificateFields, type CertificateInput } from './certificate.js';
import { loadPrivateKey, subjectPublicKeyInfo, type PrivateKeyInput } from './keys.js';
import { decodePem, looksLikePem, pemText } from './pem.js';
import {
  buildSignedData,
  checkDetachedSignature,
  parseSignedData,
  signedAttributesFor,
  withCertificates,
  wrapContentInfo,
} from './pkcs7.js';
import { guidBytes, type GuidInput } from './signature-list.js';
import { bytesEqual } from '@vmsb/protocol';

/** A timestamp: a Date (taken as UTC, to the second), EFI_TIME fields, or the 16 EFI_TIME bytes. */
export type TimestampInput = Date | EfiTime | Uint8Array;

/** What an authenticated variable update is about, before it is signed. */
export interface VariableInput {
  /** Variable name: text, or UTF-16LE bytes without terminator. */
  readonly name: string | Uint8Array;
  /**
   * Vendor GUID. Default for PK and KEK: EFI_GLOBAL_VARIABLE; for db, dbx, dbt and dbr:
   * EFI_IMAGE_SECURITY_DATABASE_GUID; required for any other name.
   */
  readonly guid?: GuidInput;
  /**
   * Attributes the update will be written with. Default NV|BS|RT|TIME_BASED_AUTHENTICATED_WRITE_ACCESS
   * (0x27). Must include TIME_BASED_AUTHENTICATED_WRITE_ACCESS.
   */
  readonly attributes?: number;
  /** Append instead of replace: adds APPEND_WRITE (0x40), which the signature covers. */
  readonly append?: boolean;
  /** The descriptor's timestamp. Default: now. Later than the stored one for a replacing update. */
  readonly timestamp?: TimestampInput;
  /** The new value (for Secure Boot databases, EFI_SIGNATURE_LISTs); empty deletes the variable. */
  readonly payload: Uint8Array;
  /**
   * Check a PK/KEK/db/dbx/dbt/dbr payload against edk2's signature-list rules before signing
   * (firmware would refuse it anyway). Default true.
   */
  readonly checkPayload?: boolean;
}

/** An update with every default resolved: exactly what gets signed. */
export interface UnsignedVariable {
  /** UTF-16LE, no terminator. */
  readonly name: Uint8Array;
  readonly guid: Uint8Array;
  /** As signed and as passed to SetVariable: APPEND_WRITE included when appending. */
  readonly attributes: number;
  /** 16-byte EFI_TIME. */
  readonly timestamp: Uint8Array;
  readonly payload: Uint8Array;
}

const GLOBAL_NAMES = new Set(['PK', 'KEK']);
const IMAGE_DB_NAMES = new Set(['db', 'dbx', 'dbt', 'dbr']);

/** Resolves defaults and checks an update. Throws a TypeError or RangeError saying what is wrong. */
export function prepareVariable(input: VariableInput): UnsignedVariable {
  const name = typeof input.name === 'string' ? utf16le(input.name) : input.name.slice();
  const problem = nameProblem(name);
  if (problem !== undefined) throw new TypeError(problem);
  const guid = vendorGuid(input.name, input.guid);

  let attributes = (input.attributes ?? Attrs.NV_BS_RT_AT) >>> 0;
  if (input.append === true) attributes |= Attr.APPEND_WRITE;
  if ((attributes & Attr.TIME_BASED_AUTHENTICATED_WRITE_ACCESS) === 0) {
    throw new RangeError(`attributes 0x${attributes.toString(16)} lack TIME_BASED_AUTHENTICATED_WRITE_ACCESS (0x20)`);
  }
  if ((attributes & Attr.AUTHENTICATED_WRITE_ACCESS) !== 0)
    throw new RangeError('AUTHENTICATED_WRITE_ACCESS (0x10) is deprecated; firmware refuses it');

  const timestamp = timestampBytes(input.timestamp ?? new Date());

  if (input.checkPayload !== false && input.payload.length > 0 && isSignatureDatabase(name, guid)) {
    const isPK = guidEquals(guid, Guids.GLOBAL_VARIABLE) && bytesEqual(name, utf16le('PK'));
    const why = signatureDatabaseProblem(input.payload, isPK);
    if (why !== undefined) throw new TypeError(`the payload is not a valid signature database: ${why}`);
  }
  return { name, guid, attributes, timestamp, payload: input.payload.slice() };
}

/**
 * The vendor GUID given, or the one Secure Boot databases live under (global for PK and KEK,
 * image-security for db, dbx, dbt and dbr). Throws a TypeError for other names without a GUID.
 */
export function vendorGuid(name: string | Uint8Array, guid: GuidInput | undefined): Uint8Array {
  if (guid !== undefined) return guidBytes(guid);
  const text = typeof name === 'string' ? name : fromUtf16le(name);
  if (GLOBAL_NAMES.has(text)) return Guids.GLOBAL_VARIABLE.slice();
  if (IMAGE_DB_NAMES.has(text)) return Guids.IMAGE_SECURITY_DATABASE.slice();
  throw new TypeError(`give the vendor GUID of ${text}`);
}

function isSignatureDatabase(name: Uint8Array, guid: Uint8Array): boolean {
  if (guidEquals(guid, Guids.GLOBAL_VARIABLE)) return [...GLOBAL_NAMES].some((n) => bytesEqual(name, utf16le(n)));
  if (guidEquals(guid, Guids.IMAGE_SECURITY_DATABASE))
    return [...IMAGE_DB_NAMES].some((n) => bytesEqual(name, utf16le(n)));
  return false;
}

/** The 16 EFI_TIME bytes of a timestamp; refuses non-zero Pad1/Nanosecond/TimeZone/Daylight/Pad2, as firmware does. */
export function timestampBytes(input: TimestampInput): Uint8Array {
  let bytes: Uint8Array;
  if (input instanceof Date) {
    if (Number.isNaN(input.getTime())) throw new RangeError('invalid Date');
    bytes = serializeEfiTime(efiTimeFromDate(input));
  } else if (input instanceof Uint8Array) {
    if (input.length !== EFI_TIME_SIZE) throw new RangeError(`an EFI_TIME is 16 bytes, got ${input.length}`);
    bytes = input.slice();
  } else {
    bytes = serializeEfiTime(input);
  }
  const problem = authTimestampProblem(parseEfiTime(bytes)!);
  if (problem !== undefined) throw new RangeError(problem);
  return bytes;
}

/**
 * The exact bytes an EFI_VARIABLE_AUTHENTICATION_2 signature covers (UEFI 2.10 §8.2.6):
 * name (UTF-16LE, no NUL) ‖ vendor GUID ‖ attributes (u32 LE) ‖ timestamp ‖ payload. Identical to
 * what `sign-efi-sig-list -o` writes. Sign them with SHA-256 and RSA PKCS#1 v1.5, raw
 * (`openssl dgst -sha256 -sign`) or as detached PKCS#7 (`openssl cms -sign -binary -noattr -md sha256`).
 */
export function signableBytes(input: VariableInput | UnsignedVariable): Uint8Array {
  return serialize(prepareVariable(input));
}

function serialize(v: UnsignedVariable): Uint8Array {
  const out = new Uint8Array(v.name.length + 16 + 4 + EFI_TIME_SIZE + v.payload.length);
  let at = 0;
  out.set(v.name, at);
  at += v.name.length;
  out.set(v.guid, at);
  at += 16;
  new DataView(out.buffer).setUint32(at, v.attributes, true);
  at += 4;
  out.set(v.timestamp, at);
  at += EFI_TIME_SIZE;
  out.set(v.payload, at);
  return out;
}

/**
 * Splits bytes made by `signableBytes` (or `sign-efi-sig-list -o`) back into the update, given the
 * variable name (the only part without a length of its own). Throws when the bytes do not start
 * with that name or are too short.
 */
export function parseSignableBytes(bytes: Uint8Array, name: string | Uint8Array): UnsignedVariable {
  const nameBytes = typeof name === 'string' ? utf16le(name) : name;
  const fixed = nameBytes.length + 16 + 4 + EFI_TIME_SIZE;
  if (bytes.length < fixed)
    throw new RangeError(`${bytes.length} bytes are too few for the signed data of this variable (at least ${fixed})`);
  if (!bytesEqual(bytes.subarray(0, nameBytes.length), nameBytes))
    throw new TypeError('the signed data is for another variable name');
  const at = nameBytes.length;
  return {
    name: nameBytes.slice(),
    guid: bytes.slice(at, at + 16),
    attributes: new DataView(bytes.buffer, bytes.byteOffset + at + 16, 4).getUint32(0, true),
    timestamp: bytes.slice(at + 20, at + 20 + EFI_TIME_SIZE),
    payload: bytes.slice(fixed),
  };
}

export interface EncodingOptions {
  /** Put the SignedData in a ContentInfo. Default false: bare SignedData, as efitools and Microsoft write. */
  readonly wrapContentInfo?: boolean;
}

export interface SigningOptions extends EncodingOptions {
  /** The signer's RSA private key. */
  readonly key: PrivateKeyInput;
  /** The signer's certificate. */
  readonly certificate: CertificateInput;
  /** Intermediate certificates to carry after the signer's (when the trusted key is an issuer of the signer). */
  readonly chain?: readonly CertificateInput[];
  /** Sign authenticated attributes (contentType, messageDigest) instead of the data itself. Default false. */
  readonly signedAttributes?: boolean;
}

/**
 * A signed update (.auth file): EFI_VARIABLE_AUTHENTICATION_2 (timestamp, WIN_CERTIFICATE_UEFI_GUID
 * with a detached PKCS#7 SignedData, SHA-256) followed by the payload. Without signed attributes the
 * result is byte-identical to `sign-efi-sig-list -t <timestamp>` for the same key, certificate and
 * payload (RSA PKCS#1 v1.5 signatures are deterministic).
 */
export function createAuthenticatedVariable(options: VariableInput & SigningOptions): Uint8Array {
  const v = prepareVariable(options);
  const key = loadPrivateKey(options.key);
  const certificate = certificateDer(options.certificate);
  if (!bytesEqual(subjectPublicKeyInfo(key), certificateFields(certificate).spki)) {
    throw new TypeError('the key does not belong to the certificate');
  }
  const data = serialize(v);
  let signedAttributes: Uint8Array | undefined;
  let signature: Uint8Array;
  if (options.signedAttributes === true) {
    signedAttributes = signedAttributesFor(new Uint8Array(createHash('sha256').update(data).digest()));
    signature = new Uint8Array(sign('sha256', signedAttributes, key));
  } else {
    signature = new Uint8Array(sign('sha256', data, key));
  }
  const signedData = buildSignedData({
    signer: certificate,
    chain: (options.chain ?? []).map(certificateDer),
    signature,
    ...(signedAttributes !== undefined ? { signedAttributes } : {}),
  });
  return assemble(v, signedData, options);
}

/** A signature made elsewhere over `signableBytes`. */
export type DetachedSignature =
  /** A raw RSA PKCS#1 v1.5 SHA-256 signature (`openssl dgst -sha256 -sign key.pem`, an HSM's sign operation). */
  | {
      readonly signature: Uint8Array;
      readonly certificate: CertificateInput;
      readonly chain?: readonly CertificateInput[];
    }
  /**
   * A detached PKCS#7/CMS SignedData, DER or PEM, bare or in a ContentInfo, with or without signed
   * attributes (`openssl cms -sign -binary -md sha256 [-noattr]`). `certificate` and `chain` are added
   * when the signature does not carry them.
   */
  | {
      readonly cms: Uint8Array | string;
      readonly certificate?: CertificateInput;
      readonly chain?: readonly CertificateInput[];
    };

/**
 * The .auth for an update signed elsewhere: the offline flow is `signableBytes` → sign anywhere →
 * `attachSignature`. The update must be the one signed, timestamp included (give the same
 * `timestamp`, or pass `parseSignableBytes` of the signed bytes). The signature is checked against
 * the bytes and the signer's certificate before it is attached; a mismatch throws.
 */
export function attachSignature(options: VariableInput & DetachedSignature & EncodingOptions): Uint8Array {
  if (options.timestamp === undefined) throw new TypeError('give the timestamp the signed bytes carry');
  const v = prepareVariable(options);
  const data = serialize(v);
  let signedData: Uint8Array;
  if ('signature' in options) {
    const certificate = certificateDer(options.certificate);
    signedData = buildSignedData({
      signer: certificate,
      chain: (options.chain ?? []).map(certificateDer),
      signature: options.signature,
    });
  } else {
    const der = cmsDer(options.cms);
    let parsed = parseSignedData(der);
    const extra = [
      ...(options.certificate !== undefined ? [certificateDer(options.certificate)] : []),
      ...(options.chain ?? []).map(certificateDer),
    ].filter((c) => !parsed.certificates.some((have) => bytesEqual(have, c)));
    if (extra.length > 0)
      parsed = parseSignedData(withCertificates(parsed.signedData, [...parsed.certificates, ...extra]));
    signedData = parsed.signedData;
  }
  checkDetachedSignature(parseSignedData(signedData), data);
  return assemble(v, signedData, options);
}

function cmsDer(input: Uint8Array | string): Uint8Array {
  if (typeof input === 'string' || looksLikePem(input)) {
    const blocks = decodePem(pemText(input)).filter((b) => b.label === 'PKCS7' || b.label === 'CMS');
    if (blocks.length !== 1) throw new TypeError(`expected one PKCS7 or CMS PEM block, found ${blocks.length}`);
    return blocks[0]!.der;
  }
  return input;
}

function assemble(v: UnsignedVariable, signedData: Uint8Array, options: EncodingOptions): Uint8Array {
  const certData = options.wrapContentInfo === true ? wrapContentInfo(signedData) : signedData;
  return buildAuthentication2(v.timestamp, certData, v.payload);
}

/** The parts of a .auth file, located without interpreting the PKCS#7. */
export interface AuthenticatedVariableParts {
  readonly timestamp: Uint8Array;
  /** WIN_CERTIFICATE_UEFI_GUID.CertData: the PKCS#7 as carried (bare or wrapped). */
  readonly certData: Uint8Array;
  readonly payload: Uint8Array;
}

/**
 * Splits a .auth file: timestamp, PKCS#7 and payload (views into `bytes`). Checks the framing only
 * (dwLength within the data, certificate type PKCS#7); signature checks are @vmsb/auth's.
 */
export function splitAuthenticatedVariable(bytes: Uint8Array): AuthenticatedVariableParts {
  if (bytes.length < AUTHENTICATION2_HEADER_SIZE)
    throw new RangeError(`${bytes.length} bytes are too few for EFI_VARIABLE_AUTHENTICATION_2 (40)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dwLength = authentication2Length(bytes);
  if (dwLength === undefined)
    throw new RangeError(`dwLength ${view.getUint32(16, true)} does not fit the ${bytes.length} bytes`);
  if (view.getUint16(22, true) !== WIN_CERT_TYPE_EFI_GUID || !guidEquals(bytes.subarray(24, 40), Guids.CERT_PKCS7)) {
    throw new TypeError('the certificate is not a WIN_CERT_TYPE_EFI_GUID PKCS#7 signature');
  }
  return {
    timestamp: bytes.subarray(0, 16),
    certData: bytes.subarray(AUTHENTICATION2_HEADER_SIZE, 16 + dwLength),
    payload: bytes.subarray(16 + dwLength),
  };
}
