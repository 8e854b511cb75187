export {
  parsePeImage,
  authenticodeDigest,
  authenticodeRanges,
  PE32_MAGIC,
  PE32_PLUS_MAGIC,
  SECURITY_DIRECTORY,
  type PeImage,
  type PeImageResult,
  type SectionHeader,
  type AuthenticodeAlgorithm,
} from './image.js';
export {
  readCertificateTable,
  authenticodeHashAlgorithm,
  spcIndirectDataContent,
  WIN_CERT_TYPE_PKCS_SIGNED_DATA,
  WIN_CERT_TYPE_EFI_GUID,
  type ImageCertificate,
  type CertificateTable,
} from './certificates.js';
export {
  verifyImage,
  type ImageSecurityDatabases,
  type ImageVerdict,
  type DatabaseMatch,
  type SignatureCheck,
  type SignatureOutcome,
} from './verify.js';
