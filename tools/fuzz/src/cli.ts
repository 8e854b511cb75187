/**
 * pnpm fuzz [--iterations N] [--seed S] [--target dispatch|daemon|both] [--reset-every N]
 *           [--max-failures N] [--out DIR] [--verbose]
 * pnpm fuzz --cost [--iterations N] [--seed S]: searches for the costliest requests instead (time
 * per dispatch, generated frames then mutations of the costliest) and prints them.
 * Runs the fuzzer; the same seed and iterations replay the same run. Each failure is written as a
 * JSON file of the steps that reproduce it (`replayDispatch` / `replayDaemon`, or copy it into
 * tools/fuzz/regressions/ to make it a regression test). Exit 1 when an invariant broke.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fuzz, type FuzzFailure, type FuzzReport, type FuzzTargetName } from './fuzz.js';
import { parseSeed } from './random.js';
import { costSearch } from './cost.js';

const USAGE =
  'usage: fuzz [--iterations N] [--seed S] [--target dispatch|daemon|both] [--reset-every N] [--max-failures N] [--out DIR] [--verbose]\n' +
  '       fuzz --cost [--iterations N] [--seed S]\n';

interface CliOptions {
  iterations: number;
  seed: number;
  targets: FuzzTargetName[];
  resetEvery?: number;
  maxFailures: number;
  out: string;
  verbose: boolean;
  cost: boolean;
}

function parse(argv: readonly string[]): CliOptions | 'help' {
  const o: CliOptions = {
    iterations: 10_000,
    seed: (Date.now() ^ (process.pid << 16)) >>> 0,
    targets: ['dispatch', 'daemon'],
    maxFailures: 1,
    out: join(tmpdir(), 'vmsb-fuzz-failures'),
    verbose: false,
    cost: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i]!;
    if (token === '--') continue;
    const eq = token.indexOf('=');
    const name = eq === -1 ? token : token.slice(0, eq);
    const value = (): string => {
      const v = eq === -1 ? argv[++i] : token.slice(eq + 1);
      if (v === undefined) throw new Error(`${name} needs a value`);
      return v;
    };
    const count = (what: string): number => {
      const v = value();
      if (!/^\d+$/.test(v) || Number(v) < 1) throw new Error(`${what} must be a positive integer, got '${v}'`);
      return Number(v);
    };
    switch (name) {
      case '--iterations':
        o.iterations = count('--iterations');
        break;
      case '--seed':
        o.seed = parseSeed(value());
        break;
      case '--target': {
        const t = value();
        if (t === 'both') o.targets = ['dispatch', 'daemon'];
        else if (t === 'dispatch' || t === 'daemon') o.targets = [t];
        else throw new Error(`--target must be dispatch, daemon or both, got '${t}'`);
        break;
      }
      case '--reset-every':
        o.resetEvery = count('--reset-every');
        break;
      case '--max-failures':
        o.maxFailures = count('--max-failures');
        break;
      case '--out':
        o.out = resolve(value());
        break;
      case '--cost':
        o.cost = true;
        break;
      case '--verbose':
      case '-v':
        o.verbose = true;
        break;
      case '--help':
      case '-h':
        return 'help';
      default:
        throw new Error(`unknown option '${token}'`);
    }
  }
  return o;
}

function summary(report: FuzzReport, verbose: boolean): string {
  const secs = report.elapsedMs / 1000;
  const kinds = Object.entries(report.kinds).sort((a, b) => b[1] - a[1]);
  const lines = [
    `fuzz ${report.target}: ${report.iterations} steps, seed ${report.seed}, ${report.failures.length} failure${report.failures.length === 1 ? '' : 's'} ` +
      `(${secs.toFixed(1)} s, ${(report.iterations / Math.max(secs, 1e-9)).toFixed(0)} steps/s)`,
  ];
  if (verbose) {
    for (const [kind, n] of kinds) {
      const byStatus = Object.entries(report.statuses[kind] ?? {})
        .sort((a, b) => b[1] - a[1])
        .map(([s, c]) => `${s} ${c}`)
        .join(', ');
      lines.push(`  ${kind.padEnd(20)} ${String(n).padStart(7)}  ${byStatus}`);
    }
  } else {
    lines.push(`  ${kinds.map(([k, n]) => `${k} ${n}`).join(', ')}`);
  }
  return `${lines.join('\n')}\n`;
}

async function saveFailure(dir: string, failure: FuzzFailure): Promise<string> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, `${failure.target}-seed${failure.seed}-step${failure.iteration}.json`);
  const body = {
    description: `${failure.violations.map((v) => v.invariant).join(', ')} at step ${failure.iteration} of a ${failure.target} run with seed ${failure.seed}`,
    target: failure.target,
    violations: failure.violations,
    steps: failure.steps,
  };
  await writeFile(path, `${JSON.stringify(body, null, 1)}\n`);
  return path;
}

async function main(argv: readonly string[]): Promise<number> {
  let options: CliOptions | 'help';
  try {
    options = parse(argv);
  } catch (e) {
    process.stderr.write(`fuzz: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (options === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  if (options.cost) {
    process.stdout.write(
      `fuzz cost: ${options.iterations} generated frames + as many mutations, seed ${options.seed}\n`,
    );
    const { searched, costliest } = costSearch({ seed: options.seed, iterations: options.iterations });
    process.stdout.write(
      `fuzz cost: ${searched} frames dispatched; the costliest (µs per dispatch on a fresh store, fastest of 5):\n`,
    );
    for (const c of costliest)
      process.stdout.write(
        `  ${String(c.cpuMicros).padStart(8)} µs  ${c.status.padEnd(20)} ${c.frame.length} bytes  ${c.kind}\n`,
      );
    return 0;
  }
  let failed = false;
  for (const target of options.targets) {
    process.stdout.write(`fuzz ${target}: ${options.iterations} steps, seed ${options.seed}\n`);
    const report = await fuzz({
      target,
      seed: options.seed,
      iterations: options.iterations,
      maxFailures: options.maxFailures,
      ...(options.resetEvery !== undefined ? { resetEvery: options.resetEvery } : {}),
      log: (line) => process.stdout.write(`  ${line}\n`),
    });
    process.stdout.write(summary(report, options.verbose));
    for (const failure of report.failures) {
      failed = true;
      const path = await saveFailure(options.out, failure);
      process.stdout.write(
        `FAIL ${target} step ${failure.iteration} (seed ${failure.seed}); steps to reproduce: ${path}\n`,
      );
      for (const v of failure.violations)
        process.stdout.write(`  ${v.invariant}: ${v.detail.split('\n').slice(0, 12).join('\n    ')}\n`);
    }
  }
  return failed ? 1 : 0;
}

// Interrupted: exit through process.exit so that the daemons this run started are killed too.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`fuzz: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
