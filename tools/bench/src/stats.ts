/** Medians, ratios and the lines `pnpm bench` prints. */

export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError('median of nothing');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export interface BenchResult {
  /** `read-trace`, `dispatch.get`, ... */
  readonly name: string;
  /** Median of the subject over the median of the baseline. */
  readonly ratio: number;
  /** What the ratio is against. */
  readonly baseline: string;
  /** Medians in `unit`. */
  readonly subject: number;
  readonly base: number;
  readonly unit: 'ms' | 'µs' | 'MiB';
  readonly rounds: number;
  /** One line of context: what was measured. */
  readonly detail: string;
  /** The target ratio, when the issue sets one. */
  readonly target?: number;
  /** Every round's value (subject, baseline), for the JSON record. */
  readonly samples: { readonly subject: readonly number[]; readonly base: readonly number[] };
}

export function result(fields: Omit<BenchResult, 'ratio' | 'subject' | 'base' | 'rounds'>): BenchResult {
  const subject = median(fields.samples.subject);
  const base = median(fields.samples.base);
  return { ...fields, subject, base, ratio: subject / base, rounds: fields.samples.subject.length };
}

function number(v: number): string {
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

/** `bench <name>: <ratio>x <baseline>` then the medians. */
export function format(r: BenchResult): string {
  const verdict =
    r.target === undefined
      ? ''
      : r.ratio <= r.target
        ? ` (target ≤ ${r.target}×: met)`
        : ` (target ≤ ${r.target}×: missed)`;
  return (
    `bench ${r.name}: ${r.ratio.toFixed(2)}x ${r.baseline}\n` +
    `  vmsb ${number(r.subject)} ${r.unit}, ${r.baseline} ${number(r.base)} ${r.unit} (medians of ${r.rounds} rounds)${verdict}\n` +
    `  ${r.detail}\n`
  );
}
