#!/usr/bin/env node
// Runs the compiled, bundled server in dist/bundle/ (built by `npm run build:server`, which `npm install` and `npm ci` run):
// no TypeScript loader at run time. From a checkout, `npm run dev -- <command>` runs the sources through tsx.
import { existsSync } from 'node:fs';
import v8 from 'node:v8';

// V8 lets its heap grow to up to four times what survived the last full collection before it collects again, and
// the resident memory it reaches stays with the process: under load the heap reached ≈ 200 MB around ≈ 60 MB of live data.
// Growing by a fifth keeps 10,000 parked attempts within ≈ 40 MB of growth instead of ≈ 150 MB, for a few more
// (concurrent) collections (docs/performance.md). A --heap-growing-percent given on node's command line wins
// (NODE_OPTIONS does not accept V8 flags of this kind).
if (!process.execArgv.some((flag) => flag.startsWith('--heap-growing-percent'))) v8.setFlagsFromString('--heap-growing-percent=20');

const entry = new URL('../dist/bundle/main.js', import.meta.url);
if (!existsSync(entry)) {
  console.error('fangate: the compiled server (dist/bundle/main.js) is missing: run `npm run build:server` (npm install runs it).');
  process.exit(1);
}
await import(entry.href);
