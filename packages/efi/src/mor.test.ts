import { describe, expect, it } from 'vitest';
import { Attr, Attrs } from './attributes.js';
import { Guids } from './guid.js';
import { S, bytes, client, n, newStore } from './test-helpers.js';

const { NV_BS_RT, NV_BS, BS_RT } = Attrs;
const MOR = n('MemoryOverwriteRequestControl');
const LOCK = n('MemoryOverwriteRequestControlLock');
const MG = Guids.MEMORY_OVERWRITE_CONTROL;
const LG = Guids.MEMORY_OVERWRITE_CONTROL_LOCK;
const KEY = bytes(1, 2, 3, 4, 5, 6, 7, 8);

describe('MemoryOverwriteRequestControl (as the C varstored)', () => {
  const rows: [string, number, Uint8Array, bigint][] = [
    ['one byte with NV|BS|RT → SUCCESS', NV_BS_RT, bytes(1), S.SUCCESS],
    ['bits 0x11 are allowed', NV_BS_RT, bytes(0x11), S.SUCCESS],
    ['other bits → INVALID_PARAMETER', NV_BS_RT, bytes(0x02), S.INVALID_PARAMETER],
    ['NV|BS → INVALID_PARAMETER', NV_BS, bytes(1), S.INVALID_PARAMETER],
    ['APPEND → INVALID_PARAMETER', NV_BS_RT | Attr.APPEND_WRITE, bytes(1), S.INVALID_PARAMETER],
    ['two bytes → INVALID_PARAMETER', NV_BS_RT, bytes(1, 0), S.INVALID_PARAMETER],
    ['delete → INVALID_PARAMETER', 0, new Uint8Array(0), S.INVALID_PARAMETER],
  ];
  it.each(rows)('%s', (_what, attributes, data, status) => {
    const fw = client(newStore());
    expect(fw.setVariable(MOR, MG, attributes, data)).toBe(status);
    expect(fw.getVariable(MOR, MG).data).toEqual(status === S.SUCCESS ? data : bytes(0));
  });

  it('is WRITE_PROTECTED once locked', () => {
    const fw = client(newStore());
    expect(fw.setVariable(LOCK, LG, NV_BS_RT, bytes(1))).toBe(S.SUCCESS);
    expect(fw.setVariable(MOR, MG, NV_BS_RT, bytes(1))).toBe(S.WRITE_PROTECTED);
  });
});

describe('MemoryOverwriteRequestControlLock (as the C varstored)', () => {
  const lockState = (fw: ReturnType<typeof client>) => fw.getVariable(LOCK, LG).data?.[0];

  it('delete or empty → WRITE_PROTECTED; wrong shape → INVALID_PARAMETER', () => {
    const fw = client(newStore());
    expect(fw.setVariable(LOCK, LG, 0, bytes(1))).toBe(S.WRITE_PROTECTED);
    expect(fw.setVariable(LOCK, LG, NV_BS_RT, new Uint8Array(0))).toBe(S.WRITE_PROTECTED);
    expect(fw.setVariable(LOCK, LG, BS_RT, bytes(1))).toBe(S.INVALID_PARAMETER);
    expect(fw.setVariable(LOCK, LG, NV_BS_RT | Attr.APPEND_WRITE, bytes(1))).toBe(S.INVALID_PARAMETER);
    expect(fw.setVariable(LOCK, LG, NV_BS_RT, bytes(1, 2))).toBe(S.INVALID_PARAMETER);
    expect(fw.setVariable(LOCK, LG, NV_BS_RT, bytes(2))).toBe(S.INVALID_PARAMETER);
    expect(lockState(fw)).toBe(0);
  });

  it('revision 1: 0 when unlocked is a no-op; 1 locks; then both are ACCESS_DENIED', () => {
    const fw = client(newStore());
    expect(fw.setVariable(LOCK, LG, NV_BS_RT, bytes(0))).toBe(S.SUCCESS);
    expect(fw.setVariable(LOCK, LG, NV_BS_RT, bytes(1))).toBe(S.SUCCESS);
    expect(lockState(fw)).toBe(1);
    expect(fw.setVariable(LOCK, LG, NV_BS_RT, bytes(0))).toBe(S.ACCESS_DENIED);
    expect(fw.setVariable(LOCK, LG, NV_BS_RT, bytes(1))).toBe(S.ACCESS_DENIED);
    expect(fw.setVariable(LOCK, LG, NV_BS_RT, KEY)).toBe(S.ACCESS_DENIED);
  });

  it('revision 2: a key locks, the same key unlocks, a wrong key locks for good', () => {
    const store = newStore();
    const fw = client(store);
    expect(fw.setVariable(LOCK, LG, NV_BS_RT, KEY)).toBe(S.SUCCESS);
    expect(lockState(fw)).toBe(2);
    expect(store.state().morKey).toEqual(KEY);
    expect(fw.setVariable(LOCK, LG, NV_BS_RT, bytes(1))).toBe(S.ACCESS_DENIED);
    expect(fw.setVariable(LOCK, LG, NV_BS_RT, KEY)).toBe(S.SUCCESS);
    expect(lockState(fw)).toBe(0);
    expect(fw.setVariable(LOCK, LG, NV_BS_RT, KEY)).toBe(S.SUCCESS);
    expect(fw.setVariable(LOCK, LG, NV_BS_RT, bytes(8, 7, 6, 5, 4, 3, 2, 1))).toBe(S.ACCESS_DENIED);
    expect(lockState(fw)).toBe(1);
    expect(fw.setVariable(LOCK, LG, NV_BS_RT, KEY)).toBe(S.ACCESS_DENIED);
  });

  it('MOR writes are never handed over for persistence', () => {
    const store = newStore();
    const outcomes = [store.setVariable(MOR, MG, NV_BS_RT, bytes(1)), store.setVariable(LOCK, LG, NV_BS_RT, KEY)];
    for (const o of outcomes) {
      expect(o.status).toBe(S.SUCCESS);
      expect(o.pending).toBeUndefined();
    }
  });
});
