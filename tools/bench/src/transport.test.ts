/**
 * The premise of the trace benchmarks, checked without timing anything: the daemon answers every
 * frame of both traces exactly as the in-process store did when they were recorded, and the echo
 * server echoes (and, in durable mode, writes its file for non-volatile writes only).
 */
import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DaemonProcess } from '@vmsb/fuzz';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runTrace } from './client.js';
import { buildTrace } from './trace.js';
import { vmNvramBlob } from './vm-state.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmsb-bench-test-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function echo(args: string[]): Promise<{ stop(): Promise<void> }> {
  const child = spawn(
    process.execPath,
    [fileURLToPath(new URL('../dist/echo-server.js', import.meta.url)), join(dir, 'echo.sock'), ...args],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
  return {
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

describe('the trace benchmarks replay correctly', () => {
  it.each(['read', 'boot'] as const)('the daemon answers every frame of the %s trace as recorded', async (kind) => {
    const trace = buildTrace(kind);
    await writeFile(join(dir, 'nvram.vars'), vmNvramBlob());
    const daemon = await DaemonProcess.start({ dir });
    try {
      await expect(runTrace(daemon.socketPath, trace.frames, trace.replies)).resolves.toBeGreaterThan(0);
      expect(await daemon.stop()).toEqual({ code: 0, signal: null });
    } finally {
      await daemon.kill();
    }
  });

  it('a reply that differs fails the run', async () => {
    const trace = buildTrace('read');
    await writeFile(join(dir, 'nvram.vars'), vmNvramBlob());
    const daemon = await DaemonProcess.start({ dir });
    try {
      const wrong = [...trace.replies];
      wrong[10] = Buffer.from(wrong[10]!).fill(0, 4);
      await expect(runTrace(daemon.socketPath, trace.frames, wrong)).rejects.toThrow(/frame 10/);
    } finally {
      await daemon.kill();
    }
  });

  it('the echo server echoes, and in durable mode writes for non-volatile SetVariable only', async () => {
    const read = buildTrace('read');
    const plain = await echo([]);
    await expect(runTrace(join(dir, 'echo.sock'), read.frames, 'echo')).resolves.toBeGreaterThan(0);
    await plain.stop();

    const file = join(dir, 'durable.vars');
    const durable = await echo(['--durable', file, '--size', '4096']);
    await runTrace(join(dir, 'echo.sock'), read.frames.slice(0, 50), 'echo');
    expect(existsSync(file)).toBe(false);
    const boot = buildTrace('boot');
    await runTrace(join(dir, 'echo.sock'), boot.frames, 'echo');
    expect(statSync(file).size).toBe(4096);
    await durable.stop();
  });
});
