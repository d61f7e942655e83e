/**
 * How tests run the `fangate` command: `bin/fangate.js`, the compiled server `npm start` runs, which the global setup
 * (test/support/build.ts) rebuilds when a source is newer, so it is always the code under test. It starts in ≈ 0.3 s
 * against ≈ 1.5–2 s for the sources through tsx (5–8 s on a loaded machine), and the CLI tests start it ≈ 30 times.
 * The install build itself (`npm start` from a clean checkout) has its own test in test/foundation/cli.test.ts.
 */
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Arguments for `spawn(process.execPath, [...FANGATE_CLI, command, ...])`. */
export const FANGATE_CLI: readonly string[] = [fileURLToPath(new URL('../../bin/fangate.js', import.meta.url))];
