import { existsSync, readFileSync } from 'node:fs';
import { guidFromText, utf16le } from '@vmsb/protocol';
import type { StoreState, Variable } from '@vmsb/efi';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeVarsBlob } from '../vars-blob.js';
import {
  decodeNvram,
  detectFormat,
  encodeNvram,
  formatFromFileName,
  NVRAM_FORMATS,
  nvramLosses,
  type NvramFormat,
} from './index.js';
import { plain, stateOf, variablesArb } from './test-support.js';

const GLOBAL = guidFromText('8be4df61-93ca-11d2-aa0d-00e098032b8c')!;

function v(name: string, fields: Partial<Variable> = {}): Variable {
  return {
    name: utf16le(name),
    guid: GLOBAL,
    attributes: 7,
    data: Uint8Array.of(1),
    timestamp: new Uint8Array(16),
    signerDigest: new Uint8Array(32),
    ...fields,
  };
}

function decodeOk(bytes: Uint8Array, format?: NvramFormat) {
  const d = decodeNvram(bytes, format);
  if (!d.ok) throw new Error(d.error);
  return d;
}

describe('store format detection', () => {
  const state = stateOf([v('BootOrder', { data: Uint8Array.of(0, 0) })]);

  it('recognises each format from its content', () => {
    for (const format of NVRAM_FORMATS) {
      const bytes = encodeNvram(state, format);
      expect(detectFormat(bytes)).toBe(format);
      const d = decodeOk(bytes);
      expect(d.format).toBe(format);
      expect(plain(d.state.variables)).toEqual(plain(state.variables));
    }
  });

  it('accepts base64 with line breaks and JSON after whitespace or a byte-order mark', () => {
    const b64 = Buffer.from(encodeVarsBlob(state, { nonVolatileOnly: false })).toString('base64');
    const wrapped = new Uint8Array(Buffer.from(`${b64.replace(/(.{76})/g, '$1\n')}\n`));
    expect(detectFormat(wrapped)).toBe('vars-base64');
    expect(decodeOk(wrapped).state.variables).toHaveLength(1);
    const json = Buffer.from(encodeNvram(state, 'json')).toString();
    expect(detectFormat(new Uint8Array(Buffer.from(`\n  ${json}`)))).toBe('json');
    expect(decodeOk(new Uint8Array(Buffer.from(`\ufeff${json}`))).format).toBe('json');
  });

  it('detects a Debian OVMF image', () => {
    const path = '/usr/share/OVMF/OVMF_VARS_4M.ms.fd';
    if (!existsSync(path))
      throw new Error(`${path} is missing: install the Debian package "ovmf" (scripts/setup does)`);
    expect(detectFormat(new Uint8Array(readFileSync(path)))).toBe('ovmf-fd');
  });

  it('names nothing else a store', () => {
    expect(detectFormat(new Uint8Array(0))).toBeUndefined();
    expect(detectFormat(new Uint8Array(Buffer.from('hello world')))).toBeUndefined();
    // Base64 of something that is not a VARS blob.
    expect(
      detectFormat(new Uint8Array(Buffer.from(Buffer.from('not a blob at all').toString('base64')))),
    ).toBeUndefined();
    const d = decodeNvram(new Uint8Array(Buffer.from('garbage')));
    expect(d.ok).toBe(false);
    if (!d.ok) expect(d.error).toMatch(/not a variable store/);
  });

  it('suggests a format from a file name', () => {
    expect(formatFromFileName('/x/vm.json')).toBe('json');
    expect(formatFromFileName('VARS.FD')).toBe('ovmf-fd');
    expect(formatFromFileName('nvram.b64')).toBe('vars-base64');
    expect(formatFromFileName('nvram.vars')).toBe('vars');
    expect(formatFromFileName('nvram')).toBeUndefined();
  });
});

describe('conversions', () => {
  it('vars → json → fd → vars keeps every variable when nothing is lost (property)', () => {
    fc.assert(
      fc.property(variablesArb({ digest: false, maxLength: 8 }), (variables) => {
        const original = stateOf(variables);
        let bytes = encodeNvram(original, 'vars');
        for (const format of ['json', 'ovmf-fd', 'vars-base64', 'vars'] as const) {
          const state = decodeOk(bytes).state;
          expect(nvramLosses(state, format)).toEqual([]);
          bytes = encodeNvram(state, format, { layout: '2m' });
        }
        expect(plain(decodeOk(bytes).state.variables)).toEqual(plain(variables));
      }),
      { numRuns: 80 },
    );
  });

  it('names each loss a target would cause', () => {
    const state: StoreState = {
      variables: [v('Bound', { attributes: 0x27, signerDigest: new Uint8Array(32).fill(2) })],
      morKey: new Uint8Array(8).fill(1),
      ppi: { index: 0, func: new Uint8Array(256) },
    };
    expect(nvramLosses(state, 'vars')).toEqual([]);
    expect(nvramLosses(state, 'json')).toEqual(['the MemoryOverwriteRequestControlLock key']);
    expect(nvramLosses(state, 'ovmf-fd')).toHaveLength(2);
  });

  it('never throws on arbitrary bytes (property)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 600 }),
        fc.constantFrom<NvramFormat | undefined>(undefined, ...NVRAM_FORMATS),
        (bytes, format) => {
          expect(typeof decodeNvram(bytes, format).ok).toBe('boolean');
        },
      ),
      { numRuns: 500 },
    );
  });
});
