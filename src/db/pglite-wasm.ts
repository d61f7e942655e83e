import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import v8 from 'node:v8';
import type { PGliteOptions } from '@electric-sql/pglite';

/** A compiled WebAssembly module (typed through PGlite: Node.js's own types do not declare the namespace). */
type WasmModule = NonNullable<PGliteOptions['pgliteWasmModule']>;

/**
 * PGlite is PostgreSQL compiled to WebAssembly. V8 compiles it with its baseline compiler (Liftoff) and then again
 * with TurboFan for hot functions: that second compile of PostgreSQL's executor holds ≈ 60 MB more resident and
 * burns start-up CPU, for no measurable gain in FanGate's queries, whose time goes to the wire protocol and JS
 * (docs/performance.md). Set once, before the first PGlite compiles; it applies to WebAssembly only.
 */
let wasmTuned = false;
function baselineWasmOnly(): void {
  if (wasmTuned) return;
  wasmTuned = true;
  v8.setFlagsFromString('--liftoff-only');
}

let compiling: Promise<WasmModule | undefined> | undefined;
// The WebAssembly global (Node.js's types declare its types, not the value without the DOM library).
const wasmApi = (globalThis as unknown as { WebAssembly: { compile(bytes: Uint8Array): Promise<WasmModule> } }).WebAssembly;

/**
 * PGlite's WebAssembly (9 MB), compiled once per process. V8 compiles it on background threads, so `fangate serve`
 * starts this before loading the rest of FanGate, and the compile runs beside the module loading instead of after
 * it. Undefined if the file cannot be read: PGlite then finds and compiles it itself.
 */
export function compilePGliteWasm(): Promise<WasmModule | undefined> {
  baselineWasmOnly();
  compiling ??= (async () => {
    try {
      const file = createRequire(import.meta.url).resolve('@electric-sql/pglite/pglite.wasm');
      return await wasmApi.compile(await readFile(file));
    } catch {
      return undefined;
    }
  })();
  return compiling;
}
