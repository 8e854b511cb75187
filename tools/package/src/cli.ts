/**
 * pnpm package [--check] [--no-rpm] [--out DIR]
 *   NODE_RUNTIME=<node binary>  the runtime to ship (default: the node running this)
 *   NODE_LICENSE=<file>         Node's LICENSE for it, when not found beside it
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildPackage } from './build.js';
import { checkPackage } from './check.js';

const USAGE = `usage: pnpm package [--check] [--no-rpm] [--out DIR]
  --check   then unpack the tarball into an empty directory and run it with the system's node
            hidden (needs root: a private mount namespace)
  --no-rpm  only the tarball
  NODE_RUNTIME=<path> ships another Node binary; NODE_LICENSE=<file> names its LICENSE`;

async function main(): Promise<number> {
  let values: { check?: boolean; 'no-rpm'?: boolean; out?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      options: {
        check: { type: 'boolean' },
        'no-rpm': { type: 'boolean' },
        out: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    console.error(`package: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const log = (line: string) => console.log(`package: ${line}`);
  const result = await buildPackage({
    ...(values.out ? { outDir: resolve(values.out) } : {}),
    ...(process.env.NODE_RUNTIME ? { runtime: process.env.NODE_RUNTIME } : {}),
    ...(process.env.NODE_LICENSE ? { nodeLicence: process.env.NODE_LICENSE } : {}),
    rpm: !values['no-rpm'],
    log,
  });
  log(
    `minimum glibc: ${result.minimumGlibc} (runtime ${result.runtime.requires.glibc}, native files ${result.natives.map((n) => n.requires.glibc).join(', ')})`,
  );
  if (values.check) {
    const report = await checkPackage({ tarball: result.tarball, log });
    log(`check passed: ${report.steps.join('; ')}`);
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`package: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
