/**
 * `pnpm package --measure`: start-up and memory of the packaged daemon, from the unpacked tarball,
 * against the same runtime doing nothing, measured in the same run (BENCHMARKS.md, "Package").
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './build.js';
import { PlainRunner, type Runner, type RunningDaemon, startDaemon } from './check.js';

export interface MeasureOptions {
  readonly tarball: string;
  readonly rounds?: number;
  readonly daemons?: number;
  /** Lines for node-flags to compare (the first is what the package ships). */
  readonly variants?: readonly string[];
  readonly log?: (line: string) => void;
}

export interface MemoryResult {
  readonly flags: string;
  /** Mean PSS per daemon after a boot, KiB. */
  readonly pssKiB: number;
  readonly rssKiB: number;
  /** Median time of the guest boot (the first for each daemon). */
  readonly bootMs: number;
}

export interface MeasureResult {
  readonly startupMs: number;
  readonly nodeStartupMs: number;
  readonly checkoutStartupMs: number;
  readonly bareNodePssKiB: number;
  readonly memory: readonly MemoryResult[];
  readonly tarballBytes: number;
  readonly unpackedBytes: number;
}

export async function measurePackage(options: MeasureOptions): Promise<MeasureResult> {
  const log = options.log ?? (() => {});
  const rounds = options.rounds ?? 9;
  const count = options.daemons ?? 10;
  const scratch = mkdtempSync(join(tmpdir(), 'vmsb-measure-'));
  try {
    const root = join(scratch, 'root');
    mkdirSync(root);
    execFileSync('tar', ['-xzf', options.tarball, '-C', root]);
    const unpackedBytes = Number(execFileSync('du', ['-sb', root], { encoding: 'utf8' }).split('\t')[0]);
    const tarballBytes = Number(execFileSync('stat', ['-c', '%s', options.tarball], { encoding: 'utf8' }).trim());
    const node = join(root, 'usr/lib/vmsb/bin/node');
    const varstored = join(root, 'usr/sbin/varstored');
    const varstore = join(root, 'usr/bin/varstore');
    const flagsFile = join(root, 'usr/lib/vmsb/node-flags');
    const shipped = readFileSync(flagsFile, 'utf8');
    const runner = new PlainRunner(scratch);
    const authDir = join(scratch, 'no-auth');
    mkdirSync(authDir);

    // An enrolled NVRAM: a first boot, then the Microsoft and own keys (as a Windows-ready VM).
    const template = join(scratch, 'template.vars');
    const first = await startDaemon(runner, varstored, scratch, 'first', template, authDir, []);
    await first.boot();
    await first.stop();
    execFileSync(varstore, ['keys', 'create', '--out', join(scratch, 'keys')], { cwd: scratch, stdio: 'pipe' });
    const k = (f: string) => join(scratch, 'keys', f);
    execFileSync(
      varstore,
      ['enroll', template, '--pk', k('PK.auth'), '--kek', k('KEK.der'), '--db', k('db.der')].concat([
        '--microsoft-kek',
        'all',
        '--microsoft-db',
        'all',
        '--dbx',
        'bundled',
        '--no-backup',
      ]),
      { cwd: scratch, stdio: 'pipe' },
    );
    const enforcing = ['--platform', 'secureboot=true'];

    // Start-up: spawn → ready (pidfile) against spawn → exit of `node -e 0`, alternating.
    // The checkout's daemon (dist/cli.js and its node_modules) under the same runtime, for comparison.
    const checkout = [node, join(REPO_ROOT, 'apps/varstored/dist/cli.js')];
    const checkoutRunner: Runner = {
      run: (c) => runner.run([...checkout, ...c.slice(1)]),
      spawn: (c) => runner.spawn([...checkout, ...c.slice(1)]),
    };
    const starts: number[] = [];
    const nodes: number[] = [];
    const checkoutStarts: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const t0 = performance.now();
      await exitOf(spawn(node, ['-e', '0'], { stdio: 'ignore' }));
      nodes.push(performance.now() - t0);
      const nv = join(scratch, 'start.vars');
      copyFileSync(template, nv);
      const d = await startDaemon(runner, varstored, scratch, 'start', nv, authDir, enforcing);
      starts.push(d.startMs);
      await d.stop();
      copyFileSync(template, nv);
      const c = await startDaemon(checkoutRunner, varstored, scratch, 'start', nv, authDir, enforcing);
      checkoutStarts.push(c.startMs);
      await c.stop();
    }
    const checkoutStartupMs = median(checkoutStarts);
    const startupMs = median(starts);
    const nodeStartupMs = median(nodes);
    log(
      `startup: ${startupMs.toFixed(1)} ms against node -e 0 ${nodeStartupMs.toFixed(1)} ms (${(startupMs / nodeStartupMs).toFixed(2)}x); the checkout's dist/cli.js ${checkoutStartupMs.toFixed(1)} ms`,
    );

    // Bare runtime: what a node that only waits costs, the same count at once.
    const bare: ChildProcess[] = [];
    for (let i = 0; i < count; i++) bare.push(spawn(node, ['-e', 'setInterval(() => {}, 1e9)'], { stdio: 'ignore' }));
    await new Promise((r) => setTimeout(r, 1500));
    const bareNodePssKiB = mean(bare.map((c) => smaps(c.pid!).pss));
    for (const c of bare) c.kill('SIGKILL');
    log(`bare node: ${(bareNodePssKiB / 1024).toFixed(1)} MiB PSS each (${count} at once)`);

    const memory: MemoryResult[] = [];
    for (const flags of options.variants ?? ['']) {
      writeFileSync(flagsFile, `${shipped}${flags ? `varstored ${flags}\n` : ''}`);
      const daemons: RunningDaemon[] = [];
      try {
        for (let i = 0; i < count; i++) {
          const nv = join(scratch, `vm${i}.vars`);
          copyFileSync(template, nv);
          daemons.push(await startDaemon(runner, varstored, scratch, `vm${i}`, nv, authDir, enforcing));
        }
        const boots: number[] = [];
        for (const d of daemons) {
          const t0 = performance.now();
          const report = await d.boot();
          boots.push(performance.now() - t0);
          if (report.secureBoot !== 1)
            throw new Error(`Secure Boot is not enforcing (SecureBoot=${report.secureBoot})`);
        }
        const m = daemons.map((d) => smaps(d.child.pid!));
        const result = {
          flags: flags || '(none)',
          pssKiB: mean(m.map((x) => x.pss)),
          rssKiB: mean(m.map((x) => x.rss)),
          bootMs: median(boots),
        };
        memory.push(result);
        log(
          `memory, flags ${result.flags}: ${(result.pssKiB / 1024).toFixed(1)} MiB PSS per daemon (${count} daemons after a boot; RSS ${(result.rssKiB / 1024).toFixed(1)} MiB; a boot took ${result.bootMs.toFixed(0)} ms, median)`,
        );
        for (const d of daemons) await d.stop();
      } finally {
        for (const d of daemons) d.kill();
      }
    }
    writeFileSync(flagsFile, shipped);
    return { startupMs, nodeStartupMs, checkoutStartupMs, bareNodePssKiB, memory, tarballBytes, unpackedBytes };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

function smaps(pid: number): { pss: number; rss: number } {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? Number.NaN);
  return { pss: field('Pss'), rss: field('Rss') };
}

function exitOf(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) =>
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`exit ${code}`)))),
  );
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function mean(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}
