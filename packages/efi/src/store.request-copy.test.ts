import { FirmwareClient, Limits } from '@vmsb/protocol';
import { describe, expect, it } from 'vitest';
import { Attrs } from './attributes.js';
import { Guids } from './guid.js';
import { RecordingAuthenticator, S, V, auth2, bytes, n, newStore } from './test-helpers.js';
import type { VariableStore } from './store.js';

const { NV_BS_RT, BS_RT, NV_BS_RT_AT } = Attrs;

/**
 * A transport that reuses one Node Buffer for every request, as a per-vCPU request buffer does: each
 * request is copied into it and dispatched from it. On a Buffer, `slice()` is a view, so anything the
 * store kept by `slice()` would change with the next request.
 */
function reusedBufferClient(store: VariableStore): { fw: FirmwareClient; buffer: Buffer } {
  const buffer = Buffer.alloc(Limits.BUFFER_SIZE);
  const fw = new FirmwareClient((request) => {
    buffer.set(request);
    const outcome = store.dispatch(buffer);
    outcome.pending?.commit();
    return outcome.response;
  });
  return { fw, buffer };
}

describe('nothing the store keeps aliases the request buffer (docs/architecture.md §1)', () => {
  it('a variable written from a reused Buffer keeps its name, GUID and data when the buffer is reused', () => {
    const store = newStore();
    const { fw, buffer } = reusedBufferClient(store);
    expect(fw.setVariable(n('Kept'), V, NV_BS_RT, bytes(1, 2, 3, 4))).toBe(S.SUCCESS);
    expect(fw.setVariable(n('Volatile'), V, BS_RT, bytes(5, 6))).toBe(S.SUCCESS);
    buffer.fill(0xee);
    expect(fw.getVariable(n('Kept'), V)).toEqual({ status: S.SUCCESS, attributes: NV_BS_RT, data: bytes(1, 2, 3, 4) });
    expect(fw.getVariable(n('Volatile'), V)).toEqual({ status: S.SUCCESS, attributes: BS_RT, data: bytes(5, 6) });
    const kept = store.getVariable(n('Kept'), V)!;
    expect([kept.name, kept.guid]).toEqual([n('Kept'), V]);
  });

  it('an appended variable keeps its data when the buffer is reused', () => {
    const store = newStore();
    const { fw, buffer } = reusedBufferClient(store);
    expect(fw.setVariable(n('Grown'), V, NV_BS_RT, bytes(1))).toBe(S.SUCCESS);
    expect(fw.setVariable(n('Grown'), V, NV_BS_RT | 0x40, bytes(2, 3))).toBe(S.SUCCESS);
    buffer.fill(0xee);
    expect(fw.getVariable(n('Grown'), V).data).toEqual(bytes(1, 2, 3));
  });

  it('the MOR key is a copy: the saved key and the unlock are unchanged when the buffer is reused', () => {
    const store = newStore();
    const { fw, buffer } = reusedBufferClient(store);
    const LOCK = n('MemoryOverwriteRequestControlLock');
    const LG = Guids.MEMORY_OVERWRITE_CONTROL_LOCK;
    const KEY = bytes(1, 2, 3, 4, 5, 6, 7, 8);
    expect(fw.setVariable(LOCK, LG, NV_BS_RT, KEY)).toBe(S.SUCCESS);
    buffer.fill(0xee);
    // What a save file carries; an unlock request would rewrite the same bytes of the buffer.
    expect(store.state().morKey).toEqual(KEY);
    expect(fw.setVariable(LOCK, LG, NV_BS_RT, KEY)).toBe(S.SUCCESS);
    expect(fw.getVariable(LOCK, LG).data).toEqual(bytes(0));
  });

  it('an authenticated write keeps the payload and timestamp the authenticator approved', () => {
    // The default decision hands back views into the request it was given, as a verifier may.
    const store = newStore({ authenticator: new RecordingAuthenticator() });
    const { fw, buffer } = reusedBufferClient(store);
    const data = auth2(bytes(9, 8, 7), { year: 2030, month: 6, day: 7 });
    expect(fw.setVariable(n('Signed'), V, NV_BS_RT_AT, data)).toBe(S.SUCCESS);
    buffer.fill(0xee);
    const stored = store.getVariable(n('Signed'), V)!;
    expect(stored.data).toEqual(bytes(9, 8, 7));
    expect(stored.timestamp).toEqual(data.slice(0, 16));
  });
});
