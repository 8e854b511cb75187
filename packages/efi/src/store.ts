/**
 * The VariableStore: one VM's UEFI variables behind dispatch(). Its concerns live beside it: the wire
 * dispatch (dispatch.ts), SetVariable's rules (set-variable.ts), MOR (mor.ts), the TCG2 PPI region
 * (ppi.ts), transactions (transaction.ts), and the state they share (store-core.ts).
 */
import { EfiStatus, Limits } from '@vmsb/protocol';
import { Attr, formatAttributes } from './attributes.js';
import {
  MODE_BUILTINS,
  MOR_KEY_SIZE,
  MorLockState,
  Names,
  PPI_BUFFER_SIZE,
  PPI_FUNC_SIZE,
  signatureSupportValue,
  type BuiltinName,
} from './builtins.js';
import { dispatchRequest } from './dispatch.js';
import { ppiRead, ppiWrite } from './ppi.js';
import { secureBootAtBoot, setVariableRules } from './set-variable.js';
import { StoreCore, copyVariable, describe, isNv, keyOf, type Key } from './store-core.js';
import { openPending, restoreSnapshot, snapshot } from './transaction.js';
import type {
  DispatchOutcome,
  PpiWriteOutcome,
  RestoreOptions,
  SetOutcome,
  StoreOptions,
  StoreState,
} from './types.js';
import { makeVariable, nameProblem, type Variable } from './variable.js';

/**
 * The UEFI variable store of one VM: GetVariable, SetVariable, GetNextVariableName and
 * QueryVariableInfo with edk2's semantics for OVMF, varstored's limits, the Secure Boot mode
 * variables, MOR and the TCG2 PPI area. Pure and synchronous: persistence, authentication and
 * alerts are ports the owner supplies.
 */
export class VariableStore {
  private readonly core: StoreCore;

  private constructor(options: StoreOptions, runtime: boolean) {
    this.core = new StoreCore(options, runtime);
  }

  /** A store for a first boot: the builtins only. */
  static create(options: StoreOptions): VariableStore {
    return VariableStore.restore(
      { variables: [], morKey: new Uint8Array(MOR_KEY_SIZE), ppi: { index: 0, func: new Uint8Array(PPI_FUNC_SIZE) } },
      { ...options, resume: false },
    );
  }

  /**
   * A store from saved state. Throws RangeError when the state holds a variable this store could
   * never have produced (bad name, GUID or attributes, empty or oversized data, a duplicate).
   */
  static restore(state: StoreState, options: RestoreOptions): VariableStore {
    const store = new VariableStore(options, options.resume ? (options.atRuntime ?? state.atRuntime ?? false) : false);
    const loaded = new Map<Key, Variable>();
    for (const v of state.variables) {
      const variable = validateLoaded(v);
      const key = keyOf(variable.name, variable.guid);
      if (loaded.has(key)) throw new RangeError(`variable ${describe(variable.name, variable.guid)} appears twice`);
      loaded.set(key, variable);
    }
    store.core.morKey = fixedCopy(state.morKey, MOR_KEY_SIZE);
    store.core.ppiFunc = fixedCopy(state.ppi?.func, PPI_FUNC_SIZE);
    store.core.ppiIndex = Number(state.ppi?.index ?? 0) >>> 0;
    if (options.resume) {
      store.core.replaceVars(loaded);
      // A save file always holds the builtins; recreate any that are missing rather than run without them.
      for (const b of [
        ...MODE_BUILTINS,
        Names.MemoryOverwriteRequestControl,
        Names.MemoryOverwriteRequestControlLock,
        Names.PPIBuffer,
        Names.Tcg2PhysicalPresenceFlagsLock,
      ]) {
        if (!store.core.vars.has(keyOf(b.name, b.guid)))
          store.core.putInternal(b, store.initialBuiltinValue(b, loaded));
      }
    } else {
      // A new boot: volatile variables are gone and the builtins are computed afresh, first.
      for (const b of MODE_BUILTINS) store.core.putInternal(b, store.initialBuiltinValue(b, loaded));
      store.core.putInternal(Names.MemoryOverwriteRequestControl, Uint8Array.of(0));
      store.core.putInternal(Names.MemoryOverwriteRequestControlLock, Uint8Array.of(MorLockState.UNLOCKED));
      store.core.putInternal(Names.PPIBuffer, store.initialBuiltinValue(Names.PPIBuffer, loaded));
      store.core.putInternal(Names.Tcg2PhysicalPresenceFlagsLock, Uint8Array.of(0));
      for (const [key, v] of loaded) {
        if (store.core.vars.has(key) || !isNv(v)) continue;
        store.core.putVar(key, v);
      }
    }
    return store;
  }

  private initialBuiltinValue(b: BuiltinName, loaded: Map<Key, Variable>): Uint8Array {
    const pk = loaded.has(keyOf(Names.PK.name, Names.PK.guid));
    switch (b) {
      case Names.SignatureSupport:
        return signatureSupportValue();
      case Names.SetupMode:
        return Uint8Array.of(pk ? 0 : 1);
      case Names.DeployedMode:
        return Uint8Array.of(pk ? 1 : 0);
      case Names.SecureBoot:
        return Uint8Array.of(secureBootAtBoot(this.core, pk));
      case Names.VendorKeys:
        return Uint8Array.of(1);
      case Names.PPIBuffer: {
        const saved = loaded.get(keyOf(b.name, b.guid));
        return saved !== undefined && (saved.attributes & Attr.NON_VOLATILE) !== 0
          ? saved.data
          : new Uint8Array(PPI_BUFFER_SIZE);
      }
      default:
        return Uint8Array.of(0);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Introspection

  /** The variable (name, guid), unfiltered (a copy), or undefined. */
  getVariable(name: Uint8Array, guid: Uint8Array): Variable | undefined {
    const v = this.core.lookup(name, guid);
    return v === undefined ? undefined : copyVariable(v);
  }

  /** Every variable in enumeration order (copies). */
  variables(): readonly Variable[] {
    return [...this.core.vars.values()].map(copyVariable);
  }

  /** Everything the store holds, for a save file or (non-volatile part) for NVRAM. */
  state(): StoreState {
    return {
      variables: this.variables(),
      morKey: this.core.morKey.slice(),
      ppi: { index: this.core.ppiIndex, func: this.core.ppiFunc.slice() },
      atRuntime: this.core.runtime,
    };
  }

  /** No PK is enrolled. */
  get setupMode(): boolean {
    return this.core.setupMode;
  }

  /** The value of the SecureBoot variable. */
  get secureBoot(): boolean {
    return this.core.secureBoot;
  }

  /** The guest has made a runtime request (sticky). */
  get atRuntime(): boolean {
    return this.core.runtime;
  }

  /** Bytes used, counting 128 per variable, as QueryVariableInfo accounts them. */
  get usedStorage(): number {
    return this.core.usedStorage;
  }

  // -------------------------------------------------------------------------------------------
  // The guest's requests

  /**
   * Handles one request from the guest buffer and returns the bytes to copy back; never throws.
   * `request` must be the private copy of guest memory the transport made (docs/architecture.md §1:
   * guest memory is copied once, by the transport), unchanged during the call. It is decoded in place, at most
   * its first 64 KiB, and nothing of it is kept: what the store keeps, it copies. The outcome carries
   * the decoded request, for the caller's log line.
   */
  dispatch(request: Uint8Array): DispatchOutcome {
    return dispatchRequest(this.core, request);
  }

  /**
   * SetVariable from inside the host (first-boot provisioning, tools): the same rules as a guest
   * request at boot time (or at runtime when asked). Never throws.
   */
  setVariable(
    name: Uint8Array,
    guid: Uint8Array,
    attributes: number,
    data: Uint8Array,
    options: { atRuntime?: boolean } = {},
  ): SetOutcome {
    if (this.core.pendingOpen)
      return { status: EfiStatus.DEVICE_ERROR, reason: 'a previous change is still waiting for commit or rollback' };
    const before = snapshot(this.core);
    try {
      if (!(name instanceof Uint8Array) || !(guid instanceof Uint8Array) || !(data instanceof Uint8Array)) {
        return { status: EfiStatus.INVALID_PARAMETER, reason: 'name, guid and data must be byte arrays' };
      }
      const result = setVariableRules(
        this.core,
        { name, guid, attributes: Number(attributes) >>> 0, data },
        options.atRuntime === true,
      );
      const outcome: SetOutcome =
        result.reason === undefined ? { status: result.status } : { status: result.status, reason: result.reason };
      return result.persist === true
        ? { ...outcome, pending: openPending(this.core, before, () => undefined) }
        : outcome;
    } catch (e) {
      restoreSnapshot(this.core, before);
      return {
        status: EfiStatus.DEVICE_ERROR,
        reason: `internal error: ${e instanceof Error ? e.message : String(e)}`,
      };
    }
  }

  // -------------------------------------------------------------------------------------------
  // TCG2 physical presence I/O region (ports 0x104 index / 0x108 data)

  /** The PPI index register (port 0x104). */
  get ppiIndex(): number {
    return this.core.ppiIndex;
  }

  set ppiIndex(value: number) {
    this.core.ppiIndex = Number(value) >>> 0;
  }

  /**
   * Reads `size` (1, 2 or 4) bytes little-endian at `index` of the PPI region: 0x000-0x0FF the
   * volatile function area, 0x100-0x12F PPIBuffer. Out of range → 0.
   */
  ppiRead(index: number, size: number): number {
    return ppiRead(this.core, index, size);
  }

  /**
   * Writes `size` (1, 2 or 4) bytes little-endian at `index` of the PPI region; out of range is
   * ignored. A write into PPIBuffer changes non-volatile state and returns it as pending.
   */
  ppiWrite(index: number, size: number, value: number): PpiWriteOutcome {
    return ppiWrite(this.core, index, size, value);
  }
}

function fixedCopy(bytes: Uint8Array | undefined, size: number): Uint8Array {
  const out = new Uint8Array(size);
  if (bytes instanceof Uint8Array) out.set(bytes.subarray(0, size));
  return out;
}

/** A private copy of a loaded variable, or RangeError naming what is wrong. */
function validateLoaded(v: Variable): Variable {
  if (v === null || typeof v !== 'object' || !(v.name instanceof Uint8Array))
    throw new RangeError('a variable without a name');
  let name = v.name;
  // Old stores kept the terminator; a name is compared without it.
  while (name.length >= 2 && name[name.length - 2] === 0 && name[name.length - 1] === 0)
    name = name.subarray(0, name.length - 2);
  const label = v.guid instanceof Uint8Array && v.guid.length === 16 ? describe(name, v.guid) : 'a variable';
  const problem = nameProblem(name);
  if (problem !== undefined) throw new RangeError(`${label}: ${problem}`);
  if (name.length > Limits.NAME_MAX) throw new RangeError(`${label}: the name exceeds ${Limits.NAME_MAX} bytes`);
  if (!(v.guid instanceof Uint8Array) || v.guid.length !== 16)
    throw new RangeError(`${label}: the GUID is not 16 bytes`);
  if (!(v.data instanceof Uint8Array) || v.data.length === 0) throw new RangeError(`${label}: no data`);
  if (v.data.length > Limits.DATA_MAX)
    throw new RangeError(`${label}: ${v.data.length} bytes of data exceed ${Limits.DATA_MAX}`);
  const attributes = Number(v.attributes) >>> 0;
  const storable =
    Attr.NON_VOLATILE | Attr.BOOTSERVICE_ACCESS | Attr.RUNTIME_ACCESS | Attr.TIME_BASED_AUTHENTICATED_WRITE_ACCESS;
  if ((attributes & ~storable) !== 0 || (attributes & (Attr.BOOTSERVICE_ACCESS | Attr.RUNTIME_ACCESS)) === 0) {
    throw new RangeError(`${label}: attributes ${formatAttributes(attributes)} cannot be stored`);
  }
  return makeVariable({
    name,
    guid: v.guid,
    attributes,
    data: v.data,
    timestamp: v.timestamp,
    signerDigest: v.signerDigest,
  });
}
