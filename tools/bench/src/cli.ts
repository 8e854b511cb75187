/**
 * pnpm bench [read-trace|boot-trace|dispatch|auth-verify|worst-request|startup|rss|durable-write|vm-all|xen-trace|
 *             startup-xen|footprint|boot-storm ...] [--rounds N] [--json FILE] [--profile DIR]
 *            [--node-flags "FLAGS"]
 * Runs the benchmarks (all but boot-storm by default) pinned to CPU 0 — this runner and every
 * process it starts (daemons, echo servers, bare node) — and prints `bench <name>: <ratio>x
 * <baseline>` with the medians for each. `--profile DIR` writes a CPU profile of every daemon the
 * unix trace benchmarks start; `--node-flags` passes node/V8 options to every daemon (default:
 * those of the launcher, apps/varstored/bin/node-flags; confined daemons start through bin/varstored).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { cpus, release } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  authVerify,
  bootTrace,
  dispatch,
  durableWrite,
  readTrace,
  startup,
  workDirectory,
  type BenchContext,
} from './benches.js';
import { buildNative, launcherNodeFlags } from './native.js';
import { vmAll } from './pool.js';
import { format, type BenchResult } from './stats.js';
import { worstRequest } from './worst-request.js';
import { bootStorm, footprint, startupXen, xenTrace, type XenContext } from './xen.js';

const ALL = [
  'read-trace',
  'boot-trace',
  'dispatch',
  'auth-verify',
  'worst-request',
  'startup',
  'rss',
  'durable-write',
  'vm-all',
  'xen-trace',
  'startup-xen',
  'footprint',
  'boot-storm',
] as const;
type Name = (typeof ALL)[number];
/** Run only when named: it loads both CPUs for a while. */
const ON_REQUEST: readonly Name[] = ['boot-storm'];

function parse(argv: readonly string[]): {
  names: Name[];
  rounds: number;
  json?: string;
  profile?: string;
  nodeFlags: string[] | undefined;
} {
  const names: Name[] = [];
  let rounds = 9;
  let json: string | undefined;
  let profile: string | undefined;
  let nodeFlags: string[] | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') continue;
    if (a === '--rounds') rounds = Number(argv[++i]);
    else if (a.startsWith('--rounds=')) rounds = Number(a.slice(9));
    else if (a === '--json') json = argv[++i];
    else if (a.startsWith('--json=')) json = a.slice(7);
    else if (a === '--profile') profile = resolve(argv[++i] ?? '.');
    else if (a.startsWith('--profile=')) profile = resolve(a.slice(10));
    else if (a === '--node-flags') nodeFlags = (argv[++i] ?? '').split(/\s+/).filter(Boolean);
    else if (a.startsWith('--node-flags=')) nodeFlags = a.slice(13).split(/\s+/).filter(Boolean);
    else if ((ALL as readonly string[]).includes(a)) names.push(a as Name);
    else throw new Error(`unknown benchmark or option '${a}' (benchmarks: ${ALL.join(', ')})`);
  }
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds must be a positive integer');
  return {
    names: names.length > 0 ? names : ALL.filter((n) => !ON_REQUEST.includes(n)),
    rounds,
    nodeFlags,
    ...(json !== undefined ? { json } : {}),
    ...(profile !== undefined ? { profile } : {}),
  };
}

/**
 * Node's environment variables, which xenopsd does not set and the launchers drop
 * (apps/varstored/bin/varstored, tools/package/launcher.sh). Every process of a run (the daemons,
 * `node -e 0`, the waiting nodes) starts without them: NODE_EXTRA_CA_CERTS alone makes every node
 * parse a CA bundle at start-up, which costs a bare node more time and memory than it spends on
 * anything else and would inflate both sides of the start-up and footprint ratios.
 */
function dropNodeVariables(): void {
  for (const key of Object.keys(process.env)) if (key.startsWith('NODE_')) delete process.env[key];
}

/** Re-runs this script under `taskset -c 0` unless it already runs pinned. */
function pinned(): boolean {
  dropNodeVariables();
  if (process.env.VMSB_BENCH_PINNED === '1') return true;
  const probe = spawnSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' });
  if (probe.status !== 0) {
    process.stderr.write('bench: taskset is unavailable; running unpinned (results will vary more)\n');
    return true;
  }
  const r = spawnSync(
    'taskset',
    ['-c', '0', process.execPath, fileURLToPath(import.meta.url), ...process.argv.slice(2)],
    {
      stdio: 'inherit',
      env: { ...process.env, VMSB_BENCH_PINNED: '1' },
    },
  );
  process.exit(r.status ?? 1);
}

function cpuList(): string {
  try {
    return /^Cpus_allowed_list:\s*(.+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '?';
  } catch {
    return '?';
  }
}

async function main(): Promise<number> {
  let options: ReturnType<typeof parse>;
  try {
    options = parse(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`bench: ${(e as Error).message}\n`);
    return 2;
  }
  if (!pinned()) return 1;
  const work = await workDirectory();
  const log = (line: string): void => void process.stderr.write(`  … ${line}\n`);
  const peers = buildNative(work.path);
  const ctx: BenchContext = {
    rounds: options.rounds,
    workDir: work.path,
    log,
    cEcho: peers.echo,
    daemonNodeArgs: options.nodeFlags ?? launcherNodeFlags(),
    ...(options.profile !== undefined ? { profileDir: options.profile } : {}),
  };
  const cpu = cpus();
  const machine = `${cpu.length} × ${cpu[0]?.model.trim() ?? 'CPU'}, Linux ${release()}, Node ${process.version}, CPUs allowed: ${cpuList()}, work dir on ${work.filesystem}`;
  process.stdout.write(
    `# vmsb benchmarks, ${new Date().toISOString().slice(0, 10)}: ${machine}; daemon node flags: ${ctx.daemonNodeArgs.join(' ') || 'none'}\n`,
  );
  const results: BenchResult[] = [];
  const emit = (r: BenchResult): void => {
    results.push(r);
    process.stdout.write(format(r));
  };
  try {
    const wants = new Set(options.names);
    if (wants.has('read-trace')) emit(await readTrace(ctx));
    if (wants.has('boot-trace') || wants.has('rss')) {
      const b = await bootTrace(ctx);
      if (wants.has('boot-trace')) emit(b.trace);
      if (wants.has('rss')) emit(b.rss);
    }
    if (wants.has('dispatch')) for (const r of dispatch(ctx)) emit(r);
    if (wants.has('auth-verify')) emit(authVerify(ctx));
    if (wants.has('worst-request')) emit(worstRequest(ctx));
    if (wants.has('startup')) emit(await startup(ctx));
    if (wants.has('durable-write')) emit(await durableWrite(ctx, work.filesystem));
    if (wants.has('vm-all')) emit(await vmAll(ctx));
    const xenNames: Name[] = ['xen-trace', 'startup-xen', 'footprint', 'boot-storm'];
    if (xenNames.some((n) => wants.has(n))) {
      if (peers.xen === undefined) {
        process.stdout.write(`# xen-trace, startup-xen, footprint, boot-storm skipped: ${peers.xenMissing}\n`);
      } else {
        const xctx: XenContext = { ...ctx, peers: peers.xen };
        if (wants.has('xen-trace')) for (const r of await xenTrace(xctx)) emit(r);
        if (wants.has('startup-xen')) for (const r of await startupXen(xctx)) emit(r);
        if (wants.has('footprint')) for (const r of await footprint(xctx)) emit(r);
        if (wants.has('boot-storm')) for (const r of await bootStorm(xctx)) emit(r);
      }
    }
  } finally {
    await work.remove();
  }
  if (options.json !== undefined) {
    await writeFile(options.json, `${JSON.stringify({ date: new Date().toISOString(), machine, results }, null, 1)}\n`);
  }
  return 0;
}

// Interrupted: exit through process.exit so that the servers this run started are killed too.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`bench: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
