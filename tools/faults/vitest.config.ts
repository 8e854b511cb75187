import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The tests start real daemons, kill them and fill disks: one file at a time, so that two
    // suites never compete for the two cores. The timeouts only turn a hang into a failure; no
    // test asserts how long anything takes.
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 60_000,
  },
});
