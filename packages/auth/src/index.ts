export {
  createAuthenticator,
  explainAuthenticatedWrite,
  privateSignerDigest,
  summarizeCertificate,
  type UefiAuthenticator,
  type AuthenticatorOptions,
  type AuthExplanation,
  type AuthFailureCode,
  type AuthMode,
  type CertificateSummary,
} from './authenticator.js';
export {
  parseAuthentication2,
  buildAuthentication2,
  AUTHENTICATION2_HEADER_SIZE,
  WIN_CERTIFICATE_UEFI_GUID_SIZE,
  WIN_CERT_TYPE_EFI_GUID,
  WIN_CERT_REVISION,
  type Authentication2,
  type Authentication2Problem,
  type Authentication2Result,
} from './authentication2.js';
export {
  parseSignedData,
  clearSignedDataCache,
  findSigner,
  signedContent,
  verifyWithAnchor,
  VerificationContext,
  Pkcs7Limits,
  type SignedData,
  type SignerInfo,
  type CarriedCertificate,
  type SignedDataResult,
  type ContentSignatureResult,
  type ChainResult,
} from './pkcs7.js';
export {
  parseCertificate,
  nameAttributes,
  caKind,
  fingerprint,
  serialHex,
  KeyUsage,
  type Certificate,
  type CertificateResult,
  type NameAttribute,
  type RsaPublicKey,
} from './x509.js';
export { CertificateCache } from './cache.js';
export { signatureDatabaseProblem, filterAppendedSignatures, platformKeyCertificate } from './lists.js';
export {
  verifyAuthenticatedData,
  type AuthenticatedDataToVerify,
  type AuthenticatedDataVerification,
} from './verify.js';
export { variableKind, type VariableKind } from '@vmsb/efi';
export { Oid, oidName } from './oids.js';
