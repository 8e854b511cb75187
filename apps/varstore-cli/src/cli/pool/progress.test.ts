import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { memoryIo } from '../testing/support.js';
import { displayWidth } from '../output.js';
import { formatDuration, ProgressBar, progressWanted, renderProgress } from './progress.js';

describe('renderProgress', () => {
  it('shows done/total, rate and time left', () => {
    expect(renderProgress({ done: 120, total: 400, elapsedMs: 10_000 }, 60, true)).toBe(
      `[${'#'.repeat(9)}${'.'.repeat(22)}] 120/400  12 VM/s  ETA 23s`,
    );
    expect(renderProgress({ done: 0, total: 5, elapsedMs: 0 }, 40)).toBe(`[${'░'.repeat(33)}] 0/5`);
    expect(renderProgress({ done: 3, total: 3, elapsedMs: 2000 }, 40, true)).toMatch(
      /^\[#+\] 3\/3 {2}1\.5 VM\/s {2}ETA 0s$/,
    );
  });

  it('never exceeds the width and never draws more than done', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 100_000 }),
        fc.integer({ min: 0, max: 100_000 }),
        fc.integer({ min: 0, max: 10_000_000 }),
        fc.integer({ min: 20, max: 300 }),
        (total, doneRaw, elapsedMs, width) => {
          const done = Math.min(doneRaw, total);
          const line = renderProgress({ done, total, elapsedMs }, width);
          expect(displayWidth(line)).toBeLessThanOrEqual(width);
          const filled = [...line].filter((c) => c === '█').length;
          const bar = [...line].filter((c) => c === '█' || c === '░').length;
          if (bar > 0) expect(filled / bar).toBeLessThanOrEqual(done / total);
        },
      ),
    );
  });

  it('formats durations', () => {
    expect([formatDuration(0), formatDuration(59.4), formatDuration(65), formatDuration(7260)]).toEqual([
      '0s',
      '59s',
      '1m05s',
      '2h01m',
    ]);
  });
});

describe('ProgressBar', () => {
  it('draws only on a terminal, clears itself, and redraws after a line took it away', () => {
    let now = 0;
    const tty = memoryIo({ tty: true });
    expect(progressWanted(tty)).toBe(true);
    const bar = new ProgressBar(tty, 3, { ascii: true, intervalMs: 100, clock: () => now });
    now = 10;
    bar.tick();
    expect(tty.err()).toBe(`\r\u001b[2K[${'#'.repeat(13)}${'.'.repeat(27)}] 1/3  100 VM/s  ETA 0s`);
    now = 20;
    bar.tick(); // not due: the bar on screen stays as it is
    expect(tty.err().split('\r').length).toBe(2);
    bar.clear();
    bar.tick(); // the last one is always drawn
    expect(tty.err()).toMatch(/\r\u001b\[2K\r\u001b\[2K\[#+\] 3\/3/);
    bar.finish();
    expect(tty.err().endsWith('\r\u001b[2K')).toBe(true);

    const pipe = memoryIo({ tty: false });
    const silent = new ProgressBar(pipe, 3, { ascii: true });
    silent.tick();
    silent.finish();
    expect(pipe.err()).toBe('');
    expect(progressWanted(memoryIo({ tty: true, env: { TERM: 'dumb' } }))).toBe(false);
  });
});
