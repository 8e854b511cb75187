/**
 * The licences the package must carry: ours, Node's (for the runtime), and each npm package whose
 * code is inlined in a bundle, each with its own licence file.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, sep } from 'node:path';
import { packageDirOf } from './bundle.js';

export interface BundledPackage {
  readonly name: string;
  readonly version: string;
  readonly license: string;
  readonly dir: string;
  readonly licenceFiles: readonly string[];
}

const LICENCE_FILE = /^(licen[cs]e|copying|notice)([.-].*)?$/i;

/** The third-party npm packages among the bundles' inputs (those under node_modules). */
export function bundledPackages(inputs: readonly string[]): BundledPackage[] {
  const dirs = new Set<string>();
  for (const input of inputs) if (input.split(sep).includes('node_modules')) dirs.add(packageDirOf(input));
  const found: BundledPackage[] = [];
  for (const dir of dirs) {
    const m = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
      name: string;
      version: string;
      license?: string;
    };
    const licenceFiles = readdirSync(dir)
      .filter((f) => LICENCE_FILE.test(f))
      .sort();
    if (licenceFiles.length === 0) {
      throw new Error(
        `${m.name}@${m.version} (${dir}) is inlined in a bundle but has no licence file (LICENSE, COPYING, NOTICE) to ship with it`,
      );
    }
    found.push({
      name: m.name,
      version: m.version,
      license: m.license ?? 'see licence file',
      dir,
      licenceFiles: licenceFiles.map((f) => join(dir, f)),
    });
  }
  return found.sort((a, b) => (a.name < b.name ? -1 : 1));
}

/**
 * Writes `licences/`: `vmsb/LICENSE`, `node/LICENSE`, `<npm package>/<its files>`, and a README
 * listing them.
 */
export function writeLicences(
  dest: string,
  ours: string,
  node: { file: string; version: string },
  packages: readonly BundledPackage[],
  extra: readonly { what: string; file: string }[],
): void {
  mkdirSync(join(dest, 'vmsb'), { recursive: true });
  copyFileSync(ours, join(dest, 'vmsb', 'LICENSE'));
  mkdirSync(join(dest, 'node'), { recursive: true });
  copyFileSync(node.file, join(dest, 'node', 'LICENSE'));
  const lines = [
    'Licences of what this package contains.',
    '',
    'vmsb/LICENSE     vmsb (usr/sbin/varstored, usr/bin/varstore*, lib/*.mjs apart from the',
    '                 npm packages below that the bundles inline)',
    `node/LICENSE     the Node.js ${node.version} runtime (bin/node), with the licences of what it contains`,
  ];
  for (const p of packages) {
    const dir = join(dest, p.name);
    mkdirSync(dir, { recursive: true });
    for (const f of p.licenceFiles) copyFileSync(f, join(dir, f.slice(f.lastIndexOf(sep) + 1)));
    lines.push(`${p.name}/  ${p.name}@${p.version} (${p.license}), inlined in the bundles`);
  }
  for (const e of extra) {
    if (!existsSync(e.file)) throw new Error(`${e.file} is missing`);
    lines.push(`${e.what}`);
  }
  writeFileSync(join(dest, 'README'), `${lines.join('\n')}\n`);
}
