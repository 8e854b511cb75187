/**
 * First-boot provisioning of {dbx, db, KEK, PK}.auth, with keys and signed lists made at test
 * time by openssl and efitools (an independent signer), through the built daemon.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VendorGuids } from '@vmsb/guest-sim';
import { EfiStatus } from '@vmsb/protocol';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Daemon, guest } from './harness.js';

const OWNER = '77fa9abd-0359-4d32-bd60-28f4e78f784b';
let keys: string;

/** A self-signed RSA certificate and its ESL. */
function makeKey(name: string): void {
  execFileSync(
    'openssl',
    [
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
      `/CN=vmsb test ${name}/`,
      '-keyout',
      join(keys, `${name}.key`),
      '-out',
      join(keys, `${name}.crt`),
    ],
    { stdio: 'ignore' },
  );
  execFileSync('cert-to-efi-sig-list', ['-g', OWNER, join(keys, `${name}.crt`), join(keys, `${name}.esl`)], {
    stdio: 'ignore',
  });
}

/** `var` signed by `signer`, as efitools' sign-efi-sig-list writes an .auth file. */
function sign(variable: string, esl: string, signer: string, out: string, append = false): void {
  execFileSync(
    'sign-efi-sig-list',
    [
      ...(append ? ['-a'] : []),
      '-g',
      OWNER,
      '-k',
      join(keys, `${signer}.key`),
      '-c',
      join(keys, `${signer}.crt`),
      variable,
      join(keys, `${esl}.esl`),
      out,
    ],
    { stdio: 'ignore' },
  );
}

beforeAll(async () => {
  keys = await mkdtemp(join(tmpdir(), 'vmsb-keys-'));
  for (const name of ['PK', 'KEK', 'db', 'revoked']) makeKey(name);
});
afterAll(async () => {
  await rm(keys, { recursive: true, force: true });
});

let dir: string;
const daemons: Daemon[] = [];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmsb-provision-'));
  await mkdir(join(dir, 'auth'));
  sign('dbx', 'revoked', 'KEK', join(dir, 'auth', 'dbx.auth'), true);
  sign('db', 'db', 'KEK', join(dir, 'auth', 'db.auth'));
  sign('KEK', 'KEK', 'PK', join(dir, 'auth', 'KEK.auth'));
  sign('PK', 'PK', 'PK', join(dir, 'auth', 'PK.auth'));
});
afterEach(async () => {
  for (const d of daemons.splice(0)) await d.stop('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

function args(...extra: string[]): string[] {
  return [
    '--domain',
    '3',
    '--transport',
    `unix:${join(dir, 'sock')}`,
    '--backend',
    'file',
    '--arg',
    `path:${join(dir, 'nvram.vars')}`,
    '--pidfile',
    join(dir, 'pid'),
    '--arg',
    `auth-dir:${join(dir, 'auth')}`,
    ...extra,
  ];
}

async function start(...extra: string[]): Promise<Daemon> {
  const d = Daemon.spawn(args(...extra));
  daemons.push(d);
  await d.ready(join(dir, 'pid'));
  return d;
}

async function secureBootState() {
  const g = await guest(join(dir, 'sock'));
  const read = async (name: string, guid: Uint8Array = VendorGuids.GLOBAL) =>
    (await g.fw.readVariable({ name, guid }))?.data;
  const state = {
    secureBoot: (await read('SecureBoot'))?.[0],
    setupMode: (await read('SetupMode'))?.[0],
    pk: (await read('PK')) !== undefined,
    kek: (await read('KEK')) !== undefined,
    db: (await read('db', VendorGuids.IMAGE_SECURITY_DATABASE)) !== undefined,
    dbx: (await read('dbx', VendorGuids.IMAGE_SECURITY_DATABASE)) !== undefined,
  };
  return { g, state };
}

describe('first-boot provisioning', () => {
  it('applies dbx (append), db, KEK, PK in that order: user mode, Secure Boot on', async () => {
    const d = await start('--platform', 'secureboot=true');
    const { g, state } = await secureBootState();
    expect(state).toEqual({ secureBoot: 1, setupMode: 0, pk: true, kek: true, db: true, dbx: true });
    // In user mode an unsigned write to db is refused.
    expect(
      await g.fw.setVariable({ name: 'db', guid: VendorGuids.IMAGE_SECURITY_DATABASE }, 0x27, new Uint8Array(40)),
    ).not.toBe(EfiStatus.SUCCESS);
    await g.close();
    await d.stop();
    const order = [...d.stdout.matchAll(/^info: Setting (\w+)\.\.\.$/gm)].map((m) => m[1]);
    expect(order).toEqual(['dbx', 'db', 'KEK', 'PK']);
    expect(d.stdout).toMatch(/^info: Provisioned dbx, db, KEK, PK$/m);
    expect(d.stdout).toMatch(/^info: Secure Boot: enabled, user mode \(PK enrolled\)$/m);

    // Provisioning happens on the first boot only: the keys are now in the NVRAM.
    const again = await start('--platform', 'secureboot=true');
    await again.stop();
    expect(again.stdout).not.toMatch(/Setting PK/);
    expect(again.stdout).toMatch(/^info: Secure Boot: enabled, user mode/m);
  });

  it('with platform secureboot off, enrols the keys but SecureBoot reads 0', async () => {
    const d = await start();
    const { g, state } = await secureBootState();
    expect(state).toMatchObject({ secureBoot: 0, setupMode: 0, pk: true });
    await g.close();
    await d.stop();
  });

  it('skips PK when KEK.auth is missing, so the VM never runs in user mode without KEK', async () => {
    await unlink(join(dir, 'auth', 'KEK.auth'));
    const d = await start('--platform', 'secureboot=true');
    const { g, state } = await secureBootState();
    expect(state).toEqual({ secureBoot: 0, setupMode: 1, pk: false, kek: false, db: true, dbx: true });
    await g.close();
    await d.stop();
    expect(d.stderr).toMatch(/^warn: Auth file '.*KEK\.auth' is missing!$/m);
    expect(d.stderr).toMatch(/^warn: Aborting keys setup/m);
  });

  it('continues without the optional dbx', async () => {
    await unlink(join(dir, 'auth', 'dbx.auth'));
    const d = await start('--platform', 'secureboot=true');
    const { g, state } = await secureBootState();
    expect(state).toEqual({ secureBoot: 1, setupMode: 0, pk: true, kek: true, db: true, dbx: false });
    await g.close();
    await d.stop();
    expect(d.stdout).toMatch(/^info: Continuing keys setup despite missing optional dbx$/m);
  });

  it('refuses to start when an auth file is refused, rather than run half-provisioned', async () => {
    // Too short to hold an EFI_VARIABLE_AUTHENTICATION_2 descriptor.
    await writeFile(join(dir, 'auth', 'db.auth'), new Uint8Array(30));
    const d = Daemon.spawn(args());
    daemons.push(d);
    expect(await d.waitExit()).toEqual({ code: 1, signal: null });
    expect(d.stderr).toMatch(/^error: Failed to execute auth data .*db\.auth: [A-Z_]+/m);
    expect(d.stdout).not.toMatch(/Setting KEK/);
  });

  it('refuses to start when an auth file is larger than a variable can be', async () => {
    await writeFile(join(dir, 'auth', 'db.auth'), new Uint8Array(57345));
    const d = Daemon.spawn(args());
    daemons.push(d);
    expect(await d.waitExit()).toEqual({ code: 1, signal: null });
    expect(d.stderr).toMatch(/^error: Auth file '.*db\.auth' is too large: 57345$/m);
  });

  it('does not provision on --resume', async () => {
    const save = join(dir, 'save.dat');
    const first = await start('--arg', `save:${save}`);
    await first.stop();
    const resumed = await start('--resume', '--arg', `resume:${save}`);
    await resumed.stop();
    expect(resumed.stdout).not.toMatch(/Setting|first boot/);
  });
});
