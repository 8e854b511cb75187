import { describe, expect, it } from 'vitest';
import { Attrs } from './attributes.js';
import { Guids } from './guid.js';
import { S, bytes, client, n, newStore } from './test-helpers.js';

const { NV_BS_RT } = Attrs;
const PG = Guids.TCG2_PHYSICAL_PRESENCE;

describe('TCG2 physical presence', () => {
  it('Tcg2PhysicalPresenceFlagsLock only accepts 1 once it exists', () => {
    const fw = client(newStore());
    const L = n('Tcg2PhysicalPresenceFlagsLock');
    expect(fw.getVariable(L, PG).data).toEqual(bytes(0));
    expect(fw.setVariable(L, PG, NV_BS_RT, bytes(2))).toBe(S.INVALID_PARAMETER);
    expect(fw.setVariable(L, PG, NV_BS_RT, bytes(1, 1))).toBe(S.INVALID_PARAMETER);
    expect(fw.setVariable(L, PG, 0, new Uint8Array(0))).toBe(S.INVALID_PARAMETER);
    expect(fw.setVariable(L, PG, NV_BS_RT, bytes(1))).toBe(S.SUCCESS);
  });

  it('Tcg2PhysicalPresenceFlags is WRITE_PROTECTED while locked', () => {
    const fw = client(newStore());
    const F = n('Tcg2PhysicalPresenceFlags');
    expect(fw.setVariable(F, PG, NV_BS_RT, bytes(1, 0, 0, 0))).toBe(S.SUCCESS);
    expect(fw.setVariable(F, PG, NV_BS_RT, bytes(2, 0, 0, 0))).toBe(S.SUCCESS);
    expect(fw.setVariable(n('Tcg2PhysicalPresenceFlagsLock'), PG, NV_BS_RT, bytes(1))).toBe(S.SUCCESS);
    expect(fw.setVariable(F, PG, NV_BS_RT, bytes(3, 0, 0, 0))).toBe(S.WRITE_PROTECTED);
    expect(fw.getVariable(F, PG).data).toEqual(bytes(2, 0, 0, 0));
  });

  it('the PPI region: function bytes are volatile, 0x100.. is PPIBuffer and persists', () => {
    const store = newStore();
    store.ppiIndex = 0x10;
    expect(store.ppiIndex).toBe(0x10);
    expect(store.ppiWrite(0x10, 4, 0xdeadbeef)).toEqual({});
    expect(store.ppiRead(0x10, 4)).toBe(0xdeadbeef);
    expect(store.ppiRead(0x11, 1)).toBe(0xbe);
    expect(store.ppiRead(0x12, 2)).toBe(0xdead);
    const w = store.ppiWrite(0x105, 4, 0x01020304);
    expect(w.pending).toBeDefined();
    w.pending!.commit();
    expect(store.getVariable(n('PPIBuffer'), PG)!.data.subarray(5, 9)).toEqual(bytes(4, 3, 2, 1));
    expect(store.ppiRead(0x105, 4)).toBe(0x01020304);
    // Same bytes again: nothing changed, nothing to persist.
    expect(store.ppiWrite(0x105, 4, 0x01020304).pending).toBeUndefined();
  });

  it('a write straddling the two areas splits byte by byte; out of range is ignored', () => {
    const store = newStore();
    const w = store.ppiWrite(0xfe, 4, 0xaabbccdd);
    w.pending?.commit();
    expect(store.ppiRead(0xfe, 2)).toBe(0xccdd);
    expect(store.getVariable(n('PPIBuffer'), PG)!.data.subarray(0, 2)).toEqual(bytes(0xbb, 0xaa));
    expect(store.ppiWrite(0x12e, 4, 1)).toEqual({});
    expect(store.ppiRead(0x12e, 4)).toBe(0);
    expect(store.ppiRead(0x12f, 1)).toBe(0);
    expect(store.ppiRead(-1, 1)).toBe(0);
    expect(store.ppiRead(0, 3)).toBe(0);
  });

  it('a rolled-back PPIBuffer write restores the previous bytes', () => {
    const store = newStore();
    store.ppiWrite(0x100, 1, 0x55).pending!.rollback();
    expect(store.ppiRead(0x100, 1)).toBe(0);
  });
});
