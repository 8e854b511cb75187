/**
 * varstored's guard against a guest flooding XAPI with NVRAM writes: a token bucket of 100
 * credits refilled at 2 per second. A write with no credit left waits half a second (the time
 * one credit takes to accrue) and is then sent.
 */
import { setTimeout as delay } from 'node:timers/promises';

export interface Clock {
  /** Milliseconds on a monotonic scale. */
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  sleep: (ms) => delay(ms),
};

export const MAX_CREDIT = 100;
export const CREDIT_PER_SECOND = 2;

export class SendThrottle {
  private credit: number;
  private lastRefill: number;
  private readonly msPerCredit: number;

  constructor(
    private readonly clock: Clock,
    private readonly maxCredit = MAX_CREDIT,
    creditPerSecond = CREDIT_PER_SECOND,
  ) {
    this.credit = maxCredit;
    this.lastRefill = clock.now();
    this.msPerCredit = 1000 / creditPerSecond;
  }

  /** Credits available now (after refilling). */
  available(): number {
    this.refill();
    return this.credit;
  }

  /** Take a credit, or wait one credit's time when none is left. Resolves to the time waited (ms). */
  async acquire(): Promise<number> {
    this.refill();
    if (this.credit > 0) {
      this.credit -= 1;
      return 0;
    }
    await this.clock.sleep(this.msPerCredit);
    // The credit that accrued while waiting is the one this send uses.
    this.lastRefill = this.clock.now();
    return this.msPerCredit;
  }

  private refill(): void {
    const now = this.clock.now();
    const earned = Math.floor((now - this.lastRefill) / this.msPerCredit);
    if (earned <= 0) return;
    this.credit = Math.min(this.maxCredit, this.credit + earned);
    // Keep the fraction of a credit already accrued, unless the bucket is full.
    this.lastRefill = this.credit === this.maxCredit ? now : this.lastRefill + earned * this.msPerCredit;
  }
}
