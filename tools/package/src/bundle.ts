/**
 * One JavaScript file per program, with every dependency inlined, and what the bundles need
 * beside them: the data files they read and the native files they load.
 */
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { build, type Metafile, type Plugin } from 'esbuild';

/** A program the package installs: its launcher's path in the tree and the built module it runs. */
export interface Program {
  readonly name: string;
  /** `usr/sbin` or `usr/bin`. */
  readonly dir: string;
  /** The built entry module (apps/<app>/dist/<file>.js). */
  readonly entry: string;
}

/** The programs docs/architecture.md §3.6 names; the package refuses to be built without any of them. */
export const PROGRAM_NAMES = [
  'varstored',
  'varstore',
  'varstore-ls',
  'varstore-get',
  'varstore-set',
  'varstore-rm',
  'varstore-sb-state',
] as const;

/** Daemons go to usr/sbin, as the C varstored's package installs it. */
const SBIN = new Set(['varstored']);

/** The apps whose `bin` entries are the programs. */
const APPS = ['apps/varstored', 'apps/varstore-cli'];

/**
 * The programs, from the apps' `bin` entries: the built module each bin script imports or runs
 * (`../dist/<file>.js`) becomes the bundle's entry.
 */
export function findPrograms(root: string): Program[] {
  const programs: Program[] = [];
  for (const app of APPS) {
    const manifest = JSON.parse(readFileSync(join(root, app, 'package.json'), 'utf8')) as {
      bin?: Record<string, string>;
    };
    for (const [name, script] of Object.entries(manifest.bin ?? {})) {
      const scriptPath = join(root, app, script);
      // A JavaScript bin imports its module (`import '../dist/<file>.js'`); a shell one runs it
      // (`node "$here/../dist/<file>.js"`).
      const m = /(\.\.\/dist\/[\w.-]+\.js)/.exec(readFileSync(scriptPath, 'utf8'));
      if (!m) throw new Error(`${scriptPath} names no module of ../dist/ to bundle`);
      const entry = resolve(dirname(scriptPath), m[1]!);
      if (!existsSync(entry)) throw new Error(`${entry} is missing: run pnpm build first`);
      programs.push({ name, dir: SBIN.has(name) ? 'usr/sbin' : 'usr/bin', entry });
    }
  }
  const missing = PROGRAM_NAMES.filter((n) => !programs.some((p) => p.name === n));
  if (missing.length > 0) throw new Error(`no bin entry for ${missing.join(', ')} in ${APPS.join(', ')}`);
  return programs;
}

export interface BundleResult {
  /** Bundle file per program, in libDir. */
  readonly bundles: ReadonlyMap<string, string>;
  /** Every input file esbuild read (absolute paths). */
  readonly inputs: readonly string[];
  /** Data directories and files copied beside the bundles (absolute source → path in libDir). */
  readonly assets: ReadonlyMap<string, string>;
}

/**
 * Runs first in every bundle. CommonJS dependencies (sax) call require() for Node's built-in
 * modules. The launcher passes the name it was invoked by (VMSB_ARGV0), which the programs print
 * as the C tools print argv[0]; it is removed so that nothing the program starts inherits it.
 */
const BANNER = [
  "import { createRequire as __vmsbCreateRequire } from 'node:module';",
  'const require = __vmsbCreateRequire(import.meta.url);',
  'if (process.env.VMSB_ARGV0 !== undefined) {',
  '  process.argv[1] = process.env.VMSB_ARGV0;',
  '  delete process.env.VMSB_ARGV0;',
  '}',
].join('\n');

/** Where the bundles look for native files, relative to themselves (see packages/xen/src/native.ts). */
export const NATIVE_SUBDIR = 'native';
const ASSET_SUBDIR = 'assets';

/**
 * Bundles every program into `libDir/<name>.mjs`. Modules that locate data with
 * `new URL('<relative path>', import.meta.url)` get the data copied to `libDir/assets/<package>/`
 * and the URL rewritten to point there, since after bundling import.meta.url is the bundle's.
 */
export async function bundlePrograms(
  root: string,
  programs: readonly Program[],
  libDir: string,
  nodeMajor: number,
): Promise<BundleResult> {
  const assets = new Map<string, string>();
  const result = await build({
    absWorkingDir: root,
    entryPoints: Object.fromEntries(programs.map((p) => [p.name, p.entry])),
    outdir: libDir,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    splitting: false,
    platform: 'node',
    format: 'esm',
    target: `node${nodeMajor}`,
    metafile: true,
    logLevel: 'silent',
    banner: { js: BANNER },
    define: { VMSB_BUNDLED_NATIVE_DIR: JSON.stringify(`./${NATIVE_SUBDIR}/`) },
    plugins: [assetPlugin(assets)],
  });
  checkSelfContained(result.metafile);
  for (const [from, to] of assets) {
    const dest = join(libDir, to);
    mkdirSync(dirname(dest), { recursive: true });
    if (statSync(from).isDirectory()) cpSync(from, dest, { recursive: true });
    else copyFileSync(from, dest);
  }
  const bundles = new Map(programs.map((p) => [p.name, join(libDir, `${p.name}.mjs`)]));
  for (const file of bundles.values()) if (!existsSync(file)) throw new Error(`esbuild did not write ${file}`);
  return { bundles, inputs: Object.keys(result.metafile.inputs).map((i) => resolve(root, i)), assets };
}

/** Refuses a bundle that would import anything at run time but Node's own modules. */
function checkSelfContained(metafile: Metafile): void {
  const builtins = new Set(builtinModules);
  for (const [output, info] of Object.entries(metafile.outputs)) {
    for (const imp of info.imports) {
      if (!imp.external) continue;
      const name = imp.path.startsWith('node:') ? imp.path.slice(5) : imp.path;
      if (!builtins.has(name)) {
        throw new Error(
          `${output} would load ${imp.path} at run time: bundles may import only Node's built-in modules`,
        );
      }
    }
  }
}

const URL_OF_MODULE = /new URL\((["'])(\.{1,2}\/[^"']*|\.{1,2})\1,\s*import\.meta\.url\)/g;

function assetPlugin(assets: Map<string, string>): Plugin {
  return {
    name: 'vmsb-assets',
    setup(b) {
      b.onLoad({ filter: /\.js$/ }, (args) => {
        if (args.path.split(sep).includes('node_modules')) return undefined;
        const source = readFileSync(args.path, 'utf8');
        if (!source.includes('import.meta.url')) return undefined;
        const packageDir = packageDirOf(args.path);
        const contents = source.replace(URL_OF_MODULE, (whole, _q: string, rel: string) => {
          const target = resolve(dirname(args.path), rel);
          // The package root and its code (packages/xen locates itself this way) are not data.
          if (!target.startsWith(packageDir + sep)) return whole;
          const inside = relative(packageDir, target);
          const top = inside.split(sep)[0];
          if (top === 'dist' || top === 'src' || top === 'node_modules') return whole;
          if (!existsSync(target)) throw new Error(`${args.path} refers to ${target}, which does not exist`);
          const dest = join(ASSET_SUBDIR, basename(packageDir), inside);
          assets.set(target, dest);
          const url = `./${dest.split(sep).join('/')}${rel.endsWith('/') ? '/' : ''}`;
          return `new URL(${JSON.stringify(url)}, import.meta.url)`;
        });
        return { contents, loader: 'js', resolveDir: dirname(args.path) };
      });
    },
  };
}

/** The directory of the nearest package.json with a name above `file`. */
export function packageDirOf(file: string): string {
  let dir = dirname(file);
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      const m = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string };
      if (typeof m.name === 'string') return dir;
    }
    const up = dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${file}`);
    dir = up;
  }
}

/**
 * The native files the bundles load: every ELF file directly in `build/Release` of a workspace
 * package the bundles include whose name, without `.node`, appears as a string in a bundle or a
 * launcher. Test-only binaries (never named by the programs' code) stay out.
 */
export function findNativeFiles(
  root: string,
  inputs: readonly string[],
  texts: readonly string[],
): { file: string; name: string }[] {
  const packageDirs = new Set<string>();
  for (const input of inputs) {
    if (input.split(sep).includes('node_modules')) continue;
    if (!input.startsWith(root + sep)) continue;
    packageDirs.add(packageDirOf(input));
  }
  const found: { file: string; name: string }[] = [];
  for (const dir of [...packageDirs].sort()) {
    // A package may list what its programs need (packages/xen/native-artefacts.json): all of it ships.
    const manifest = join(dir, 'native-artefacts.json');
    if (existsSync(manifest)) {
      const listed = JSON.parse(readFileSync(manifest, 'utf8')) as { artefacts?: { path: string }[] };
      for (const a of listed.artefacts ?? []) {
        const file = join(dir, a.path);
        if (!existsSync(file)) throw new Error(`${manifest} lists ${a.path}, which is not built (${file})`);
        found.push({ file, name: basename(file) });
      }
    }
    const release = join(dir, 'build', 'Release');
    if (!existsSync(release)) continue;
    for (const name of readdirSync(release).sort()) {
      const file = join(release, name);
      if (!statSync(file).isFile() || !isElf(file)) continue;
      const stem = name.endsWith('.node') ? name.slice(0, -5) : name;
      const quoted = [`"${stem}"`, `'${stem}'`, `"${name}"`, `'${name}'`, `/${name}"`, `/${name}'`];
      if (found.some((f) => f.name === name)) continue;
      if (texts.some((t) => quoted.some((q) => t.includes(q)))) found.push({ file, name });
    }
  }
  return found;
}

function isElf(file: string): boolean {
  const head = readFileSync(file).subarray(0, 4);
  return head.length === 4 && head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46;
}
