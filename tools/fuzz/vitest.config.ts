import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Fuzz runs and daemons compete for two cores: one file at a time. The timeouts only turn a
    // hang into a failure; no test asserts how long anything takes.
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 60_000,
  },
});
