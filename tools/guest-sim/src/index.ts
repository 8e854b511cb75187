export { GuestConnection } from './connection.js';
export {
  Firmware,
  VendorGuids,
  Attributes,
  type TraceEntry,
  type VariableRef,
} from './firmware.js';
export { runOvmfBoot, summarizeTrace, BOOT_OPTIONS, type BootReport } from './boot.js';
export { formatBootReport } from './report.js';
