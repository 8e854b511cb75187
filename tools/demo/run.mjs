#!/usr/bin/env node
// The README's demo: start the built varstored on the guest-simulation socket with a file store,
// play a realistic OVMF boot against it, stop it with SIGTERM, start it again and show that the
// variables survived. Needs no Xen. Run `pnpm demo` (it builds first).
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const varstored = join(root, 'apps/varstored/bin/varstored');
const guestSim = join(root, 'tools/guest-sim/dist/index.js');
if (!existsSync(join(root, 'apps/varstored/dist/cli.js')) || !existsSync(guestSim)) {
  console.error('demo: build first (pnpm build, or run it as `pnpm demo`)');
  process.exit(1);
}
const { GuestConnection, Firmware, runOvmfBoot, formatBootReport } = await import(guestSim);

const dir = await mkdtemp(join(tmpdir(), 'vmsb-demo-'));
const paths = {
  socket: join(dir, 'sock'),
  nvram: join(dir, 'nvram.vars'),
  pidfile: join(dir, 'varstored.pid'),
  auth: join(dir, 'auth'),
};
const indent = (text, prefix = '  ') =>
  text
    .trimEnd()
    .split('\n')
    .map((l) => `${prefix}${l}`)
    .join('\n');
const section = (title) => console.log(`\n== ${title}`);

/** Demo keys (PK, KEK, db) as first-boot auth files, when openssl and efitools are installed. */
async function makeKeys() {
  const have = (tool) => {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  };
  if (!['openssl', 'cert-to-efi-sig-list', 'sign-efi-sig-list'].every(have)) {
    console.log('openssl/efitools not found: no keys to provision, the VM stays in setup mode');
    return;
  }
  await mkdir(paths.auth);
  const owner = '77fa9abd-0359-4d32-bd60-28f4e78f784b';
  const run = (cmd, args) => execFileSync(cmd, args, { stdio: 'ignore', cwd: paths.auth });
  for (const name of ['PK', 'KEK', 'db']) {
    run('openssl', [
      'req',
      '-new',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-sha256',
      '-days',
      '3650',
      '-subj',
      `/CN=vmsb demo ${name}/`,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.crt`,
    ]);
    run('cert-to-efi-sig-list', ['-g', owner, `${name}.crt`, `${name}.esl`]);
  }
  run('sign-efi-sig-list', ['-g', owner, '-k', 'KEK.key', '-c', 'KEK.crt', 'db', 'db.esl', 'db.auth']);
  run('sign-efi-sig-list', ['-g', owner, '-k', 'PK.key', '-c', 'PK.crt', 'KEK', 'KEK.esl', 'KEK.auth']);
  run('sign-efi-sig-list', ['-g', owner, '-k', 'PK.key', '-c', 'PK.crt', 'PK', 'PK.esl', 'PK.auth']);
  console.log(`made a demo PK, KEK and db with openssl and efitools: $TMP/auth/{PK,KEK,db}.auth`);
}

function startDaemon() {
  const args = [
    '--domain',
    '1',
    '--transport',
    `unix:${paths.socket}`,
    '--backend',
    'file',
    '--arg',
    `path:${paths.nvram}`,
    '--pidfile',
    paths.pidfile,
    '--arg',
    `auth-dir:${paths.auth}`,
    '--platform',
    'secureboot=true',
  ];
  console.log(`$ apps/varstored/bin/varstored ${args.join(' ').replaceAll(dir, '$TMP')}`);
  const child = spawn(varstored, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.setEncoding('utf8').on('data', (t) => (log += t));
  child.stderr.setEncoding('utf8').on('data', (t) => (log += t));
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return {
    child,
    exited,
    takeLog: () => {
      const out = log;
      log = '';
      return out.replaceAll(dir, '$TMP');
    },
  };
}

async function ready(daemon) {
  for (let i = 0; i < 2000; i++) {
    if (existsSync(paths.pidfile) && readFileSync(paths.pidfile, 'utf8') === `${daemon.child.pid}\n`) return;
    if (daemon.child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`varstored did not become ready:\n${daemon.takeLog()}`);
}

async function boot(title) {
  section(title);
  const connection = await GuestConnection.connect(paths.socket);
  try {
    const report = await runOvmfBoot(new Firmware(connection));
    console.log(indent(formatBootReport(report)));
    return report;
  } finally {
    await connection.close();
  }
}

async function stop(daemon) {
  section('stop: SIGTERM');
  daemon.child.kill('SIGTERM');
  const { code, signal } = await daemon.exited;
  console.log(indent(daemon.takeLog(), '  varstored| '));
  console.log(`  exit status ${code ?? signal}`);
}

try {
  section('first-boot keys');
  await makeKeys();

  section('start varstored (no Xen: the guest-simulation transport, NVRAM in a file)');
  let daemon = startDaemon();
  await ready(daemon);
  console.log(indent(daemon.takeLog(), '  varstored| '));

  const first = await boot('first boot: OVMF, then an OS after ExitBootServices');
  await stop(daemon);
  console.log(`  ${paths.nvram.replaceAll(dir, '$TMP')}: ${readFileSync(paths.nvram).length} bytes (VARS v2 blob)`);

  section('start varstored again from the same NVRAM file');
  daemon = startDaemon();
  await ready(daemon);
  console.log(indent(daemon.takeLog(), '  varstored| '));

  section('what survived');
  const connection = await GuestConnection.connect(paths.socket);
  const fw = new Firmware(connection);
  const present = new Set((await fw.enumerate()).map((r) => r.name));
  const kept = first.created.filter((name) => present.has(name));
  await connection.close();
  console.log(
    `  of the ${first.created.length} variables the first boot created, ${kept.length} are here: ${kept.join(', ')}`,
  );
  console.log(`  (the others were volatile: ${first.created.filter((n) => !kept.includes(n)).join(', ')})`);

  const second = await boot('second boot');
  console.log(
    `  MTC went from ${first.monotonicCounter} to ${second.monotonicCounter}; boot order kept: ${second.bootOrder.join(', ')}`,
  );
  await stop(daemon);
} finally {
  await rm(dir, { recursive: true, force: true });
}
