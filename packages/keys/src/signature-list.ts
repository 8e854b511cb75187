import {
  guidFromText,
  Guids,
  serializeSignatureLists,
  signatureListOfCertificate,
  signatureListOfHashes,
  type SignatureList,
} from '@vmsb/efi';
import { certificateDer, tbsHash, type CertificateInput } from './certificate.js';
import { concatBytes } from '@vmsb/protocol';

/** A GUID as text (`77fa9abd-0359-4d32-bd60-28f4e78f784b`) or as 16 bytes in EFI order. */
export type GuidInput = string | Uint8Array;

/** 16 GUID bytes of `input`; throws a TypeError on anything else. */
export function guidBytes(input: GuidInput): Uint8Array {
  if (typeof input !== 'string') {
    if (input.length !== 16) throw new TypeError(`a GUID is 16 bytes, got ${input.length}`);
    return input.slice();
  }
  const bytes = guidFromText(input.replace(/^\{(.*)\}$/, '$1'));
  if (bytes === undefined) throw new TypeError(`not a GUID: ${input}`);
  return bytes;
}

/** Hash signature types by their usual names. */
export type HashSignatureType = 'sha1' | 'sha224' | 'sha256' | 'sha384' | 'sha512';
/** X.509 TBS-hash signature types (dbx entries revoking a certificate from a point in time). */
export type CertificateHashSignatureType = 'x509-sha256' | 'x509-sha384' | 'x509-sha512';

const HASH_TYPES: Record<HashSignatureType, Uint8Array> = {
  sha1: Guids.CERT_SHA1,
  sha224: Guids.CERT_SHA224,
  sha256: Guids.CERT_SHA256,
  sha384: Guids.CERT_SHA384,
  sha512: Guids.CERT_SHA512,
};
const CERT_HASH_TYPES: Record<
  CertificateHashSignatureType,
  { guid: Uint8Array; algorithm: 'sha256' | 'sha384' | 'sha512' }
> = {
  'x509-sha256': { guid: Guids.CERT_X509_SHA256, algorithm: 'sha256' },
  'x509-sha384': { guid: Guids.CERT_X509_SHA384, algorithm: 'sha384' },
  'x509-sha512': { guid: Guids.CERT_X509_SHA512, algorithm: 'sha512' },
};

/** Hash bytes, or hex text (upper or lower case, as Microsoft's dbx lists write them). */
export type HashInput = Uint8Array | string;

export type SignatureListSpec =
  /** One EFI_CERT_X509 list per certificate (each list has a single entry, as cert-to-efi-sig-list makes them). */
  | { readonly type: 'x509'; readonly certificates: readonly CertificateInput[]; readonly owner: GuidInput }
  /** One list holding every hash. */
  | { readonly type: HashSignatureType; readonly hashes: readonly HashInput[]; readonly owner: GuidInput }
  /**
   * One list of certificate TBS hashes, each followed by its TimeOfRevocation (an EFI_TIME, 16 bytes;
   * all zero, the default, means "always revoked").
   */
  | {
      readonly type: CertificateHashSignatureType;
      readonly certificates?: readonly CertificateInput[];
      readonly hashes?: readonly HashInput[];
      readonly timeOfRevocation?: Uint8Array;
      readonly owner: GuidInput;
    }
  /** Any fixed-size signature type by GUID (e.g. EFI_CERT_RSA2048), entries given raw. */
  | {
      readonly type: 'raw';
      readonly signatureType: GuidInput;
      readonly entries: readonly Uint8Array[];
      readonly owner: GuidInput;
    };

/**
 * EFI_SIGNATURE_LIST bytes for certificates or hashes. For X.509 certificates the result is byte
 * for byte what `cert-to-efi-sig-list -g <owner>` writes for each certificate, concatenated.
 * Throws a TypeError or RangeError on a bad certificate, hash size or GUID.
 */
export function buildSignatureList(spec: SignatureListSpec): Uint8Array {
  return serializeSignatureLists(signatureLists(spec));
}

/** The lists `buildSignatureList` serialises. */
export function signatureLists(spec: SignatureListSpec): SignatureList[] {
  const owner = guidBytes(spec.owner);
  switch (spec.type) {
    case 'x509': {
      if (spec.certificates.length === 0) throw new RangeError('no certificates given');
      return spec.certificates.map((c) => signatureListOfCertificate(certificateDer(c), owner));
    }
    case 'sha1':
    case 'sha224':
    case 'sha256':
    case 'sha384':
    case 'sha512': {
      if (spec.hashes.length === 0) throw new RangeError('no hashes given');
      return [signatureListOfHashes(HASH_TYPES[spec.type], spec.hashes.map(hashBytes), owner)];
    }
    case 'x509-sha256':
    case 'x509-sha384':
    case 'x509-sha512': {
      const { guid, algorithm } = CERT_HASH_TYPES[spec.type];
      const time = spec.timeOfRevocation ?? new Uint8Array(16);
      if (time.length !== 16) throw new RangeError(`TimeOfRevocation is a 16-byte EFI_TIME, got ${time.length} bytes`);
      const hashes = [
        ...(spec.certificates ?? []).map((c) => tbsHash(c, algorithm)),
        ...(spec.hashes ?? []).map(hashBytes),
      ];
      if (hashes.length === 0) throw new RangeError('no certificates or hashes given');
      return [
        signatureListOfHashes(
          guid,
          hashes.map((h) => concatBytes(h, time)),
          owner,
        ),
      ];
    }
    case 'raw': {
      const type = guidBytes(spec.signatureType);
      if (spec.entries.length === 0) throw new RangeError('no entries given');
      return [signatureListOfHashes(type, spec.entries, owner)];
    }
  }
}

function hashBytes(input: HashInput): Uint8Array {
  if (typeof input !== 'string') return input;
  const hex = input.trim();
  if (!/^([0-9a-fA-F]{2})+$/.test(hex)) throw new TypeError(`not a hex hash: ${input}`);
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}

/** The concatenation of several lists' bytes (a variable value holding them all). */
export function concatSignatureLists(parts: readonly Uint8Array[]): Uint8Array {
  return concatBytes(...parts);
}
