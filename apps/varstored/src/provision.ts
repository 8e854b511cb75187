/**
 * First-boot provisioning in the daemon: @vmsb/nvram's `provisionFirstBoot` (the shared sequence,
 * each accepted write made durable before the next, the C daemon's log lines).
 */
export {
  AUTH_FILES,
  readAuthFiles,
  provisionFirstBoot as applyAuthFiles,
  type AuthFile,
  type AuthFileSpec,
  type ProvisionTarget,
} from '@vmsb/nvram';
