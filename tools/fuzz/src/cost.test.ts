import { describe, expect, it } from 'vitest';
import { costSearch } from './cost.js';

describe('cost search', () => {
  it('ranks the frames it dispatched, costliest first, replayable from the seed', () => {
    const { searched, costliest } = costSearch({ seed: 20261207, iterations: 60, keep: 5 });
    expect(searched).toBe(120);
    expect(costliest.length).toBe(5);
    for (let i = 1; i < costliest.length; i++)
      expect(costliest[i - 1]!.cpuMicros).toBeGreaterThanOrEqual(costliest[i]!.cpuMicros);
    // Every kept frame was answered.
    for (const c of costliest) {
      expect(c.frame.length).toBeGreaterThan(0);
      expect(c.status).not.toBe('no reply');
    }
  });
});
