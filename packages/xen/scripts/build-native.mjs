// Builds the native targets (binding.gyp) if and only if the Xen headers are present, so `pnpm install`
// succeeds on machines without Xen and the programs can say exactly what is missing. (The host binding
// and the launcher need no Xen header, but are built with the rest: binding.gyp can build them alone
// with VMSB_WITH_XEN=0.) The seccomp filter is compiled in when libseccomp's headers are
// present (libseccomp-dev); without them --depriv refuses to start rather than run unfiltered.
//
// Environment:
//   XEN_INCLUDE_DIR     where to look for the Xen headers (default /usr/include)
//   VMSB_XEN=0          never build the Xen binding
//   VMSB_XEN_BUILD_DIR  where to record the outcome (default ./build); node-gyp always builds in ./build
//   npm_config_nodedir  Node headers for node-gyp (default /usr when /usr/include/node/node_api.h exists)
// What the programs need at run time is listed in native-artefacts.json.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const buildDir = resolve(packageDir, process.env.VMSB_XEN_BUILD_DIR ?? 'build');
const includeDir = process.env.XEN_INCLUDE_DIR || '/usr/include';
const outcomeFile = join(buildDir, 'xen-build.json');

/** The headers every Xen target includes. */
const REQUIRED_HEADERS = [
  'xendevicemodel.h',
  'xenforeignmemory.h',
  'xenevtchn.h',
  'xentoollog.h',
  'xenstore.h',
  'xen/hvm/ioreq.h',
  'xen/memory.h',
];

function skip(reason) {
  record({ built: false, reason });
  console.log(
    `[@vmsb/xen] ${reason}: native build skipped (the Xen transport, the locks and the sandbox will be unavailable)`,
  );
  process.exit(0);
}

let xenReason;
if (process.env.VMSB_XEN === '0') xenReason = 'VMSB_XEN=0';
else {
  const missing = REQUIRED_HEADERS.filter((h) => !existsSync(join(includeDir, h)));
  if (missing.length > 0)
    xenReason = `Xen headers not found in ${includeDir}: ${missing.join(', ')} (install libxen-dev)`;
}
// node-gyp always builds in ./build: without the Xen headers nothing is built, so that a run that
// finds none never replaces a complete build.
if (xenReason !== undefined) skip(xenReason);
const withXen = xenReason === undefined;
const withSeccomp = existsSync('/usr/include/seccomp.h');

function previous() {
  try {
    return JSON.parse(readFileSync(outcomeFile, 'utf8'));
  } catch {
    return undefined;
  }
}

function record(outcome) {
  mkdirSync(buildDir, { recursive: true });
  writeFileSync(outcomeFile, `${JSON.stringify(outcome, null, 2)}\n`);
}

const require = createRequire(import.meta.url);
const nodeGyp = require.resolve('node-gyp/bin/node-gyp.js');
const nodedir = process.env.npm_config_nodedir || (existsSync('/usr/include/node/node_api.h') ? '/usr' : undefined);
// `build` keeps make incremental once configured with the same choices; `rebuild` configures from scratch.
const before = previous();
const configured =
  existsSync(join(packageDir, 'build', 'Makefile')) &&
  existsSync(join(packageDir, 'build', 'config.gypi')) &&
  before?.withXen === withXen &&
  before?.withSeccomp === withSeccomp;
const args = [nodeGyp, configured ? 'build' : 'rebuild', '--jobs=max'];
if (nodedir) args.push(`--nodedir=${nodedir}`);

const result = spawnSync(process.execPath, args, {
  cwd: packageDir,
  stdio: ['ignore', 'inherit', 'inherit'],
  env: {
    ...process.env,
    XEN_INCLUDE_DIR: includeDir,
    VMSB_WITH_XEN: withXen ? '1' : '0',
    VMSB_WITH_SECCOMP: withSeccomp ? '1' : '0',
  },
});
if (result.status !== 0) {
  const reason = `the native build failed (node-gyp exit ${result.status ?? result.signal})`;
  record({ built: false, reason, host: false, withXen, withSeccomp });
  console.error(`[@vmsb/xen] ${reason}; see the output above`);
  // Without the Xen headers the package must still install: the programs then report what is missing.
  process.exit(withXen ? 1 : 0);
}
record({
  built: withXen,
  ...(withXen ? { includeDir } : { reason: xenReason }),
  host: true,
  withXen,
  withSeccomp,
});
console.log(
  `[@vmsb/xen] host binding and launcher built (${withSeccomp ? 'with' : 'WITHOUT'} libseccomp); ` +
    (withXen
      ? `Xen binding built against the Xen headers in ${includeDir}`
      : `${xenReason}: Xen binding skipped (the Xen transport will be unavailable)`),
);
