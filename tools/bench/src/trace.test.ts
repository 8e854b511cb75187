import { Limits } from '@vmsb/protocol';
import { describe, expect, it } from 'vitest';
import { buildTrace } from './trace.js';
import { vmNvramBlob, vmStore } from './vm-state.js';

function total(counts: Readonly<Record<string, number>>): number {
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

describe('the boot traces', () => {
  it('read trace: about 2,000 GetVariable / GetNextVariableName calls and nothing else', () => {
    const t = buildTrace('read');
    console.info(`read trace: ${JSON.stringify(t.counts)}`);
    expect(Object.keys(t.counts).sort()).toEqual(['GetNextVariableName', 'GetVariable']);
    expect(total(t.counts)).toBeGreaterThan(1800);
    expect(total(t.counts)).toBeLessThan(2200);
    expect(t.nvWrites).toBe(0);
    expect(t.frames.length).toBe(t.replies.length);
  });

  it('boot trace: the same with about 1 % non-volatile writes, each of them a real change', () => {
    const read = buildTrace('read');
    const boot = buildTrace('boot');
    console.info(
      `boot trace: ${JSON.stringify(boot.counts)}, ${boot.nvWrites} NV writes, NVRAM ${boot.blobBytes} bytes`,
    );
    expect(boot.counts.SetVariable).toBe(boot.nvWrites);
    const share = boot.nvWrites / total(boot.counts);
    expect(share).toBeGreaterThan(0.005);
    expect(share).toBeLessThan(0.02);
    expect(total(boot.counts) - boot.nvWrites).toBeGreaterThan(total(read.counts) * 0.95);
  });

  it('frames and replies fit the guest buffer and the framing, and a fresh store answers the same', () => {
    const t = buildTrace('boot');
    for (const [i, f] of t.frames.entries()) {
      expect(f.readUInt32LE(0)).toBe(f.length - 4);
      expect(f.length - 4).toBeLessThanOrEqual(Limits.BUFFER_SIZE);
      expect(t.replies[i]!.readUInt32LE(0)).toBe(t.replies[i]!.length - 4);
    }
    const again = buildTrace('boot');
    expect(again.replies.map((r) => r.toString('hex'))).toEqual(t.replies.map((r) => r.toString('hex')));
  });

  it('starts from a realistic NVRAM: Microsoft KEK/db, the 443-entry dbx, OVMF boot options', () => {
    const store = vmStore();
    expect(store.secureBoot).toBe(true);
    const names = store.variables().map((v) => Buffer.from(v.name).toString('utf16le'));
    for (const n of ['PK', 'KEK', 'db', 'dbx', 'BootOrder', 'Boot0004', 'MTC', 'SbatLevel']) expect(names).toContain(n);
    expect(vmNvramBlob().length).toBeGreaterThan(30000);
  });
});
