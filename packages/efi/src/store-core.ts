/**
 * The state a VariableStore holds and the one place it changes: the variables (indexed byte-exact by
 * name and GUID, in enumeration order), MOR's key, the PPI function area, the sticky runtime flag.
 * The store's concerns (dispatch.ts, set-variable.ts, mor.ts, ppi.ts, transaction.ts) work on it.
 * Internal to the package.
 */
import { EfiStatus, Limits, fromUtf16le } from '@vmsb/protocol';
import { Attr } from './attributes.js';
import { MOR_KEY_SIZE, Names, PPI_FUNC_SIZE, type BuiltinName } from './builtins.js';
import { guidEquals, guidToText } from './guid.js';
import type { Authenticator, LogLevel, PlatformSettings, StoreOptions } from './types.js';
import { bytesEqual, makeVariable, type Variable } from './variable.js';

export type Key = string;

/** Map key of (name, guid): byte-exact, as UEFI matches variables. */
export function keyOf(name: Uint8Array, guid: Uint8Array): Key {
  return charPerByte(guid) + charPerByte(name);
}

const KEY_CHUNK = 4096;

/** One char per byte (injective); cheap even before the JIT has warmed up, which a boot never waits for. */
function charPerByte(bytes: Uint8Array): string {
  // apply() takes the bytes as arguments: chunked, so that no length can overflow the stack.
  if (bytes.length <= KEY_CHUNK) return String.fromCharCode.apply(null, bytes as unknown as number[]);
  let s = '';
  for (let i = 0; i < bytes.length; i += KEY_CHUNK)
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + KEY_CHUNK) as unknown as number[]);
  return s;
}

/** What a variable counts against the store's quota, as QueryVariableInfo accounts it. */
export function footprint(v: Variable | undefined): number {
  return v === undefined ? 0 : v.name.length + v.data.length + Limits.OVERHEAD;
}

export function isNv(v: Variable | undefined): boolean {
  return v !== undefined && (v.attributes & Attr.NON_VOLATILE) !== 0;
}

export function copyVariable(v: Variable): Variable {
  return makeVariable(v);
}

/** Whether (name, guid) is the builtin `b`. */
export function isBuiltin(b: BuiltinName, name: Uint8Array, guid: Uint8Array): boolean {
  return guidEquals(b.guid, guid) && bytesEqual(b.name, name);
}

/** "<guid>:<name>" for reasons and errors, bounded. */
export function describe(name: Uint8Array, guid: Uint8Array): string {
  const text = fromUtf16le(name.subarray(0, 256));
  return `${guid.length === 16 ? guidToText(guid) : '?'}:${text}${name.length > 256 ? '…' : ''}`;
}

/** What a SetVariable did, before it is turned into a response. */
export interface SetResult {
  readonly status: bigint;
  readonly reason?: string;
  /** The write changed non-volatile state (the owner must persist it). */
  readonly persist?: boolean;
}

export const ok = (persist = false): SetResult => ({ status: EfiStatus.SUCCESS, persist });
export const fail = (status: bigint, reason: string): SetResult => ({ status, reason });

type Enumeration = { readonly keys: readonly Key[]; readonly at: ReadonlyMap<Key, number> };

export class StoreCore {
  /** Every variable, in enumeration order (insertion order: a new name goes last). */
  private variables = new Map<Key, Variable>();
  /** Positions in `variables`, for GetNextVariableName; rebuilt after the set of names changes. */
  private order: Enumeration | undefined;
  morKey: Uint8Array = new Uint8Array(MOR_KEY_SIZE);
  ppiFunc: Uint8Array = new Uint8Array(PPI_FUNC_SIZE);
  ppiIndex = 0;
  /** The guest has made a runtime request (sticky). */
  runtime: boolean;
  sbFailureNotified = false;
  /** A change is waiting for commit or rollback (transaction.ts): nothing else may run. */
  pendingOpen = false;
  readonly platform: PlatformSettings;
  readonly authenticator: Authenticator | undefined;
  readonly log: (level: LogLevel, message: string) => void;

  constructor(options: StoreOptions, runtime: boolean) {
    this.platform = {
      secureBoot: options.platform.secureBoot === true,
      authEnforce: options.platform.authEnforce !== false,
    };
    this.authenticator = options.authenticator;
    this.log = options.log ?? (() => undefined);
    this.runtime = runtime;
  }

  /** The variables by key, in enumeration order; change them only through put/remove/replace. */
  get vars(): ReadonlyMap<Key, Variable> {
    return this.variables;
  }

  // Every change to the variables goes through these three, which keep `order` in step.
  putVar(key: Key, v: Variable): void {
    if (!this.variables.has(key)) this.order = undefined;
    this.variables.set(key, v);
  }

  removeVar(key: Key): void {
    if (this.variables.delete(key)) this.order = undefined;
  }

  replaceVars(vars: Map<Key, Variable>): void {
    this.variables = vars;
    this.order = undefined;
  }

  enumeration(): Enumeration {
    if (this.order === undefined) {
      const keys = [...this.variables.keys()];
      this.order = { keys, at: new Map(keys.map((k, i) => [k, i])) };
    }
    return this.order;
  }

  lookup(name: Uint8Array, guid: Uint8Array): Variable | undefined {
    if (!(name instanceof Uint8Array) || !(guid instanceof Uint8Array) || guid.length !== 16) return undefined;
    return this.variables.get(keyOf(name, guid));
  }

  /** Sets a store-managed variable, bypassing guest rules; keeps its place in the enumeration. */
  putInternal(b: BuiltinName, data: Uint8Array): void {
    const key = keyOf(b.name, b.guid);
    const existing = this.variables.get(key);
    this.putVar(
      key,
      makeVariable({
        name: b.name,
        guid: b.guid,
        attributes: existing?.attributes ?? b.attributes,
        data,
        ...(existing === undefined ? {} : { timestamp: existing.timestamp, signerDigest: existing.signerDigest }),
      }),
    );
  }

  /** No PK is enrolled. */
  get setupMode(): boolean {
    return this.lookup(Names.PK.name, Names.PK.guid) === undefined;
  }

  /** The value of the SecureBoot variable. */
  get secureBoot(): boolean {
    return this.lookup(Names.SecureBoot.name, Names.SecureBoot.guid)?.data[0] === 1;
  }

  /** Bytes used, counting 128 per variable, as QueryVariableInfo accounts them. */
  get usedStorage(): number {
    let total = 0;
    for (const v of this.variables.values()) total += footprint(v);
    return total;
  }
}
