// Builds the native Xen binding if and only if the Xen headers are present, so `pnpm install`
// succeeds on machines without Xen and the daemon can say exactly what is missing.
//
// Environment:
//   XEN_INCLUDE_DIR     where to look for the Xen headers (default /usr/include)
//   VMSB_XEN=0          never build the binding
//   VMSB_XEN_BUILD_DIR  where to record the outcome (default ./build); node-gyp always builds in ./build
//   npm_config_nodedir  Node headers for node-gyp (default /usr when /usr/include/node/node_api.h exists)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const buildDir = resolve(packageDir, process.env.VMSB_XEN_BUILD_DIR ?? 'build');
const includeDir = process.env.XEN_INCLUDE_DIR || '/usr/include';

/** The headers every target includes. */
const REQUIRED_HEADERS = [
  'xendevicemodel.h',
  'xenforeignmemory.h',
  'xenevtchn.h',
  'xentoollog.h',
  'xenstore.h',
  'xen/hvm/ioreq.h',
  'xen/memory.h',
];

function record(outcome) {
  mkdirSync(buildDir, { recursive: true });
  writeFileSync(join(buildDir, 'xen-build.json'), `${JSON.stringify(outcome, null, 2)}\n`);
}

function skip(reason) {
  record({ built: false, reason });
  console.log(`[@vmsb/xen] ${reason}: native build skipped (the Xen transport will be unavailable)`);
  process.exit(0);
}

if (process.env.VMSB_XEN === '0') skip('VMSB_XEN=0');

const missing = REQUIRED_HEADERS.filter((h) => !existsSync(join(includeDir, h)));
if (missing.length > 0) {
  skip(`Xen headers not found in ${includeDir}: ${missing.join(', ')} (install libxen-dev)`);
}

const require = createRequire(import.meta.url);
const nodeGyp = require.resolve('node-gyp/bin/node-gyp.js');
const nodedir = process.env.npm_config_nodedir || (existsSync('/usr/include/node/node_api.h') ? '/usr' : undefined);
// `build` keeps make incremental once configured; `rebuild` configures from scratch.
const configured =
  existsSync(join(packageDir, 'build', 'Makefile')) && existsSync(join(packageDir, 'build', 'config.gypi'));
const args = [nodeGyp, configured ? 'build' : 'rebuild', '--jobs=max'];
if (nodedir) args.push(`--nodedir=${nodedir}`);

const result = spawnSync(process.execPath, args, {
  cwd: packageDir,
  stdio: ['ignore', 'inherit', 'inherit'],
  env: { ...process.env, XEN_INCLUDE_DIR: includeDir },
});
if (result.status !== 0) {
  record({ built: false, reason: `the native build failed (node-gyp exit ${result.status ?? result.signal})` });
  console.error('[@vmsb/xen] the Xen headers are present but the native build failed; see the output above');
  process.exit(1);
}
record({ built: true, includeDir });
console.log(`[@vmsb/xen] native binding built against the Xen headers in ${includeDir}`);
