/**
 * A search for expensive guest requests: generated frames, then mutations of the costliest, each
 * dispatched through the in-process store with the real authenticator and timed: a first, rough
 * timing on the evolving store selects candidates, which are re-timed on a fresh store (after a
 * warm-up run, the fastest of five: wall time of the synchronous dispatch, whose minimum is the
 * estimate least disturbed by other threads and processes on a shared machine). The result is a ranking to look at (and to turn into `worst-request` benchmark
 * cases), not a verdict: timing is never asserted.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { fuzzCorpus } from './corpus.js';
import { DispatchTarget, zeroFilled } from './dispatch-target.js';
import { FrameGenerator } from './generate.js';
import { Random } from './random.js';

export interface CostlyFrame {
  readonly kind: string;
  /** Time of the dispatch, µs (on a fresh store, after a warm-up run, the fastest of five). */
  readonly cpuMicros: number;
  readonly status: string;
  readonly frame: Uint8Array;
}

export interface CostSearchOptions {
  readonly seed: number;
  /** Generated frames, then as many mutation rounds. */
  readonly iterations: number;
  /** How many of the costliest frames to keep and mutate. */
  readonly keep?: number;
  readonly log?: (line: string) => void;
}

/**
 * A full garbage collection, so that a timing measures the request rather than the collection of
 * what the search allocated before it (64 KiB buffers by the thousand). Made on the first search,
 * not on import: the package's other users keep their V8 flags.
 */
function garbageCollector(): () => void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as (() => void) | undefined;
  return typeof gc === 'function' ? gc : () => undefined;
}

function nowMicros(): number {
  return performance.now() * 1000;
}

export function costSearch(options: CostSearchOptions): { searched: number; costliest: CostlyFrame[] } {
  const corpus = fuzzCorpus();
  const rng = new Random(options.seed);
  const keep = options.keep ?? 8;
  const collectGarbage = garbageCollector();
  const target = new DispatchTarget(corpus);
  const generator = new FrameGenerator(rng, corpus, () => target.names());
  const fresh = new DispatchTarget(corpus);
  /** µs of one dispatch on the corpus state (after a warm-up run, the fastest of five). */
  const measure = (frame: Uint8Array): { micros: number; status: string } => {
    const runs: number[] = [];
    let status = '';
    // What the daemon runs for the request: the store's dispatch of the zero-filled guest buffer
    // (the fuzzer's invariant checks around it are not timed).
    const buffer = zeroFilled(frame);
    for (let r = 0; r < 6; r++) {
      fresh.reset();
      collectGarbage();
      const copy = buffer.slice();
      const store = fresh.current;
      const started = nowMicros();
      const outcome = store.dispatch(copy);
      if (r > 0) runs.push(Math.round(nowMicros() - started));
      outcome.pending?.rollback();
      status = `0x${outcome.status.toString(16)}`;
    }
    runs.sort((a, b) => a - b);
    return { micros: runs[0]!, status };
  };
  const best: CostlyFrame[] = [];
  const consider = (kind: string, frame: Uint8Array): void => {
    const { micros, status } = measure(frame);
    if (best.length < keep || micros > best[best.length - 1]!.cpuMicros) {
      best.push({ kind, cpuMicros: micros, status, frame: frame.slice() });
      best.sort((a, b) => b.cpuMicros - a.cpuMicros);
      best.length = Math.min(best.length, keep);
    }
  };
  // Generated frames: a quick timing on the evolving store picks the candidates worth re-measuring.
  for (let i = 0; i < options.iterations; i++) {
    if (i > 0 && i % 400 === 0) target.reset();
    const input = generator.next();
    const started = nowMicros();
    target.step(input.frame, { padded: true, settle: 'commit' });
    const micros = nowMicros() - started;
    if (best.length < keep || micros > best[best.length - 1]!.cpuMicros) consider(input.kind, input.frame);
  }
  // Mutations of the costliest: keep whatever costs more.
  for (let i = 0; i < options.iterations; i++) {
    const parent = best[rng.int(best.length)]!;
    consider(`${parent.kind.replace(/ \(mutated\)$/, '')} (mutated)`, generator.mutateBytes(parent.frame, 0.5));
  }
  options.log?.(`cost search: ${options.iterations * 2} frames, costliest ${best[0]?.cpuMicros ?? 0} µs`);
  return { searched: options.iterations * 2, costliest: best };
}
