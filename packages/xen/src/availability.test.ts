// Without Xen, every entry point fails at once with an error that names what is missing: the headers
// when the binding was built, a Xen library when it is loaded, or /dev/xen/privcmd when it runs.
// These use the production binding with the real Xen libraries.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dropPrivileges, startIoreqServer, xenAvailability, xenstoreRead, xenstoreWrite } from './index.js';
import { defaultBuildDir, loadBinding, loadFailureReason, packageRoot, probeFailureReason } from './native.js';

const productionBinding = join(defaultBuildDir, 'Release', 'vmsb_xen.node');
const built = existsSync(productionBinding);
const noXenHere = !existsSync('/dev/xen/privcmd') && !existsSync('/proc/xen/privcmd');
const scratch = mkdtempSync(join(tmpdir(), 'vmsb-xen-avail-'));

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const handler = {
  handleCommand: async () => new Uint8Array(8),
  ppiRead: () => 0,
  ppiWrite: async () => {},
};

describe.skipIf(!built || !noXenHere)('the production binding on a host without Xen', () => {
  it('reports that /dev/xen/privcmd is missing', () => {
    const availability = xenAvailability();
    expect(availability.ok).toBe(false);
    expect(!availability.ok && availability.reason).toMatch(
      /^\/dev\/xen\/privcmd is missing: this host is not a Xen dom0, or the privcmd driver is not loaded \(xendevicemodel_open: /,
    );
  });

  it('fails to start an ioreq server at once, saying why', async () => {
    await expect(startIoreqServer({ domid: 1, handler })).rejects.toMatchObject({
      code: 'ENOXEN',
      syscall: 'xendevicemodel_open',
      message: expect.stringMatching(/^Xen is unavailable: \/dev\/xen\/privcmd is missing/),
    });
  });

  it('fails xenstore access with the errno of the failed connection', () => {
    expect(() => xenstoreRead('/local/domain/1/platform/secureboot')).toThrow(
      /^xs_open failed: .*cannot reach xenstored/,
    );
    expect(() => xenstoreWrite('/local/domain/1/varstored-pid', '1')).toThrow(/^xs_open failed/);
  });

  it('checks privilege options before acting on them', () => {
    expect(() => dropPrivileges({ uid: -1, depriv: false })).toThrow(RangeError);
    expect(() => dropPrivileges({ gid: 2 ** 32, depriv: false })).toThrow(RangeError);
    expect(() => dropPrivileges({ uid: 1.5, depriv: false })).toThrow(RangeError);
    expect(() => dropPrivileges({ chroot: '', depriv: false })).toThrow(TypeError);
    expect(() => dropPrivileges({ depriv: 'yes' as unknown as boolean })).toThrow(TypeError);
  });
});

describe.skipIf(!built)('a Xen library missing at run time', () => {
  it('is named by the loader', () => {
    // The production binding with one of its needed libraries renamed to one that does not exist:
    // the dynamic loader then fails exactly as on a host without the Xen libraries.
    const buildDir = join(scratch, 'missing-lib');
    mkdirSync(join(buildDir, 'Release'), { recursive: true });
    const image = readFileSync(productionBinding);
    const needed = Buffer.from('libxendevicemodel.so.1\0');
    const at = image.indexOf(needed);
    expect(at).toBeGreaterThan(0);
    Buffer.from('libxendevicemodel.so.9\0').copy(image, at);
    writeFileSync(join(buildDir, 'Release', 'vmsb_xen.node'), image);

    const loaded = loadBinding('vmsb_xen', buildDir);
    expect(loaded.ok).toBe(false);
    expect(!loaded.ok && loaded.reason).toMatch(/^the Xen runtime library libxendevicemodel\.so\.9 is missing/);
  });
});

describe('a binding that was never built', () => {
  const script = join(packageRoot, 'scripts', 'build-native.mjs');

  it('is skipped at install when the Xen headers are missing, and the reason reaches xenAvailability', () => {
    const buildDir = join(scratch, 'no-headers');
    const emptyInclude = join(scratch, 'empty-include');
    mkdirSync(emptyInclude, { recursive: true });
    const run = spawnSync(process.execPath, [script], {
      env: { ...process.env, XEN_INCLUDE_DIR: emptyInclude, VMSB_XEN_BUILD_DIR: buildDir, VMSB_XEN: '' },
      encoding: 'utf8',
    });
    expect(run.status).toBe(0);
    expect(run.stdout).toContain(
      `[@vmsb/xen] Xen headers not found in ${emptyInclude}: xendevicemodel.h, xenforeignmemory.h`,
    );
    expect(run.stdout).toContain('native build skipped');
    expect(existsSync(join(buildDir, 'Release'))).toBe(false);

    const loaded = loadBinding('vmsb_xen', buildDir);
    expect(!loaded.ok && loaded.reason).toMatch(
      /^the Xen binding was not built when @vmsb\/xen was installed: Xen headers not found in .*xendevicemodel\.h.*\(install libxen-dev\)/,
    );
  });

  it('is skipped when VMSB_XEN=0', () => {
    const buildDir = join(scratch, 'disabled');
    const run = spawnSync(process.execPath, [script], {
      env: { ...process.env, VMSB_XEN: '0', VMSB_XEN_BUILD_DIR: buildDir },
      encoding: 'utf8',
    });
    expect(run.status).toBe(0);
    expect(run.stdout).toContain('[@vmsb/xen] VMSB_XEN=0: native build skipped');
    expect(JSON.parse(readFileSync(join(buildDir, 'xen-build.json'), 'utf8'))).toEqual({
      built: false,
      reason: 'VMSB_XEN=0',
    });
  });

  it('without any record says how to build it', () => {
    const loaded = loadBinding('vmsb_xen', join(scratch, 'nothing'));
    expect(!loaded.ok && loaded.reason).toMatch(
      /^the Xen binding is not built \(.*vmsb_xen\.node is missing\): run pnpm install/,
    );
  });

  it('that cannot be loaded for another reason says so', () => {
    const buildDir = join(scratch, 'garbage');
    mkdirSync(join(buildDir, 'Release'), { recursive: true });
    copyFileSync(script, join(buildDir, 'Release', 'vmsb_xen.node'));
    const loaded = loadBinding('vmsb_xen', buildDir);
    expect(!loaded.ok && loaded.reason).toMatch(/^cannot load the Xen binding .*vmsb_xen\.node: /);
    expect(
      loadFailureReason(
        '/x.node',
        new Error('libxenstore.so.4: cannot open shared object file: No such file or directory'),
      ),
    ).toMatch(/^the Xen runtime library libxenstore\.so\.4 is missing/);
  });
});

describe('probe failures', () => {
  it('name the device node and what to do', () => {
    const base = { ok: false as const, errno: 2, detail: '' };
    expect(probeFailureReason({ ...base, call: 'xenevtchn_open', code: 'ENOENT' })).toMatch(
      /^\/dev\/xen\/evtchn is missing: the Xen event-channel driver/,
    );
    expect(probeFailureReason({ ...base, call: 'xendevicemodel_open', code: 'EACCES', errno: 13 })).toMatch(
      /^permission denied opening \/dev\/xen\/privcmd: varstored must run as root/,
    );
    expect(probeFailureReason({ ...base, call: 'xenforeignmemory_open', code: 'EBUSY', errno: 16 })).toBe(
      'cannot open /dev/xen/privcmd: EBUSY (xenforeignmemory_open: EBUSY)',
    );
  });
});
