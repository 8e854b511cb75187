import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CREDIT_PER_SECOND, MAX_CREDIT, SendThrottle } from './throttle.js';
import { ManualClock } from './test-support.js';

describe('SendThrottle (token bucket, 100 credits, 2 per second)', () => {
  it('has the limits of varstored', () => {
    expect(MAX_CREDIT).toBe(100);
    expect(CREDIT_PER_SECOND).toBe(2);
  });

  it('lets 100 sends through at once, then waits half a second for each further one', async () => {
    const clock = new ManualClock();
    const throttle = new SendThrottle(clock);
    for (let i = 0; i < 100; i++) expect(await throttle.acquire()).toBe(0);
    expect(clock.sleeps).toEqual([]);
    expect(await throttle.acquire()).toBe(500);
    expect(await throttle.acquire()).toBe(500);
    expect(clock.sleeps).toEqual([500, 500]);
  });

  it('refills 2 credits per second, keeping partial credit', async () => {
    const clock = new ManualClock();
    const throttle = new SendThrottle(clock);
    for (let i = 0; i < 100; i++) await throttle.acquire();
    clock.advance(1000);
    expect(throttle.available()).toBe(2);
    clock.advance(250);
    expect(throttle.available()).toBe(2);
    await throttle.acquire();
    await throttle.acquire();
    expect(clock.sleeps).toEqual([]);
    clock.advance(250); // with the earlier 250 ms, one more credit
    expect(await throttle.acquire()).toBe(0);
    expect(await throttle.acquire()).toBe(500);
  });

  it('never holds more than 100 credits', async () => {
    const clock = new ManualClock();
    const throttle = new SendThrottle(clock);
    await throttle.acquire();
    clock.advance(3_600_000);
    expect(throttle.available()).toBe(100);
  });

  it('never lets more sends through than the budget allows (any schedule)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 0, max: 2000 }), { minLength: 1, maxLength: 400 }), async (gaps) => {
        const clock = new ManualClock();
        const start = clock.now();
        const throttle = new SendThrottle(clock);
        for (const gap of gaps) {
          clock.advance(gap);
          await throttle.acquire();
        }
        // Sends completed by now: at most the initial 100 plus one per 500 ms elapsed.
        const elapsed = clock.now() - start;
        expect(gaps.length).toBeLessThanOrEqual(100 + Math.floor(elapsed / 500));
        // And nobody waited while credit was left: a wait only happens after 100 quick sends.
        if (clock.sleeps.length > 0) expect(gaps.length).toBeGreaterThan(100);
      }),
      { numRuns: 100 },
    );
  });
});
