import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The end-to-end tests start real daemons and generate RSA keys; on a loaded 2-core machine
    // that can take far longer than Vitest's 5 s default. No test asserts how long anything takes.
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
