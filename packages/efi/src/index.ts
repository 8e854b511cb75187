export { Guids, type GuidName, guid, guidEquals, guidFromText, guidToText } from './guid.js';
export {
  Attr,
  Attrs,
  ATTRIBUTES_MASK,
  STORED_ATTRIBUTES_MASK,
  hasTimeBasedAttr,
  hasAppendAttr,
  isNonVolatile,
  hasRuntimeAccess,
  formatAttributes,
} from './attributes.js';
export {
  type EfiTime,
  EFI_TIME_SIZE,
  EFI_UNSPECIFIED_TIMEZONE,
  zeroEfiTime,
  parseEfiTime,
  serializeEfiTime,
  authTimestampProblem,
  efiTimeProblem,
  compareEfiTime,
  compareEfiTimeBytes,
  laterEfiTimeBytes,
  efiTimeFromDate,
  efiTimeToDate,
  formatEfiTime,
} from './time.js';
export {
  type SignatureData,
  type SignatureList,
  type SignatureKind,
  type SignatureTypeInfo,
  type SignatureListsResult,
  type SignatureListFormatOptions,
  SignatureTypes,
  signatureTypeOf,
  SIGNATURE_LIST_HEADER_SIZE,
  SIGNATURE_OWNER_SIZE,
  parseSignatureLists,
  checkSignatureLists,
  signatureListSize,
  serializeSignatureLists,
  signatureListOfCertificate,
  signatureListOfHashes,
  x509Certificates,
  signatureHashes,
  countSignatures,
} from './signature-list.js';
export {
  type Variable,
  SIGNER_DIGEST_SIZE,
  nameProblem,
  bytesEqual,
  isVariable,
  variableName,
  variablesEqual,
  makeVariable,
  utf16le,
  fromUtf16le,
} from './variable.js';
export type {
  PlatformSettings,
  AuthenticatedWrite,
  StoreView,
  AuthResult,
  Authenticator,
  StoreState,
  LogLevel,
  StoreOptions,
  RestoreOptions,
  PendingChange,
  DispatchOutcome,
  SetOutcome,
  PpiWriteOutcome,
} from './types.js';
export { VariableStore } from './store.js';
export {
  type SecureBootRule,
  type SecureBootInputs,
  type VariableKind,
  secureBootValue,
  variableKind,
  signerDigestIsData,
} from './secure-boot.js';
export {
  Names,
  type BuiltinName,
  MODE_BUILTINS,
  signatureSupportValue,
  MorLockState,
  MOR_KEY_SIZE,
  PPI_BUFFER_SIZE,
  PPI_FUNC_SIZE,
  PPI_REGION_SIZE,
} from './builtins.js';
export {
  uefiVariableCheck,
  variableProperty,
  isHwErrRecName,
  devicePathProblem,
  type VariableProperty,
  type CheckFailure,
} from './var-check.js';
export {
  AUTHENTICATION2_HEADER_SIZE,
  WIN_CERTIFICATE_UEFI_GUID_SIZE,
  WIN_CERT_TYPE_EFI_GUID,
  WIN_CERT_REVISION,
  authentication2Length,
  buildAuthentication2,
} from './authentication2.js';
export { devicePathToText } from './device-path.js';
export { parseLoadOption, LoadOptionAttr, type LoadOption } from './load-option.js';
