/**
 * First-boot key provisioning, as the C daemon does it: `{dbx, db, KEK, PK}.auth` from the auth
 * directory, read before privileges are dropped, applied in that order as in-process SetVariable
 * calls (dbx as an append). dbx is optional; a missing db, KEK or PK stops the sequence so that PK
 * is never enrolled without KEK and db (user mode without them breaks in-guest dbx updates).
 */
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { Attr, Attrs, Guids, type SetOutcome, type StoreState } from '@vmsb/efi';
import { EfiStatus, Limits, statusName, utf16le } from '@vmsb/protocol';
import type { Logger } from './log.js';

export interface AuthFileSpec {
  readonly name: 'dbx' | 'db' | 'KEK' | 'PK';
  readonly guid: Uint8Array;
  readonly append: boolean;
  readonly required: boolean;
}

export const AUTH_FILES: readonly AuthFileSpec[] = [
  { name: 'dbx', guid: Guids.IMAGE_SECURITY_DATABASE, append: true, required: false },
  { name: 'db', guid: Guids.IMAGE_SECURITY_DATABASE, append: false, required: true },
  { name: 'KEK', guid: Guids.GLOBAL_VARIABLE, append: false, required: true },
  { name: 'PK', guid: Guids.GLOBAL_VARIABLE, append: false, required: true },
];

export interface AuthFile extends AuthFileSpec {
  readonly path: string;
  /** The file's content; undefined when it could not be read (see `problem`). */
  readonly data?: Uint8Array;
  /** Why there is no data: missing, unreadable, or too large. */
  readonly problem?: { readonly kind: 'missing' | 'unreadable' | 'too-large'; readonly message: string };
}

/**
 * Reads the auth files while the daemon still has the privileges to. Nothing is reported here:
 * the files matter only on a first boot, where `applyAuthFiles` says what was missing. The
 * messages are the C daemon's; `varstore-sb-state` prints them as they are.
 */
export async function readAuthFiles(dir: string): Promise<AuthFile[]> {
  const files: AuthFile[] = [];
  for (const spec of AUTH_FILES) {
    const path = join(dir, `${spec.name}.auth`);
    let handle;
    try {
      handle = await open(path, 'r');
    } catch (e) {
      const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
      files.push({
        ...spec,
        path,
        problem: missing
          ? { kind: 'missing', message: `Auth file '${path}' is missing!` }
          : { kind: 'unreadable', message: `Failed to open '${path}': ${(e as Error).message}` },
      });
      continue;
    }
    try {
      const info = await handle.stat();
      const size = info.size;
      if (!info.isFile()) {
        files.push({
          ...spec,
          path,
          problem: { kind: 'unreadable', message: `Failed to read '${path}': not a regular file` },
        });
        continue;
      }
      if (size > Limits.DATA_MAX) {
        files.push({
          ...spec,
          path,
          problem: { kind: 'too-large', message: `Auth file '${path}' is too large: ${size}` },
        });
        continue;
      }
      const data = new Uint8Array(size);
      const { bytesRead } = await handle.read(data, 0, size, 0);
      if (bytesRead !== size) {
        files.push({
          ...spec,
          path,
          problem: { kind: 'unreadable', message: `Failed to read '${path}': ${bytesRead} of ${size} bytes` },
        });
        continue;
      }
      files.push({ ...spec, path, data });
    } catch (e) {
      files.push({
        ...spec,
        path,
        problem: { kind: 'unreadable', message: `Failed to read '${path}': ${(e as Error).message}` },
      });
    } finally {
      await handle.close();
    }
  }
  return files;
}

export interface ProvisionTarget {
  setVariable(name: Uint8Array, guid: Uint8Array, attributes: number, data: Uint8Array): SetOutcome;
}

/**
 * Applies the files in order through the store. Each accepted write is made durable with
 * `persist` (absent: --nonpersistent) before the next. Resolves to the names applied; rejects when
 * a file is refused or cannot be saved (the daemon must not start half-provisioned).
 */
export async function applyAuthFiles(
  store: ProvisionTarget,
  files: readonly AuthFile[],
  persist: ((state: StoreState) => Promise<void>) | undefined,
  log: Logger,
): Promise<string[]> {
  const applied: string[] = [];
  for (const file of files) {
    if (file.data === undefined) {
      const problem = file.problem ?? { kind: 'missing', message: `Auth file '${file.path}' is missing!` };
      // A file that exists but cannot be used is not silently skipped: the daemon would start with
      // fewer keys than the administrator installed.
      if (problem.kind === 'too-large') throw new Error(problem.message);
      if (problem.kind === 'missing') log.warn(problem.message);
      else log.error(problem.message);
      log.warn(`Cannot setup ${file.name} because auth data is missing!`);
      if (!file.required) {
        log.info(`Continuing keys setup despite missing optional ${file.name}`);
        continue;
      }
      log.warn('Aborting keys setup: PK is not enrolled without KEK and db');
      return applied;
    }
    log.info(`Setting ${file.name}...`);
    const attributes = Attrs.NV_BS_RT_AT | (file.append ? Attr.APPEND_WRITE : 0);
    const outcome = store.setVariable(utf16le(file.name), file.guid, attributes, file.data);
    if (outcome.status !== EfiStatus.SUCCESS) {
      throw new Error(
        `Failed to execute auth data ${file.path}: ${statusName(outcome.status)}${outcome.reason ? ` (${outcome.reason})` : ''}`,
      );
    }
    if (outcome.pending) {
      if (persist === undefined) {
        outcome.pending.commit();
      } else {
        try {
          await persist(outcome.pending.state);
        } catch (e) {
          outcome.pending.rollback();
          throw new Error(`Failed to save ${file.name} from ${file.path}: ${(e as Error).message}`);
        }
        outcome.pending.commit();
      }
    }
    applied.push(file.name);
  }
  return applied;
}
