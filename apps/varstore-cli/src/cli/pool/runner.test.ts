import type { VmRecord } from '@vmsb/xapi';
import { describe, expect, it } from 'vitest';
import { parseCommandArgs } from '../args.js';
import type { CommandContext } from '../command.js';
import { Output } from '../output.js';
import { memoryIo } from '../testing/support.js';
import { parseJobs, resultJson, runOverVms } from './runner.js';

function vm(i: number): VmRecord {
  return {
    ref: `OpaqueRef:${i}`,
    uuid: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
    nameLabel: `vm-${i}`,
    powerState: 'Halted',
    isATemplate: false,
    isASnapshot: false,
    isControlDomain: false,
    hvmBootParams: new Map([['firmware', 'uefi']]),
    nvram: new Map(),
  };
}

function context(argv: string[]) {
  const io = memoryIo();
  const ctx: CommandContext = {
    io,
    out: new Output(io),
    args: parseCommandArgs(argv, { json: { kind: 'flag' } }, 'x'),
    command: 'x',
  };
  return { ctx, io };
}

describe('runOverVms', () => {
  it('runs at most --jobs at once, prints each VM as it completes, and a throwing VM fails alone', async () => {
    const { ctx, io } = context(['--json']);
    let running = 0;
    let most = 0;
    const vms = Array.from({ length: 20 }, (_, i) => vm(i));
    const results = await runOverVms(ctx, vms, {
      jobs: 3,
      tone: () => 'ok',
      work: async (v) => {
        running++;
        most = Math.max(most, running);
        await new Promise((r) => setTimeout(r, (Number(v.ref.slice(10)) * 7) % 5));
        running--;
        if (v.nameLabel === 'vm-4') throw new Error('boom');
        return {
          vm: v.uuid,
          name: v.nameLabel,
          power_state: v.powerState,
          fields: { x: 1 },
          result: 'ok',
          reason: null,
        };
      },
    });
    expect(most).toBe(3);
    expect(results).toHaveLength(20);
    const lines = io
      .out()
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.vm).sort()).toEqual(vms.map((v) => v.uuid).sort());
    expect(lines.find((l) => l.name === 'vm-4')).toEqual({
      vm: vms[4]!.uuid,
      name: 'vm-4',
      power_state: 'Halted',
      result: 'failed',
      reason: 'boom',
    });
    expect(io.err()).toBe('');
  });

  it('writes the fields in schema order', () => {
    expect(
      resultJson({
        vm: 'u',
        name: 'n',
        power_state: 'Running',
        fields: { certificates: 'update_ok' },
        result: 'skipped',
        reason: 'r',
      }),
    ).toBe('{"vm":"u","name":"n","power_state":"Running","certificates":"update_ok","result":"skipped","reason":"r"}');
  });

  it('parses --jobs', () => {
    expect([parseJobs(undefined), parseJobs('1'), parseJobs('64')]).toEqual([8, 1, 64]);
    for (const bad of ['0', '65', '-1', 'x', '1.5']) expect(() => parseJobs(bad)).toThrow(/--jobs/);
  });
});
