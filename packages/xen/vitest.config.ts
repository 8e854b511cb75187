import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // A simulated vCPU gives up after 10 s (a hang guard, see src/testing/fake-xen.ts); let it report first.
    testTimeout: 30_000,
  },
});
