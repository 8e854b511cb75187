import { createAuthenticator } from '@vmsb/auth';
import { isNonVolatile, VariableStore, type StoreState, type Variable } from '@vmsb/efi';
import { guidToText } from '@vmsb/protocol';
import { messageOf, storeError } from './errors.js';

export function emptyState(): StoreState {
  return { variables: [], morKey: new Uint8Array(8), ppi: { index: 0, func: new Uint8Array(256) } };
}

/** Names compare without the NUL terminator some old stores kept. */
function trimmedName(name: Uint8Array): Uint8Array {
  let end = name.length;
  while (end >= 2 && name[end - 2] === 0 && name[end - 1] === 0) end -= 2;
  return name.subarray(0, end);
}

export function variableKey(name: Uint8Array, guid: Uint8Array): string {
  return `${guidToText(guid)}:${Buffer.from(trimmedName(name)).toString('hex')}`;
}

export interface Change {
  readonly name: Uint8Array;
  readonly guid: Uint8Array;
  readonly before: Variable | undefined;
  readonly after: Variable | undefined;
}

/**
 * Edits a store's variables through @vmsb/efi's VariableStore, the code the daemon runs, in the
 * mode of the administration tools: permissive (auth-enforce=false: Secure Boot databases are
 * written without signature checks; private authenticated variables still need their signer) with
 * @vmsb/auth's authenticator. Or, for "would the guest's write be accepted", enforcing.
 *
 * Only what a write touched is taken back: the result is the original variables, in their order,
 * with the touched ones replaced, added or removed. Builtins the store computes for a boot
 * (SetupMode, SecureBoot, MOR, PPI, ...) are not written into the store by an edit.
 */
export class EditSession {
  private readonly touched = new Map<string, { name: Uint8Array; guid: Uint8Array }>();

  private constructor(
    readonly original: StoreState,
    readonly store: VariableStore,
  ) {}

  static open(state: StoreState | undefined, mode: 'permissive' | 'enforcing' = 'permissive'): EditSession {
    const original = state ?? emptyState();
    const enforcing = mode === 'enforcing';
    try {
      const store = VariableStore.restore(original, {
        resume: false,
        platform: { secureBoot: enforcing, authEnforce: enforcing },
        authenticator: createAuthenticator(),
      });
      return new EditSession(original, store);
    } catch (e) {
      throw storeError(`the store holds a variable the variable store refuses to load: ${messageOf(e)}`);
    }
  }

  /** The variable as it is now (after this session's writes). */
  get(name: Uint8Array, guid: Uint8Array): Variable | undefined {
    return this.store.getVariable(trimmedName(name), guid);
  }

  /** SetVariable as a host-side caller; the change stays in memory until `result()` is saved. */
  set(name: Uint8Array, guid: Uint8Array, attributes: number, data: Uint8Array): { status: bigint; reason?: string } {
    const outcome = this.store.setVariable(name, guid, attributes, data);
    // Durability is the caller's (it saves `result()`), so the in-memory change is kept at once.
    outcome.pending?.commit();
    this.touched.set(variableKey(name, guid), { name: trimmedName(name).slice(), guid: guid.slice() });
    return outcome.reason === undefined
      ? { status: outcome.status }
      : { status: outcome.status, reason: outcome.reason };
  }

  /** The touched variables, before and after (only those that differ). */
  changes(): Change[] {
    const out: Change[] = [];
    for (const [key, { name, guid }] of this.touched) {
      const before = this.original.variables.find((v) => variableKey(v.name, v.guid) === key);
      const now = this.store.getVariable(name, guid);
      const after = now !== undefined && isNonVolatile(now.attributes) ? now : undefined;
      if (before === undefined && after === undefined) continue;
      if (before !== undefined && after !== undefined && same(before, after)) continue;
      out.push({ name, guid, before, after });
    }
    return out;
  }

  /** The store to save: the original with this session's changes applied. */
  result(): StoreState {
    const variables = [...this.original.variables];
    for (const change of this.changes()) {
      const key = variableKey(change.name, change.guid);
      const at = variables.findIndex((v) => variableKey(v.name, v.guid) === key);
      if (change.after === undefined) {
        if (at >= 0) variables.splice(at, 1);
      } else if (at >= 0) {
        variables[at] = change.after;
      } else {
        variables.push(change.after);
      }
    }
    return { variables, morKey: this.original.morKey, ppi: this.original.ppi };
  }
}

function same(a: Variable, b: Variable): boolean {
  const eq = (x: Uint8Array, y: Uint8Array): boolean => x.length === y.length && x.every((v, i) => v === y[i]);
  return (
    a.attributes === b.attributes &&
    eq(a.data, b.data) &&
    eq(a.timestamp, b.timestamp) &&
    eq(a.signerDigest, b.signerDigest)
  );
}
