/**
 * MemoryOverwriteRequestControl and its lock (TCG Platform Reset Attack Mitigation, as the C
 * varstored implements it): MOR is volatile and reset at every boot; the lock takes no key
 * (revision 1) or an 8-byte key (revision 2), and a wrong key locks it until the next boot.
 */
import { EfiStatus, copyBytes } from '@vmsb/protocol';
import { Attr } from './attributes.js';
import { MOR_KEY_SIZE, MorLockState, Names } from './builtins.js';
import { fail, ok, type SetResult, type StoreCore } from './store-core.js';

/** MemoryOverwriteRequestControl may only carry these bits. */
const MOR_ACTION_VALID_MASK = 0x11;

export function setMorControl(core: StoreCore, attributes: number, payload: Uint8Array): SetResult {
  const append = (attributes & Attr.APPEND_WRITE) !== 0;
  if (
    (attributes & ~Attr.APPEND_WRITE) !== Names.MemoryOverwriteRequestControl.attributes ||
    append ||
    payload.length !== 1
  ) {
    return fail(EfiStatus.INVALID_PARAMETER, 'MemoryOverwriteRequestControl takes one byte with attributes NV|BS|RT');
  }
  if ((payload[0]! & ~MOR_ACTION_VALID_MASK) !== 0)
    return fail(EfiStatus.INVALID_PARAMETER, 'MemoryOverwriteRequestControl has undefined bits');
  const lock = morLockState(core);
  if (lock === MorLockState.LOCKED_WITH_KEY || lock === MorLockState.LOCKED_WITHOUT_KEY)
    return fail(EfiStatus.WRITE_PROTECTED, 'MemoryOverwriteRequestControl is locked');
  core.putInternal(Names.MemoryOverwriteRequestControl, payload);
  // MOR is reset at every boot: nothing to make durable.
  return ok();
}

export function setMorLock(core: StoreCore, attributes: number, payload: Uint8Array): SetResult {
  const attrs = attributes & ~Attr.APPEND_WRITE;
  const append = (attributes & Attr.APPEND_WRITE) !== 0;
  if (attrs === 0 || payload.length === 0)
    return fail(EfiStatus.WRITE_PROTECTED, 'MemoryOverwriteRequestControlLock cannot be deleted');
  if (
    attrs !== Names.MemoryOverwriteRequestControlLock.attributes ||
    append ||
    (payload.length !== 1 && payload.length !== MOR_KEY_SIZE)
  ) {
    return fail(
      EfiStatus.INVALID_PARAMETER,
      'MemoryOverwriteRequestControlLock takes 1 or 8 bytes with attributes NV|BS|RT',
    );
  }
  const state = morLockState(core);
  let nextState: number;
  if (payload.length === 1) {
    const v = payload[0]!;
    if (v === 0) {
      if (state === MorLockState.UNLOCKED) return ok();
      return fail(EfiStatus.ACCESS_DENIED, 'MOR is locked');
    } else if (v === 1) {
      if (state !== MorLockState.UNLOCKED) return fail(EfiStatus.ACCESS_DENIED, 'MOR is already locked');
      nextState = MorLockState.LOCKED_WITHOUT_KEY;
    } else {
      return fail(EfiStatus.INVALID_PARAMETER, 'MemoryOverwriteRequestControlLock takes 0 or 1');
    }
  } else if (state === MorLockState.UNLOCKED) {
    core.morKey = copyBytes(payload);
    nextState = MorLockState.LOCKED_WITH_KEY;
  } else if (state === MorLockState.LOCKED_WITHOUT_KEY) {
    return fail(EfiStatus.ACCESS_DENIED, 'MOR is locked without a key');
  } else if (!sameSecret(core.morKey, payload)) {
    // A wrong key locks MOR for good (until the next boot).
    core.putInternal(Names.MemoryOverwriteRequestControlLock, Uint8Array.of(MorLockState.LOCKED_WITHOUT_KEY));
    return fail(EfiStatus.ACCESS_DENIED, 'wrong MOR key');
  } else {
    nextState = MorLockState.UNLOCKED;
  }
  core.putInternal(Names.MemoryOverwriteRequestControlLock, Uint8Array.of(nextState));
  return ok();
}

function morLockState(core: StoreCore): number {
  return (
    core.lookup(Names.MemoryOverwriteRequestControlLock.name, Names.MemoryOverwriteRequestControlLock.guid)?.data[0] ??
    MorLockState.UNLOCKED
  );
}

/** Compares secrets without an early exit. */
function sameSecret(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
