/**
 * Once the guest has gone quiet the daemon gives back the memory a boot left behind (main.ts,
 * IDLE_TRIM_MS): the built daemon serves a boot and a burst of large writes, and its private memory,
 * read from outside in /proc/<pid>/smaps_rollup, drops once it has logged the trim.
 */
import { readFileSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Attributes, runOvmfBoot } from '@vmsb/guest-sim';
import { EfiStatus, guidFromText } from '@vmsb/protocol';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { IDLE_TRIM_MS, IDLE_TRIM_REQUESTS } from '../main.js';
import { Daemon, guest, until } from './harness.js';

const VENDOR = guidFromText('0b7d1e55-2c4f-4f0e-8d3a-61c9a8e2f4b7')!;
const TRIMMED = 'debug: Idle: memory returned';
const NOBODY = 65534;
const isRoot = process.getuid?.() === 0;

let dir: string;
const daemons: Daemon[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmsb-idle-'));
});
afterEach(async () => {
  for (const d of daemons.splice(0)) await d.stop('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

/** Private memory (clean + dirty) of a process, in KiB. */
function privateKib(pid: number): number {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kib = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB$`, 'm').exec(text)![1]);
  return kib('Private_Clean') + kib('Private_Dirty');
}

const count = (text: string, needle: string): number => text.split(needle).length - 1;

/** Serves a guest through the built daemon (in the sandbox or not); its private memory drops once it is quiet. */
async function trimsWhenQuiet(sandboxed: boolean): Promise<void> {
  const socket = join(dir, 'sock');
  let pidfile = join(dir, 'varstored.pid');
  let nvram = join(dir, 'nvram.vars');
  const extra: string[] = [];
  if (sandboxed) {
    // As the sandbox tests (sandbox.test.ts): a chroot owned by nobody, a sticky directory for the pidfile.
    const root = join(dir, 'root');
    await mkdir(root, { mode: 0o755 });
    await chown(root, NOBODY, NOBODY);
    const run = join(dir, 'run');
    await mkdir(run);
    await chmod(run, 0o1777);
    pidfile = join(run, 'varstored.pid');
    nvram = '/nvram.vars';
    extra.push('--chroot', root, '--uid', String(NOBODY), '--gid', String(NOBODY), '--depriv');
  }
  const d = Daemon.spawn([
    '--domain',
    '1',
    '--transport',
    `unix:${socket}`,
    '--backend',
    'file',
    '--arg',
    `path:${nvram}`,
    '--pidfile',
    pidfile,
    '--arg',
    `auth-dir:${join(dir, 'auth')}`,
    '--log-level',
    'debug',
    ...extra,
  ]);
  daemons.push(d);
  await d.ready(pidfile);
  const g = await guest(socket);

  // Large volatile writes and reads (boot-time services: volatile writes end at ExitBootServices),
  // then an OVMF boot: request copies and answers that the heaps keep once freed.
  const value = new Uint8Array(30 * 1024).fill(0x5a);
  const burst = async (): Promise<void> => {
    for (let i = 0; i < 300; i++) {
      const ref = { name: `Scratch${i % 2}`, guid: VENDOR };
      const set = await g.fw.setVariable(ref, Attributes.BS_RT, value);
      if (set !== EfiStatus.SUCCESS) throw new Error(`${set}: ${d.output}`);
      expect((await g.fw.readVariable(ref))?.data.length).toBe(value.length);
    }
    await runOvmfBoot(g.fw);
  };

  // The figure before must be taken before the daemon can have trimmed: well within IDLE_TRIM_MS of
  // its last answer (on a machine stalled for longer, the burst is repeated; this bounds nothing).
  let before = 0;
  let trimsBefore = 0;
  for (let attempt = 0; before === 0; attempt++) {
    expect(attempt).toBeLessThan(10);
    await burst();
    const answered = performance.now();
    trimsBefore = count(d.output, TRIMMED);
    const kib = privateKib(d.pid);
    if (performance.now() - answered < IDLE_TRIM_MS / 4) before = kib;
  }
  await until(() => count(d.output, TRIMMED) > trimsBefore, 'the trim after the burst');
  const after = privateKib(d.pid);
  expect({ before, after, dropped: before - after >= 2048 }).toEqual({ before, after, dropped: true });

  // The guest comes back: it is served, and a new quiet period gives memory back again.
  const trims = count(d.output, TRIMMED);
  for (let i = 0; i < IDLE_TRIM_REQUESTS; i++) {
    expect((await g.fw.readVariable({ name: 'Scratch0', guid: VENDOR }))?.data.length).toBe(value.length);
  }
  await until(() => count(d.output, TRIMMED) > trims, 'the trim after the guest came back');
  await g.close();
  expect(await d.stop()).toEqual({ code: 0, signal: null });
  expect(d.stderr).not.toMatch(/^error:/m);
}

it('gives memory back once the guest has gone quiet, once per quiet period', async () => {
  await trimsWhenQuiet(false);
});

it.skipIf(!isRoot)(
  'gives memory back inside the --depriv sandbox (root only: namespaces, chroot and set*id need root), under the seccomp filter',
  async () => {
    await trimsWhenQuiet(true);
  },
);
