#!/usr/bin/env node
// `npm run build:server`: compiles src/ to dist/ with tsc (incremental: a rebuild with no change is quick),
// copies every file that is not TypeScript (src/link/assets/*.js|css, …) beside the compiled code, so whatever
// the server reads from disk by a path relative to its module is found in dist/ too, and bundles dist/main.js
// with its pure-JavaScript dependencies into dist/bundle/ (what bin/fangate.js runs).
//
// Why a bundle: Node resolves, reads and links every module file one by one at start, and FanGate loads about
// 1,100 of them (683 are TypeBox's). One file per lazily imported part took ≈ 0.5 s off a start (docs/performance.md).
import { spawnSync } from 'node:child_process';
import { cpSync, readdirSync, rmSync } from 'node:fs';
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

// Left out of the bundle, imported from node_modules at run time:
// - packages that read files beside their own modules (PGlite's WebAssembly and data, swagger-ui's static files,
//   @fastify/swagger's package.json, pino's worker files) or are optional (pg-native);
// - qrcode and socks, loaded on first use (the first QR code, the first SOCKS5 proxy) by name.
const EXTERNAL_PACKAGES = ['@electric-sql/pglite', '@fastify/swagger-ui', '@fastify/swagger', 'pino', 'thread-stream', 'pg-native', 'qrcode', 'socks'];
// A package imported with import() becomes a chunk of its own; for a CommonJS package that chunk has only a
// default export (Node's loader would also name the others), so its loader must read `.default`. The ones
// that do (src/net/undici.ts); any other is an error here rather than an undefined export at run time.
const LAZY_COMMONJS = ['undici'];
// FanGate's own modules that locate files relative to themselves: the bundle imports them from dist/ where they
// sit beside those files. They must import nothing of FanGate's (it would load twice).
const BESIDE_THEIR_FILES = ['link/assets.js', 'db/template-dir.js'];

const { build } = await import('esbuild');
const out = join(dist, 'bundle');
rmSync(out, { recursive: true, force: true });
const bundled = await build({
  entryPoints: [join(dist, 'main.js')],
  metafile: true,
  outdir: out,
  bundle: true,
  splitting: true, // the CLI's lazy imports stay lazy: `fangate prepare` does not load the HTTP app
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // No keepNames: it wraps every function and class the bundle defines in a defineProperty call that runs
  // each time one is created, closures per request included (≈ 20 % of a /healthz's CPU, measured).
  // Names stay as written unless two modules' top-level names collide (esbuild then adds a digit); the
  // errors FanGate logs or answers with set their `name` themselves.
  keepNames: false,
  external: EXTERNAL_PACKAGES.flatMap((name) => [name, `${name}/*`]),
  // CommonJS dependencies call require(); an ES module has none of its own.
  banner: { js: "import { createRequire as __fangateRequire } from 'node:module'; const require = __fangateRequire(import.meta.url);" },
  logLevel: 'warning',
  plugins: [
    {
      name: 'fangate-beside-their-files',
      setup(b) {
        b.onResolve({ filter: /^\./ }, (args) => {
          const target = relative(dist, join(args.resolveDir, args.path)).split('\\').join('/');
          return BESIDE_THEIR_FILES.includes(target) ? { path: `../${target}`, external: true } : undefined;
        });
      },
    },
  ],
});
const lazyPackages = Object.values(bundled.metafile.outputs)
  .map((output) => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(output.entryPoint ?? '')?.[1])
  .filter((name) => name !== undefined && !LAZY_COMMONJS.includes(name));
if (lazyPackages.length > 0) {
  console.error(`fangate: build:server failed: ${lazyPackages.join(', ')} imported with import(): add to EXTERNAL_PACKAGES, or to LAZY_COMMONJS with a loader that reads .default (scripts/build-server.mjs)`);
  process.exit(1);
}
console.error(`fangate: server bundled in ${relative(process.cwd(), out) || '.'}`);
