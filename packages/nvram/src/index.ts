export {
  decodeVarsBlob,
  encodeVarsBlob,
  VarsBlob,
  MAX_VARS_BLOB_SIZE,
  type DecodedVarsBlob,
  type EncodeVarsBlobOptions,
} from './vars-blob.js';
export {
  createFileStore,
  FileStoreLocked,
  lockFileStore,
  readSaveFile,
  writeSaveFile,
  type NvramStore,
  type FileStore,
  type FileStoreOptions,
  type FileStoreLock,
} from './file-store.js';
export { replaceFile } from './durable-file.js';
export {
  AUTH_FILES,
  readAuthFiles,
  applyAuthFiles,
  provisionFirstBoot,
  type ProvisionLog,
  type ProvisionTarget,
  type AuthFile,
  type AuthFileSpec,
  type ProvisionEvents,
  type ProvisionResult,
} from './provision.js';
