import { EfiStatus, FirmwareClient, Limits, encodeRequest, fromUtf16le } from '@vmsb/protocol';
import { describe, expect, it } from 'vitest';
import { Attrs } from './attributes.js';
import { Guids } from './guid.js';
import { VariableStore } from './store.js';
import { G, RecordingAuthenticator, S, V, auth2, bytes, client, n, newStore } from './test-helpers.js';
import type { StoreState } from './types.js';
import { makeVariable } from './variable.js';

const { NV_BS_RT, BS_RT, NV_BS_RT_AT } = Attrs;
const platform = { secureBoot: true, authEnforce: true };

function setRequest(name: string, attributes: number, data: Uint8Array): Uint8Array {
  const b = new Uint8Array(Limits.BUFFER_SIZE);
  encodeRequest({ command: 'SetVariable', name: n(name), guid: V, data, attributes, atRuntime: false }, b);
  return b;
}

function setRequestFor(name: string, guid: Uint8Array, attributes: number, data: Uint8Array): Uint8Array {
  const b = new Uint8Array(Limits.BUFFER_SIZE);
  encodeRequest({ command: 'SetVariable', name: n(name), guid, data, attributes, atRuntime: false }, b);
  return b;
}

describe('the persistence port', () => {
  it('a non-volatile change is pending until committed, with the complete new state', () => {
    const store = newStore();
    const out = store.dispatch(setRequest('X', NV_BS_RT, bytes(1)));
    expect(out.status).toBe(S.SUCCESS);
    expect(out.pending).toBeDefined();
    expect(out.pending!.state.variables.find((v) => fromUtf16le(v.name) === 'X')?.data).toEqual(bytes(1));
    // The owner must settle it before anything else is dispatched.
    expect(store.dispatch(setRequest('Y', BS_RT, bytes(1))).status).toBe(S.DEVICE_ERROR);
    out.pending!.commit();
    expect(store.dispatch(setRequest('Y', BS_RT, bytes(1))).status).toBe(S.SUCCESS);
  });

  it('a write shares the unchanged variables with the pending state instead of copying each', () => {
    const store = newStore();
    const first = store.dispatch(setRequest('X', NV_BS_RT, bytes(1)));
    first.pending!.commit();
    const second = store.dispatch(setRequest('Y', NV_BS_RT, bytes(2)));
    second.pending!.commit();
    const x = (state: StoreState) => state.variables.find((v) => fromUtf16le(v.name) === 'X');
    expect(x(second.pending!.state)).toBe(x(first.pending!.state));
    expect(Object.isFrozen(x(second.pending!.state))).toBe(true);
    // state() still hands out copies.
    expect(x(store.state())).not.toBe(x(second.pending!.state));
  });

  it('a failed persist rolls back and the guest gets DEVICE_ERROR', () => {
    const store = newStore();
    const fw = FirmwareClient.forStore(store, () => false);
    expect(fw.setVariable(n('X'), V, NV_BS_RT, bytes(1))).toBe(S.DEVICE_ERROR);
    expect(fw.getVariable(n('X'), V).status).toBe(S.NOT_FOUND);
    const ok = client(store);
    expect(ok.setVariable(n('X'), V, NV_BS_RT, bytes(1))).toBe(S.SUCCESS);
    expect(fw.setVariable(n('X'), V, NV_BS_RT, bytes(2))).toBe(S.DEVICE_ERROR);
    expect(fw.setVariable(n('X'), V, NV_BS_RT, new Uint8Array(0))).toBe(S.DEVICE_ERROR);
    expect(fw.setVariable(n('X'), V, NV_BS_RT | 0x40, bytes(3))).toBe(S.DEVICE_ERROR);
    expect(ok.getVariable(n('X'), V).data).toEqual(bytes(1));
  });

  it('a rolled-back PK enrolment leaves setup mode', () => {
    const store = newStore({ authenticator: new RecordingAuthenticator() });
    const fw = FirmwareClient.forStore(store, () => false);
    expect(fw.setVariable(n('PK'), G, NV_BS_RT_AT, auth2(bytes(1)))).toBe(S.DEVICE_ERROR);
    expect(store.setupMode).toBe(true);
    expect(client(store).getVariable(n('SetupMode'), G).data).toEqual(bytes(1));
  });

  it('nothing is pending for volatile variables, failures, or writes that change nothing', () => {
    const store = newStore();
    const fw = client(store);
    let persisted = 0;
    const counting = FirmwareClient.forStore(store, () => {
      persisted++;
      return true;
    });
    expect(counting.setVariable(n('Vol'), V, BS_RT, bytes(1))).toBe(S.SUCCESS);
    expect(counting.setVariable(n('Vol'), V, BS_RT, new Uint8Array(0))).toBe(S.SUCCESS);
    expect(counting.setVariable(n('Bad'), G, NV_BS_RT, bytes(1))).toBe(S.INVALID_PARAMETER);
    expect(persisted).toBe(0);
    expect(fw.setVariable(n('X'), V, NV_BS_RT, bytes(1))).toBe(S.SUCCESS);
    expect(counting.setVariable(n('X'), V, NV_BS_RT, bytes(1))).toBe(S.SUCCESS);
    expect(counting.setVariable(n('X'), V, NV_BS_RT | 0x40, new Uint8Array(0))).toBe(S.SUCCESS);
    expect(persisted).toBe(0);
    expect(counting.setVariable(n('X'), V, NV_BS_RT, bytes(2))).toBe(S.SUCCESS);
    expect(counting.setVariable(n('X'), V, 0, new Uint8Array(0))).toBe(S.SUCCESS);
    expect(persisted).toBe(2);
  });

  it('an authenticated rewrite with the same data but a newer timestamp is persisted', () => {
    const store = newStore({ authenticator: new RecordingAuthenticator() });
    let persisted = 0;
    const fw = FirmwareClient.forStore(store, () => {
      persisted++;
      return true;
    });
    expect(fw.setVariable(n('A'), V, NV_BS_RT_AT, auth2(bytes(1), { year: 2020 }))).toBe(S.SUCCESS);
    expect(fw.setVariable(n('A'), V, NV_BS_RT_AT, auth2(bytes(1), { year: 2021 }))).toBe(S.SUCCESS);
    expect(persisted).toBe(2);
  });

  it('in-process setVariable returns the same pending contract', () => {
    const store = newStore();
    const o = store.setVariable(n('X'), V, NV_BS_RT, bytes(1));
    expect(o.status).toBe(S.SUCCESS);
    o.pending!.rollback();
    expect(store.getVariable(n('X'), V)).toBeUndefined();
    expect(store.setVariable(n('X'), V, NV_BS_RT, bytes(1)).pending).toBeDefined();
  });
});

describe('state and restore', () => {
  function populated(): VariableStore {
    const store = newStore({ authenticator: new RecordingAuthenticator() });
    const fw = client(store);
    expect(fw.setVariable(n('Nv'), V, NV_BS_RT, bytes(1))).toBe(S.SUCCESS);
    expect(fw.setVariable(n('Vol'), V, BS_RT, bytes(2))).toBe(S.SUCCESS);
    expect(fw.setVariable(n('PK'), G, NV_BS_RT_AT, auth2(bytes(3), { year: 2022 }))).toBe(S.SUCCESS);
    expect(fw.setVariable(n('MemoryOverwriteRequestControl'), Guids.MEMORY_OVERWRITE_CONTROL, NV_BS_RT, bytes(1))).toBe(
      S.SUCCESS,
    );
    expect(
      fw.setVariable(
        n('MemoryOverwriteRequestControlLock'),
        Guids.MEMORY_OVERWRITE_CONTROL_LOCK,
        NV_BS_RT,
        bytes(1, 2, 3, 4, 5, 6, 7, 8),
      ),
    ).toBe(S.SUCCESS);
    store.ppiIndex = 7;
    store.ppiWrite(3, 1, 9);
    return store;
  }

  it('resume keeps everything as saved: variables, order, MOR, PPI, timestamps', () => {
    const store = populated();
    const saved = store.state();
    const resumed = VariableStore.restore(saved, { platform, resume: true });
    expect(resumed.state()).toEqual(saved);
  });

  it('a new boot drops volatile variables, recomputes the builtins, resets MOR and the PPI lock', () => {
    const saved = populated().state();
    const booted = VariableStore.restore(saved, { platform: { secureBoot: false, authEnforce: true }, resume: false });
    const fw = client(booted);
    expect(fw.getVariable(n('Vol'), V).status).toBe(S.NOT_FOUND);
    expect(fw.getVariable(n('Nv'), V).data).toEqual(bytes(1));
    expect(fw.getVariable(n('SetupMode'), G).data).toEqual(bytes(0));
    expect(fw.getVariable(n('SecureBoot'), G).data).toEqual(bytes(0));
    expect(fw.getVariable(n('DeployedMode'), G).data).toEqual(bytes(1));
    expect(fw.getVariable(n('MemoryOverwriteRequestControl'), Guids.MEMORY_OVERWRITE_CONTROL).data).toEqual(bytes(0));
    expect(fw.getVariable(n('MemoryOverwriteRequestControlLock'), Guids.MEMORY_OVERWRITE_CONTROL_LOCK).data).toEqual(
      bytes(0),
    );
    expect(fw.getVariable(n('Tcg2PhysicalPresenceFlagsLock'), Guids.TCG2_PHYSICAL_PRESENCE).data).toEqual(bytes(0));
    expect(booted.getVariable(n('PK'), G)!.timestamp).toEqual(
      saved.variables.find((v) => fromUtf16le(v.name) === 'PK')!.timestamp,
    );
    const names = fw.listVariables().map((v) => fromUtf16le(v.name));
    expect(names.slice(0, 10)).toEqual([
      'SignatureSupport',
      'SetupMode',
      'AuditMode',
      'DeployedMode',
      'SecureBoot',
      'VendorKeys',
      'MemoryOverwriteRequestControl',
      'MemoryOverwriteRequestControlLock',
      'PPIBuffer',
      'Tcg2PhysicalPresenceFlagsLock',
    ]);
    expect(names.slice(10)).toEqual(['Nv', 'PK']);
  });

  it('a new boot keeps a saved PPIBuffer and creates a missing one', () => {
    const ppi = makeVariable({
      name: n('PPIBuffer'),
      guid: Guids.TCG2_PHYSICAL_PRESENCE,
      attributes: NV_BS_RT,
      data: new Uint8Array(48).fill(3),
    });
    const kept = VariableStore.restore(
      { variables: [ppi], morKey: new Uint8Array(8), ppi: { index: 0, func: new Uint8Array(256) } },
      { platform, resume: false },
    );
    expect(kept.ppiRead(0x100, 1)).toBe(3);
    const created = VariableStore.restore(
      { variables: [], morKey: new Uint8Array(8), ppi: { index: 0, func: new Uint8Array(256) } },
      { platform, resume: false },
    );
    expect(created.getVariable(n('PPIBuffer'), Guids.TCG2_PHYSICAL_PRESENCE)!.data).toEqual(new Uint8Array(48));
  });

  it('loads names stored with a terminator (old blobs) and refuses what could never have been stored', () => {
    const base: StoreState = { variables: [], morKey: new Uint8Array(8), ppi: { index: 0, func: new Uint8Array(256) } };
    const v = (name: Uint8Array, data: Uint8Array, attributes = NV_BS_RT, guid = V) =>
      makeVariable({ name, guid, attributes, data });
    const withNul = VariableStore.restore(
      { ...base, variables: [v(bytes(0x41, 0, 0, 0), bytes(1))] },
      { platform, resume: true },
    );
    expect(withNul.getVariable(n('A'), V)?.data).toEqual(bytes(1));
    const bad: [string, StoreState][] = [
      ['empty data', { ...base, variables: [v(n('A'), new Uint8Array(0))] }],
      ['oversized data', { ...base, variables: [v(n('A'), new Uint8Array(57345))] }],
      ['odd name', { ...base, variables: [v(bytes(0x41), bytes(1))] }],
      ['long name', { ...base, variables: [v(new Uint8Array(4098).fill(0x41), bytes(1))] }],
      ['no access', { ...base, variables: [v(n('A'), bytes(1), 0x1)] }],
      ['hardware error record', { ...base, variables: [v(n('A'), bytes(1), 0xf)] }],
      ['duplicate', { ...base, variables: [v(n('A'), bytes(1)), v(n('A'), bytes(2))] }],
    ];
    for (const [what, state] of bad) {
      expect(() => VariableStore.restore(state, { platform, resume: true }), what).toThrow(RangeError);
    }
  });

  it('returns copies: changing what it returned does not change the store', () => {
    const store = populated();
    const got = store.getVariable(n('Nv'), V)!;
    got.data[0] = 99;
    for (const v of store.state().variables) v.data.fill(0);
    expect(store.getVariable(n('Nv'), V)!.data).toEqual(bytes(1));
  });

  it('an unexpected exception inside a write answers DEVICE_ERROR and leaves the store as it was', () => {
    // The log port runs in the middle of a PK enrolment, after PK is stored and before the modes are.
    const store = newStore({
      authenticator: new RecordingAuthenticator(),
      log: () => {
        throw new Error('log sink closed');
      },
    });
    const before = store.state();
    const out = store.dispatch(setRequestFor('PK', G, NV_BS_RT_AT, auth2(bytes(1))));
    expect(out.status).toBe(S.DEVICE_ERROR);
    expect(out.pending).toBeUndefined();
    expect(store.state()).toEqual(before);
    expect(store.setVariable(n('PK'), G, NV_BS_RT_AT, auth2(bytes(1))).status).toBe(S.DEVICE_ERROR);
    expect(store.state()).toEqual(before);
  });

  it('an authenticator that throws is a refusal; nothing changes', () => {
    const store = newStore({
      authenticator: new RecordingAuthenticator(() => {
        throw new TypeError('bug');
      }),
    });
    const before = store.state();
    expect(client(store).setVariable(n('X'), V, NV_BS_RT_AT, auth2(bytes(1)))).toBe(EfiStatus.SECURITY_VIOLATION);
    expect(store.state()).toEqual(before);
  });
});

describe('the request buffer', () => {
  it('keeps nothing of it: a transport may reuse its buffer for the next request', () => {
    const store = newStore();
    const buffer = setRequest('Reused', NV_BS_RT, Uint8Array.of(1, 2, 3));
    const out = store.dispatch(buffer);
    expect(out.status).toBe(S.SUCCESS);
    out.pending!.commit();
    const appended = setRequest('Reused', NV_BS_RT | 0x40, Uint8Array.of(4));
    const out2 = store.dispatch(appended);
    out2.pending!.commit();
    // Scribble over both buffers, as the next frames would.
    buffer.fill(0xee);
    appended.fill(0xdd);
    expect(store.getVariable(n('Reused'), V)?.data).toEqual(Uint8Array.of(1, 2, 3, 4));
    expect(store.getVariable(n('Reused'), V)?.name).toEqual(n('Reused'));
    expect(store.state().variables.find((v) => fromUtf16le(v.name) === 'Reused')?.guid).toEqual(V);
  });
});
