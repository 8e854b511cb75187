/**
 * First-boot key provisioning, as the C daemon and its tools do it: `{dbx, db, KEK, PK}.auth` from
 * the auth directory, read before privileges are dropped, applied in that order as SetVariable
 * calls (dbx as an append). dbx is optional; a missing db, KEK or PK stops the sequence so that PK
 * is never enrolled without KEK and db (user mode without them breaks in-guest dbx updates).
 * varstored applies the files at a first boot, `varstore-sb-state <vm> user` on demand.
 */
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { Attr, Attrs, Guids, type SetOutcome, type StoreState } from '@vmsb/efi';
import { EfiStatus, Limits, statusName, utf16le } from '@vmsb/protocol';

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
 * files matter only when they are applied, where `applyAuthFiles` says what was missing. The
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

/** What `applyAuthFiles` tells its caller, in order, for the caller's own words. */
export interface ProvisionEvents {
  /** `file` has no data: the sequence continues when the file is optional and stops otherwise. May throw. */
  missing(file: AuthFile): void;
  /** `file` is about to be written. */
  setting(file: AuthFile): void;
}

export type ProvisionResult =
  | { readonly ok: true; readonly applied: readonly string[] }
  | {
      readonly ok: false;
      readonly applied: readonly string[];
      /** The file the store refused, with its EFI status and the store's reason. */
      readonly refused: AuthFile;
      readonly status: bigint;
      readonly reason?: string;
    };

/**
 * Applies the files in order through `setVariable` (which makes each accepted write durable before
 * it resolves). Stops at the first refused file, or at a missing required one (ok: true then, with
 * what was applied so far). Rejects only when `setVariable` or an event does.
 */
export async function applyAuthFiles(
  files: readonly AuthFile[],
  setVariable: (
    file: AuthFile,
    attributes: number,
    data: Uint8Array,
  ) => Promise<{ readonly status: bigint; readonly reason?: string | undefined }>,
  events: ProvisionEvents,
): Promise<ProvisionResult> {
  const applied: string[] = [];
  for (const file of files) {
    if (file.data === undefined) {
      events.missing(file);
      if (!file.required) continue;
      return { ok: true, applied };
    }
    events.setting(file);
    const attributes = Attrs.NV_BS_RT_AT | (file.append ? Attr.APPEND_WRITE : 0);
    const outcome = await setVariable(file, attributes, file.data);
    if (outcome.status !== EfiStatus.SUCCESS) {
      return {
        ok: false,
        applied,
        refused: file,
        status: outcome.status,
        ...(outcome.reason !== undefined ? { reason: outcome.reason } : {}),
      };
    }
    applied.push(file.name);
  }
  return { ok: true, applied };
}

/** Where the daemon's provisioning messages go (its logger, or a collector for a dry run). */
export interface ProvisionLog {
  error(message: string): void;
  warn(message: string): void;
  info(message: string): void;
}

export interface ProvisionTarget {
  setVariable(name: Uint8Array, guid: Uint8Array, attributes: number, data: Uint8Array): SetOutcome;
}

/**
 * A first boot as the daemon runs it: the files applied in order through the store, each accepted
 * write made durable with `persist` (absent: nothing to persist) before the next, with the C
 * daemon's log lines. Resolves to the names applied; rejects when a file is refused, is too large,
 * or cannot be saved (the daemon must not start half-provisioned).
 */
export async function provisionFirstBoot(
  store: ProvisionTarget,
  files: readonly AuthFile[],
  persist: ((state: StoreState) => Promise<void>) | undefined,
  log: ProvisionLog,
): Promise<string[]> {
  const result = await applyAuthFiles(
    files,
    async (file, attributes, data) => {
      const outcome = store.setVariable(utf16le(file.name), file.guid, attributes, data);
      if (outcome.pending !== undefined) {
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
      return outcome;
    },
    {
      missing(file) {
        const problem = file.problem ?? { kind: 'missing', message: `Auth file '${file.path}' is missing!` };
        // A file that exists but cannot be used is not silently skipped: the daemon would start with
        // fewer keys than the administrator installed.
        if (problem.kind === 'too-large') throw new Error(problem.message);
        if (problem.kind === 'missing') log.warn(problem.message);
        else log.error(problem.message);
        log.warn(`Cannot setup ${file.name} because auth data is missing!`);
        if (!file.required) log.info(`Continuing keys setup despite missing optional ${file.name}`);
        else log.warn('Aborting keys setup: PK is not enrolled without KEK and db');
      },
      setting(file) {
        log.info(`Setting ${file.name}...`);
      },
    },
  );
  if (!result.ok) {
    throw new Error(
      `Failed to execute auth data ${result.refused.path}: ${statusName(result.status)}${result.reason ? ` (${result.reason})` : ''}`,
    );
  }
  return [...result.applied];
}
