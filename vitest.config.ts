import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Builds the SDK (sdk/dist) when it is missing: test/sdk imports it as a user would.
    globalSetup: ['test/support/build-sdk.ts'],
    pool: 'forks',
    // PGlite instances and the sandbox are real servers; on a 2-core machine most test time is waiting
    // (for steps, timeouts, child processes), so three files at a time finish sooner than two (≈10 min vs 12).
    maxWorkers: 3,
    minWorkers: 1,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
