export {
  createXapidbStore,
  EFI_VARIABLES_KEY,
  SECURE_BOOT_FAILURE_MESSAGE,
  type XapidbStore,
  type XapidbStoreOptions,
  type XapiLogLevel,
} from './store.js';
export {
  XapiClient,
  XapiError,
  DEFAULT_XAPI_SOCKET,
  DEFAULT_CALL_TIMEOUT_MS,
  type XapiClientOptions,
  type XapiErrorKind,
} from './client.js';
export { SendThrottle, systemClock, MAX_CREDIT, CREDIT_PER_SECOND, type Clock } from './throttle.js';
export { MAX_RESPONSE_BYTES } from './http.js';
export {
  encodeMethodCall,
  encodeMethodResponse,
  encodeFault,
  decodeMethodCall,
  decodeMethodResponse,
  decodeBase64Strict,
  XmlRpcError,
  type XmlRpcValue,
  type XmlRpcStruct,
  type StringStyle,
  type MethodCall,
  type MethodResponse,
} from './xmlrpc.js';
export {
  PoolClient,
  PoolSession,
  isUefiGuest,
  vmRecordOf,
  VM_POWER_STATES,
  POOL_MAX_RESPONSE_BYTES,
  POOL_MAX_ELEMENTS,
  type PoolClientOptions,
  type VmPowerState,
  type VmRecord,
} from './pool.js';
export {
  encodeUefiCertificates,
  decodeUefiCertificates,
  ArchiveError,
  type ArchiveMember,
} from './uefi-certificates.js';
