#!/usr/bin/env node
// `npm run build:server`: compiles src/ to dist/ with tsc (incremental: a rebuild with no change is quick) and
// copies every file that is not TypeScript (src/link/assets/*.js|css, …) beside the compiled code, so whatever
// the server reads from disk by a path relative to its module is found in dist/ too.
import { spawnSync } from 'node:child_process';
import { cpSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src');
const dist = join(root, 'dist');

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const compiled = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
if (compiled.status !== 0) {
  console.error('fangate: build:server failed (tsc)');
  process.exit(compiled.status ?? 1);
}

let copied = 0;
for (const entry of readdirSync(src, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || entry.name.endsWith('.ts')) continue;
  const from = join(entry.parentPath ?? entry.path, entry.name); // `path` before Node 20.12
  cpSync(from, join(dist, relative(src, from)));
  copied++;
}
console.error(`fangate: server built in ${relative(process.cwd(), dist) || '.'} (${copied} asset files copied)`);
