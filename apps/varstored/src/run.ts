import { main } from './main.js';

/** Runs the daemon as a program: its exit status is the process's. */
export function runProgram(argv: readonly string[]): void {
  // A daemon does not die because whoever reads its log went away.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);
  main(argv).then(
    (status) => process.exit(status),
    (e: unknown) => {
      process.stderr.write(`error: varstored: ${(e as Error).stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
}
