/**
 * The Node runtime the package carries: what it is, whether it can run the programs, and the
 * oldest C library it can run on.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface RuntimeFacts {
  /** The runtime's real path. */
  readonly path: string;
  readonly sha256: string;
  readonly node: string;
  /** NODE_MODULE_VERSION: the ABI of addons built against Node's own C++ API. */
  readonly modules: string;
  /** The highest Node-API version it implements. */
  readonly napi: number;
  readonly openssl: string;
  readonly platform: string;
  readonly arch: string;
  /** The highest symbol versions it references from the C and C++ runtime libraries. */
  readonly requires: ElfVersionNeeds;
}

/** The highest version of each versioned library interface an ELF file references (objdump -T). */
export interface ElfVersionNeeds {
  readonly glibc?: string;
  readonly glibcxx?: string;
  readonly cxxabi?: string;
}

export class RuntimeRefused extends Error {}

/**
 * Runs the runtime to learn what it is, and refuses one that cannot run the programs: not Linux
 * x64, or without a working OpenSSL (the PKCS#7 verifier and `varstore keys` sign with it).
 */
export function inspectRuntime(candidate: string): RuntimeFacts {
  if (!existsSync(candidate)) throw new RuntimeRefused(`the Node runtime ${candidate} does not exist`);
  const path = realpathSync(candidate);
  const head = readFileSync(path).subarray(0, 4);
  if (head.toString('latin1') !== '\x7fELF')
    throw new RuntimeRefused(`the Node runtime ${path} is not an ELF executable`);
  const probe = spawnSync(path, ['-e', RUNTIME_PROBE], { encoding: 'utf8', timeout: 60_000 });
  if (probe.status !== 0) {
    const why = (probe.stderr || probe.error?.message || `exit ${probe.status ?? probe.signal}`).trim().split('\n');
    throw new RuntimeRefused(
      `the Node runtime ${path} failed its check (OpenSSL sign/verify, X.509): ${why[why.length - 1]}`,
    );
  }
  const v = JSON.parse(probe.stdout) as {
    node: string;
    modules: string;
    napi: string;
    openssl?: string;
    platform: string;
    arch: string;
  };
  if (v.platform !== 'linux' || v.arch !== 'x64') {
    throw new RuntimeRefused(`the Node runtime ${path} is for ${v.platform}-${v.arch}; the package is linux-x64`);
  }
  if (!v.openssl) throw new RuntimeRefused(`the Node runtime ${path} has no OpenSSL (process.versions.openssl)`);
  return {
    path,
    sha256: createHash('sha256').update(readFileSync(path)).digest('hex'),
    node: v.node,
    modules: v.modules,
    napi: Number(v.napi),
    openssl: v.openssl,
    platform: v.platform,
    arch: v.arch,
    requires: elfVersionNeeds(path),
  };
}

/**
 * What the runtime must do for the programs: sign and verify with RSA and SHA-256 (PKCS#7 and
 * `varstore keys`), parse X.509, hash. Prints its versions as JSON.
 */
const RUNTIME_PROBE = `
const c = require('node:crypto');
const { privateKey, publicKey } = c.generateKeyPairSync('rsa', { modulusLength: 2048 });
const data = Buffer.from('vmsb runtime check');
const sig = c.sign('sha256', data, privateKey);
if (!c.verify('sha256', data, publicKey, sig)) throw new Error('RSA-SHA256 signature does not verify');
if (c.verify('sha256', Buffer.from('other'), publicKey, sig)) throw new Error('RSA-SHA256 verifies the wrong data');
if (c.createHash('sha256').update('abc').digest('hex') !== 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
  throw new Error('SHA-256 is wrong');
if (typeof c.X509Certificate !== 'function') throw new Error('no X509Certificate');
const v = process.versions;
process.stdout.write(JSON.stringify({ node: v.node, modules: v.modules, napi: v.napi, openssl: v.openssl,
  platform: process.platform, arch: process.arch }));
`;

/** The highest GLIBC_, GLIBCXX_ and CXXABI_ versions `file` references (its dynamic symbol table). */
export function elfVersionNeeds(file: string): ElfVersionNeeds {
  const table = execFileSync('objdump', ['-T', file], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  const highest = (prefix: string): string | undefined => {
    let best: string | undefined;
    for (const m of table.matchAll(new RegExp(`\\b${prefix}_([0-9]+(?:\\.[0-9]+)*)\\b`, 'g'))) {
      if (best === undefined || compareVersions(m[1]!, best) > 0) best = m[1];
    }
    return best;
  };
  const needs: { glibc?: string; glibcxx?: string; cxxabi?: string } = {};
  const glibc = highest('GLIBC');
  const glibcxx = highest('GLIBCXX');
  const cxxabi = highest('CXXABI');
  if (glibc) needs.glibc = glibc;
  if (glibcxx) needs.glibcxx = glibcxx;
  if (cxxabi) needs.cxxabi = cxxabi;
  return needs;
}

/** The symbols of `file` that need a GLIBC_ version above `limit` (e.g. 2.17 for EL7). */
export function symbolsAbove(file: string, limit: string): string[] {
  const table = execFileSync('objdump', ['-T', file], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  const found: string[] = [];
  for (const line of table.split('\n')) {
    const m = /\(?GLIBC_([0-9.]+)\)?\s+(\S+)\s*$/.exec(line);
    if (m && compareVersions(m[1]!, limit) > 0) found.push(`${m[2]}@GLIBC_${m[1]}`);
  }
  return [...new Set(found)].sort();
}

export function compareVersions(a: string, b: string): number {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * Node's licence for the runtime at `path`: NODE_LICENSE if given, else the LICENSE its own
 * distribution puts beside it (an official tarball's `<prefix>/LICENSE`, or the doc directory of
 * a distribution package). The text must be Node's (it starts by saying so).
 */
export function findNodeLicence(path: string, explicit?: string): string {
  const prefix = dirname(dirname(path));
  const candidates = explicit
    ? [explicit]
    : [
        join(prefix, 'LICENSE'),
        join(prefix, 'share', 'doc', 'node', 'LICENSE'),
        join(prefix, 'share', 'doc', 'nodejs', 'LICENSE'),
      ];
  for (const file of candidates) {
    if (!existsSync(file)) continue;
    const text = readFileSync(file, 'utf8');
    if (text.startsWith('Node.js is licensed for use as follows')) return file;
    if (explicit) throw new RuntimeRefused(`${file} (NODE_LICENSE) is not Node.js's LICENSE file`);
  }
  throw new RuntimeRefused(
    `cannot find Node.js's LICENSE for ${path} (looked in ${candidates.join(', ')}): set NODE_LICENSE to the LICENSE file of that Node.js release`,
  );
}
