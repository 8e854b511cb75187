/**
 * The tools called in-process, with NVRAM held in memory instead of XAPI: the seams other code
 * (and these tests) use, and the write-back/rollback rule without spawning anything.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeVariable, type StoreState } from '@vmsb/efi';
import { guidFromText, utf16le } from '@vmsb/protocol';
import { afterAll, describe, expect, it } from 'vitest';
import { varstoreGet } from './get.js';
import { BufferIo } from './io.js';
import { varstoreLs } from './ls.js';
import type { SessionNvram } from './session.js';
import { varstoreSet } from './set.js';

const VM = '0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9';
const VENDOR = '12345678-1234-1234-1234-123456789abc';
const dir = mkdtempSync(join(tmpdir(), 'vmsb-compat-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** NVRAM in memory; `failSaves` makes every save reject as a refused XAPI write would. */
function memoryNvram(initial?: StoreState, failSaves = false): SessionNvram & { saved: StoreState[] } {
  const saved: StoreState[] = [];
  return {
    saved,
    load: async () => saved.at(-1) ?? initial,
    save: async (state) => {
      if (failSaves) throw new Error('XAPI refused the write (SR_FULL)');
      saved.push(state);
    },
  };
}

const state = (data: string): StoreState => ({
  variables: [
    makeVariable({
      name: utf16le('Var'),
      guid: guidFromText(VENDOR)!,
      attributes: 7,
      data: new Uint8Array(Buffer.from(data)),
    }),
  ],
  morKey: new Uint8Array(8),
  ppi: { index: 0, func: new Uint8Array(256) },
});

describe('tools in-process', () => {
  it('varstore-ls prints the in-memory NVRAM and writes nothing', async () => {
    const nvram = memoryNvram(state('x'));
    const io = new BufferIo();
    expect(await varstoreLs([VM], io, { nvram })).toBe(0);
    expect(io.stdout.toString()).toContain(`${VENDOR} Var\n`);
    expect(io.stderr).toBe('');
    expect(nvram.saved).toHaveLength(0);
  });

  it('varstore-set saves the new state once, and not at all when nothing changes', async () => {
    const nvram = memoryNvram(state('old'));
    const file = join(dir, 'new');
    writeFileSync(file, 'new');
    expect(await varstoreSet([VM, VENDOR, 'Var', '7', file], new BufferIo(), { nvram })).toBe(0);
    expect(nvram.saved).toHaveLength(1);
    expect(await varstoreSet([VM, VENDOR, 'Var', '7', file], new BufferIo(), { nvram })).toBe(0);
    expect(nvram.saved).toHaveLength(1);
    const io = new BufferIo();
    expect(await varstoreGet([VM, VENDOR, 'Var'], io, { nvram })).toBe(0);
    expect(io.stdout.toString()).toBe('new');
  });

  it('varstore-set answers Device Error and keeps nothing when the write is refused', async () => {
    const nvram = memoryNvram(state('old'), true);
    const file = join(dir, 'refused');
    writeFileSync(file, 'new');
    const io = new BufferIo();
    expect(await varstoreSet([VM, VENDOR, 'Var', '7', file], io, { nvram })).toBe(1);
    expect(io.stderr).toBe('XAPI refused the write (SR_FULL)\nDevice Error\n');
    expect(io.stdout.length).toBe(0);
  });

  it('reports a load failure and exits 1', async () => {
    const io = new BufferIo();
    const nvram: SessionNvram = {
      load: async () => Promise.reject(new Error('cannot read the NVRAM of VM x')),
      save: async () => undefined,
    };
    expect(await varstoreLs([VM], io, { nvram })).toBe(1);
    expect(io.stderr).toBe('cannot read the NVRAM of VM x\n');
  });

  it('refuses a stored variable the store could never hold, naming it', async () => {
    const io = new BufferIo();
    const bad: StoreState = {
      ...state('x'),
      variables: [
        makeVariable({ name: Uint8Array.of(0x41), guid: guidFromText(VENDOR)!, attributes: 7, data: Uint8Array.of(1) }),
      ],
    };
    expect(await varstoreLs([VM], io, { nvram: memoryNvram(bad) })).toBe(1);
    expect(io.stderr).toMatch(/^the NVRAM of VM 0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9 cannot be used: .*odd length/);
  });
});
