/**
 * `pnpm package`: assembles the root-relative tree (usr/sbin/varstored, usr/bin/varstore*,
 * usr/lib/vmsb/…) from the built checkout and a Node runtime, then packs it as a tarball and an RPM.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundlePrograms, findNativeFiles, findPrograms, NATIVE_SUBDIR, type Program } from './bundle.js';
import { bundledPackages, writeLicences } from './licences.js';
import {
  compareVersions,
  type ElfVersionNeeds,
  elfVersionNeeds,
  findNodeLicence,
  inspectRuntime,
  type RuntimeFacts,
  RuntimeRefused,
  symbolsAbove,
} from './runtime.js';

/** This package's own files: the spec, the launcher template, the flags file. */
export const TOOL_DIR = fileURLToPath(new URL('..', import.meta.url));
/** The repository root. */
export const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url));

/** XCP-ng 8.x's dom0 is EL7-based: its C library is glibc 2.17. */
export const EL7_GLIBC = '2.17';

export interface PackageOptions {
  readonly root?: string;
  /** Where the tarball and RPM go (default `<root>/out`). */
  readonly outDir?: string;
  /** The Node binary to ship (default: the one running this). */
  readonly runtime?: string;
  /** Node's LICENSE for that runtime, when it is not beside it. */
  readonly nodeLicence?: string;
  /** Skip the RPM (the tarball alone). */
  readonly rpm?: boolean;
  /** Refuse when the runtime or a native file needs a newer glibc than this (2.17 for EL7). */
  readonly maxGlibc?: string;
  /**
   * Ship varstored's start-up snapshot (default: no). Faster starts for about 4.5 MiB more per
   * daemon: README.md, "varstored's start-up snapshot".
   */
  readonly snapshot?: boolean;
  readonly log?: (line: string) => void;
}

export interface NativeFile {
  /** Path in the tree (usr/lib/vmsb/lib/native/<name>). */
  readonly path: string;
  readonly source: string;
  readonly requires: ElfVersionNeeds;
  /** Symbols that need a glibc newer than EL7's 2.17. */
  readonly aboveEl7: readonly string[];
  /** For an addon: the ABI node-gyp built it for (its build/config.gypi). */
  readonly builtFor?: { nodeModuleVersion?: number; napiVersion?: number };
}

export interface PackageResult {
  readonly version: string;
  readonly tarball: string;
  readonly rpm?: string;
  /** The assembled tree (what the tarball holds). */
  readonly tree: string;
  readonly programs: readonly Program[];
  readonly runtime: RuntimeFacts;
  readonly natives: readonly NativeFile[];
  /** The highest glibc anything in the package needs. */
  readonly minimumGlibc: string;
}

export const VMSB_DIR = 'usr/lib/vmsb';

/** The flags node-flags gives `program`: its own line's and the "*" line's, as launcher.sh reads them. */
export function programFlags(file: string, program: string): string[] {
  const flags: string[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const [name, ...options] = line.trim().split(/\s+/);
    if (name === '*' || name === program) flags.push(...options);
  }
  return flags;
}

/**
 * Runs apps/varstored/build-snapshot.mjs: lib/varstored-snapshot.cjs and lib/varstored.blob, made
 * by `node` (the runtime the tree ships and varstored's node-flags options).
 */
export function buildSnapshot(root: string, libDir: string, node: readonly string[]): void {
  const run = spawnSync(
    process.execPath,
    [
      join(root, 'apps/varstored/build-snapshot.mjs'),
      '--out',
      libDir,
      '--native-dir',
      `./${NATIVE_SUBDIR}/`,
      '--node',
      ...node,
    ],
    { encoding: 'utf8' },
  );
  if (run.status !== 0) throw new Error(`varstored's start-up snapshot could not be built: ${run.stderr}`);
}
const PROGRAM_NAME = /^[a-z][a-z0-9-]*$/;

export async function buildPackage(options: PackageOptions = {}): Promise<PackageResult> {
  const root = resolve(options.root ?? REPO_ROOT);
  const outDir = options.outDir ?? join(root, 'out');
  const log = options.log ?? (() => {});
  const version = (JSON.parse(readFileSync(join(root, 'apps/varstored/package.json'), 'utf8')) as { version: string })
    .version;

  const runtime = inspectRuntime(options.runtime ?? process.execPath);
  const nodeLicence = findNodeLicence(runtime.path, options.nodeLicence);
  log(`runtime: Node ${runtime.node} (${runtime.path}), OpenSSL ${runtime.openssl}, glibc ≥ ${runtime.requires.glibc}`);

  const xenBuild = join(root, 'packages/xen/build/xen-build.json');
  const xen = existsSync(xenBuild)
    ? (JSON.parse(readFileSync(xenBuild, 'utf8')) as { built?: boolean; reason?: string })
    : {};
  if (xen.built !== true) {
    throw new Error(
      `the Xen binding is not built (${xen.reason ?? `${xenBuild} is missing`}): a host package without it cannot serve a VM; install libxen-dev and run pnpm install`,
    );
  }

  const programs = findPrograms(root);
  for (const p of programs)
    if (!PROGRAM_NAME.test(p.name)) throw new Error(`program name ${p.name} is not a plain word`);

  const tree = join(outDir, `vmsb-${version}-linux-x64`);
  rmSync(tree, { recursive: true, force: true });
  const vmsbDir = join(tree, VMSB_DIR);
  const libDir = join(vmsbDir, 'lib');
  mkdirSync(libDir, { recursive: true });

  const { bundles, inputs, assets } = await bundlePrograms(root, programs, libDir, Number(runtime.node.split('.')[0]));
  log(`bundled ${programs.length} programs (${inputs.length} modules inlined)`);

  // Launchers.
  const template = readFileSync(join(TOOL_DIR, 'launcher.sh'), 'utf8');
  for (const p of programs) {
    const file = join(tree, p.dir, p.name);
    mkdirSync(join(tree, p.dir), { recursive: true });
    writeFileSync(file, template.replaceAll('@PROGRAM@', p.name));
  }
  copyFileSync(join(TOOL_DIR, 'node-flags'), join(vmsbDir, 'node-flags'));

  // Native files the bundles name, checked against the runtime that will load them.
  const texts = [...bundles.values()].map((f) => readFileSync(f, 'utf8'));
  texts.push(template);
  const found = findNativeFiles(root, inputs, texts);
  if (!found.some((n) => n.name === 'vmsb_xen.node'))
    throw new Error('the bundles do not name the Xen binding vmsb_xen');
  mkdirSync(join(libDir, NATIVE_SUBDIR), { recursive: true });
  const natives: NativeFile[] = [];
  for (const n of found) {
    const dest = join(libDir, NATIVE_SUBDIR, n.name);
    copyFileSync(n.file, dest);
    natives.push({
      path: relative(tree, dest),
      source: relative(root, n.file),
      requires: elfVersionNeeds(n.file),
      aboveEl7: symbolsAbove(n.file, EL7_GLIBC),
      ...(n.name.endsWith('.node') ? { builtFor: addonBuildAbi(n.file) } : {}),
    });
  }
  for (const n of natives) {
    const abi = n.builtFor;
    if (abi?.napiVersion !== undefined && runtime.napi < abi.napiVersion) {
      throw new RuntimeRefused(
        `the Node runtime ${runtime.path} implements Node-API ${runtime.napi}; ${n.source} needs Node-API ${abi.napiVersion}`,
      );
    }
    if (
      abi &&
      abi.napiVersion === undefined &&
      abi.nodeModuleVersion !== undefined &&
      String(abi.nodeModuleVersion) !== runtime.modules
    ) {
      throw new RuntimeRefused(
        `${n.source} was built for NODE_MODULE_VERSION ${abi.nodeModuleVersion}, the Node runtime ${runtime.path} is ${runtime.modules}: rebuild it with that runtime`,
      );
    }
  }
  checkAddonsLoad(
    runtime,
    found.filter((n) => n.name.endsWith('.node')).map((n) => n.file),
  );
  log(`native files: ${natives.map((n) => n.path.split('/').pop()).join(', ')}`);

  // The runtime.
  mkdirSync(join(vmsbDir, 'bin'), { recursive: true });
  copyFileSync(runtime.path, join(vmsbDir, 'bin', 'node'));

  // varstored's start-up snapshot (apps/varstored/build-snapshot.mjs), made by the runtime it ships
  // with and with the flags its launcher passes: node loads a blob only from the binary that made it.
  if (options.snapshot === true) {
    buildSnapshot(root, libDir, [
      join(vmsbDir, 'bin', 'node'),
      ...programFlags(join(TOOL_DIR, 'node-flags'), 'varstored'),
    ]);
    log('varstored start-up snapshot: lib/varstored.blob');
  }

  const minimumGlibc = [runtime.requires.glibc ?? '2.2.5', ...natives.map((n) => n.requires.glibc ?? '2.2.5')]
    .sort(compareVersions)
    .at(-1)!;
  if (options.maxGlibc !== undefined) {
    const over = [
      ...(compareVersions(runtime.requires.glibc ?? '0', options.maxGlibc) > 0
        ? [
            `the runtime ${runtime.path} (GLIBC_${runtime.requires.glibc}: ${symbolsAbove(runtime.path, options.maxGlibc).join(', ')})`,
          ]
        : []),
      ...natives
        .filter((n) => compareVersions(n.requires.glibc ?? '0', options.maxGlibc!) > 0)
        .map((n) => `${n.source} (${symbolsAbove(join(root, n.source), options.maxGlibc!).join(', ')})`),
    ];
    if (over.length > 0) {
      throw new RuntimeRefused(`needs a glibc newer than ${options.maxGlibc}: ${over.join('; ')}`);
    }
  }
  writeFileSync(
    join(vmsbDir, 'runtime.json'),
    `${JSON.stringify(
      {
        comment:
          'The Node runtime in bin/node and what the package needs from the host: the C library (glibc) and C++ runtime (libstdc++) versions below, and the Xen libraries lib/native/vmsb_xen.node links.',
        minimumGlibc,
        node: {
          version: runtime.node,
          sha256: runtime.sha256,
          modules: runtime.modules,
          napi: runtime.napi,
          openssl: runtime.openssl,
          requires: runtime.requires,
        },
        native: natives.map((n) => ({
          path: n.path,
          ...(n.builtFor ? { builtFor: n.builtFor } : {}),
          requires: n.requires,
          symbolsNewerThanGlibc2_17: n.aboveEl7,
        })),
      },
      null,
      2,
    )}\n`,
  );

  const packages = bundledPackages(inputs);
  const extra: { what: string; file: string }[] = [];
  for (const [source, dest] of assets) {
    const licence = join(source, 'License.txt');
    if (statSync(source).isDirectory() && existsSync(licence)) {
      extra.push({ what: `lib/${dest}/License.txt  the data files beside it`, file: licence });
    }
  }
  writeLicences(
    join(vmsbDir, 'licences'),
    join(root, 'LICENSE'),
    { file: nodeLicence, version: runtime.node },
    packages,
    extra,
  );
  log(`licences: vmsb, Node.js, ${packages.map((p) => `${p.name}@${p.version}`).join(', ')}`);

  normaliseModes(tree);

  mkdirSync(outDir, { recursive: true });
  const tarball = join(outDir, `vmsb-${version}-linux-x64.tar.gz`);
  const mtime = sourceDateEpoch(root);
  execFileSync('tar', [
    '--sort=name',
    '--owner=0',
    '--group=0',
    '--numeric-owner',
    `--mtime=@${mtime}`,
    '-C',
    tree,
    '-czf',
    tarball,
    'usr',
  ]);
  log(`wrote ${relative(root, tarball)}`);

  let rpm: string | undefined;
  if (options.rpm !== false) {
    rpm = buildRpm(tree, outDir, version, licenceExpression(packages), mtime);
    log(`wrote ${relative(root, rpm)}`);
  }
  return { version, tarball, ...(rpm ? { rpm } : {}), tree, programs, runtime, natives, minimumGlibc };
}

/**
 * Loads every addon in the runtime that will carry it: an addon built for another ABI
 * (NODE_MODULE_VERSION, or a Node-API version the runtime lacks) fails here, not on a host.
 */
export function checkAddonsLoad(runtime: RuntimeFacts, addons: readonly string[]): void {
  for (const addon of addons) {
    const r = spawnSync(runtime.path, ['-e', 'process.dlopen({ exports: {} }, process.argv[1])', addon], {
      encoding: 'utf8',
    });
    if (r.status !== 0) {
      const message = (r.stderr || `exit ${r.status ?? r.signal}`).split('\n').find((l) => /Error|error/.test(l));
      throw new RuntimeRefused(
        `the Node runtime ${runtime.path} (Node ${runtime.node}, NODE_MODULE_VERSION ${runtime.modules}, Node-API ${runtime.napi}) cannot load ${addon}, built by this checkout's node (NODE_MODULE_VERSION ${process.versions.modules}): ${message ?? r.stderr.trim()}; rebuild the addon with that runtime (pnpm install with it first on PATH)`,
      );
    }
  }
}

/**
 * The ABI an addon was compiled for: node-gyp's build/config.gypi (NODE_MODULE_VERSION of the
 * headers) and the NAPI_VERSION its build defines (the Node-API level it needs of a runtime).
 */
function addonBuildAbi(addon: string): { nodeModuleVersion?: number; napiVersion?: number } {
  const buildDir = dirname(dirname(addon));
  const abi: { nodeModuleVersion?: number; napiVersion?: number } = {};
  const gypi = join(buildDir, 'config.gypi');
  if (existsSync(gypi)) {
    const m = /"node_module_version":\s*(\d+)/.exec(readFileSync(gypi, 'utf8'));
    if (m) abi.nodeModuleVersion = Number(m[1]);
  }
  const target = join(buildDir, `${basename(addon, '.node')}.target.mk`);
  if (existsSync(target)) {
    const m = /-DNAPI_VERSION=(\d+)/.exec(readFileSync(target, 'utf8'));
    if (m) abi.napiVersion = Number(m[1]);
  }
  return abi;
}

function normaliseModes(dir: string): void {
  for (const name of readdirSync(dir)) {
    const file = join(dir, name);
    const s = statSync(file);
    if (s.isDirectory()) {
      chmodSync(file, 0o755);
      normaliseModes(file);
    } else {
      const executable = (s.mode & 0o111) !== 0 || isLauncherOrBinary(file);
      chmodSync(file, executable ? 0o755 : 0o644);
    }
  }
}

function isLauncherOrBinary(file: string): boolean {
  const head = readFileSync(file).subarray(0, 4);
  return (head[0] === 0x23 && head[1] === 0x21) || (head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c);
}

/** The commit's time, so that the same checkout gives the same archive; now without git. */
function sourceDateEpoch(root: string): number {
  if (process.env.SOURCE_DATE_EPOCH) return Number(process.env.SOURCE_DATE_EPOCH);
  const r = spawnSync('git', ['-C', root, 'log', '-1', '--format=%ct'], { encoding: 'utf8' });
  const t = Number(r.stdout.trim());
  return r.status === 0 && t > 0 ? t : Math.floor(Date.now() / 1000);
}

/** The RPM License: tag, from ours, Node's and the bundled packages' declared licences. */
function licenceExpression(packages: readonly { license: string }[]): string {
  const ids = new Set(['BSD-2-Clause', 'MIT']);
  for (const p of packages)
    for (const id of p.license.split(/\s+(?:OR|AND)\s+|[()]/)) if (id.trim()) ids.add(id.trim());
  return [...ids].join(' AND ');
}

function buildRpm(tree: string, outDir: string, version: string, licence: string, mtime: number): string {
  const top = join(outDir, '.rpmbuild');
  rmSync(top, { recursive: true, force: true });
  mkdirSync(top, { recursive: true });
  const r = spawnSync(
    'rpmbuild',
    [
      '-bb',
      '--nodeps',
      '--define',
      `_topdir ${top}`,
      '--define',
      `vmsb_version ${version}`,
      '--define',
      `vmsb_tree ${tree}`,
      '--define',
      `vmsb_license ${licence}`,
      '--define',
      '_buildhost vmsb',
      '--define',
      'use_source_date_epoch_as_buildtime 1',
      join(TOOL_DIR, 'vmsb.spec'),
    ],
    { encoding: 'utf8', env: { ...process.env, SOURCE_DATE_EPOCH: String(mtime) } },
  );
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') {
    throw new Error("rpmbuild is not installed (Debian's rpm package: apt-get install rpm, or bash scripts/setup)");
  }
  if (r.status !== 0) throw new Error(`rpmbuild failed:\n${r.stdout}\n${r.stderr}`);
  const built = join(top, 'RPMS', 'x86_64', `vmsb-${version}-1.x86_64.rpm`);
  if (!existsSync(built)) throw new Error(`rpmbuild did not write ${built}:\n${r.stdout}`);
  const rpm = join(outDir, `vmsb-${version}-1.x86_64.rpm`);
  copyFileSync(built, rpm);
  rmSync(top, { recursive: true, force: true });
  return rpm;
}
