/**
 * First-boot provisioning in the daemon: the shared sequence of @vmsb/nvram, with each accepted
 * write made durable before the next and the C daemon's log lines.
 */
import type { SetOutcome, StoreState } from '@vmsb/efi';
import { applyAuthFiles as applyInOrder, type AuthFile } from '@vmsb/nvram';
import { statusName, utf16le } from '@vmsb/protocol';
import type { Logger } from './log.js';

export { AUTH_FILES, readAuthFiles, type AuthFile, type AuthFileSpec } from '@vmsb/nvram';

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
  const result = await applyInOrder(
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
