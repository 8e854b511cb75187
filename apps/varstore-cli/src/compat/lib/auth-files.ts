/**
 * `varstore-sb-state <uuid> user`: the default Secure Boot keys, as the daemon provisions them at
 * a first boot. The files `{dbx,db,KEK,PK}.auth` come from /var/lib/varstored
 * (VARSTORED_AUTH_DIR overrides it) and are read before privileges are dropped; they are applied
 * in that order (PK last, so the VM is never in user mode without KEK and db). dbx is optional and
 * appended; a missing db, KEK or PK stops the sequence and leaves the VM in setup mode.
 */
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { Attr, Attrs, Guids } from '@vmsb/efi';
import { EfiStatus, Limits, utf16le } from '@vmsb/protocol';
import type { ToolIo } from './io.js';
import type { ToolSession } from './session.js';

export const AUTH_DIR = '/var/lib/varstored';
export const AUTH_DIR_ENV = 'VARSTORED_AUTH_DIR';

interface AuthFileSpec {
  readonly name: 'dbx' | 'db' | 'KEK' | 'PK';
  readonly guid: Uint8Array;
  readonly append: boolean;
  readonly required: boolean;
}

const AUTH_FILES: readonly AuthFileSpec[] = [
  { name: 'dbx', guid: Guids.IMAGE_SECURITY_DATABASE, append: true, required: false },
  { name: 'db', guid: Guids.IMAGE_SECURITY_DATABASE, append: false, required: true },
  { name: 'KEK', guid: Guids.GLOBAL_VARIABLE, append: false, required: true },
  { name: 'PK', guid: Guids.GLOBAL_VARIABLE, append: false, required: true },
];

export interface AuthFile extends AuthFileSpec {
  readonly path: string;
  /** undefined: the file is missing. */
  readonly data?: Uint8Array;
}

export type AuthFilesResult = { readonly ok: true; readonly files: readonly AuthFile[] } | { readonly ok: false };

/**
 * Reads the four files. A missing file is reported and left out. A file that exists but cannot be
 * read, or is larger than a variable can be, fails the tool before anything is changed.
 */
export async function readAuthFiles(io: ToolIo): Promise<AuthFilesResult> {
  const dir = io.env[AUTH_DIR_ENV] || AUTH_DIR;
  const files: AuthFile[] = [];
  for (const spec of AUTH_FILES) {
    const path = join(dir, `${spec.name}.auth`);
    let handle;
    try {
      handle = await open(path, 'r');
    } catch (e) {
      const error = e as NodeJS.ErrnoException;
      if (error.code === 'ENOENT') {
        io.err(`load_one_auth_data: Auth file '${path}' is missing!\n`);
        files.push({ ...spec, path });
        continue;
      }
      io.err(`load_one_auth_data: Failed to open '${path}': ${error.message}\n`);
      return { ok: false };
    }
    try {
      const info = await handle.stat();
      if (!info.isFile()) {
        io.err(`load_one_auth_data: Failed to read '${path}': not a regular file\n`);
        return { ok: false };
      }
      if (info.size > Limits.DATA_MAX) {
        io.err(`load_one_auth_data: Auth file '${path}' is too large: ${info.size}\n`);
        return { ok: false };
      }
      const data = new Uint8Array(info.size);
      const { bytesRead } = await handle.read(data, 0, info.size, 0);
      if (bytesRead !== info.size) {
        io.err(`load_one_auth_data: Failed to read '${path}'\n`);
        return { ok: false };
      }
      files.push({ ...spec, path, data });
    } catch (e) {
      io.err(`load_one_auth_data: Failed to read '${path}': ${(e as Error).message}\n`);
      return { ok: false };
    } finally {
      await handle.close();
    }
  }
  return { ok: true, files };
}

/**
 * Applies the files through the store (permissive: setup_keys of the C tools). Returns false when
 * a file is refused; a missing required file ends the sequence successfully.
 */
export async function setupKeys(session: ToolSession, files: readonly AuthFile[], io: ToolIo): Promise<boolean> {
  for (const file of files) {
    if (file.data === undefined) {
      io.err(`setup_keys: Cannot setup ${file.name} because auth data is missing!\n`);
      if (!file.required) {
        io.out(`setup_keys: Continuing keys setup despite missing optional ${file.name}\n`);
        continue;
      }
      io.err('setup_keys: Aborting keys setup\n');
      return true;
    }
    io.out(`setup_keys: Setting ${file.name}...\n`);
    const attributes = Attrs.NV_BS_RT_AT | (file.append ? Attr.APPEND_WRITE : 0);
    const status = await session.setVariable(utf16le(file.name), file.guid, attributes, file.data);
    if (status !== EfiStatus.SUCCESS) {
      io.err(`set_variable_from_auth: Failed to execute auth data: 0x${status.toString(16)}\n`);
      return false;
    }
  }
  return true;
}
