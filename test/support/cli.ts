/**
 * How tests run the `fangate` command: the sources through tsx (`npm run dev` does the same), so a test run needs
 * no build and always runs the code under test. `bin/fangate.js` runs the compiled dist/ instead; the compiled start
 * path (`npm start` after the install build) has its own test in test/foundation/cli.test.ts.
 */
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Arguments for `spawn(process.execPath, [...FANGATE_CLI, command, ...])`. */
export const FANGATE_CLI: readonly string[] = ['--import', 'tsx', fileURLToPath(new URL('../../src/main.ts', import.meta.url))];
