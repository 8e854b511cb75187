/**
 * vm-all: `varstore certs check vm:all` over a pool of 500 VMs of every kind, against @vmsb/xapi's
 * pool double (XAPI cannot run here), per UEFI VM checked, against one `varstore certs check` of
 * a single file holding the same NVRAM: the cost of a VM in a pool-wide check against the cost
 * of checking it alone.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { generatePool, startPoolDouble } from '@vmsb/xapi/testing';
import type { BenchContext } from './benches.js';
import { result, type BenchResult } from './stats.js';
import { vmNvramBlob } from './vm-state.js';

const VARSTORE = join(dirname(createRequire(import.meta.url).resolve('varstore/package.json')), 'bin', 'varstore');
const POOL_SIZE = 500;

/** Runs `varstore` to its end; resolves to the wall time in ms and the lines it printed. */
function timed(args: readonly string[], expectCodes: readonly number[]): Promise<{ ms: number; lines: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, [VARSTORE, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let lines = 0;
    let err = '';
    child.stdout.on('data', (b: Buffer) => {
      for (const c of b) if (c === 0x0a) lines++;
    });
    child.stderr.on('data', (b: Buffer) => {
      err += b.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = performance.now() - started;
      if (!expectCodes.includes(code ?? -1)) reject(new Error(`varstore ${args.join(' ')} exited ${code}: ${err}`));
      else resolve({ ms, lines });
    });
  });
}

export async function vmAll(ctx: BenchContext): Promise<BenchResult> {
  const dir = await mkdtemp(join(ctx.workDir, 'vm-all-'));
  const blob = vmNvramBlob();
  const file = join(dir, 'nvram.vars');
  await writeFile(file, blob);
  const base64 = Buffer.from(blob).toString('base64');
  const socket = join(dir, 'xapi');
  const pool = await startPoolDouble({
    socketPath: socket,
    vms: generatePool(POOL_SIZE, () => ({ 'EFI-variables': base64 })),
  });
  const subject: number[] = [];
  const base: number[] = [];
  let checked = 0;
  try {
    for (let r = 0; r < ctx.rounds; r++) {
      const order = r % 2 === 0 ? ['pool', 'file'] : ['file', 'pool'];
      for (const who of order) {
        if (who === 'pool') {
          const run = await timed(['certs', 'check', 'vm:all', '--socket', socket, '--json'], [0, 4]);
          checked = run.lines;
          subject.push(run.ms / run.lines);
        } else {
          base.push((await timed(['certs', 'check', file], [0, 4])).ms);
        }
      }
    }
  } finally {
    await pool.close();
    await rm(dir, { recursive: true, force: true });
  }
  ctx.log(`vm-all: ${ctx.rounds} rounds, ${checked} UEFI VMs checked of ${POOL_SIZE}`);
  return result({
    name: 'vm-all',
    baseline: 'certs check <file>',
    unit: 'ms',
    samples: { subject, base },
    detail: `varstore certs check vm:all over ${POOL_SIZE} VMs (${checked} UEFI guests, ${(blob.length / 1024).toFixed(1)} KiB NVRAM each) against the pool double, per VM checked, against one varstore certs check of a file holding the same NVRAM (both spawned)`,
  });
}
