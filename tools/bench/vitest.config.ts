import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // These tests check the benchmark harness (they start daemons); the benchmarks themselves run
    // only with `pnpm bench`. No test asserts how long anything takes.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
