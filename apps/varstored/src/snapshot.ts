/**
 * The entry of the daemon's start-up snapshot (build-snapshot.mjs; BENCHMARKS.md, startup-xen):
 * `node --build-snapshot` runs this once at build time and saves the heap, and every daemon then
 * starts from that heap (`node --snapshot-blob varstored.blob varstored-snapshot.cjs <options>`,
 * bin/node-flags) instead of compiling and evaluating a megabyte of JavaScript at each VM boot.
 *
 * Evaluated here, at build time: every module the daemon imports statically, and the verifier
 * (@vmsb/auth), which the daemon otherwise evaluates on first use; none of
 * them depends on where the program is installed or on the host. Left for run time: @vmsb/xen and
 * its native bindings (native code cannot be in a snapshot, and the binding finds its files relative
 * to the program, which the launcher names as the script: process.argv[1]), and the XAPI client
 * (@vmsb/xapi), which needs node:http: Node 20 cannot load that module while it builds a snapshot.
 */
import { startupSnapshot } from 'node:v8';
import { pathToFileURL } from 'node:url';
import { runProgram } from './run.js';

declare global {
  /** The program's URL, which the snapshot's build puts in place of `import.meta.url`. */
  var __vmsbModuleUrl: string | undefined;
}

const evaluated = import('@vmsb/auth');
evaluated.catch((e: unknown) => {
  // A snapshot without it would still work, evaluating it on first use; but it is not what was
  // measured, so the build fails.
  process.stderr.write(`varstored snapshot: ${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});

startupSnapshot.setDeserializeMainFunction(() => {
  globalThis.__vmsbModuleUrl = pathToFileURL(process.argv[1] ?? '').href;
  // The name the program was invoked by, as tools/package's launcher passes it to every bundle.
  if (process.env.VMSB_ARGV0 !== undefined) {
    process.argv[1] = process.env.VMSB_ARGV0;
    delete process.env.VMSB_ARGV0;
  }
  runProgram(process.argv.slice(2));
});
