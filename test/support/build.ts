import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Vitest globalSetup: what the tests run that is built from the sources.
 * - The SDK tests import the built `@fangate/sdk` (sdk/dist, generated from the served OpenAPI document); `npm test`
 *   builds it first, a direct `vitest run` builds it when missing.
 * - The CLI tests run `bin/fangate.js`, the compiled server `npm start` runs (test/support/cli.ts). When a source is
 *   newer than it, it is rebuilt together with the embedded template (which databases kept in memory load); `npm ci`
 *   built both from the same sources, so a CI run builds nothing here.
 */
export default function setup(): void {
  const root = join(import.meta.dirname, '..', '..');
  if (!existsSync(join(root, 'sdk', 'dist', 'index.js'))) {
    execFileSync(process.execPath, ['--import', 'tsx', join(root, 'sdk', 'scripts', 'build.ts')], { cwd: root, stdio: 'inherit' });
  }
  const bundle = join(root, 'dist', 'bundle', 'main.js');
  if (!existsSync(bundle) || newestSource(join(root, 'src')) > statSync(bundle).mtimeMs) {
    execFileSync(process.execPath, [join(root, 'scripts', 'build-server.mjs')], { cwd: root, stdio: 'inherit' });
    // And the embedded template from that build, as the install does: in-memory test databases load it, and one
    // made before a migration changed would hold the old schema.
    execFileSync(process.execPath, [join(root, 'bin', 'fangate.js'), 'prepare'], { cwd: root, stdio: 'inherit' });
  }
}

function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) newest = Math.max(newest, statSync(join(entry.parentPath ?? entry.path, entry.name)).mtimeMs);
  }
  return newest;
}
