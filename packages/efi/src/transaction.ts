/**
 * Transactions: an undo point taken before a change, and the pending change handed to the owner,
 * who makes it durable and commits it, or rolls it back to the undo point (types.ts, PendingChange).
 * Until it is settled the store takes no other change.
 */
import type { Key, StoreCore } from './store-core.js';
import type { PendingChange, StoreState } from './types.js';
import type { Variable } from './variable.js';

/** The undo point: the variable records are shared (they are frozen and replaced, never changed in place). */
export interface Snapshot {
  readonly vars: ReadonlyMap<Key, Variable>;
  readonly morKey: Uint8Array;
  readonly ppiFunc: Uint8Array;
  readonly ppiIndex: number;
}

export function snapshot(core: StoreCore): Snapshot {
  return {
    vars: new Map(core.vars),
    morKey: core.morKey.slice(),
    ppiFunc: core.ppiFunc.slice(),
    ppiIndex: core.ppiIndex,
  };
}

export function restoreSnapshot(core: StoreCore, s: Snapshot): void {
  core.replaceVars(new Map(s.vars));
  core.morKey = s.morKey.slice();
  core.ppiFunc = s.ppiFunc.slice();
  core.ppiIndex = s.ppiIndex;
}

/** The change made since `before`, pending: `onRollback`'s value is what rollback() returns. */
export function openPending<R>(core: StoreCore, before: Snapshot, onRollback: () => R): PendingChange<R> {
  core.pendingOpen = true;
  let settled = false;
  // The store's own records, not copies: they are frozen and replaced, never changed in place, so
  // a write costs one list of references instead of a copy of every variable.
  const state: StoreState = {
    variables: [...core.vars.values()],
    morKey: core.morKey.slice(),
    ppi: { index: core.ppiIndex, func: core.ppiFunc.slice() },
    atRuntime: core.runtime,
  };
  return {
    state,
    commit: () => {
      if (settled) return;
      settled = true;
      core.pendingOpen = false;
    },
    rollback: () => {
      if (!settled) {
        settled = true;
        restoreSnapshot(core, before);
        core.pendingOpen = false;
      }
      return onRollback();
    },
  };
}
