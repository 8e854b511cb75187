import { chmod, chown, open, stat, writeFile } from 'node:fs/promises';
import type { StoreState } from '@vmsb/efi';
import { FileStoreLocked, lockFileStore, replaceFile } from '@vmsb/nvram';
import {
  decodeNvram,
  detectFormat,
  encodeNvram,
  formatFromFileName,
  NVRAM_FORMAT_NAMES,
  NVRAM_FORMATS,
  OvmfFd,
  type NvramFormat,
} from '@vmsb/nvram/formats';
import { createXapidbStore, DEFAULT_XAPI_SOCKET } from '@vmsb/xapi';
import { CliError, ExitCode, messageOf, storeError, usageError } from './errors.js';
import { assertVmHalted, BackupDirectory, backupVmNvram } from './pool/vm-write.js';

/**
 * A store on the command line: a file (format detected from its content) or `vm:<uuid>` (the VM's
 * NVRAM in XAPI, through the socket given by --socket).
 */
export type StoreSpec =
  | { readonly kind: 'file'; readonly text: string; readonly path: string }
  | { readonly kind: 'xapi'; readonly text: string; readonly uuid: string; readonly socket: string };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function parseStoreSpec(text: string, socket: string | undefined): StoreSpec {
  if (text.startsWith('vm:')) {
    const uuid = text.slice(3);
    if (!UUID.test(uuid)) throw usageError(`${JSON.stringify(text)}: vm: must be followed by the VM's UUID`);
    return { kind: 'xapi', text, uuid: uuid.toLowerCase(), socket: socket ?? DEFAULT_XAPI_SOCKET };
  }
  if (text === '') throw usageError('the store is empty: give a file or vm:<uuid>');
  return { kind: 'file', text, path: text };
}

export function parseFormat(text: string | undefined): NvramFormat | undefined {
  if (text === undefined) return undefined;
  const aliases: Record<string, NvramFormat> = {
    vars: 'vars',
    binary: 'vars',
    'vars-base64': 'vars-base64',
    base64: 'vars-base64',
    b64: 'vars-base64',
    json: 'json',
    fd: 'ovmf-fd',
    'ovmf-fd': 'ovmf-fd',
  };
  const format = aliases[text.toLowerCase()];
  if (format === undefined)
    throw usageError(`unknown store format ${JSON.stringify(text)} (use vars, vars-base64, json or fd)`);
  return format;
}

export function formatName(format: NvramFormat): string {
  return NVRAM_FORMAT_NAMES[format];
}

export interface OpenedStore {
  readonly spec: StoreSpec;
  /** The format it is in (XAPI: the base64 VARS blob). */
  readonly format: NvramFormat;
  /** undefined: nothing stored yet (a missing or empty file, a VM whose NVRAM has no variables: first boot). */
  readonly state: StoreState | undefined;
  /** false for a file that does not exist (yet). */
  readonly exists: boolean;
  /** From the decoder: what the source holds that the state does not keep. */
  readonly warnings: readonly string[];
  /** A VARS blob file's version (a v1 blob is written back as v2). */
  readonly varsVersion?: 1 | 2;
  /** Writes `state` (atomically for files; VM.set_NVRAM_EFI_variables for XAPI). */
  save(state: StoreState): Promise<void>;
  /** Copies the store as it is now next to it (files) or into `dir` (XAPI); undefined when there is nothing to back up. */
  backup(now: Date, dir?: string): Promise<string | undefined>;
}

export interface OpenOptions {
  /** Format of a file that does not exist yet (else from its name, else the binary VARS blob). */
  readonly format?: NvramFormat;
}

const MAX_STORE_FILE = OvmfFd.MAX_SIZE;

/** Loads a store; every failure is a CliError with exit code 3 that names the store. */
export async function openStore(spec: StoreSpec, options: OpenOptions = {}): Promise<OpenedStore> {
  return spec.kind === 'file' ? openFileStore(spec, options) : openXapiStore(spec);
}

function stamp(now: Date): string {
  return now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

/** Writes `bytes` to `<base>` or `<base>-N`, never over an existing file. */
async function writeNew(base: string, bytes: Uint8Array): Promise<string> {
  for (let n = 0; n < 100; n++) {
    const path = n === 0 ? base : `${base}-${n}`;
    try {
      await writeFile(path, bytes, { flag: 'wx', mode: 0o600 });
      return path;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST')
        throw storeError(`cannot write the backup ${path}: ${messageOf(e)}`);
    }
  }
  throw storeError(`cannot find a free backup name next to ${base}`);
}

async function openFileStore(spec: StoreSpec & { kind: 'file' }, options: OpenOptions): Promise<OpenedStore> {
  const { path } = spec;
  let original: Uint8Array | undefined;
  let mode: { mode: number; uid: number; gid: number } | undefined;
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw storeError(`${path}: cannot open: ${messageOf(e)}`);
  }
  if (handle !== undefined) {
    try {
      const s = await handle.stat();
      if (!s.isFile()) throw storeError(`${path}: not a regular file`);
      if (s.size > MAX_STORE_FILE) throw storeError(`${path}: ${s.size} bytes is larger than any variable store`);
      mode = { mode: s.mode & 0o7777, uid: s.uid, gid: s.gid };
      const buffer = new Uint8Array(s.size);
      let length = 0;
      while (length < buffer.length) {
        const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
        if (bytesRead === 0) break;
        length += bytesRead;
      }
      original = buffer.subarray(0, length);
    } catch (e) {
      if (e instanceof CliError) throw e;
      throw storeError(`${path}: cannot read: ${messageOf(e)}`);
    } finally {
      await handle.close().catch(() => undefined);
    }
  }

  let format: NvramFormat;
  let state: StoreState | undefined;
  let warnings: readonly string[] = [];
  let varsVersion: 1 | 2 | undefined;
  // A missing file, or an empty one (how QEMU's JSON store starts), holds nothing yet.
  if (original === undefined || original.length === 0) {
    format = options.format ?? formatFromFileName(path) ?? 'vars';
  } else {
    const detected = detectFormat(original);
    if (detected === undefined) {
      throw storeError(
        `${path}: not a variable store`,
        `a store is a VARS blob (binary or base64), QEMU/virt-firmware JSON or an OVMF .fd image (formats: ${NVRAM_FORMATS.join(', ')})`,
      );
    }
    if (options.format !== undefined && options.format !== detected) {
      throw storeError(`${path}: holds ${formatName(detected)}, not ${formatName(options.format)}`);
    }
    const decoded = decodeNvram(original, detected);
    if (!decoded.ok) throw storeError(`${path}: corrupt ${formatName(detected)}: ${decoded.error}`);
    format = detected;
    state = decoded.state;
    warnings = decoded.warnings;
    varsVersion = decoded.varsVersion;
  }

  return {
    spec,
    format,
    state,
    exists: original !== undefined,
    warnings,
    ...(varsVersion !== undefined ? { varsVersion } : {}),
    async save(next) {
      let bytes: Uint8Array;
      try {
        bytes = encodeNvram(
          next,
          format,
          format === 'ovmf-fd' && original !== undefined && original.length > 0 ? { template: original } : {},
        );
      } catch (e) {
        throw storeError(`${path}: cannot encode the new state as ${formatName(format)}: ${messageOf(e)}`);
      }
      // One writer per NVRAM: a running varstored holds the store's lock for its whole life, and
      // would undo this change with its next write.
      let lock: Awaited<ReturnType<typeof lockFileStore>>;
      try {
        lock = await lockFileStore(path);
      } catch (e) {
        if (e instanceof FileStoreLocked) {
          throw storeError(
            `${path}: the VM is running: ${e.heldBy ? `process ${e.heldBy}` : 'another process'} (its varstored, or another varstore writing it) holds ${e.lockPath}; nothing was written`,
            'stop the VM first, then retry; reading the store is fine while it runs',
          );
        }
        throw storeError(`${path}: cannot write: ${messageOf(e)}`);
      }
      try {
        await replaceFile(path, bytes);
      } catch (e) {
        throw storeError(messageOf(e));
      } finally {
        lock.release();
      }
      // The replacement is a new file: give it the owner and mode of the one it replaces, so
      // that the hypervisor (often not root) can still open it.
      if (mode !== undefined) {
        await chown(path, mode.uid, mode.gid).catch(() => undefined);
        await chmod(path, mode.mode).catch(() => undefined);
      }
      original = bytes;
    },
    async backup(now) {
      if (original === undefined || original.length === 0) return undefined;
      return writeNew(`${path}.bak-${stamp(now)}`, original);
    },
  };
}

async function openXapiStore(spec: StoreSpec & { kind: 'xapi' }): Promise<OpenedStore> {
  const store = createXapidbStore({ uuid: spec.uuid, socket: spec.socket });
  let state: StoreState | undefined;
  try {
    state = await store.load();
  } catch (e) {
    throw storeError(messageOf(e), `is the socket right? (--socket, default ${DEFAULT_XAPI_SOCKET})`);
  }
  return {
    spec,
    format: 'vars-base64',
    state,
    exists: true,
    warnings: [],
    async save(next) {
      // XAPI takes NVRAM writes whatever the power state; a running VM's varstored would overwrite them.
      await assertVmHalted(spec.socket, spec.uuid);
      try {
        await store.save(next);
      } catch (e) {
        throw storeError(messageOf(e));
      }
      state = next;
    },
    async backup(now, dir) {
      // Every write checks first, so that a VM that will not be written leaves no backup behind.
      await assertVmHalted(spec.socket, spec.uuid);
      if (state === undefined) return undefined;
      return backupVmNvram(spec.socket, spec.uuid, new BackupDirectory(dir, now));
    },
  };
}

/** Whether a file store already exists (for outputs that must not be overwritten by accident). */
export async function fileExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new CliError(`${path}: ${messageOf(e)}`, ExitCode.STORE);
  }
}

/** A short label for messages: the file name or vm:<uuid>. */
export function storeLabel(spec: StoreSpec): string {
  return spec.text;
}
