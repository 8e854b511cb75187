import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { lockPidfile, PidfileLocked } from './pidfile.js';

const hostModule = join(dirname(createRequire(import.meta.url).resolve('@vmsb/xen/package.json')), 'dist', 'host.js');

let dir: string;
const children: ChildProcess[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmsb-pidfile-'));
});
afterEach(async () => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

/**
 * Another process reads `path` and asks who holds its lockf() lock. Not this one: fcntl locks belong
 * to the process, and closing any descriptor of the file (a readFileSync) would drop them.
 */
async function inspect(path: string): Promise<{ holder: string; content: string }> {
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const h = await import(${JSON.stringify(hostModule)}); const fs = await import('node:fs'); const content = fs.readFileSync(${JSON.stringify(path)}, 'utf8'); const a = h.lockFile(${JSON.stringify(path)}, { create: false }); console.log(JSON.stringify({ holder: a.ok ? 'free' : String(a.heldBy), content })); process.exit(0);`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  children.push(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise((ok) => child.once('exit', ok));
  return JSON.parse(out) as { holder: string; content: string };
}

/** Another process holding the lockf() lock of `path` (created), until killed. */
async function holdLock(path: string): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const h = await import(${JSON.stringify(hostModule)}); const a = h.lockFile(${JSON.stringify(path)}, { create: true }); console.log(a.ok); setInterval(() => {}, 1000);`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  children.push(child);
  const line = await new Promise<string>((ok) => child.stdout!.once('data', (d: Buffer) => ok(d.toString().trim())));
  expect(line).toBe('true');
  return child;
}

describe('lockPidfile', () => {
  it('prepares a locked private file beside the path holding "<pid>\\n"; the pidfile appears only at publish, still locked', async () => {
    const path = join(dir, 'varstored.pid');
    const lock = await lockPidfile(path);
    expect(readdirSync(dir)).toHaveLength(1);
    const [temp] = readdirSync(dir);
    expect(temp).toMatch(/^\.varstored\.pid\.[0-9a-f]{12}$/);
    expect(statSync(join(dir, temp!)).mode & 0o777).toBe(0o600);
    expect(await inspect(join(dir, temp!))).toEqual({ holder: String(process.pid), content: `${process.pid}\n` });

    lock.publish();
    expect(readdirSync(dir)).toEqual(['varstored.pid']);
    expect(await inspect(path)).toEqual({ holder: String(process.pid), content: `${process.pid}\n` });

    lock.release();
    expect(readdirSync(dir)).toEqual([]);
  });

  it('replaces at publish a stale pidfile that appeared after the start (nobody holds its lock)', async () => {
    const path = join(dir, 'varstored.pid');
    const lock = await lockPidfile(path);
    writeFileSync(path, '4194304\n');
    lock.publish();
    expect(await inspect(path)).toEqual({ holder: String(process.pid), content: `${process.pid}\n` });
    expect(readdirSync(dir)).toEqual(['varstored.pid']);
    lock.release();
    expect(readdirSync(dir)).toEqual([]);
  });

  it('refuses at publish a pidfile that a live daemon locked after the start, naming it, and leaves it alone', async () => {
    const path = join(dir, 'varstored.pid');
    const lock = await lockPidfile(path);
    const holder = await holdLock(path);
    expect(() => lock.publish()).toThrow(PidfileLocked);
    expect(() => lock.publish()).toThrow(
      `Failed to publish pidfile '${path}': it is held by another varstored (pid ${holder.pid})`,
    );
    expect(lock.published).toBe(false);
    lock.release();
    expect(readdirSync(dir)).toEqual(['varstored.pid']);
    expect(await inspect(path)).toEqual({ holder: String(holder.pid), content: '' });
  });

  it('release before readiness removes the temporary file and publishes nothing', async () => {
    const path = join(dir, 'varstored.pid');
    const lock = await lockPidfile(path);
    expect(readdirSync(dir)).toEqual([expect.stringMatching(/^\.varstored\.pid\./)]);
    lock.release();
    lock.publish();
    expect(readdirSync(dir)).toEqual([]);
  });
});
