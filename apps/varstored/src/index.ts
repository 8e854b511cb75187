export { main, type Streams } from './main.js';
export {
  parseArgs,
  usageText,
  type DaemonConfig,
  type ParsedArgs,
  type LogLevel,
  type Transport,
  type BackendName,
} from './args.js';
export type { GuestHandler } from '@vmsb/protocol';
export { VariableService, type ServiceOptions } from './service.js';
export { BACKENDS, type Backend, type BackendLoader, type CreateBackend, type BackendContext } from './backends.js';
export {
  AUTH_FILES,
  applyAuthFiles,
  readAuthFiles,
  type AuthFile,
  type AuthFileSpec,
  type ProvisionTarget,
} from './provision.js';
export type { Logger } from './log.js';
