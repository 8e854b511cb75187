import { describe, expect, it } from 'vitest';
import { format, median, result } from './stats.js';

describe('stats', () => {
  it('takes the median of odd and even samples', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(() => median([])).toThrow(RangeError);
  });

  it('prints the ratio line exactly as specified, then the medians', () => {
    const r = result({
      name: 'read-trace',
      baseline: 'echo-server',
      unit: 'ms',
      target: 1.3,
      samples: { subject: [12.7, 12.9, 12.8], base: [10, 10, 10] },
      detail: 'x',
    });
    expect(r.ratio).toBeCloseTo(1.28, 5);
    const lines = format(r).split('\n');
    expect(lines[0]).toBe('bench read-trace: 1.28x echo-server');
    expect(lines[1]).toBe('  vmsb 12.8 ms, echo-server 10.0 ms (medians of 3 rounds) (target ≤ 1.3×: met)');
    expect(format({ ...r, ratio: 1.31 }).split('\n')[1]).toMatch(/missed/);
  });
});
