/**
 * Small asn1js/pkijs helpers for building certificates and SignedData. Reading goes through
 * @vmsb/auth's bounded DER reader (`@vmsb/auth/der`) instead; `asn1Schema` here only turns bytes this
 * package built or already read back into pkijs objects to build with.
 */
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';

/**
 * An asn1js schema of one DER element that must fill `bytes` exactly, to build pkijs objects from.
 * Throws a TypeError naming `what`.
 * The result's blocks keep views of their original encodings (`valueBeforeDecodeView`).
 */
export function asn1Schema(bytes: Uint8Array, what: string): asn1js.AsnType {
  const decoded = asn1js.fromBER(bytes);
  if (decoded.offset === -1) throw new TypeError(`${what}: ${decoded.result.error || 'malformed encoding'}`);
  if (decoded.offset !== bytes.length) throw new TypeError(`${bytes.length - decoded.offset} bytes after the ${what}`);
  return decoded.result;
}

/** DER of an asn1js/pkijs schema. */
export function toDer(schema: { toBER(sizeOnly?: boolean): ArrayBuffer }): Uint8Array {
  return new Uint8Array(schema.toBER(false));
}

/** An AlgorithmIdentifier with explicit NULL parameters, as RFC 4055 and efitools/OpenSSL encode RSA and SHA-2. */
export function algorithmWithNull(oid: string): pkijs.AlgorithmIdentifier {
  return new pkijs.AlgorithmIdentifier({ algorithmId: oid, algorithmParams: new asn1js.Null() });
}
