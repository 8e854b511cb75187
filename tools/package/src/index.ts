export {
  buildPackage,
  EL7_GLIBC,
  type NativeFile,
  type PackageOptions,
  type PackageResult,
  VMSB_DIR,
} from './build.js';
export { PROGRAM_NAMES } from './bundle.js';
export { type CheckOptions, type CheckReport, checkPackage } from './check.js';
export { type MeasureOptions, type MeasureResult, measurePackage } from './measure.js';
export { elfVersionNeeds, inspectRuntime, type RuntimeFacts, RuntimeRefused } from './runtime.js';
