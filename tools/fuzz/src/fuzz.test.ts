/**
 * A short fuzz run of each target (part of `pnpm test`). VMSB_FUZZ_ITERATIONS and VMSB_FUZZ_SEED
 * change its length and seed; the long run is `pnpm fuzz` (README).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fuzzCorpus } from './corpus.js';
import { DaemonTarget } from './daemon-target.js';
import { FUZZ_PLATFORM, type StepRecord } from './dispatch-target.js';
import { fuzzDaemon, fuzzDispatch, replayDaemon, replayDispatch } from './fuzz.js';
import { parseSeed } from './random.js';
import { Guids, utf16le } from '@vmsb/efi';
import { encodeRequest, encodedRequestSize } from '@vmsb/protocol';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ITERATIONS = Number(process.env.VMSB_FUZZ_ITERATIONS ?? 3000);
const SEED = parseSeed(process.env.VMSB_FUZZ_SEED ?? '20261122');

function describeFailures(report: Awaited<ReturnType<typeof fuzzDispatch>>): string {
  return report.failures
    .map((f) => `step ${f.iteration}: ${f.violations.map((v) => `${v.invariant}: ${v.detail}`).join('; ')}`)
    .join('\n');
}

describe('fuzzing VariableStore.dispatch in-process', () => {
  it(`keeps every invariant for ${ITERATIONS} steps (seed ${SEED})`, async () => {
    const report = await fuzzDispatch({ target: 'dispatch', seed: SEED, iterations: ITERATIONS });
    expect(report.failures, describeFailures(report)).toEqual([]);
    expect(report.iterations).toBe(ITERATIONS);
    // The run reached the deep paths: signed writes accepted, mutated ones refused.
    expect(report.statuses['auth:as-is']?.SUCCESS ?? 0).toBeGreaterThan(0);
    expect(report.statuses['auth:der']?.SECURITY_VIOLATION ?? 0).toBeGreaterThan(0);
    expect(report.statuses.set?.SUCCESS ?? 0).toBeGreaterThan(0);
  });

  it('is reproducible: the same seed gives the same run', async () => {
    const a = await fuzzDispatch({ target: 'dispatch', seed: 99, iterations: 300 });
    const b = await fuzzDispatch({ target: 'dispatch', seed: 99, iterations: 300 });
    expect(a.statuses).toEqual(b.statuses);
    const c = await fuzzDispatch({ target: 'dispatch', seed: 100, iterations: 300 });
    expect(c.statuses).not.toEqual(a.statuses);
  });
});

describe('fuzzing the daemon over its socket', () => {
  it(`keeps every invariant for ${Math.ceil(ITERATIONS / 3)} steps, framing abuse included, and stays up`, async () => {
    const report = await fuzzDaemon({
      target: 'daemon',
      seed: SEED,
      iterations: Math.ceil(ITERATIONS / 3),
      resetEvery: 500,
    });
    expect(report.failures, describeFailures(report)).toEqual([]);
    expect(report.kinds['transport:oversize'] ?? 0).toBeGreaterThan(0);
    expect(report.kinds['transport:truncated'] ?? 0).toBeGreaterThan(0);
  });

  it('notices a daemon that answers differently from the store', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vmsb-fuzz-check-'));
    // The daemon is told Secure Boot is off, its shadow that it is on: reading SecureBoot must differ.
    const target = await DaemonTarget.start(fuzzCorpus(), dir, FUZZ_PLATFORM, { ...FUZZ_PLATFORM, secureBoot: false });
    try {
      const request = {
        command: 'GetVariable' as const,
        name: utf16le('SecureBoot'),
        guid: Guids.GLOBAL_VARIABLE,
        dataSize: 1,
        atRuntime: false,
      };
      const frame = new Uint8Array(encodedRequestSize(request));
      encodeRequest(request, frame);
      const violations = await target.step({ frame, kind: 'get' });
      expect(violations.map((v) => v.invariant)).toContain('daemon-differs');
    } finally {
      await target.abort();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('regressions', () => {
  const dir = new URL('../regressions/', import.meta.url);
  const files = readdirSync(dir).filter((f) => f.endsWith('.json'));

  it.each(files)('%s replays without a violation', async (file) => {
    const recorded = JSON.parse(readFileSync(new URL(file, dir), 'utf8')) as {
      target: 'dispatch' | 'daemon';
      steps: StepRecord[];
    };
    const result = recorded.target === 'dispatch' ? replayDispatch(recorded.steps) : await replayDaemon(recorded.steps);
    expect(result).toEqual([]);
  });
});

describe('pnpm fuzz', () => {
  const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

  it('runs from the command line, reproducibly, and reports the seed', () => {
    const run = () =>
      spawnSync(process.execPath, [cli, '--target', 'dispatch', '--iterations', '200', '--seed', '5'], {
        encoding: 'utf8',
      });
    const first = run();
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout).toContain('fuzz dispatch: 200 steps, seed 5, 0 failures');
    const kinds = (out: string) => out.split('\n').find((l) => l.startsWith('  get') || l.includes(', get '));
    expect(kinds(run().stdout)).toBe(kinds(first.stdout));
  });

  it('refuses bad options with exit status 2', () => {
    const r = spawnSync(process.execPath, [cli, '--iterations', 'many'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--iterations must be a positive integer/);
  });
});
