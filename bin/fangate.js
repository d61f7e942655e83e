#!/usr/bin/env node
// Runs the compiled, bundled server in dist/bundle/ (built by `npm run build:server`, which `npm install` and `npm ci` run):
// no TypeScript loader at run time. From a checkout, `npm run dev -- <command>` runs the sources through tsx.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/bundle/main.js', import.meta.url);
if (!existsSync(entry)) {
  console.error('fangate: the compiled server (dist/bundle/main.js) is missing: run `npm run build:server` (npm install runs it).');
  process.exit(1);
}
await import(entry.href);
