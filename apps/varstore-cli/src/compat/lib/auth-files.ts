/**
 * `varstore-sb-state <uuid> user`: the default Secure Boot keys, as the daemon provisions them at
 * a first boot. The files `{dbx,db,KEK,PK}.auth` come from /var/lib/varstored
 * (VARSTORED_AUTH_DIR overrides it) and are read before privileges are dropped; they are applied
 * in that order (PK last, so the VM is never in user mode without KEK and db). dbx is optional and
 * appended; a missing db, KEK or PK stops the sequence and leaves the VM in setup mode.
 */
import { applyAuthFiles, readAuthFiles as readAuthDirectory, type AuthFile } from '@vmsb/nvram';
import { utf16le } from '@vmsb/protocol';
import type { ToolIo } from './io.js';
import type { ToolSession } from './session.js';

export type { AuthFile };

export const AUTH_DIR = '/var/lib/varstored';
export const AUTH_DIR_ENV = 'VARSTORED_AUTH_DIR';

export type AuthFilesResult = { readonly ok: true; readonly files: readonly AuthFile[] } | { readonly ok: false };

/**
 * Reads the four files with the daemon's own reader. A missing file is reported and left out. A
 * file that exists but cannot be read, or is larger than a variable can be, fails the tool before
 * anything is changed.
 */
export async function readAuthFiles(io: ToolIo): Promise<AuthFilesResult> {
  const files = await readAuthDirectory(io.env[AUTH_DIR_ENV] || AUTH_DIR);
  for (const file of files) {
    if (file.problem === undefined) continue;
    io.err(`load_one_auth_data: ${file.problem.message}\n`);
    if (file.problem.kind !== 'missing') return { ok: false };
  }
  return { ok: true, files };
}

/**
 * Applies the files through the store (permissive: setup_keys of the C tools). Returns false when
 * a file is refused; a missing required file ends the sequence successfully.
 */
export async function setupKeys(session: ToolSession, files: readonly AuthFile[], io: ToolIo): Promise<boolean> {
  const result = await applyAuthFiles(
    files,
    async (file, attributes, data) => ({
      status: await session.setVariable(utf16le(file.name), file.guid, attributes, data),
    }),
    {
      missing(file) {
        io.err(`setup_keys: Cannot setup ${file.name} because auth data is missing!\n`);
        if (!file.required) io.out(`setup_keys: Continuing keys setup despite missing optional ${file.name}\n`);
        else io.err('setup_keys: Aborting keys setup\n');
      },
      setting(file) {
        io.out(`setup_keys: Setting ${file.name}...\n`);
      },
    },
  );
  if (!result.ok) io.err(`set_variable_from_auth: Failed to execute auth data: 0x${result.status.toString(16)}\n`);
  return result.ok;
}
