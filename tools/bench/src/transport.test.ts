/**
 * The premise of the trace benchmarks, checked without timing anything: the daemon answers every
 * frame of both traces exactly as the in-process store did when they were recorded, and the echo
 * server echoes (and, in durable mode, writes its file for non-volatile writes only).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DaemonProcess, varstoredEntry } from '@vmsb/fuzz';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runTrace } from './client.js';
import { buildNative, xenPackageDir } from './native.js';
import { buildTrace } from './trace.js';
import { vmNvramBlob } from './vm-state.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmsb-bench-test-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function echo(args: string[], c?: string): Promise<{ stop(): Promise<void> }> {
  const child =
    c === undefined
      ? spawn(
          process.execPath,
          [fileURLToPath(new URL('../dist/echo-server.js', import.meta.url)), join(dir, 'echo.sock'), ...args],
          { stdio: ['ignore', 'pipe', 'inherit'] },
        )
      : spawn(c, [join(dir, 'echo.sock'), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
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

  it.each(['node', 'C'])(
    'the %s echo server echoes, and in durable mode writes for non-volatile SetVariable only',
    async (kind) => {
      const c = kind === 'C' ? buildNative(dir).echo : undefined;
      const read = buildTrace('read');
      const plain = await echo([], c);
      await expect(runTrace(join(dir, 'echo.sock'), read.frames, 'echo')).resolves.toBeGreaterThan(0);
      await plain.stop();

      const file = join(dir, 'durable.vars');
      const durable = await echo(['--durable', file, '--size', '4096'], c);
      await runTrace(join(dir, 'echo.sock'), read.frames.slice(0, 50), 'echo');
      expect(existsSync(file)).toBe(false);
      const boot = buildTrace('boot');
      await runTrace(join(dir, 'echo.sock'), boot.frames, 'echo');
      expect(statSync(file).size).toBe(4096);
      await durable.stop();
    },
  );
});

describe.skipIf(
  xenPackageDir() === undefined || !existsSync(join(xenPackageDir()!, 'build', 'Release', 'libvmsbfakexen.so')),
)('the Xen benchmarks replay correctly (fake hypervisor)', () => {
  const run = (command: string, args: string[], env?: NodeJS.ProcessEnv) =>
    spawnSync(command, args, { encoding: 'utf8', ...(env ? { env } : {}) });

  it('the C guest gets every expected reply from the daemon and the fixed one from the C responder, and fails on a wrong one', async () => {
    const peers = buildNative(dir).xen!;
    const trace = buildTrace('read');
    const frames = join(dir, 'frames');
    const replies = join(dir, 'replies');
    const fixed = join(dir, 'fixed');
    const wrong = join(dir, 'wrong');
    const frame28 = Buffer.alloc(32);
    frame28.writeUInt32LE(28, 0);
    await writeFile(frames, Buffer.concat(trace.frames.slice(0, 200)));
    await writeFile(replies, Buffer.concat(trace.replies.slice(0, 200)));
    await writeFile(fixed, Buffer.concat(trace.frames.slice(0, 200).map(() => frame28)));
    const altered = trace.replies.slice(0, 200).map((r) => Buffer.from(r));
    altered[150]![10]! ^= 1;
    await writeFile(wrong, Buffer.concat(altered));
    for (const [domid, server] of [
      [31, 'daemon'],
      [32, 'responder'],
    ] as const) {
      const domain = join(dir, `domain-${server}`);
      await mkdir(domain);
      expect(run(peers.guest, ['create', domain, String(domid), '1', '256']).status).toBe(0);
      await writeFile(join(domain, 'nvram.vars'), vmNvramBlob());
      const env = { ...process.env, LD_PRELOAD: peers.fakeLibrary, VMSB_FAKE_XEN: domain };
      const args =
        server === 'daemon'
          ? [
              varstoredEntry(),
              '--domain',
              String(domid),
              '--transport',
              'xen',
              '--backend',
              'file',
              '--arg',
              `path:${join(domain, 'nvram.vars')}`,
              '--arg',
              `auth-dir:${join(dir, 'no-auth')}`,
              '--platform',
              'secureboot=true',
            ]
          : [String(domid)];
      const child = spawn(server === 'daemon' ? process.execPath : peers.responder, args, { env, stdio: 'ignore' });
      try {
        const good = run(peers.guest, [
          'run',
          domain,
          String(domid),
          frames,
          server === 'daemon' ? replies : fixed,
          '--wait',
        ]);
        expect(good.status, good.stderr).toBe(0);
        expect(good.stdout.trim().split(' ')[4]).toBe('200');
        if (server === 'daemon') {
          const bad = run(peers.guest, ['run', domain, String(domid), frames, wrong]);
          expect(bad.status).toBe(1);
          expect(bad.stderr).toMatch(/call 150: the reply differs/);
        }
      } finally {
        child.kill('SIGTERM');
        await new Promise((resolve) => child.once('exit', resolve));
      }
    }
  });
});
