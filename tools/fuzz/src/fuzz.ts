/**
 * A fuzz run: frames from the seeded generator through one target, the invariants checked after
 * every step, the store reset to the seed state every `resetEvery` steps (so that it is neither
 * full nor stuck in setup mode for the whole run). A failure carries every step since the last
 * reset: replaying them from the seed state reproduces it without the generator.
 */
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fuzzCorpus } from './corpus.js';
import { DaemonTarget } from './daemon-target.js';
import { DispatchTarget, type StepRecord } from './dispatch-target.js';
import { FrameGenerator } from './generate.js';
import type { Violation } from './invariants.js';
import { Random } from './random.js';
import { statusName } from '@vmsb/protocol';

export type FuzzTargetName = 'dispatch' | 'daemon';

export interface FuzzOptions {
  readonly target: FuzzTargetName;
  readonly seed: number;
  readonly iterations: number;
  /** Steps between resets to the seed state. Default 400 in-process, 1500 for the daemon (a restart). */
  readonly resetEvery?: number;
  /** Stop after this many failing steps (default 1). */
  readonly maxFailures?: number;
  /** Progress lines. */
  readonly log?: (line: string) => void;
  /** Where the daemon target keeps its files (default: a new directory under the system's temp dir). */
  readonly workDir?: string;
}

export interface FuzzFailure {
  readonly target: FuzzTargetName;
  readonly seed: number;
  /** 0-based index of the failing step. */
  readonly iteration: number;
  readonly violations: readonly Violation[];
  /** Every step since the last reset, the failing one last. */
  readonly steps: readonly StepRecord[];
}

export interface FuzzReport {
  readonly target: FuzzTargetName;
  readonly seed: number;
  readonly iterations: number;
  readonly elapsedMs: number;
  readonly failures: readonly FuzzFailure[];
  /** Steps per generator kind. */
  readonly kinds: Readonly<Record<string, number>>;
  /** Replies per generator kind and EFI status ("closed" when the connection was dropped). */
  readonly statuses: Readonly<Record<string, Readonly<Record<string, number>>>>;
}

function count(statuses: Record<string, Record<string, number>>, kind: string, status: bigint | undefined): void {
  const byStatus = statuses[kind] ?? {};
  statuses[kind] = byStatus;
  const name = status === undefined ? 'closed' : statusName(status);
  byStatus[name] = (byStatus[name] ?? 0) + 1;
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

export async function fuzz(options: FuzzOptions): Promise<FuzzReport> {
  return options.target === 'dispatch' ? fuzzDispatch(options) : fuzzDaemon(options);
}

function baseKind(kind: string): string {
  return kind.replace(/\+mutated$/, '');
}

function progress(options: FuzzOptions, i: number, started: number): void {
  const every = Math.max(1000, Math.floor(options.iterations / 10));
  if (options.log && i > 0 && i % every === 0) {
    const rate = (i / ((performance.now() - started) / 1000)).toFixed(0);
    options.log(`${options.target}: ${i}/${options.iterations} steps (${rate}/s)`);
  }
}

export async function fuzzDispatch(options: FuzzOptions): Promise<FuzzReport> {
  const corpus = fuzzCorpus();
  const rng = new Random(options.seed);
  const target = new DispatchTarget(corpus);
  const generator = new FrameGenerator(rng, corpus, () => target.names());
  const resetEvery = options.resetEvery ?? 400;
  const maxFailures = options.maxFailures ?? 1;
  const failures: FuzzFailure[] = [];
  const kinds: Record<string, number> = {};
  const statuses: Record<string, Record<string, number>> = {};
  let steps: StepRecord[] = [];
  const started = performance.now();
  let i = 0;
  for (; i < options.iterations; i++) {
    if (i > 0 && i % resetEvery === 0) {
      target.reset();
      steps = [];
    }
    const input = generator.next();
    const padded = rng.bool(0.8);
    const settle = rng.bool(0.9) ? 'commit' : 'rollback';
    kinds[baseKind(input.kind)] = (kinds[baseKind(input.kind)] ?? 0) + 1;
    steps.push({
      frame: hex(input.frame),
      kind: input.kind,
      padded,
      settle,
      ...(input.transport ? { transport: input.transport } : {}),
    });
    const violations = target.step(input.frame, { padded, settle });
    count(statuses, baseKind(input.kind), target.lastStatus);
    if (violations.length > 0) {
      failures.push({ target: 'dispatch', seed: options.seed, iteration: i, violations, steps: [...steps] });
      options.log?.(`dispatch: step ${i} (${input.kind}) broke ${violations.map((v) => v.invariant).join(', ')}`);
      if (failures.length >= maxFailures) {
        i++;
        break;
      }
      target.reset();
      steps = [];
    }
    progress(options, i, started);
  }
  return {
    target: 'dispatch',
    seed: options.seed,
    iterations: i,
    elapsedMs: performance.now() - started,
    failures,
    kinds,
    statuses,
  };
}

export async function fuzzDaemon(options: FuzzOptions): Promise<FuzzReport> {
  const corpus = fuzzCorpus();
  const rng = new Random(options.seed);
  const ownDir = options.workDir === undefined;
  const dir = options.workDir ?? (await mkdtemp(join(tmpdir(), 'vmsb-fuzz-')));
  // Interrupted runs exit through process.exit: remove our directory then too.
  const removeDir = (): void => rmSync(dir, { recursive: true, force: true });
  if (ownDir) process.once('exit', removeDir);
  const resetEvery = options.resetEvery ?? 1500;
  const maxFailures = options.maxFailures ?? 1;
  const failures: FuzzFailure[] = [];
  const kinds: Record<string, number> = {};
  const statuses: Record<string, Record<string, number>> = {};
  let steps: StepRecord[] = [];
  const started = performance.now();
  const target = await DaemonTarget.start(corpus, dir);
  const generator = new FrameGenerator(rng, corpus, () => target.names());
  let i = 0;
  const fail = (violations: Violation[], iteration: number): boolean => {
    failures.push({ target: 'daemon', seed: options.seed, iteration, violations, steps: [...steps] });
    options.log?.(`daemon: step ${iteration} broke ${violations.map((v) => v.invariant).join(', ')}`);
    return failures.length >= maxFailures;
  };
  try {
    let stop = false;
    for (; i < options.iterations && !stop; i++) {
      if (i > 0 && i % resetEvery === 0) {
        const violations = await target.restart();
        if (violations.length > 0) stop = fail(violations, i - 1);
        steps = [];
        if (stop) break;
      }
      const input = generator.next();
      kinds[baseKind(input.kind)] = (kinds[baseKind(input.kind)] ?? 0) + 1;
      steps.push({
        frame: hex(input.frame),
        kind: input.kind,
        ...(input.transport ? { transport: input.transport } : {}),
      });
      const violations = await target.step(input);
      count(statuses, baseKind(input.kind), target.lastStatus);
      if (violations.length > 0) {
        stop = fail(violations, i);
        if (!stop) {
          await target.reboot();
          steps = [];
        }
      }
      progress(options, i, started);
    }
    if (failures.length < maxFailures) {
      const violations = await target.close();
      if (violations.length > 0) fail(violations, i - 1);
    } else {
      await target.abort();
    }
  } catch (e) {
    await target.abort();
    throw e;
  } finally {
    if (ownDir) {
      process.off('exit', removeDir);
      await rm(dir, { recursive: true, force: true });
    }
  }
  return {
    target: 'daemon',
    seed: options.seed,
    iterations: i,
    elapsedMs: performance.now() - started,
    failures,
    kinds,
    statuses,
  };
}

/** Replays recorded in-process steps from the seed state; the violations of each step, by index. */
export function replayDispatch(steps: readonly StepRecord[]): { step: number; violations: readonly Violation[] }[] {
  const target = new DispatchTarget(fuzzCorpus());
  const out: { step: number; violations: readonly Violation[] }[] = [];
  steps.forEach((s, step) => {
    const frame = new Uint8Array(Buffer.from(s.frame, 'hex'));
    const violations = target.step(frame, { padded: s.padded ?? true, settle: s.settle ?? 'commit' });
    if (violations.length > 0) out.push({ step, violations });
  });
  return out;
}

/** Replays recorded daemon steps against a fresh daemon; the violations of each step, by index. */
export async function replayDaemon(
  steps: readonly StepRecord[],
  workDir?: string,
): Promise<{ step: number; violations: readonly Violation[] }[]> {
  const dir = workDir ?? (await mkdtemp(join(tmpdir(), 'vmsb-fuzz-replay-')));
  const target = await DaemonTarget.start(fuzzCorpus(), dir);
  const out: { step: number; violations: readonly Violation[] }[] = [];
  try {
    for (const [step, s] of steps.entries()) {
      const frame = new Uint8Array(Buffer.from(s.frame, 'hex'));
      const violations = await target.step({ frame, kind: s.kind, ...(s.transport ? { transport: s.transport } : {}) });
      if (violations.length > 0) out.push({ step, violations });
    }
    const final = await target.close();
    if (final.length > 0) out.push({ step: steps.length, violations: final });
  } catch (e) {
    await target.abort();
    throw e;
  } finally {
    if (workDir === undefined) await rm(dir, { recursive: true, force: true });
  }
  return out;
}
