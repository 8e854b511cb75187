// The launcher (vmsb-launch from @vmsb/xen) decides whether to enter new namespaces from the daemon's
// command line with its own getopt_long table: it must agree with parseArgs on --depriv for every
// command line the daemon accepts. (The daemon also checks the outcome and refuses --depriv outside
// the launcher's namespaces, so a disagreement could only ever refuse to start, never run weaker.)
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { parseArgs } from './args.js';

const launcher = join(
  dirname(createRequire(import.meta.url).resolve('@vmsb/xen/package.json')),
  'build',
  'Release',
  'vmsb-launch',
);
const scratch = mkdtempSync(join(tmpdir(), 'vmsb-launch-'));
const probe = join(scratch, 'probe.sh');
writeFileSync(probe, '#!/bin/sh\n[ -n "$VMSB_DEPRIV_NAMESPACES" ] && echo unshared || echo as-is\n');
chmodSync(probe, 0o755);
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** What the launcher decides for `argv`: the probe runs where the daemon would. */
function launched(argv: readonly string[]): 'unshared' | 'as-is' {
  const run = spawnSync(launcher, ['/bin/sh', probe, ...argv], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`vmsb-launch failed: ${run.stderr}`);
  return run.stdout.trim() as 'unshared' | 'as-is';
}

/** Pieces of command lines: mostly well-formed (so the daemon accepts them), some not. */
const PIECES: string[][] = [
  ['--depriv'],
  ['--dep'],
  ['--depr'],
  ['--depriv=1'],
  ['--nonpersistent'],
  ['--non'],
  ['--uid', '65534'],
  ['--gid=65534'],
  ['--chroot', '/var/run/x'],
  ['--chroot=--depriv'],
  ['--chroot', '--depriv'],
  ['--pidfile', '/p'],
  ['--backend', 'xapidb'],
  ['--arg', 'uuid:u'],
  ['--arg', '--depriv'],
  ['--arg=socket:/s'],
  ['--transport', 'unix:/s'],
  ['--platform', 'secureboot=true'],
  ['--log-level', 'error'],
  ['--'],
  ['--', '--depriv'],
  ['-d'],
  ['x'],
  ['--domain'],
  ['--help'],
];

describe.skipIf(!existsSync(launcher) || process.getuid?.() !== 0)(
  'vmsb-launch and parseArgs agree on --depriv (root only: the launcher unshares)',
  () => {
    it('for hand-picked command lines', () => {
      const cases: [string[], 'unshared' | 'as-is'][] = [
        [['--domain', '1', '--depriv'], 'unshared'],
        [['--domain', '1', '--dep'], 'unshared'],
        [['--domain', '--depriv'], 'as-is'],
        [['--chroot', '--depriv', '--domain', '1'], 'as-is'],
        [['--domain=1', '--arg', 'path:/x', '--depriv'], 'unshared'],
        [['--domain', '1'], 'as-is'],
      ];
      for (const [argv, expected] of cases)
        expect({ argv, decision: launched(argv) }).toEqual({ argv, decision: expected });
    });

    it('for every command line the daemon accepts', () => {
      let accepted = 0;
      fc.assert(
        fc.property(fc.array(fc.constantFrom(...PIECES), { maxLength: 6 }), (pieces) => {
          const argv = ['--domain', '3', '--arg', 'uuid:u', ...pieces.flat()];
          const parsed = parseArgs(argv);
          if (parsed.kind !== 'run') return;
          accepted++;
          expect({ argv, decision: launched(argv) }).toEqual({
            argv,
            decision: parsed.config.depriv ? 'unshared' : 'as-is',
          });
        }),
        { numRuns: 150 },
      );
      // Most generated command lines are ones the daemon accepts: the comparison really ran.
      expect(accepted).toBeGreaterThan(30);
    });
  },
);
