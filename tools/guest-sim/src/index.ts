export { GuestConnection } from './connection.js';
export {
  Firmware,
  ProtocolError,
  VendorGuids,
  Attributes,
  type TraceEntry,
  type VariableRef,
  type VariableValue,
  type StorageInfo,
} from './firmware.js';
export { runOvmfBoot, summarizeTrace, BOOT_OPTIONS, type BootReport } from './boot.js';
export { formatBootReport } from './report.js';
