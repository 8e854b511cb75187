import { main } from './main.js';

// A daemon does not die because whoever reads its log went away.
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);

main(process.argv.slice(2)).then(
  (status) => process.exit(status),
  (e: unknown) => {
    process.stderr.write(`error: varstored: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
