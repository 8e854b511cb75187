/** Object identifiers used by UEFI signatures and the certificates that make them, in dotted form. */
export const Oid = {
  DATA: '1.2.840.113549.1.7.1',
  SIGNED_DATA: '1.2.840.113549.1.7.2',
  CONTENT_TYPE: '1.2.840.113549.1.9.3',
  MESSAGE_DIGEST: '1.2.840.113549.1.9.4',

  SHA1: '1.3.14.3.2.26',
  SHA256: '2.16.840.1.101.3.4.2.1',
  SHA384: '2.16.840.1.101.3.4.2.2',
  SHA512: '2.16.840.1.101.3.4.2.3',
  SHA224: '2.16.840.1.101.3.4.2.4',

  RSA_ENCRYPTION: '1.2.840.113549.1.1.1',
  MD5_WITH_RSA: '1.2.840.113549.1.1.4',
  SHA1_WITH_RSA: '1.2.840.113549.1.1.5',
  SHA256_WITH_RSA: '1.2.840.113549.1.1.11',
  SHA384_WITH_RSA: '1.2.840.113549.1.1.12',
  SHA512_WITH_RSA: '1.2.840.113549.1.1.13',
  SHA224_WITH_RSA: '1.2.840.113549.1.1.14',

  COMMON_NAME: '2.5.4.3',
  ORGANIZATION_NAME: '2.5.4.10',
  SUBJECT_KEY_IDENTIFIER: '2.5.29.14',
  KEY_USAGE: '2.5.29.15',
  BASIC_CONSTRAINTS: '2.5.29.19',
  AUTHORITY_KEY_IDENTIFIER: '2.5.29.35',
} as const;

/**
 * Critical extensions a chain verifier is allowed to meet (the set OpenSSL's verifier handles, which
 * is what edk2 and varstored use). A certificate with any other critical extension is refused in a
 * chain, as RFC 5280 §4.2 requires of a verifier that does not process it.
 */
export const HANDLED_CRITICAL_EXTENSIONS: ReadonlySet<string> = new Set([
  '2.16.840.1.113730.1.1', // Netscape cert type
  '2.5.29.15', // key usage
  '2.5.29.17', // subject alternative name
  '2.5.29.19', // basic constraints
  '2.5.29.32', // certificate policies
  '2.5.29.37', // extended key usage
  '2.5.29.36', // policy constraints
  '2.5.29.30', // name constraints
  '2.5.29.33', // policy mappings
  '2.5.29.54', // inhibit any policy
  '1.3.6.1.5.5.7.1.14', // proxy certificate info
  '1.3.6.1.5.5.7.1.7', // IP address blocks
  '1.3.6.1.5.5.7.1.8', // AS identifiers
]);

/** The hash (node:crypto name) of an RSA PKCS#1 v1.5 signature algorithm used on certificates. */
export const CERTIFICATE_SIGNATURE_HASH: ReadonlyMap<string, string> = new Map([
  [Oid.SHA1_WITH_RSA, 'sha1'],
  [Oid.SHA224_WITH_RSA, 'sha224'],
  [Oid.SHA256_WITH_RSA, 'sha256'],
  [Oid.SHA384_WITH_RSA, 'sha384'],
  [Oid.SHA512_WITH_RSA, 'sha512'],
]);

const NAMES: ReadonlyMap<string, string> = new Map([
  [Oid.SHA1, 'SHA-1'],
  [Oid.SHA224, 'SHA-224'],
  [Oid.SHA256, 'SHA-256'],
  [Oid.SHA384, 'SHA-384'],
  [Oid.SHA512, 'SHA-512'],
  ['1.2.840.113549.2.5', 'MD5'],
  [Oid.RSA_ENCRYPTION, 'rsaEncryption'],
  ['1.2.840.113549.1.1.10', 'RSASSA-PSS'],
  ['1.2.840.10045.2.1', 'id-ecPublicKey'],
  [Oid.MD5_WITH_RSA, 'md5WithRSAEncryption'],
  [Oid.SHA1_WITH_RSA, 'sha1WithRSAEncryption'],
  [Oid.SHA224_WITH_RSA, 'sha224WithRSAEncryption'],
  [Oid.SHA256_WITH_RSA, 'sha256WithRSAEncryption'],
  [Oid.SHA384_WITH_RSA, 'sha384WithRSAEncryption'],
  [Oid.SHA512_WITH_RSA, 'sha512WithRSAEncryption'],
]);

/** A readable name for an algorithm OID, or the OID itself. */
export function oidName(oid: string): string {
  return NAMES.get(oid) ?? oid;
}

/** Short attribute-type names for distinguished names. */
export const NAME_ATTRIBUTES: ReadonlyMap<string, string> = new Map([
  ['2.5.4.3', 'CN'],
  ['2.5.4.4', 'SN'],
  ['2.5.4.5', 'serialNumber'],
  ['2.5.4.6', 'C'],
  ['2.5.4.7', 'L'],
  ['2.5.4.8', 'ST'],
  ['2.5.4.9', 'street'],
  ['2.5.4.10', 'O'],
  ['2.5.4.11', 'OU'],
  ['2.5.4.12', 'title'],
  ['2.5.4.42', 'GN'],
  ['1.2.840.113549.1.9.1', 'emailAddress'],
  ['0.9.2342.19200300.100.1.25', 'DC'],
  ['0.9.2342.19200300.100.1.1', 'UID'],
]);
