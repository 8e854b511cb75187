/**
 * pnpm package [--check] [--no-rpm] [--snapshot] [--out DIR]
 *   NODE_RUNTIME=<node binary>  the runtime to ship (default: the node running this)
 *   NODE_LICENSE=<file>         Node's LICENSE for it, when not found beside it
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildPackage } from './build.js';
import { checkPackage } from './check.js';
import { measurePackage } from './measure.js';

const USAGE = `usage: pnpm package [--check] [--no-rpm] [--snapshot] [--max-glibc V] [--out DIR] [--measure [--flags=F]...]
  --check   then unpack the tarball into an empty directory and run it with the system's node
            hidden (needs root: a private mount namespace)
  --no-rpm  only the tarball
  --snapshot  ship varstored's start-up snapshot: faster starts, about 4.5 MiB more per daemon
  --max-glibc V  refuse when the runtime or a native file needs a glibc newer than V (2.17: EL7)
  --measure then measure the unpacked package: start-up against node -e 0, and memory (PSS) of
            10 daemons with Secure Boot enforcing, once per --flags "<node flags>" (repeatable;
            none: the shipped node-flags)
  NODE_RUNTIME=<path> ships another Node binary; NODE_LICENSE=<file> names its LICENSE`;

async function main(): Promise<number> {
  let values: {
    check?: boolean;
    measure?: boolean;
    flags?: string[];
    'max-glibc'?: string;
    'no-rpm'?: boolean;
    snapshot?: boolean;
    out?: string;
    help?: boolean;
  };
  try {
    ({ values } = parseArgs({
      options: {
        check: { type: 'boolean' },
        measure: { type: 'boolean' },
        flags: { type: 'string', multiple: true },
        'max-glibc': { type: 'string' },
        'no-rpm': { type: 'boolean' },
        snapshot: { type: 'boolean' },
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
    snapshot: values.snapshot === true,
    ...(values['max-glibc'] ? { maxGlibc: values['max-glibc'] } : {}),
    log,
  });
  log(
    `minimum glibc: ${result.minimumGlibc} (runtime ${result.runtime.requires.glibc}, native files ${result.natives.map((n) => n.requires.glibc).join(', ')})`,
  );
  if (values.check) {
    const report = await checkPackage({ tarball: result.tarball, log });
    log(`check passed: ${report.steps.join('; ')}`);
  }
  if (values.measure) {
    const m = await measurePackage({ tarball: result.tarball, variants: values.flags ?? [''], log });
    log(
      `sizes: tarball ${(m.tarballBytes / 2 ** 20).toFixed(1)} MiB, unpacked ${(m.unpackedBytes / 2 ** 20).toFixed(1)} MiB`,
    );
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
