import { guidFromText, utf16le } from '@vmsb/protocol';
import type { Variable } from '@vmsb/efi';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeJsonVarStore, encodeJsonVarStore, jsonVarStoreLosses } from './json.js';
import { plain, stateOf, variablesArb } from './test-support.js';

const GLOBAL = guidFromText('8be4df61-93ca-11d2-aa0d-00e098032b8c')!;

function v(name: string, fields: Partial<Variable> = {}): Variable {
  return {
    name: utf16le(name),
    guid: GLOBAL,
    attributes: 7,
    data: Uint8Array.of(1, 2),
    timestamp: new Uint8Array(16),
    signerDigest: new Uint8Array(32),
    ...fields,
  };
}

function decodeOk(input: string | Uint8Array) {
  const d = decodeJsonVarStore(input);
  if (!d.ok) throw new Error(d.error);
  return d;
}

describe('QEMU/virt-firmware JSON stores', () => {
  it('writes the qapi UefiVarStore shape: version 2, members in order, time only when set or time-based', () => {
    const text = encodeJsonVarStore(
      stateOf([
        v('BootOrder', { data: Uint8Array.of(0, 0) }),
        v('PK', {
          attributes: 0x27,
          data: Uint8Array.of(0xab),
          timestamp: Uint8Array.of(0xe8, 7, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        }),
      ]),
    );
    expect(JSON.parse(text)).toEqual({
      version: 2,
      variables: [
        { guid: '8be4df61-93ca-11d2-aa0d-00e098032b8c', name: 'BootOrder', attr: 7, data: '0000' },
        {
          guid: '8be4df61-93ca-11d2-aa0d-00e098032b8c',
          name: 'PK',
          attr: 39,
          data: 'ab',
          time: 'e8070101000000000000000000000000',
        },
      ],
    });
    expect(Object.keys(JSON.parse(text).variables[1])).toEqual(['guid', 'name', 'attr', 'data', 'time']);
  });

  it('reads what QEMU writes (upper-case hex, no time for plain variables)', () => {
    const d = decodeOk(
      JSON.stringify({
        version: 2,
        variables: [
          { guid: '8BE4DF61-93CA-11D2-AA0D-00E098032B8C', name: 'Timeout', attr: 7, data: '0500' },
          {
            guid: 'd719b2cb-3d3a-4596-a3bc-dad00e67656f',
            name: 'db',
            attr: 39,
            data: 'A1',
            time: '00'.repeat(16),
            digest: '11'.repeat(32),
          },
        ],
      }),
    );
    expect(plain(d.state.variables)).toEqual(
      plain([
        v('Timeout', { data: Uint8Array.of(5, 0) }),
        v('db', {
          guid: guidFromText('d719b2cb-3d3a-4596-a3bc-dad00e67656f')!,
          attributes: 0x27,
          data: Uint8Array.of(0xa1),
          signerDigest: new Uint8Array(32).fill(0x11),
        }),
      ]),
    );
  });

  it('keeps non-ASCII names, timestamps and signer digests through a round trip (property)', () => {
    fc.assert(
      fc.property(variablesArb(), (variables) => {
        const d = decodeOk(encodeJsonVarStore(stateOf(variables)));
        expect(d.warnings).toEqual([]);
        expect(plain(d.state.variables)).toEqual(plain(variables));
      }),
      { numRuns: 200 },
    );
    const d = decodeOk(encodeJsonVarStore(stateOf([v('Größe€😀')])));
    expect(Buffer.from(d.state.variables[0]!.name)).toEqual(Buffer.from(utf16le('Größe€😀')));
  });

  it('says what it cannot hold: only the MOR key and PPI data', () => {
    expect(jsonVarStoreLosses(stateOf([v('A', { signerDigest: new Uint8Array(32).fill(1) })]))).toEqual([]);
    expect(
      jsonVarStoreLosses({
        variables: [],
        morKey: new Uint8Array(8).fill(1),
        ppi: { index: 0, func: new Uint8Array(256) },
      }),
    ).toEqual(['the MemoryOverwriteRequestControlLock key']);
  });

  it.each([
    ['not JSON', '{', /not JSON/],
    ['wrong version', '{"version":1,"variables":[]}', /version 1 is not supported/],
    ['variables not an array', '{"version":2,"variables":{}}', /"variables" is not an array/],
    [
      'bad GUID',
      '{"version":2,"variables":[{"guid":"x","name":"A","attr":7,"data":"00"}]}',
      /"guid" "x" is not a GUID/,
    ],
    [
      'bad hex',
      '{"version":2,"variables":[{"guid":"8be4df61-93ca-11d2-aa0d-00e098032b8c","name":"A","attr":7,"data":"0"}]}',
      /even number of hex digits/,
    ],
    [
      'empty data',
      '{"version":2,"variables":[{"guid":"8be4df61-93ca-11d2-aa0d-00e098032b8c","name":"A","attr":7,"data":""}]}',
      /"data" is empty/,
    ],
    [
      'attr out of range',
      '{"version":2,"variables":[{"guid":"8be4df61-93ca-11d2-aa0d-00e098032b8c","name":"A","attr":-1,"data":"00"}]}',
      /32-bit unsigned/,
    ],
    [
      'short time',
      '{"version":2,"variables":[{"guid":"8be4df61-93ca-11d2-aa0d-00e098032b8c","name":"A","attr":7,"data":"00","time":"00"}]}',
      /EFI_TIME is 16/,
    ],
    [
      'digest not SHA-256',
      '{"version":2,"variables":[{"guid":"8be4df61-93ca-11d2-aa0d-00e098032b8c","name":"A","attr":7,"data":"00","digest":"0011"}]}',
      /only 32-byte/,
    ],
    [
      'NUL in name',
      '{"version":2,"variables":[{"guid":"8be4df61-93ca-11d2-aa0d-00e098032b8c","name":"A\\u0000B","attr":7,"data":"00"}]}',
      /NUL/,
    ],
    [
      'listed twice',
      '{"version":2,"variables":[{"guid":"8be4df61-93ca-11d2-aa0d-00e098032b8c","name":"A","attr":7,"data":"00"},{"guid":"8BE4DF61-93ca-11d2-aa0d-00e098032b8c","name":"A","attr":7,"data":"01"}]}',
      /listed twice/,
    ],
  ])('refuses %s with a reason', (_what, text, reason) => {
    const d = decodeJsonVarStore(text);
    expect(d.ok).toBe(false);
    if (!d.ok) expect(d.error).toMatch(reason);
  });

  it('refuses bytes that are not UTF-8, and warns about members it does not know', () => {
    const bad = decodeJsonVarStore(Uint8Array.of(0x7b, 0xff, 0x7d));
    expect(bad.ok).toBe(false);
    const d = decodeOk(
      '{"version":2,"variables":[{"guid":"8be4df61-93ca-11d2-aa0d-00e098032b8c","name":"A","attr":7,"data":"00","extra":1}],"more":true}',
    );
    expect(d.warnings).toHaveLength(2);
  });

  it('never throws on arbitrary JSON (property)', () => {
    fc.assert(
      fc.property(fc.json(), (text) => {
        expect(typeof decodeJsonVarStore(text).ok).toBe('boolean');
      }),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(
        fc.record({
          version: fc.constant(2),
          variables: fc.array(
            fc.dictionary(fc.constantFrom('guid', 'name', 'attr', 'data', 'time', 'digest'), fc.jsonValue()),
          ),
        }),
        (doc) => {
          expect(typeof decodeJsonVarStore(JSON.stringify(doc)).ok).toBe('boolean');
        },
      ),
      { numRuns: 300 },
    );
  });
});
