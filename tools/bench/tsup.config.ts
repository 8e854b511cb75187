import { defineConfig } from 'tsup';

export default defineConfig({
  // Plain ESM scripts run by `node`: the runner and the baseline echo server.
  entry: ['src/cli.ts', 'src/echo-server.ts'],
  format: ['esm'],
  dts: false,
  sourcemap: true,
  clean: true,
  target: 'node20',
});
