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
  readSaveFile,
  writeSaveFile,
  type NvramStore,
  type FileStore,
  type FileStoreOptions,
} from './file-store.js';
export { replaceFile, replaceFileSync } from './durable-file.js';
