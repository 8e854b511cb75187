import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // One package is built for the whole file (about a minute on 2 CPUs) and its daemons are
    // started one after another. No test asserts how long anything takes.
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 300_000,
  },
});
