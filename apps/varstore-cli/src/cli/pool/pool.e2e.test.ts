/**
 * `vm:all`, `restore` and `pool certs` of the built `varstore`, spawned as users run it, against
 * @vmsb/xapi's pool double (a real XML-RPC server on a Unix socket standing in for XAPI, which
 * cannot run here), with a pool of a few hundred VMs of every kind.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeUefiCertificates } from '@vmsb/xapi';
import { generatePool, startPoolDouble, type PoolDouble, type PoolVmKind } from '@vmsb/xapi/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { poolFixtures, writeAuthFiles, type PoolFixtures } from '../testing/pool.js';
import { assertBuilt, BIN, varstore } from '../testing/support.js';

vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

let work: string;
let fixtures: PoolFixtures;
let keys: { auth: string[]; pkKey: string };
let pool: PoolDouble | undefined;
let n = 0;

function dir(): string {
  const d = join(work, `t${++n}`);
  mkdirSync(d);
  return d;
}

beforeAll(async () => {
  assertBuilt();
  work = mkdtempSync(join(tmpdir(), 'vmsb-pool-'));
  fixtures = await poolFixtures();
  keys = writeAuthFiles(fixtures.set2011, join(work, 'keys'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));
afterEach(async () => {
  await pool?.close();
  pool = undefined;
});

/** Every third VM with NVRAM needs the 2023 update, the others have it. */
function needsUpdate(index: number): boolean {
  return index % 3 === 0;
}

async function startPool(count: number, d: string): Promise<{ socket: string; kinds: Map<string, PoolVmKind> }> {
  const specs = generatePool(count, (i) => ({
    'EFI-variables': needsUpdate(i) ? fixtures.needsUpdate : fixtures.upToDate,
  }));
  const socket = join(d, 'xapi');
  pool = await startPoolDouble({ socketPath: socket, vms: specs });
  const kinds = new Map<string, PoolVmKind>();
  for (const [i, vm] of [...pool.vms.values()].entries()) kinds.set(vm.uuid, specs[i]!.kind);
  return { socket, kinds };
}

interface Line {
  vm: string;
  name: string;
  power_state: string;
  result: string;
  reason: string | null;
  [field: string]: unknown;
}

/** NDJSON: every line of stdout is one JSON object. */
function ndjson(stdout: string): Line[] {
  expect(stdout.endsWith('\n')).toBe(true);
  return stdout
    .slice(0, -1)
    .split('\n')
    .map((line) => JSON.parse(line) as Line);
}

const nvramOf = (uuid: string) => pool!.vm(uuid).nvram.get('EFI-variables');

describe('vm:all selects the UEFI guests of the pool', () => {
  it('certs check: one VM.get_all_records, every kind classified, NDJSON per VM, exit 4', async () => {
    const d = dir();
    const { socket, kinds } = await startPool(300, d);
    const r = await varstore(['certs', 'check', 'vm:all', '--socket', socket, '--json']);
    expect(r.code).toBe(4);
    const lines = ndjson(r.stdout);
    const uefi = [...kinds].filter(([, k]) => k.startsWith('uefi-')).map(([uuid]) => uuid);
    expect(lines.map((l) => l.vm).sort()).toEqual(uefi.sort());
    for (const l of lines) {
      const kind = kinds.get(l.vm)!;
      const index = [...pool!.vms.values()].findIndex((v) => v.uuid === l.vm);
      const expected =
        kind === 'uefi-never-booted' ? 'update_ok' : needsUpdate(index) ? 'update_required' : 'update_ok';
      expect([l.name, l.result]).toEqual([l.name, expected]);
      expect(Object.keys(l)).toEqual([
        'vm',
        'name',
        'power_state',
        'store',
        'certificates',
        'missing',
        'result',
        'reason',
      ]);
      expect(l.power_state).toBe(pool!.vm(l.vm).powerState);
    }
    // A check reads the pool once and changes nothing.
    expect(pool!.calls.map((c) => c.method).sort()).toEqual([
      'VM.get_all_records',
      'session.login_with_password',
      'session.logout',
    ]);
    expect(pool!.sessions.size).toBe(0);
  });

  it('status: XAPI readiness words per VM; people get a line per VM and a summary table', async () => {
    const d = dir();
    const { socket } = await startPool(60, d);
    const json = ndjson((await varstore(['status', 'vm:all', '--socket', socket, '--json'])).stdout);
    expect(new Set(json.map((l) => l.result))).toEqual(new Set(['ready_no_dbx', 'first_boot']));
    expect(json.every((l) => l.readiness === l.result)).toBe(true);
    const human = await varstore(['status', 'vm:all', '--socket', socket]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^[✓!x·] ready_no_dbx +uefi-halted-\d+ {2}vm:[0-9a-f-]{36} {2}halted/m);
    expect(human.stdout).toMatch(/\d+ UEFI VMs of 60 in the pool/);
    expect(human.stdout).toMatch(/^ {2}! ready_no_dbx +\d+$/m);
  });

  it('XAPI that cannot be reached is exit 3, naming the socket', async () => {
    const d = dir();
    const r = await varstore(['certs', 'check', 'vm:all', '--socket', join(d, 'none')]);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`cannot reach XAPI at ${join(d, 'none')}`);
    expect((await varstore(['certs', 'check', 'vm:all', 'x.vars'])).code).toBe(2);
  });
});

describe('certs update vm:all writes only halted VMs', () => {
  it('updates halted VMs, skips the others, backs up first, and restores byte for byte', async () => {
    const d = dir();
    const { socket, kinds } = await startPool(240, d);
    const before = new Map([...pool!.vms.values()].map((vm) => [vm.uuid, vm.nvram.get('EFI-variables')]));
    const backups = join(d, 'backups');
    const r = await varstore(
      ['certs', 'update', 'vm:all', '--socket', socket, '--json', '--pk-key', keys.pkKey, '--backup-dir', backups],
      { cwd: d },
    );
    expect(r.code).toBe(4); // running, paused and suspended VMs still need it
    const lines = ndjson(r.stdout);
    const written = new Set(pool!.callsOf('VM.set_NVRAM_EFI_variables').map((c) => c.vmUuid));
    for (const l of lines) {
      const kind = kinds.get(l.vm)!;
      const wasNeeded = before.get(l.vm) === fixtures.needsUpdate;
      if (!wasNeeded) {
        expect([l.name, l.result, written.has(l.vm)]).toEqual([l.name, 'update_ok', false]);
        expect(nvramOf(l.vm)).toBe(before.get(l.vm));
      } else if (kind === 'uefi-halted') {
        expect([l.name, l.result, written.has(l.vm)]).toEqual([l.name, 'updated', true]);
        expect(l.after).toBe('update_ok');
      } else {
        expect([l.name, l.result, written.has(l.vm)]).toEqual([l.name, 'skipped', false]);
        expect(l.reason).toMatch(
          new RegExp(`^${pool!.vm(l.vm).powerState.toLowerCase()}: .*shut it down and run again`),
        );
        expect(nvramOf(l.vm)).toBe(before.get(l.vm));
      }
    }
    expect(written.size).toBeGreaterThan(10);
    // Every write was preceded by a power-state check of that VM.
    for (const uuid of written) {
      const calls = pool!.calls.filter((c) => c.vmUuid === uuid).map((c) => c.method);
      expect(calls.slice(-2)).toEqual(['VM.get_power_state', 'VM.set_NVRAM_EFI_variables']);
    }
    // One backup per written VM, named by UUID, mode 0600, the NVRAM as XAPI held it.
    expect(readdirSync(backups).sort()).toEqual([...written].map((u) => `${u}.vars`).sort());
    expect(statSync(backups).mode & 0o777).toBe(0o700);
    const uuid = [...written][0]!;
    const backup = join(backups, `${uuid}.vars`);
    expect(statSync(backup).mode & 0o777).toBe(0o600);
    expect(readFileSync(backup).toString('base64')).toBe(before.get(uuid));

    // A second run finds nothing more to do on halted VMs.
    const again = ndjson(
      (await varstore(['certs', 'update', 'vm:all', '--socket', socket, '--json', '--pk-key', keys.pkKey], { cwd: d }))
        .stdout,
    );
    expect(again.filter((l) => l.result === 'updated')).toEqual([]);

    // Restore puts the backup back exactly, after backing up what it replaces.
    const restored = await varstore(['restore', backup, `vm:${uuid}`, '--socket', socket], { cwd: d });
    expect([restored.code, restored.stderr]).toEqual([0, expect.stringContaining('backup of the NVRAM it replaced')]);
    expect(nvramOf(uuid)).toBe(before.get(uuid));
    const defaultDir = readdirSync(d).find((f) => f.startsWith('varstore-backup-'))!;
    expect(readdirSync(join(d, defaultDir))).toEqual([`${uuid}.vars`]);
  });

  it('exits 0 when every VM is fine, or was updated', async () => {
    const d = dir();
    const socket = join(d, 'xapi');
    const vms = [
      { nameLabel: 'old-1', nvram: { 'EFI-variables': fixtures.needsUpdate } },
      { nameLabel: 'old-2', nvram: { 'EFI-variables': fixtures.needsUpdate } },
      { nameLabel: 'new-1', nvram: { 'EFI-variables': fixtures.upToDate }, powerState: 'Running' as const },
      { nameLabel: 'bios', powerState: 'Running' as const, hvmBootParams: { firmware: 'bios' } },
    ];
    pool = await startPoolDouble({ socketPath: socket, vms });
    expect((await varstore(['certs', 'check', 'vm:all', '--socket', socket])).code).toBe(4);
    const update = await varstore(['certs', 'update', 'vm:all', '--socket', socket, '--pk-key', keys.pkKey], {
      cwd: d,
    });
    expect([update.code, update.stdout]).toEqual([0, expect.stringMatching(/^ {2}✓ updated +2$/m)]);
    const check = await varstore(['certs', 'check', 'vm:all', '--socket', socket]);
    expect([check.code, check.stdout]).toEqual([0, expect.stringContaining('3 UEFI VMs of 4 in the pool')]);
  });

  it('a VM that starts between the check and the write is not written', async () => {
    const d = dir();
    const { socket, kinds } = await startPool(40, d);
    const target = [...pool!.vms.values()].find((vm, i) => kinds.get(vm.uuid) === 'uefi-halted' && needsUpdate(i))!;
    const before = target.nvram.get('EFI-variables');
    // It starts once the tool has read its NVRAM for the update.
    pool!.onCall((call) => {
      if (call.method === 'VM.get_NVRAM' && call.vmUuid === target.uuid) target.powerState = 'Running';
    });
    const r = await varstore(['certs', 'update', 'vm:all', '--socket', socket, '--json', '--pk-key', keys.pkKey], {
      cwd: d,
    });
    const line = ndjson(r.stdout).find((l) => l.vm === target.uuid)!;
    expect([line.result, line.power_state, line.reason]).toEqual([
      'skipped',
      'Running',
      'running: shut it down and run again',
    ]);
    expect(pool!.callsOf('VM.set_NVRAM_EFI_variables', target.uuid)).toEqual([]);
    expect(target.nvram.get('EFI-variables')).toBe(before);
    expect(r.code).toBe(4);
  });

  it('a VM whose write XAPI refuses fails with its NVRAM unchanged; the others finish; exit 1', async () => {
    const d = dir();
    const { socket, kinds } = await startPool(40, d);
    const halted = [...pool!.vms.values()].filter((vm, i) => kinds.get(vm.uuid) === 'uefi-halted' && needsUpdate(i));
    const target = halted[0]!;
    const before = target.nvram.get('EFI-variables');
    pool!.inject(
      { kind: 'failure', errorDescription: ['SR_BACKEND_FAILURE_44', 'no space'] },
      { method: 'VM.set_NVRAM_EFI_variables', vmUuid: target.uuid },
    );
    const r = await varstore(['certs', 'update', 'vm:all', '--socket', socket, '--pk-key', keys.pkKey], { cwd: d });
    expect(r.code).toBe(1);
    expect(target.nvram.get('EFI-variables')).toBe(before);
    expect(r.stdout).toMatch(
      new RegExp(`^✗ failed +${target.nameLabel} .*NVRAM unchanged.*SR_BACKEND_FAILURE_44`, 'm'),
    );
    for (const other of halted.slice(1)) expect(other.nvram.get('EFI-variables')).not.toBe(fixtures.needsUpdate);
    // The summary names the skipped and failed VMs.
    expect(r.stdout).toMatch(/^Skipped:$/m);
    expect(r.stdout).toMatch(
      new RegExp(`^Failed:\\n {2}${target.nameLabel} +vm:${target.uuid} +XAPI did not take the write`, 'm'),
    );
  });

  it('lines stream as VMs complete, not at the end', async () => {
    const d = dir();
    const { socket, kinds } = await startPool(30, d);
    const slow = [...pool!.vms.values()].find((vm) => kinds.get(vm.uuid) === 'uefi-halted')!;
    pool!.inject({ kind: 'slow', delayMs: 3000 }, { method: 'VM.get_NVRAM', vmUuid: slow.uuid });
    const chunks: { text: string; exited: boolean }[] = [];
    let exited = false;
    await new Promise<void>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        [BIN, 'certs', 'update', 'vm:all', '--socket', socket, '--json', '--pk-key', keys.pkKey, '--jobs', '2'],
        { cwd: d, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      child.stdout.on('data', (b: Buffer) => chunks.push({ text: b.toString(), exited }));
      child.on('error', reject);
      child.on('close', () => resolve());
      child.on('exit', () => {
        exited = true;
      });
    });
    const text = chunks.map((c) => c.text).join('');
    const lines = ndjson(text);
    // The slow VM's line comes last, in a later chunk than the first lines, which came while it was still working.
    expect(lines.at(-1)!.vm).toBe(slow.uuid);
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks[0]!.text).not.toContain(slow.uuid);
  });
});

describe('vm:<uuid> writes and restore need a halted VM', () => {
  it('refuses a running VM with exit 3 and writes nothing; writes a halted one', async () => {
    const d = dir();
    const { socket, kinds } = await startPool(20, d);
    const vms = [...pool!.vms.values()];
    const running = vms.find((vm, i) => kinds.get(vm.uuid) === 'uefi-running' && needsUpdate(i))!;
    const halted = vms.find((vm, i) => kinds.get(vm.uuid) === 'uefi-halted' && needsUpdate(i))!;
    const runningBefore = running.nvram.get('EFI-variables');
    const r = await varstore(['certs', 'update', `vm:${running.uuid}`, '--socket', socket, '--pk-key', keys.pkKey], {
      cwd: d,
    });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(
      `vm:${running.uuid} is not halted, nothing written: running: shut it down and run again`,
    );
    const rm = await varstore(['rm', `vm:${running.uuid}`, 'db', '--socket', socket], { cwd: d });
    expect(rm.code).toBe(3);
    expect(pool!.callsOf('VM.set_NVRAM_EFI_variables')).toEqual([]);

    const ok = await varstore(['certs', 'update', `vm:${halted.uuid}`, '--socket', socket, '--pk-key', keys.pkKey], {
      cwd: d,
    });
    expect(ok.code).toBe(0);
    expect(pool!.callsOf('VM.set_NVRAM_EFI_variables', halted.uuid)).toHaveLength(1);

    // restore: the same checks.
    const file = join(d, 'saved.vars');
    writeFileSync(file, Buffer.from(fixtures.upToDate, 'base64'));
    const refused = await varstore(['restore', file, `vm:${running.uuid}`, '--socket', socket], { cwd: d });
    expect(refused.code).toBe(3);
    expect(running.nvram.get('EFI-variables')).toBe(runningBefore);
    expect(pool!.callsOf('VM.set_NVRAM_EFI_variables', running.uuid)).toEqual([]);
    const back = await varstore(['restore', file, `vm:${halted.uuid}`, '--socket', socket, '--no-backup'], { cwd: d });
    expect(back.code).toBe(0);
    expect(halted.nvram.get('EFI-variables')).toBe(fixtures.upToDate);
    const missing = await varstore(['restore', file, 'vm:00000000-0000-4000-8000-000000000000', '--socket', socket]);
    expect([missing.code, missing.stderr]).toEqual([3, expect.stringContaining('no such VM')]);
  });
});

describe('the progress bar', () => {
  it('is drawn on a terminal (a pseudo-terminal from util-linux script) and never on a pipe', async () => {
    const d = dir();
    const { socket } = await startPool(40, d);
    const piped = await varstore(['certs', 'check', 'vm:all', '--socket', socket]);
    expect(piped.stderr).not.toContain('\u001b[2K');
    const command = [process.execPath, BIN, 'certs', 'check', 'vm:all', '--socket', socket]
      .map((a) => `'${a.replace(/'/g, "'\\''")}'`)
      .join(' ');
    const tty = await new Promise<string>((resolve, reject) => {
      const child = spawn('script', ['-qefc', command, '/dev/null'], {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8', TERM: 'xterm' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const out: Buffer[] = [];
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.on('error', reject);
      child.on('close', () => resolve(Buffer.concat(out).toString('utf8')));
    });
    expect(tty).toMatch(/\r\u001b\[2K\[[█░]+\] \d+\/\d+/);
    expect(tty).toMatch(/VM\/s {2}ETA /);
    // The result lines are still there, each on its own line.
    expect(tty).toMatch(/update_required +uefi-/);
  });
});

describe('pool certs', () => {
  it('install validates and sets Pool.custom_uefi_certificates; status, extract and clear', async () => {
    const d = dir();
    const socket = join(d, 'xapi');
    pool = await startPoolDouble({ socketPath: socket });
    const install = await varstore(['pool', 'certs', 'install', ...keys.auth, '--socket', socket]);
    expect([install.code, install.stderr]).toEqual([0, '']);
    const members = decodeUefiCertificates(pool.customUefiCertificates);
    expect(members.map((m) => m.name)).toEqual(['db.auth', 'KEK.auth', 'PK.auth']);
    expect(members[2]!.data).toEqual(new Uint8Array(fixtures.set2011.PK.auth));

    const status = JSON.parse((await varstore(['pool', 'certs', 'status', '--socket', socket, '--json'])).stdout);
    expect(status).toMatchObject({
      source: 'custom',
      readiness: 'ready_no_dbx',
      certificates: 'update_required',
      problems: [],
    });
    expect(status.missing).toEqual(['kek-2023', 'db-windows-2023', 'db-uefi-2023', 'db-oprom-2023']);
    expect(status.files.map((f: { name: string }) => f.name)).toEqual(['db', 'KEK', 'PK']);

    const out = join(d, 'extracted');
    const extract = await varstore(['pool', 'certs', 'extract', out, '--socket', socket]);
    expect(extract.code).toBe(0);
    expect(new Uint8Array(readFileSync(join(out, 'KEK.auth')))).toEqual(new Uint8Array(fixtures.set2011.KEK.auth));
    expect((await varstore(['pool', 'certs', 'extract', out, '--socket', socket])).code).toBe(3);

    const clear = await varstore(['pool', 'certs', 'clear', '--socket', socket]);
    expect(clear.code).toBe(0);
    expect(pool.customUefiCertificates).toBe('');
    expect(JSON.parse((await varstore(['pool', 'certs', 'status', '--socket', socket, '--json'])).stdout).source).toBe(
      'none',
    );
  });

  it('refuses a broken chain, a malformed file and a missing PK; installs nothing', async () => {
    const d = dir();
    const socket = join(d, 'xapi');
    pool = await startPoolDouble({ socketPath: socket });
    // KEK.auth signed by another set's PK.
    const mixed = join(d, 'mixed');
    mkdirSync(mixed);
    writeFileSync(join(mixed, 'PK.auth'), fixtures.set2023.PK.auth);
    writeFileSync(join(mixed, 'KEK.auth'), fixtures.set2011.KEK.auth);
    writeFileSync(join(mixed, 'db.auth'), fixtures.set2023.db.auth);
    const files = ['PK', 'KEK', 'db'].map((f) => join(mixed, `${f}.auth`));
    const broken = await varstore(['pool', 'certs', 'install', ...files, '--socket', socket]);
    expect(broken.code).toBe(1);
    expect(broken.stderr).toContain('KEK.auth is not signed by the PK');
    expect(pool.customUefiCertificates).toBe('');
    // A first boot would accept it (setup mode until PK): --skip-chain-check lets it through.
    expect(
      (await varstore(['pool', 'certs', 'install', ...files, '--skip-chain-check', '--dry-run', '--socket', socket]))
        .code,
    ).toBe(0);

    const bad = join(d, 'bad');
    mkdirSync(bad);
    const kek = new Uint8Array(fixtures.set2011.KEK.auth);
    kek[21] = 0x01; // wRevision 0x0200 -> 0x0100 (not covered by the signature)
    writeFileSync(join(bad, 'KEK.auth'), kek);
    writeFileSync(join(bad, 'PK.auth'), fixtures.set2011.PK.auth);
    const malformed = await varstore([
      'pool',
      'certs',
      'install',
      join(bad, 'PK.auth'),
      join(bad, 'KEK.auth'),
      keys.auth[2]!,
      '--socket',
      socket,
    ]);
    expect(malformed.code).toBe(1);
    expect(malformed.stderr).toContain('KEK.auth: WIN_CERTIFICATE wRevision is 0x100, not 0x0200');

    const noPk = await varstore(['pool', 'certs', 'install', keys.auth[1]!, keys.auth[2]!, '--socket', socket]);
    expect(noPk.code).toBe(1);
    expect(noPk.stderr).toContain('PK.auth is missing');
    expect(pool.customUefiCertificates).toBe('');

    pool.allowCustomUefiCertificates = false;
    const notAllowed = await varstore(['pool', 'certs', 'install', ...keys.auth, '--socket', socket]);
    expect([notAllowed.code, notAllowed.stderr]).toEqual([1, expect.stringContaining('allow-custom-uefi-certs=true')]);
  });
});
