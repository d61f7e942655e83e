/**
 * Start and footprint of `fangate serve` as `npm start` runs it (compiled dist/, no TypeScript loader): time to a
 * ready /readyz on a fresh embedded data dir (the install-time template is copied) and again on the same one, the
 * CPU the process used until then, and its idle RSS with the embedded sandbox. Baseline of the same run: a bare
 * Fastify process (bench/bare-child.mjs) started the same way, to its first 200. Printed, not asserted.
 * Goals (issue #14): ≤ 2.5 s to /readyz fresh, ≤ 1.5 s existing; idle RSS ≤ 200 MB with the embedded sandbox.
 *
 *   npm run bench:startup
 *   BENCH_STARTUP_RUNS=5 npm run bench:startup
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureBuilt, ms, printTable, processCpuMs, processRss, report } from './support.js';
import { freePort } from '../test/support/ports.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const KEY = 'fg_bench_startup_key_0000000000';
const RUNS = Number(process.env.BENCH_STARTUP_RUNS ?? 3);
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

/** Starts `args` with a port, returns ms to the first 200 of `path`, CPU ms until then and RSS after `idleMs`. */
async function timeStart(args: string[], env: Record<string, string>, path: string, idleMs = 0): Promise<{ ready: number; cpu: number; rss: number }> {
  const port = await freePort();
  const started = performance.now();
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: 'ignore', env: { ...process.env, ...env, FANGATE_PORT: String(port), BENCH_BARE_PORT: String(port) } });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let ready = Number.NaN;
  while (Number.isNaN(ready) && performance.now() - started < 120_000 && child.exitCode === null) {
    if ((await fetch(`http://127.0.0.1:${port}${path}`).then((r) => r.status, () => 0)) === 200) ready = performance.now() - started;
    else await new Promise((r) => setTimeout(r, 10));
  }
  const cpu = processCpuMs(child.pid!);
  if (idleMs) await new Promise((r) => setTimeout(r, idleMs));
  const rss = await processRss(child.pid!);
  child.kill('SIGTERM');
  await exited;
  return { ready, cpu, rss };
}

ensureBuilt();
const serveEnv = async (dataDir: string) => ({
  FANGATE_DATA_DIR: dataDir,
  FANGATE_HOST: '127.0.0.1',
  FANGATE_SANDBOX_PORT: String(await freePort()),
  FANGATE_BOOTSTRAP_API_KEY: KEY,
  DATABASE_URL: '',
});
const bare: number[] = [];
const fresh: Array<{ ready: number; cpu: number; rss: number }> = [];
const again: Array<{ ready: number; cpu: number; rss: number }> = [];
for (let i = 0; i < RUNS; i++) {
  bare.push((await timeStart(['bench/bare-child.mjs'], {}, '/healthz')).ready);
  const dataDir = await mkdtemp(join(tmpdir(), 'fangate-startup-'));
  try {
    fresh.push(await timeStart(['bin/fangate.js', 'serve'], await serveEnv(dataDir), '/readyz'));
    again.push(await timeStart(['bin/fangate.js', 'serve'], await serveEnv(dataDir), '/readyz', 3000));
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}
console.log(`FanGate start-up (npm start: compiled dist/, embedded PGlite and sandbox), ${RUNS} runs, medians; node ${process.version}`);
const MB = (b: number) => (b / 1048576).toFixed(0);
printTable(
  ['start', 'ms to 200', 'CPU ms until then', 'RSS MB'],
  [
    ['baseline: bare Fastify process', ms(median(bare)), '-', '-'],
    ['serve, fresh data dir', ms(median(fresh.map((r) => r.ready))), ms(median(fresh.map((r) => r.cpu))), MB(median(fresh.map((r) => r.rss)))],
    ['serve, existing data dir (RSS after 3 s idle)', ms(median(again.map((r) => r.ready))), ms(median(again.map((r) => r.cpu))), MB(median(again.map((r) => r.rss)))],
  ],
);
const base = { label: 'bare Fastify start', value: median(bare) };
report([
  { bench: 'startup', figure: 'to /readyz, fresh data dir', value: median(fresh.map((r) => r.ready)), unit: 'ms', baseline: base, goal: { max: 2500 } },
  { bench: 'startup', figure: 'to /readyz, existing data dir', value: median(again.map((r) => r.ready)), unit: 'ms', baseline: base, goal: { max: 1500 } },
  { bench: 'startup', figure: 'idle RSS with the embedded sandbox', value: median(again.map((r) => r.rss)) / 1048576, unit: 'MB', goal: { max: 200 } },
]);
