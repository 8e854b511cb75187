/** The `vm:all` store selector (kept apart from the commands so that their help can name it). */
import { usageError } from '../errors.js';

const POOL_SELECTOR = 'vm:all';

/** For --help: where vm:all looks and how it reports. */
export const POOL_HELP =
  'one VM.get_all_records on --socket; a line per VM as it completes, NDJSON with --json; --jobs N at a time, default 8';

/** Whether the stores name the whole pool; vm:all stands alone. */
export function isPoolSelection(stores: readonly string[]): boolean {
  if (!stores.includes(POOL_SELECTOR)) return false;
  if (stores.length > 1) throw usageError('vm:all stands for every VM of the pool: give it alone');
  return true;
}
