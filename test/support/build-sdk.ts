import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Vitest globalSetup: the SDK tests import the built `@fangate/sdk` (sdk/dist, generated from the
 * served OpenAPI document). `npm test` builds it first; a direct `vitest run` builds it when missing.
 */
export default function setup(): void {
  const root = join(import.meta.dirname, '..', '..');
  if (existsSync(join(root, 'sdk', 'dist', 'index.js'))) return;
  execFileSync(process.execPath, ['--import', 'tsx', join(root, 'sdk', 'scripts', 'build.ts')], { cwd: root, stdio: 'inherit' });
}
