#!/usr/bin/env node
/**
 * Builds the daemon's start-up snapshot (src/snapshot.ts; BENCHMARKS.md, startup-xen):
 *   <out>/varstored-snapshot.cjs  the daemon in one CommonJS file (what `--build-snapshot` runs),
 *   <out>/varstored.blob          the heap once that file has been evaluated,
 *   <out>/varstored.blob.flags    the node options it was made with, on one line.
 * Node loads a snapshot only in the binary that made it, and refuses it (the daemon would not start)
 * when some V8 options differ (--lite-mode does): the blob is made by the daemon's own node with its
 * options (here the `node` on PATH with bin/node-flags' options; tools/package passes the packaged
 * runtime with varstored's node-flags line), and the launchers use it only while their options are
 * still those of varstored.blob.flags.
 *
 *   node build-snapshot.mjs [--out DIR] [--native-dir REL] [--node NODE [OPTIONS...]]
 *
 * --native-dir: where @vmsb/xen finds its native files, relative to the out directory.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));

export const SNAPSHOT_SCRIPT = 'varstored-snapshot.cjs';
export const SNAPSHOT_BLOB = 'varstored.blob';
export const SNAPSHOT_FLAGS = 'varstored.blob.flags';

/** The options of bin/node-flags (its `options='…'` line), which the daemon runs with here. */
export function launcherOptions() {
  const match = /^options='(.*)'$/m.exec(readFileSync(join(here, 'bin', 'node-flags'), 'utf8'));
  if (!match) throw new Error('bin/node-flags has no options= line');
  return match[1].split(/\s+/).filter(Boolean);
}

/**
 * Bundles src/snapshot.ts into `out` and makes the blob with `node` (a command: the binary and its
 * options). Throws with node's own output when it cannot.
 */
export async function buildSnapshot({ out, nativeDir, node }) {
  const script = join(out, SNAPSHOT_SCRIPT);
  const blob = join(out, SNAPSHOT_BLOB);
  const flags = join(out, SNAPSHOT_FLAGS);
  rmSync(blob, { force: true });
  rmSync(flags, { force: true });
  await build({
    absWorkingDir: here,
    entryPoints: [join(here, 'src/snapshot.ts')],
    outfile: script,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    logLevel: 'error',
    define: {
      // The verifier is inside this file, so the daemon never loads it from disk (src/main.ts).
      __VMSB_AUTH_BUNDLED__: 'true',
      // @vmsb/xen finds its native files relative to the program (packages/xen/src/native.ts); the
      // program's URL is known only at run time (src/snapshot.ts sets it from process.argv[1]).
      VMSB_BUNDLED_NATIVE_DIR: JSON.stringify(nativeDir),
      'import.meta.url': 'globalThis.__vmsbModuleUrl',
    },
  });
  const [command, ...options] = node;
  const run = spawnSync(command, [...options, '--snapshot-blob', blob, '--build-snapshot', script], {
    encoding: 'utf8',
    // What the daemon runs with: none of Node's environment variables (the launchers drop them).
    env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('NODE_'))),
  });
  if (run.status !== 0 || run.stderr !== '') {
    rmSync(blob, { force: true });
    throw new Error(
      `${[command, ...options].join(' ')} --build-snapshot ${script} failed (status ${run.status}): ${run.stderr}${run.error?.message ?? ''}`,
    );
  }
  writeFileSync(flags, `${options.join(' ')}\n`);
  return { script, blob, flags };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  let out = join(here, 'dist');
  // From dist/, the package's own dependency link (what bin/varstored uses for vmsb-launch).
  let nativeDir = '../node_modules/@vmsb/xen/build/Release/';
  let node;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--out') out = resolve(args[++i]);
    else if (args[i] === '--native-dir') nativeDir = args[++i];
    else if (args[i] === '--node') {
      node = args.slice(i + 1);
      break;
    } else {
      process.stderr.write(`build-snapshot: unknown argument ${args[i]}\n`);
      process.exit(2);
    }
  }
  try {
    const { blob } = await buildSnapshot({ out, nativeDir, node: node ?? ['node', ...launcherOptions()] });
    process.stdout.write(`build-snapshot: ${blob}\n`);
  } catch (e) {
    process.stderr.write(`build-snapshot: ${e.message}\n`);
    process.exit(1);
  }
}
