import type * as Undici from 'undici';

/**
 * undici, loaded on first use instead of at start: parsing and running its modules was ≈ 100 ms of a start's
 * CPU, before any outbound request could need it (docs/performance.md). Every outbound path is async and awaits
 * `loadUndici()` before it builds a dispatcher or sends; `undici()` serves the synchronous code after that.
 */
let loaded: typeof Undici | undefined;
let loading: Promise<typeof Undici> | undefined;

export function loadUndici(): Promise<typeof Undici> {
  // undici is CommonJS: its exports are the default export under every loader (Node's names the others too; the
  // server bundle's names nothing else).
  loading ??= import('undici').then((module) => (loaded = module.default as unknown as typeof Undici));
  return loading;
}

export function undici(): typeof Undici {
  if (!loaded) throw new Error('undici used before loadUndici() resolved');
  return loaded;
}
