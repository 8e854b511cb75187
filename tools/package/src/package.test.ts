import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPackage, buildSnapshot, checkAddonsLoad, type PackageResult, programFlags, REPO_ROOT } from './build.js';
import { PROGRAM_NAMES } from './bundle.js';
import { checkPackage } from './check.js';
import { RuntimeRefused } from './runtime.js';

const isRoot = process.getuid?.() === 0;
const hasRpm = (() => {
  try {
    execFileSync('rpmbuild', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

const PUBLIC_FILES = PROGRAM_NAMES.map((p) => (p === 'varstored' ? `/usr/sbin/${p}` : `/usr/bin/${p}`));

let out: string;
let pkg: PackageResult;

beforeAll(async () => {
  out = mkdtempSync(join(tmpdir(), 'vmsb-package-test-'));
  pkg = await buildPackage({ outDir: out, rpm: hasRpm });
});

afterAll(() => {
  if (out) rmSync(out, { recursive: true, force: true });
});

describe('pnpm package', () => {
  it('writes the tarball with every program, the runtime, one bundle per program and the licences', () => {
    expect(pkg.tarball).toBe(join(out, `vmsb-${pkg.version}-linux-x64.tar.gz`));
    const listing = execFileSync('tar', ['-tzf', pkg.tarball], { encoding: 'utf8', maxBuffer: 1 << 24 }).split('\n');
    for (const f of PUBLIC_FILES) expect(listing).toContain(`.${f}`.slice(2));
    for (const p of PROGRAM_NAMES) expect(listing).toContain(`usr/lib/vmsb/lib/${p}.mjs`);
    for (const f of [
      'usr/lib/vmsb/bin/node',
      'usr/lib/vmsb/lib/native/vmsb_xen.node',
      'usr/lib/vmsb/lib/native/vmsb_host.node',
      'usr/lib/vmsb/lib/native/vmsb-launch',
      'usr/lib/vmsb/node-flags',
      'usr/lib/vmsb/runtime.json',
      'usr/lib/vmsb/licences/vmsb/LICENSE',
      'usr/lib/vmsb/licences/node/LICENSE',
      'usr/lib/vmsb/licences/pkijs/LICENSE',
      'usr/lib/vmsb/licences/asn1js/LICENSE',
      'usr/lib/vmsb/licences/sax/LICENSE.md',
    ]) {
      expect(listing).toContain(f);
    }
    // Nothing is resolved at run time: no node_modules, no test-only native files.
    expect(listing.filter((l) => l.includes('node_modules'))).toEqual([]);
    expect(listing.filter((l) => /fake/.test(l))).toEqual([]);
    expect(readFileSync(join(pkg.tree, 'usr/lib/vmsb/licences/node/LICENSE'), 'utf8')).toMatch(
      /^Node\.js is licensed for use as follows/,
    );
  });

  it('states the runtime and the C library it needs, in the package', () => {
    const facts = JSON.parse(readFileSync(join(pkg.tree, 'usr/lib/vmsb/runtime.json'), 'utf8'));
    expect(facts.node.version).toBe(process.versions.node);
    expect(facts.node.modules).toBe(process.versions.modules);
    expect(facts.node.requires.glibc).toMatch(/^2\.\d+$/);
    expect(facts.minimumGlibc).toBe(pkg.minimumGlibc);
    expect(facts.native.map((n: { path: string }) => n.path)).toContain('usr/lib/vmsb/lib/native/vmsb_xen.node');
    // The shipped runtime is the build machine's node, byte for byte.
    expect(readFileSync(join(pkg.tree, 'usr/lib/vmsb/bin/node')).equals(readFileSync(pkg.runtime.path))).toBe(true);
  });

  it('launchers run the bundled runtime, found through symlinks, and ignore NODE_OPTIONS', () => {
    const link = join(out, 'varstore-link');
    execFileSync('ln', ['-s', join(pkg.tree, 'usr/bin/varstore'), link]);
    const probe = join(out, 'probe.cjs');
    execFileSync('sh', ['-c', `echo 'throw new Error("NODE_OPTIONS was honoured")' > ${probe}`]);
    const help = execFileSync(link, ['--help'], {
      encoding: 'utf8',
      env: { ...process.env, NODE_OPTIONS: `--require ${probe}` },
    });
    expect(help).toMatch(/varstore/);
    // The compat tools print the name they were invoked by, as the C tools print argv[0].
    const usage = execFileSync(join(pkg.tree, 'usr/bin/varstore-ls'), ['-h'], { encoding: 'utf8' });
    expect(usage.split('\n')[0]).toBe(
      `usage: ${join(pkg.tree, 'usr/bin/varstore-ls')} [-h] [depriv options] <vm-uuid>`,
    );
  });

  it("with --snapshot, varstored starts from its start-up snapshot, and from its bundle when node-flags no longer gives the snapshot's options", () => {
    // A copy of the tree whose files can be replaced one by one (hard links: nothing is copied).
    const copy = join(out, 'snapshot-tree');
    execFileSync('cp', ['-al', pkg.tree, copy]);
    expect(existsSync(join(copy, 'usr/lib/vmsb/lib/varstored.blob'))).toBe(false);
    // What `pnpm package --snapshot` adds to the tree, made by the tree's own runtime.
    buildSnapshot(REPO_ROOT, join(copy, 'usr/lib/vmsb/lib'), [
      join(copy, 'usr/lib/vmsb/bin/node'),
      ...programFlags(join(copy, 'usr/lib/vmsb/node-flags'), 'varstored'),
    ]);
    const varstored = join(copy, 'usr/sbin/varstored');
    const help = () => spawnSync(varstored, ['--help'], { encoding: 'utf8' });
    expect(readFileSync(join(copy, 'usr/lib/vmsb/lib/varstored.blob.flags'), 'utf8')).toBe(
      `${programFlags(join(copy, 'usr/lib/vmsb/node-flags'), 'varstored').join(' ')}\n`,
    );
    expect(help().stdout).toMatch(/^Usage: varstored/);
    // The blob is what starts it: an unusable one stops it.
    const blob = join(copy, 'usr/lib/vmsb/lib/varstored.blob');
    const shipped = readFileSync(blob);
    rmSync(blob);
    writeFileSync(blob, shipped.subarray(0, 4096));
    expect(help().status).not.toBe(0);
    rmSync(blob);
    writeFileSync(blob, shipped);
    // A host that edits node-flags (here: without --lite-mode, which changes what V8 accepts in a
    // snapshot) still gets a daemon, started from the bundle.
    const flagsFile = join(copy, 'usr/lib/vmsb/node-flags');
    rmSync(flagsFile);
    writeFileSync(flagsFile, 'varstored --no-expose-wasm\n');
    const edited = help();
    expect(edited.stderr).toBe('');
    expect(edited.stdout).toMatch(/^Usage: varstored/);
  });

  it('refuses a runtime that cannot load the addons it would carry', () => {
    // A runtime that refuses addons stands in for one of another ABI: the load is what decides.
    const wrapper = join(out, 'node-without-addons');
    writeFileSync(wrapper, `#!/bin/sh\nexec ${process.execPath} --no-addons "$@"\n`, { mode: 0o755 });
    const addon = join(pkg.tree, 'usr/lib/vmsb/lib/native/vmsb_xen.node');
    expect(() => checkAddonsLoad({ ...pkg.runtime, path: wrapper }, [addon])).toThrow(/cannot load .*vmsb_xen\.node/);
    expect(() => checkAddonsLoad(pkg.runtime, [addon])).not.toThrow();
  });

  it('--max-glibc names what needs a newer C library', async () => {
    await expect(buildPackage({ outDir: join(out, 'old-glibc'), rpm: false, maxGlibc: '2.3' })).rejects.toThrow(
      /needs a glibc newer than 2\.3: the runtime .*@GLIBC_2\./,
    );
  });

  it('refuses a runtime that is not a working Node', async () => {
    await expect(buildPackage({ outDir: join(out, 'refused'), runtime: '/bin/false', rpm: false })).rejects.toThrow(
      RuntimeRefused,
    );
  });
});

describe.skipIf(!hasRpm)('the RPM (skipped without rpmbuild)', () => {
  const query = (...args: string[]) =>
    execFileSync('rpm', ['-qp', ...args, pkg.rpm!], { encoding: 'utf8' })
      .trim()
      .split('\n');

  it('holds the same files as the tarball', () => {
    const files = query('-l');
    for (const f of PUBLIC_FILES) expect(files).toContain(f);
    const tarFiles = execFileSync('tar', ['-tzf', pkg.tarball], { encoding: 'utf8', maxBuffer: 1 << 24 })
      .split('\n')
      .filter((l) => l && !l.endsWith('/'))
      .map((l) => `/${l}`)
      .sort();
    const rpmFiles = files.filter((f) => !tarFiles.some((t) => t.startsWith(`${f}/`))).sort();
    expect(rpmFiles).toEqual(tarFiles);
  });

  it('provides varstored, replaces the C packages, and needs no system Node.js', () => {
    expect(query('--provides')).toEqual(expect.arrayContaining([expect.stringMatching(/^varstored = /)]));
    expect(query('--obsoletes')).toEqual(expect.arrayContaining(['varstored', 'varstored-tools', 'uefistored']));
    const requires = query('--requires');
    expect(requires.filter((r) => /node|npm/i.test(r))).toEqual([]);
    // What the ELF files really need stays declared: an EL7 host without them cannot install it.
    expect(requires).toEqual(expect.arrayContaining([expect.stringMatching(/^libc\.so\.6\(GLIBC_2\.\d+\)/)]));
    expect(requires).toContain('libxenstore.so.4()(64bit)');
  });
});

describe.skipIf(!hasRpm)('the RPM installed with rpm into an empty root (skipped without rpmbuild)', () => {
  it('installs, runs from where it is installed, and erases without leaving files', () => {
    const root = join(out, 'rpm-root');
    const db = ['--root', root, '--dbpath', '/var/lib/rpm'];
    // --nodeps: this root holds no C library, Xen libraries or varstored-guard packages.
    execFileSync('rpm', [...db, '--initdb']);
    execFileSync('rpm', [...db, '--nodeps', '-i', pkg.rpm!], { stdio: 'pipe' });
    for (const f of PUBLIC_FILES) expect(existsSync(join(root, f))).toBe(true);
    expect(execFileSync(join(root, 'usr/bin/varstore'), ['--help'], { encoding: 'utf8' })).toMatch(/^usage: varstore/);
    expect(() =>
      execFileSync(
        join(root, 'usr/sbin/varstored'),
        ['--domain', '1', '--transport', 'xen', '--backend', 'file', '--arg', `path:${join(out, 'rpm.vars')}`],
        { stdio: 'pipe' },
      ),
    ).toThrow(/Xen transport is unavailable/);
    execFileSync('rpm', [...db, '--nodeps', '-e', 'vmsb'], { stdio: 'pipe' });
    expect(existsSync(join(root, 'usr/lib/vmsb'))).toBe(false);
    for (const f of PUBLIC_FILES) expect(existsSync(join(root, f))).toBe(false);
  });
});

describe.skipIf(!isRoot)('the unpacked tarball with the system node hidden (root only: skipped when not root)', () => {
  it('serves guest boots (one under --depriv), runs varstore status, keys create and enroll, and fails cleanly on --transport xen', async () => {
    const report = await checkPackage({ tarball: pkg.tarball, workDir: out });
    expect(report.boots.setupMode.setupMode).toBe(1);
    expect(report.boots.enforcing.secureBoot).toBe(1);
    expect(report.boots.enforcing.trace.length).toBeGreaterThan(100);
    expect(report.boots.depriv.secureBoot).toBe(1);
    expect(report.status.after).toMatchObject({ mode: 'user' });
    expect(report.xen.stderr).toMatch(/\/dev\/xen\/privcmd/);
  });
});
