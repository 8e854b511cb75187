/**
 * The TCG2 physical presence interface: the I/O region behind ports 0x104 (index) and 0x108 (data),
 * whose first 256 bytes are volatile and whose rest is the PPIBuffer variable, and varstored's rules
 * for the Tcg2PhysicalPresenceFlags variables.
 */
import { EfiStatus, copyBytes } from '@vmsb/protocol';
import { Names, PPI_FUNC_SIZE, PPI_REGION_SIZE } from './builtins.js';
import { fail, isBuiltin, keyOf, type SetResult, type StoreCore } from './store-core.js';
import { openPending, snapshot } from './transaction.js';
import type { PpiWriteOutcome } from './types.js';
import { bytesEqual, makeVariable } from './variable.js';

/**
 * Reads `size` (1, 2 or 4) bytes little-endian at `index` of the PPI region: 0x000-0x0FF the
 * volatile function area, 0x100-0x12F PPIBuffer. Out of range → 0.
 */
export function ppiRead(core: StoreCore, index: number, size: number): number {
  if (!validPpiAccess(index, size)) return 0;
  const buffer = core.lookup(Names.PPIBuffer.name, Names.PPIBuffer.guid)?.data;
  let value = 0;
  for (let i = size - 1; i >= 0; i--) {
    const at = index + i;
    const byte = at < PPI_FUNC_SIZE ? core.ppiFunc[at]! : (buffer?.[at - PPI_FUNC_SIZE] ?? 0);
    value = value * 256 + byte;
  }
  return value;
}

/**
 * Writes `size` (1, 2 or 4) bytes little-endian at `index` of the PPI region; out of range is
 * ignored. A write into PPIBuffer changes non-volatile state and returns it as pending.
 */
export function ppiWrite(core: StoreCore, index: number, size: number, value: number): PpiWriteOutcome {
  if (core.pendingOpen || !validPpiAccess(index, size)) return {};
  const key = keyOf(Names.PPIBuffer.name, Names.PPIBuffer.guid);
  const existing = core.vars.get(key);
  const data = existing === undefined ? undefined : copyBytes(existing.data);
  const bytes = Number(value) >>> 0;
  let v = bytes;
  for (let i = 0; i < size; i++, v = Math.floor(v / 256)) {
    const at = index + i - PPI_FUNC_SIZE;
    if (data !== undefined && at >= 0 && at < data.length) data[at] = v & 0xff;
  }
  // Only a change to PPIBuffer needs an undo point: most writes touch the volatile area alone.
  const changed = existing !== undefined && data !== undefined && !bytesEqual(data, existing.data);
  const before = changed ? snapshot(core) : undefined;
  v = bytes;
  for (let i = 0; i < size; i++, v = Math.floor(v / 256)) {
    const at = index + i;
    if (at < PPI_FUNC_SIZE) core.ppiFunc[at] = v & 0xff;
  }
  if (before === undefined || existing === undefined || data === undefined) return {};
  core.putVar(key, makeVariable({ ...existing, data }));
  return { pending: openPending(core, before, () => undefined) };
}

/** varstored's TCG2 physical-presence rules, for writes to existing variables. */
export function checkPpiVariables(
  core: StoreCore,
  name: Uint8Array,
  guid: Uint8Array,
  payload: Uint8Array,
): SetResult | undefined {
  if (isBuiltin(Names.Tcg2PhysicalPresenceFlagsLock, name, guid)) {
    if (payload.length !== 1 || payload[0] !== 1)
      return fail(EfiStatus.INVALID_PARAMETER, 'Tcg2PhysicalPresenceFlagsLock can only be set to 1');
    return undefined;
  }
  if (isBuiltin(Names.Tcg2PhysicalPresenceFlags, name, guid)) {
    const lock = core.lookup(Names.Tcg2PhysicalPresenceFlagsLock.name, Names.Tcg2PhysicalPresenceFlagsLock.guid);
    if (lock === undefined) return fail(EfiStatus.NOT_FOUND, 'Tcg2PhysicalPresenceFlagsLock is missing');
    if (lock.data.length !== 1 || lock.data[0] !== 0)
      return fail(EfiStatus.WRITE_PROTECTED, 'Tcg2PhysicalPresenceFlags is locked');
  }
  return undefined;
}

function validPpiAccess(index: number, size: number): boolean {
  return (
    Number.isInteger(index) && index >= 0 && (size === 1 || size === 2 || size === 4) && index + size <= PPI_REGION_SIZE
  );
}
