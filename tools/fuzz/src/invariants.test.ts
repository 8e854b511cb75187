import { Attrs, Guids, VariableStore, makeVariable, utf16le } from '@vmsb/efi';
import { EfiStatus, encodeRequest, encodeResponse, encodedRequestSize, type Request } from '@vmsb/protocol';
import { describe, expect, it } from 'vitest';
import { fuzzCorpus } from './corpus.js';
import { FUZZ_PLATFORM, zeroFilled } from './dispatch-target.js';
import {
  checkPersistable,
  checkPlainWrite,
  checkReply,
  checkReplyAgainstStore,
  checkStore,
  sameState,
} from './invariants.js';

const NAME = utf16le('Timeout');
const G = Guids.GLOBAL_VARIABLE;

function frame(request: Request): Uint8Array {
  const out = new Uint8Array(encodedRequestSize(request));
  encodeRequest(request, out);
  return zeroFilled(out);
}

function store(): VariableStore {
  return VariableStore.restore(fuzzCorpus().state, { platform: FUZZ_PLATFORM, resume: false });
}

const get = frame({ command: 'GetVariable', name: NAME, guid: G, dataSize: 16, atRuntime: false });

function reply(bytes: number[], status = EfiStatus.SUCCESS): Uint8Array {
  const out = new Uint8Array(64);
  const n = encodeResponse(
    { command: 'GetVariable', status, attributes: Attrs.NV_BS_RT, data: Uint8Array.from(bytes) },
    out,
  );
  return out.subarray(0, n);
}

describe('the invariants catch what they are for', () => {
  it('accept what the store answers', () => {
    const s = store();
    const out = s.dispatch(get);
    const { violations, decoded, response } = checkReply(get, out.response);
    expect(violations).toEqual([]);
    expect(checkReplyAgainstStore(decoded, response, s)).toEqual([]);
    expect(checkStore(s, FUZZ_PLATFORM)).toEqual([]);
    expect(checkPersistable(s.state(), FUZZ_PLATFORM)).toEqual([]);
  });

  it('flag a reply with a byte left over, one too short, one without a status, one too long', () => {
    const good = reply([3, 0]);
    expect(checkReply(get, Uint8Array.from([...good, 0])).violations.map((v) => v.invariant)).toContain(
      'reply-framing',
    );
    expect(checkReply(get, good.subarray(0, good.length - 1)).violations.map((v) => v.invariant)).toContain(
      'reply-framing',
    );
    expect(checkReply(get, new Uint8Array(4)).violations.map((v) => v.invariant)).toContain('reply-size');
    expect(checkReply(get, new Uint8Array(65537)).violations.map((v) => v.invariant)).toContain('reply-size');
  });

  it('flag an unknown status and the wrong status for an undecodable request', () => {
    const unknown = new Uint8Array(8);
    new DataView(unknown.buffer).setBigUint64(0, 0x8000_0000_0000_0063n, true);
    expect(checkReply(get, unknown).violations.map((v) => v.invariant)).toContain('reply-status');
    const undecodable = new Uint8Array(12);
    new DataView(undecodable.buffer).setUint32(0, 7, true);
    const wrong = new Uint8Array(8);
    expect(checkReply(undecodable, wrong).violations.map((v) => v.invariant)).toContain('reply-decode-status');
  });

  it('flag data larger than the caller buffer, and replies that disagree with the store', () => {
    const s = store();
    const small = frame({ command: 'GetVariable', name: NAME, guid: G, dataSize: 1, atRuntime: false });
    expect(checkReply(small, reply([3, 0])).violations.map((v) => v.invariant)).toContain('get-capacity');
    const lie = checkReply(get, reply([9, 9]));
    expect(checkReplyAgainstStore(lie.decoded, lie.response, s).map((v) => v.invariant)).toEqual(['get-consistent']);
    const missing = new Uint8Array(8);
    new DataView(missing.buffer).setBigUint64(0, EfiStatus.NOT_FOUND, true);
    const notFound = checkReply(get, missing);
    expect(checkReplyAgainstStore(notFound.decoded, notFound.response, s).map((v) => v.invariant)).toEqual([
      'get-consistent',
    ]);
  });

  it('flag a SUCCESS that stored nothing', () => {
    const s = store();
    const set = frame({
      command: 'SetVariable',
      name: utf16le('Other'),
      guid: Guids.SHIM_LOCK,
      data: Uint8Array.of(1),
      attributes: Attrs.NV_BS_RT,
      atRuntime: false,
    });
    const decoded = checkReply(set, new Uint8Array(8)).decoded;
    expect(checkPlainWrite(decoded, EfiStatus.SUCCESS, s).map((v) => v.invariant)).toEqual(['set-effect']);
  });

  it('flag a store that breaks its own rules', () => {
    const real = store();
    const bad = makeVariable({
      name: utf16le('Bad'),
      guid: Guids.SHIM_LOCK,
      attributes: 0x41,
      data: new Uint8Array(1),
    });
    const fake = {
      variables: () => [...real.variables(), bad, bad],
      usedStorage: 1,
      atRuntime: false,
    } as unknown as VariableStore;
    const found = checkStore(fake, FUZZ_PLATFORM).map((v) => v.invariant);
    expect(found).toContain('store-attributes');
    expect(found).toContain('store-duplicate');
    expect(found).toContain('store-total');
    const noPk = {
      variables: () => real.variables().filter((v) => Buffer.from(v.name).toString('utf16le') !== 'PK'),
      usedStorage: 0,
      atRuntime: false,
    } as unknown as VariableStore;
    expect(checkStore(noPk, FUZZ_PLATFORM).map((v) => v.invariant)).toContain('store-modes');
  });

  it('compare states exactly', () => {
    const a = store().state();
    const b = store();
    expect(sameState(a, b.state())).toBeUndefined();
    const outcome = b.setVariable(utf16le('X'), Guids.SHIM_LOCK, Attrs.NV_BS_RT, Uint8Array.of(1));
    outcome.pending?.commit();
    expect(sameState(a, b.state())).toMatch(/variables/);
    expect(sameState(a, { ...a, morKey: new Uint8Array(8).fill(1) })).toMatch(/MOR/);
  });
});
