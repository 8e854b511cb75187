export {
  buildPackage,
  type PackageOptions,
  type PackageResult,
  type NativeFile,
  EL7_GLIBC,
  VMSB_DIR,
} from './build.js';
export { checkPackage, type CheckOptions, type CheckReport } from './check.js';
export { measurePackage, type MeasureOptions, type MeasureResult } from './measure.js';
export { inspectRuntime, elfVersionNeeds, RuntimeRefused, type RuntimeFacts } from './runtime.js';
export { PROGRAM_NAMES } from './bundle.js';
