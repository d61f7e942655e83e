import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Builds the SDK (sdk/dist) when it is missing, and the compiled server when a source is newer: test/sdk imports
    // the SDK as a user would, the CLI tests run bin/fangate.js as `npm start` does.
    globalSetup: ['test/support/build.ts'],
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
