/**
 * varstore-sb-state and the privilege options, spawned as built, against the xapi-guard double
 * (standing in for xapi-guard and XAPI): the lines the C tool prints, the keys left in the VM's
 * NVRAM, exit codes; -u/-g/-r/-d with and without @vmsb/xen's native support.
 */
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  VM,
  guard,
  keys,
  otherVariables,
  secureBootVariables,
  setCalls,
  sock,
  startVm,
  tool,
  useCompatHarness,
  work,
} from './testing/harness.js';
import {
  GLOBAL,
  IMAGE_SECURITY,
  VENDOR,
  authPayload,
  findVariable,
  runTool,
  storedVariables,
  toolPath,
  variable,
  xapiReadiness,
} from './testing/support.js';

useCompatHarness();

describe('varstore-sb-state', () => {
  const REMOVING = 'Removing PK...\nRemoving KEK...\nRemoving db...\nRemoving dbx...\n';

  it('setup: removes PK, KEK, db and dbx and keeps the rest', async () => {
    await startVm([...secureBootVariables(), ...otherVariables()]);
    const r = await tool('sb-state', VM, 'setup');
    expect(r).toMatchObject({ code: 0, out: REMOVING, err: '' });
    const after = storedVariables(guard);
    for (const n of ['PK', 'KEK']) expect(findVariable(after, n, GLOBAL)).toBeUndefined();
    for (const n of ['db', 'dbx']) expect(findVariable(after, n, IMAGE_SECURITY)).toBeUndefined();
    expect(findVariable(after, 'Boot0000', GLOBAL)).toBeDefined();
    expect(xapiReadiness((await tool('ls', VM)).out)).toBe('setup_mode');
  });

  it('setup on a VM without keys: each missing variable is reported, exit 0', async () => {
    await startVm(otherVariables());
    const r = await tool('sb-state', VM, 'setup');
    expect(r).toMatchObject({ code: 0, out: REMOVING, err: 'Not Found\n'.repeat(4) });
    expect(setCalls()).toBe(0);
  });

  it("user: replaces the keys with the auth directory's, dbx first and PK last", async () => {
    await startVm([variable('PK', GLOBAL, 0x27, authPayload(keys.auth.KEK)), ...otherVariables()]);
    const r = await runTool('sb-state', ['-s', sock, VM, 'user'], { env: { VARSTORED_AUTH_DIR: keys.authDir } });
    expect(r.err).toBe('Not Found\n'.repeat(3));
    expect(r.code).toBe(0);
    expect(r.out).toBe(
      `${REMOVING}setup_keys: Setting dbx...\nsetup_keys: Setting db...\nsetup_keys: Setting KEK...\nsetup_keys: Setting PK...\n`,
    );
    const after = storedVariables(guard);
    for (const [n, g] of [
      ['PK', GLOBAL],
      ['KEK', GLOBAL],
      ['db', IMAGE_SECURITY],
      ['dbx', IMAGE_SECURITY],
    ] as const) {
      const v = findVariable(after, n, g)!;
      expect(v.attributes).toBe(0x27);
      expect(new Uint8Array(v.data)).toEqual(keys.esl[n]);
    }
    expect(xapiReadiness((await tool('ls', VM)).out)).toBe('ready');
    expect([...(await tool('get', VM, GLOBAL, 'SetupMode')).stdout]).toEqual([0]);
  });

  it('user without KEK.auth: stops before PK and leaves the VM in setup mode (exit 0)', async () => {
    await startVm([...secureBootVariables(), ...otherVariables()]);
    const dir = mkdtempSync(join(work, 'auth-'));
    for (const n of ['PK', 'db', 'dbx'] as const) writeFileSync(join(dir, `${n}.auth`), keys.auth[n]);
    const r = await runTool('sb-state', ['-s', sock, VM, 'user'], { env: { VARSTORED_AUTH_DIR: dir } });
    expect(r.code).toBe(0);
    expect(r.out).toBe(`${REMOVING}setup_keys: Setting dbx...\nsetup_keys: Setting db...\n`);
    expect(r.err).toBe(
      `load_one_auth_data: Auth file '${join(dir, 'KEK.auth')}' is missing!\nsetup_keys: Cannot setup KEK because auth data is missing!\nsetup_keys: Aborting keys setup\n`,
    );
    const after = storedVariables(guard);
    expect(findVariable(after, 'PK', GLOBAL)).toBeUndefined();
    expect(findVariable(after, 'KEK', GLOBAL)).toBeUndefined();
    expect(findVariable(after, 'db', IMAGE_SECURITY)).toBeDefined();
  });

  it('user without dbx.auth continues (dbx is optional)', async () => {
    await startVm(otherVariables());
    const dir = mkdtempSync(join(work, 'auth-'));
    for (const n of ['PK', 'KEK', 'db'] as const) writeFileSync(join(dir, `${n}.auth`), keys.auth[n]);
    const r = await runTool('sb-state', ['-s', sock, VM, 'user'], { env: { VARSTORED_AUTH_DIR: dir } });
    expect(r.code).toBe(0);
    expect(r.out).toBe(
      `${REMOVING}setup_keys: Continuing keys setup despite missing optional dbx\nsetup_keys: Setting db...\nsetup_keys: Setting KEK...\nsetup_keys: Setting PK...\n`,
    );
    expect(xapiReadiness((await tool('ls', VM)).out)).toBe('ready_no_dbx');
  });

  it('user with a refused file: exit 1 with the status in hex', async () => {
    await startVm(otherVariables());
    const dir = mkdtempSync(join(work, 'auth-'));
    for (const n of ['PK', 'KEK', 'dbx'] as const) writeFileSync(join(dir, `${n}.auth`), keys.auth[n]);
    writeFileSync(join(dir, 'db.auth'), new Uint8Array(40));
    const r = await runTool('sb-state', ['-s', sock, VM, 'user'], { env: { VARSTORED_AUTH_DIR: dir } });
    expect(r.code).toBe(1);
    expect(r.out).toBe(`${REMOVING}setup_keys: Setting dbx...\nsetup_keys: Setting db...\n`);
    expect(r.err.endsWith('set_variable_from_auth: Failed to execute auth data: 0x800000000000001a\n')).toBe(true);
    expect(findVariable(storedVariables(guard), 'PK', GLOBAL)).toBeUndefined();
  });

  it('user with an oversized auth file changes nothing', async () => {
    await startVm([...secureBootVariables()]);
    const dir = mkdtempSync(join(work, 'auth-'));
    writeFileSync(join(dir, 'dbx.auth'), new Uint8Array(57345));
    const r = await runTool('sb-state', ['-s', sock, VM, 'user'], { env: { VARSTORED_AUTH_DIR: dir } });
    expect(r).toMatchObject({
      code: 1,
      out: '',
      err: `load_one_auth_data: Auth file '${join(dir, 'dbx.auth')}' is too large: 57345\n`,
    });
    expect(guard.calls).toHaveLength(0);
  });

  it('takes exactly <vm-uuid> setup|user', async () => {
    await startVm();
    for (const args of [[VM], [VM, 'users'], [VM, 'setup', 'x']]) {
      const r = await tool('sb-state', ...args);
      expect(r.code).toBe(1);
      expect(r.out.split('\n')[0]).toBe(`usage: ${toolPath('sb-state')} [-h] [depriv options] <vm-uuid> setup|user`);
    }
    expect(guard.calls).toHaveLength(0);
  });
});

const isRoot = process.getuid?.() === 0;

/** Whether @vmsb/xen and its native binding are usable here (probed with a call that changes nothing). */
async function nativePrivilegesUsable(): Promise<boolean> {
  try {
    const mod = (await import('@vmsb/xen' as string)) as { dropPrivileges(o: { depriv: boolean }): void };
    mod.dropPrivileges({ depriv: false });
    return true;
  } catch {
    return false;
  }
}

/**
 * NODE_OPTIONS that make `@vmsb/xen` unresolvable in a spawned tool (a Node module-resolution hook
 * in the test's temporary directory), so the tools' fallback without native code is exercised on
 * any host.
 */
function withoutNativePackage(): Record<string, string> {
  const dir = mkdtempSync(join(work, 'hide-xen-'));
  writeFileSync(
    join(dir, 'hooks.mjs'),
    "export async function resolve(specifier, context, next) {\n  if (specifier === '@vmsb/xen') throw new Error('@vmsb/xen is hidden by the test');\n  return next(specifier, context);\n}\n",
  );
  writeFileSync(
    join(dir, 'register.mjs'),
    "import { register } from 'node:module';\nregister('./hooks.mjs', import.meta.url);\n",
  );
  return { NODE_OPTIONS: `--import ${join(dir, 'register.mjs')}` };
}

const nativeUsable = await nativePrivilegesUsable();

describe.skipIf(!isRoot)('privileges (-u, -g, -r, -d) — needs root to switch users', () => {
  const NOBODY = '65534';
  let open: string;

  beforeEach(async () => {
    // A directory and socket another user can reach.
    open = mkdtempSync(join(work, 'open-'));
    chmodSync(work, 0o755);
    chmodSync(open, 0o755);
    await startVm(otherVariables(), join(open, 'xapi.sock'));
    chmodSync(sock, 0o666);
  });

  it.each([
    ['with @vmsb/xen as installed', () => ({})],
    ["with Node's own calls when @vmsb/xen is missing", withoutNativePackage],
  ] as const)('-u/-g switch user before XAPI and the data file are touched (%s)', async (_, environment) => {
    const env = environment();
    const ls = await runTool('ls', ['-u', NOBODY, '-g', NOBODY, '-s', sock, VM], { env });
    expect(ls.err).toBe('');
    expect(ls.code).toBe(0);
    expect(ls.out).toContain(`${GLOBAL} Boot0000\n`);

    const secret = join(open, 'root-only');
    writeFileSync(secret, 'x', { mode: 0o600 });
    const denied = await runTool('set', ['-u', NOBODY, '-g', NOBODY, '-s', sock, VM, VENDOR, 'X', '7', secret], {
      env,
    });
    expect(denied).toMatchObject({ code: 1, err: `do_set: Failed to open ${secret}\n` });
    const uidOnly = await runTool('set', ['-u', NOBODY, '-s', sock, VM, VENDOR, 'X', '7', secret], { env });
    expect(uidOnly).toMatchObject({ code: 1, err: `do_set: Failed to open ${secret}\n` });
    const allowed = await runTool('set', ['-s', sock, VM, VENDOR, 'X', '7', secret], { env });
    expect(allowed).toMatchObject({ code: 0, err: '' });
  });

  it.skipIf(!nativeUsable)(
    '-r enters the chroot: the socket is looked up inside it (as XAPI runs varstore-rm -c)',
    async () => {
      const r = await runTool('rm', ['-c', VM, '-r', open, '-u', NOBODY, '-g', NOBODY, '-s', '/xapi.sock'], {
        env: { VARSTORE_EFI_CLONE_DIR: join(open, 'none') },
      });
      expect(r).toMatchObject({ code: 0, err: '' });
      expect(guard.callsOf('VM.get_NVRAM')).toHaveLength(1);
      // The host path of the socket does not exist inside the chroot: proof the root changed.
      const outside = await runTool('ls', ['-d', '-r', open, '-u', NOBODY, '-g', NOBODY, '-s', sock, VM]);
      expect(outside.code).toBe(1);
      expect(outside.err).toContain(sock);
      expect(guard.callsOf('VM.get_NVRAM')).toHaveLength(1);
      const inside = await runTool('ls', ['-d', '-r', open, '-s', '/xapi.sock', VM]);
      expect(inside).toMatchObject({ code: 0, err: '' });
      expect(inside.out).toContain(`${GLOBAL} Boot0000\n`);
    },
  );

  it('without @vmsb/xen, -r and -d fail before XAPI is contacted', async () => {
    const env = withoutNativePackage();
    const chroot = await runTool('ls', ['-r', open, '-s', '/xapi.sock', VM], { env });
    expect(chroot).toMatchObject({ code: 1, out: '' });
    expect(chroot.err).toBe(
      `Failed to chroot to ${open}: entering a chroot needs @vmsb/xen, which is unavailable (@vmsb/xen is hidden by the test)\n`,
    );
    const depriv = await runTool('ls', ['-d', '-s', sock, VM], { env });
    expect(depriv).toMatchObject({ code: 1, out: '' });
    expect(depriv.err).toContain('Failed to reduce privileges (-d)');
    // chroot("/") is no change at all.
    const root = await runTool('ls', ['-r', '/', '-s', sock, VM], { env });
    expect(root).toMatchObject({ code: 0, err: '' });
    expect(guard.callsOf('VM.get_NVRAM')).toHaveLength(1);
  });
});
