import { Limits, encodeRequest, fromUtf16le } from '@vmsb/protocol';
import { describe, expect, it } from 'vitest';
import { Attr, Attrs } from './attributes.js';
import { VariableStore } from './store.js';
import { G, S, V, bytes, client, n, newStore } from './test-helpers.js';
import type { StoreState } from './types.js';

const { NV_BS_RT, BS, NV_BS, BS_RT } = Attrs;
const AW = Attr.AUTHENTICATED_WRITE_ACCESS;
const AT = Attr.TIME_BASED_AUTHENTICATED_WRITE_ACCESS;
const HR = Attr.HARDWARE_ERROR_RECORD;

describe('QueryVariableInfo (docs/variable-services.md §3, in edk2 order; sizes as varstored)', () => {
  const rows: [string, number, bigint, boolean?][] = [
    ['attributes 0 → INVALID_PARAMETER', 0, S.INVALID_PARAMETER],
    ['AW → UNSUPPORTED, before anything else', AW | Attr.NON_VOLATILE, S.UNSUPPORTED],
    ['AW wins over RT without BS', AW | Attr.RUNTIME_ACCESS, S.UNSUPPORTED],
    ['no bit of the mask → UNSUPPORTED', 0x80, S.UNSUPPORTED],
    ['NV alone → INVALID_PARAMETER', Attr.NON_VOLATILE, S.INVALID_PARAMETER],
    ['RT without BS → INVALID_PARAMETER', Attr.RUNTIME_ACCESS, S.INVALID_PARAMETER],
    ['at runtime without RT → INVALID_PARAMETER', NV_BS, S.INVALID_PARAMETER, true],
    ['at runtime with RT → SUCCESS', NV_BS_RT, S.SUCCESS, true],
    ['HR without NV → INVALID_PARAMETER', BS_RT | HR, S.INVALID_PARAMETER],
    ['HR with NV → UNSUPPORTED (no hardware error storage)', NV_BS_RT | HR, S.UNSUPPORTED],
    ['HR with NV and AT → UNSUPPORTED', NV_BS_RT | HR | AT, S.UNSUPPORTED],
    ['AT → SUCCESS (authenticated variables are supported)', NV_BS_RT | AT, S.SUCCESS],
    ['BS → SUCCESS', BS, S.SUCCESS],
    ['APPEND alone is a mask bit → SUCCESS', Attr.APPEND_WRITE | BS, S.SUCCESS],
  ];
  it.each(rows)('%s', (_what, attributes, status, runtime) => {
    const store = newStore();
    const fw = client(store);
    if (runtime === true) {
      fw.atRuntime = true;
      fw.getVariable(n('Anything'), V); // the guest's first runtime request
    }
    expect(fw.queryVariableInfo(attributes).status).toBe(status);
  });

  it('reports (131072, remaining, 57344) with 128 bytes counted per variable', () => {
    const store = newStore();
    const fw = client(store);
    const before = fw.queryVariableInfo(NV_BS_RT);
    expect(before).toEqual({
      status: S.SUCCESS,
      maximumStorageSize: 131072,
      remainingStorageSize: 131072 - store.usedStorage,
      maximumVariableSize: 57344,
    });
    expect(fw.setVariable(n('Abc'), V, NV_BS_RT, new Uint8Array(1000))).toBe(S.SUCCESS);
    expect(fw.queryVariableInfo(BS).remainingStorageSize).toBe(before.remainingStorageSize! - (6 + 1000 + 128));
  });
});

describe('GetVariable (docs/variable-services.md §4, varstored wire rules)', () => {
  it('empty name → NOT_FOUND; a name over 4096 bytes → DEVICE_ERROR', () => {
    const fw = client(newStore());
    expect(fw.getVariable(new Uint8Array(0), V).status).toBe(S.NOT_FOUND);
    expect(fw.getVariable(new Uint8Array(4098), V).status).toBe(S.DEVICE_ERROR);
    // The host-side getter takes any length: a huge name is simply absent, and a long one is found.
    const store = newStore();
    expect(store.getVariable(new Uint8Array(1_000_000), V)).toBeUndefined();
    const long = new Uint8Array(Limits.NAME_MAX).fill(0x41);
    expect(client(store).setVariable(long, V, NV_BS, Uint8Array.of(7))).toBe(S.SUCCESS);
    expect([...store.getVariable(long, V)!.data]).toEqual([7]);
    expect(store.getVariable(long.subarray(0, Limits.NAME_MAX - 2), V)).toBeUndefined();
    expect(fw.getVariable(new Uint8Array(4096).fill(0x41), V).status).toBe(S.NOT_FOUND);
  });

  it('BUFFER_TOO_SMALL carries the required size; an exact buffer succeeds', () => {
    const fw = client(newStore());
    expect(fw.setVariable(n('X'), V, NV_BS_RT, bytes(1, 2, 3))).toBe(S.SUCCESS);
    expect(fw.getVariable(n('X'), V, 0)).toEqual({ status: S.BUFFER_TOO_SMALL, requiredSize: 3 });
    expect(fw.getVariable(n('X'), V, 2)).toEqual({ status: S.BUFFER_TOO_SMALL, requiredSize: 3 });
    expect(fw.getVariable(n('X'), V, 3)).toEqual({ status: S.SUCCESS, attributes: NV_BS_RT, data: bytes(1, 2, 3) });
  });

  it('returned attributes never contain APPEND_WRITE', () => {
    const fw = client(newStore());
    expect(fw.setVariable(n('X'), V, NV_BS_RT | Attr.APPEND_WRITE, bytes(1))).toBe(S.SUCCESS);
    expect(fw.getVariable(n('X'), V).attributes).toBe(NV_BS_RT);
  });

  it('a variable of the maximum size fits in one response', () => {
    const store = newStore();
    const fw = client(store);
    expect(fw.setVariable(n('Big'), V, NV_BS_RT, new Uint8Array(Limits.DATA_MAX).fill(7))).toBe(S.SUCCESS);
    const buffer = new Uint8Array(Limits.BUFFER_SIZE);
    encodeRequest(
      { command: 'GetVariable', name: n('Big'), guid: V, dataSize: Limits.DATA_MAX, atRuntime: false },
      buffer,
    );
    const out = store.dispatch(buffer);
    expect(out.response.length).toBe(8 + 4 + 8 + Limits.DATA_MAX);
    expect(out.response.length).toBeLessThanOrEqual(Limits.BUFFER_SIZE);
  });

  it('the builtins read as varstored defines them in setup mode', () => {
    const fw = client(newStore());
    const value = (name: string) => fw.getVariable(n(name), G);
    expect(value('SetupMode')).toEqual({ status: S.SUCCESS, attributes: BS_RT, data: bytes(1) });
    expect(value('SecureBoot').data).toEqual(bytes(0));
    expect(value('AuditMode').data).toEqual(bytes(0));
    expect(value('DeployedMode').data).toEqual(bytes(0));
    expect(value('VendorKeys').data).toEqual(bytes(1));
    expect(value('SignatureSupport').data?.length).toBe(64);
  });
});

describe('GetNextVariableName (docs/variable-services.md §5)', () => {
  it('enumerates builtins first, then variables in creation order; updates keep their place', () => {
    const fw = client(newStore());
    for (const name of ['B', 'A', 'C']) expect(fw.setVariable(n(name), V, BS, bytes(1))).toBe(S.SUCCESS);
    expect(fw.setVariable(n('B'), V, BS, bytes(2))).toBe(S.SUCCESS);
    const names = fw.listVariables().map((v) => fromUtf16le(v.name));
    expect(names.slice(0, 6)).toEqual([
      'SignatureSupport',
      'SetupMode',
      'AuditMode',
      'DeployedMode',
      'SecureBoot',
      'VendorKeys',
    ]);
    expect(names.slice(-3)).toEqual(['B', 'A', 'C']);
    // Deleted and created again: last.
    expect(fw.setVariable(n('B'), V, BS, new Uint8Array(0))).toBe(S.SUCCESS);
    expect(fw.setVariable(n('B'), V, BS, bytes(3))).toBe(S.SUCCESS);
    expect(
      fw
        .listVariables()
        .map((v) => fromUtf16le(v.name))
        .slice(-3),
    ).toEqual(['A', 'C', 'B']);
  });

  it('each visible variable exactly once, then NOT_FOUND', () => {
    const store = newStore();
    const fw = client(store);
    for (let i = 0; i < 50; i++) expect(fw.setVariable(n(`V${i}`), V, NV_BS_RT, bytes(i))).toBe(S.SUCCESS);
    const listed = fw.listVariables();
    expect(listed.length).toBe(store.variables().length);
    expect(new Set(listed.map((v) => fromUtf16le(v.name))).size).toBe(listed.length);
  });

  it('an unknown previous name → INVALID_PARAMETER; the GUID must match too', () => {
    const fw = client(newStore());
    expect(fw.setVariable(n('X'), V, BS, bytes(1))).toBe(S.SUCCESS);
    expect(fw.getNextVariableName(n('Nope'), V).status).toBe(S.INVALID_PARAMETER);
    expect(fw.getNextVariableName(n('X'), G).status).toBe(S.INVALID_PARAMETER);
    expect(fw.getNextVariableName(n('X'), V).status).toBe(S.NOT_FOUND);
  });

  it('BUFFER_TOO_SMALL gives StrSize of the next name; a buffer that cannot hold the previous name → INVALID_PARAMETER', () => {
    const fw = client(newStore());
    const first = fw.getNextVariableName(new Uint8Array(0), V, 2);
    expect(first).toEqual({ status: S.BUFFER_TOO_SMALL, requiredSize: n('SignatureSupport').length + 2 });
    expect(fw.getNextVariableName(new Uint8Array(0), V, 34).status).toBe(S.SUCCESS);
    expect(fw.getNextVariableName(new Uint8Array(0), V, 0).status).toBe(S.INVALID_PARAMETER);
    // AuditMode (18 bytes + NUL) is followed by DeployedMode (24 bytes + NUL).
    expect(fw.getNextVariableName(n('AuditMode'), G, 19).status).toBe(S.INVALID_PARAMETER);
    expect(fw.getNextVariableName(n('AuditMode'), G, 20)).toEqual({ status: S.BUFFER_TOO_SMALL, requiredSize: 26 });
    expect(fw.getNextVariableName(n('AuditMode'), G, 26)).toEqual({
      status: S.SUCCESS,
      name: n('DeployedMode'),
      guid: G,
    });
  });

  it('a previous name over 4096 bytes → DEVICE_ERROR', () => {
    const fw = client(newStore());
    expect(fw.getNextVariableName(new Uint8Array(4098), V, 1 << 20).status).toBe(S.DEVICE_ERROR);
  });
});

describe('runtime (docs/variable-services.md §6): after the first runtime request', () => {
  function booted() {
    const store = newStore();
    const fw = client(store);
    expect(fw.setVariable(n('BsOnly'), V, NV_BS, bytes(1))).toBe(S.SUCCESS);
    expect(fw.setVariable(n('VolatileRt'), V, BS_RT, bytes(2))).toBe(S.SUCCESS);
    expect(fw.setVariable(n('NvRt'), V, NV_BS_RT, bytes(3))).toBe(S.SUCCESS);
    return { store, fw };
  }

  it('BS-only variables are invisible to Get and GetNext', () => {
    const { store, fw } = booted();
    fw.atRuntime = true;
    expect(fw.getVariable(n('BsOnly'), V).status).toBe(S.NOT_FOUND);
    expect(fw.getNextVariableName(n('BsOnly'), V).status).toBe(S.INVALID_PARAMETER);
    const names = fw.listVariables().map((v) => fromUtf16le(v.name));
    expect(names).not.toContain('BsOnly');
    expect(names).toContain('VolatileRt');
    expect(store.atRuntime).toBe(true);
  });

  it('is sticky: a later request claiming boot time is still treated as runtime', () => {
    const { fw } = booted();
    fw.atRuntime = true;
    expect(fw.getVariable(n('NvRt'), V).status).toBe(S.SUCCESS);
    fw.atRuntime = false;
    expect(fw.getVariable(n('BsOnly'), V).status).toBe(S.NOT_FOUND);
    expect(fw.setVariable(n('VolatileRt'), V, BS_RT, bytes(9))).toBe(S.WRITE_PROTECTED);
    expect(fw.setVariable(n('New'), V, BS_RT, bytes(9))).toBe(S.INVALID_PARAMETER);
    expect(fw.queryVariableInfo(NV_BS).status).toBe(S.INVALID_PARAMETER);
  });

  it('BS-only writes are WRITE_PROTECTED; NV|BS|RT creates, updates and deletes work', () => {
    const { fw } = booted();
    fw.atRuntime = true;
    expect(fw.setVariable(n('BsOnly'), V, NV_BS, bytes(5))).toBe(S.WRITE_PROTECTED);
    expect(fw.setVariable(n('BsOnly'), V, 0, new Uint8Array(0))).toBe(S.WRITE_PROTECTED);
    expect(fw.setVariable(n('NvRt'), V, NV_BS_RT, bytes(4))).toBe(S.SUCCESS);
    expect(fw.setVariable(n('Fresh'), V, NV_BS_RT, bytes(4))).toBe(S.SUCCESS);
    expect(fw.setVariable(n('Fresh'), V, NV_BS_RT, new Uint8Array(0))).toBe(S.SUCCESS);
  });

  it('the runtime flag can be restored (--resume), and is reset by a new boot', () => {
    const { store } = booted();
    const fw = client(store);
    fw.atRuntime = true;
    fw.getVariable(n('NvRt'), V);
    const saved = store.state();
    expect(saved.atRuntime).toBe(true);
    const resumed = client(newStoreFrom(saved, true));
    expect(resumed.getVariable(n('BsOnly'), V).status).toBe(S.NOT_FOUND);
    const rebooted = client(newStoreFrom(saved, false));
    expect(rebooted.getVariable(n('BsOnly'), V).status).toBe(S.SUCCESS);
  });
});

function newStoreFrom(state: StoreState, resume: boolean): VariableStore {
  return VariableStore.restore(state, { platform: { secureBoot: true, authEnforce: true }, resume });
}

describe('NotifySBFailure', () => {
  const notify = (store: VariableStore) => {
    const request = new Uint8Array(Limits.BUFFER_SIZE);
    encodeRequest({ command: 'NotifySBFailure' }, request);
    return store.dispatch(request);
  };

  it('asks the owner to raise the alert once, then answers ACCESS_DENIED (varstored)', () => {
    const store = newStore();
    const first = notify(store);
    expect([first.status, first.command, first.raiseSecureBootFailureAlert]).toEqual([
      S.SUCCESS,
      'NotifySBFailure',
      true,
    ]);
    expect(first.request).toEqual({ command: 'NotifySBFailure' });
    const second = notify(store);
    expect([second.status, second.raiseSecureBootFailureAlert]).toEqual([S.ACCESS_DENIED, undefined]);
    expect(second.reason).toBe('the Secure Boot failure alert was already raised');
    expect(client(store).notifySBFailure()).toBe(S.ACCESS_DENIED);
  });

  it('is one alert per store: a new store asks again', () => {
    expect(client(newStore()).notifySBFailure()).toBe(S.SUCCESS);
    expect(notify(newStore()).raiseSecureBootFailureAlert).toBe(true);
  });
});

describe('undecodable requests', () => {
  it('bad version or unknown command → UNSUPPORTED; a field past the buffer → INVALID_PARAMETER', () => {
    const store = newStore();
    const request = (words: number[]) => {
      const b = new Uint8Array(Limits.BUFFER_SIZE);
      const v = new DataView(b.buffer);
      words.forEach((w, i) => {
        v.setUint32(i * 4, w, true);
      });
      return store.dispatch(b);
    };
    expect(request([2, 0]).status).toBe(S.UNSUPPORTED);
    expect(request([1, 9]).status).toBe(S.UNSUPPORTED);
    expect(request([1, 0, 0x10000, 0]).status).toBe(S.INVALID_PARAMETER);
    expect(request([1, 0, 0x10000, 0]).response).toEqual(bytes(2, 0, 0, 0, 0, 0, 0, 0x80));
    expect(store.dispatch(new Uint8Array(3)).status).toBe(S.INVALID_PARAMETER);
  });

  it('reads the caller buffer once: changing it during or after dispatch changes nothing stored', () => {
    const store = newStore();
    const b = new Uint8Array(Limits.BUFFER_SIZE);
    encodeRequest(
      { command: 'SetVariable', name: n('X'), guid: V, data: bytes(1, 2, 3), attributes: NV_BS_RT, atRuntime: false },
      b,
    );
    const out = store.dispatch(b);
    out.pending?.commit();
    b.fill(0xee);
    expect(store.getVariable(n('X'), V)?.data).toEqual(bytes(1, 2, 3));
  });
});

describe('what a log line needs comes with the answer (the request is decoded once)', () => {
  const dispatch = (store: VariableStore, request: Parameters<typeof encodeRequest>[0]) => {
    const buffer = new Uint8Array(Limits.BUFFER_SIZE);
    encodeRequest(request, buffer);
    return store.dispatch(buffer);
  };

  it('returns the decoded request with each outcome: command, name, vendor GUID, attributes, sizes', () => {
    const store = newStore();
    const set = dispatch(store, {
      command: 'SetVariable',
      name: n('Abc'),
      guid: V,
      attributes: NV_BS_RT,
      data: bytes(1, 2, 3),
      atRuntime: false,
    });
    expect(set.request).toEqual({
      command: 'SetVariable',
      name: n('Abc'),
      guid: V,
      attributes: NV_BS_RT,
      data: bytes(1, 2, 3),
      atRuntime: false,
    });
    set.pending!.commit();
    const get = dispatch(store, { command: 'GetVariable', name: n('Abc'), guid: V, dataSize: 1, atRuntime: false });
    expect([get.status, get.request]).toEqual([
      S.BUFFER_TOO_SMALL,
      { command: 'GetVariable', name: n('Abc'), guid: V, dataSize: 1, atRuntime: false },
    ]);
    const next = dispatch(store, {
      command: 'GetNextVariableName',
      name: new Uint8Array(0),
      guid: new Uint8Array(16),
      nameSize: 2,
      atRuntime: false,
    });
    expect(next.request).toMatchObject({ command: 'GetNextVariableName', nameSize: 2 });
    const query = dispatch(store, { command: 'QueryVariableInfo', attributes: BS });
    expect(query.request).toEqual({ command: 'QueryVariableInfo', attributes: BS });
    // A refusal carries it too, with its reason.
    const refused = dispatch(store, {
      command: 'SetVariable',
      name: n('Abc'),
      guid: V,
      attributes: BS_RT,
      data: bytes(1),
      atRuntime: false,
    });
    expect([refused.status, refused.request?.command, refused.reason]).toEqual([
      S.INVALID_PARAMETER,
      'SetVariable',
      expect.stringContaining('has attributes'),
    ]);
  });

  it('an undecodable request has no decoded request, only the status and why', () => {
    const out = newStore().dispatch(Uint8Array.of(1, 0, 0, 0, 99, 0, 0, 0));
    expect([out.status, out.request, out.command]).toEqual([S.UNSUPPORTED, undefined, undefined]);
    expect(out.reason).toBeTruthy();
  });
});
