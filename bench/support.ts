/**
 * Shared by the benchmarks: start FanGate in-process (with or without a sandbox), measure a route
 * with autocannon, small statistics, a plain-text table. Nothing here asserts: benchmarks print.
 */
import { fork, spawn, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, openSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import pg from 'pg';
import pino from 'pino';
import { createFanGate, type FanGate, type FanGateOptions } from '../src/app.js';
import { loadConfig, type Config } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { startSandbox } from '../src/sandbox/index.js';
import { generateKeySpec } from '../src/vault/keyring.js';
import { freePort } from '../test/support/ports.js';

const env = process.env;

/** Knobs every benchmark shares, from the environment. */
export const settings = {
  duration: Number(env.BENCH_DURATION ?? 5),
  connections: Number(env.BENCH_CONNECTIONS ?? 20),
  warmupSeconds: Number(env.BENCH_WARMUP ?? 1),
  /** Rounds of the HTTP benches (baseline and routes taken in turn, the order reversed every other round). */
  rounds: Math.max(1, Number(env.BENCH_ROUNDS ?? 3)),
  apiKey: env.FANGATE_BOOTSTRAP_API_KEY || 'fg_bench_bootstrap_key_000000000000',
};

export interface BenchApp {
  fangate: FanGate;
  config: Config;
  /** Base URL of FanGate, e.g. http://127.0.0.1:40123. */
  base: string;
  apiKey: string;
  /** fetch against FanGate with the bench API key; JSON in, JSON (or text) out. */
  api(path: string, init?: { method?: string; body?: unknown }): Promise<{ status: number; body: any }>;
  close(): Promise<void>;
}

export interface BenchAppOptions {
  /** Extra environment for loadConfig (after the process environment, before the bench defaults it overrides). */
  env?: Record<string, string>;
  /** PGlite in memory (default, like the HTTP baseline) or on disk under a temporary data dir (as `fangate serve` runs). */
  pglite?: 'memory' | 'disk';
  /** Health monitor tuning (bench/monitor.ts drives the monitor itself). */
  monitor?: FanGateOptions['monitor'];
}

/**
 * A fresh PostgreSQL database on the server DATABASE_URL names, for one FanGate of a bench, dropped at close:
 * each run starts empty, whatever earlier runs left (a run on a database grown by earlier ones measured less and
 * less), and DATABASE_URL's own database is left alone. BENCH_KEEP_DATABASE=1 runs in DATABASE_URL itself.
 */
export async function scratchDatabase(): Promise<{ url: string | undefined; drop(): Promise<void> }> {
  const server = env.DATABASE_URL;
  if (!server || env.BENCH_KEEP_DATABASE === '1') return { url: server || undefined, drop: async () => undefined };
  const name = `fangate_bench_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = new pg.Client({ connectionString: server });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(server);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: server });
      await client.connect();
      try {
        await client.query(`drop database if exists ${name} with (force)`);
      } finally {
        await client.end();
      }
    },
  };
}

/**
 * FanGate in this process, listening on a free loopback port: embedded PGlite unless DATABASE_URL is
 * set; per-key and connect rate limits raised out of the way (the FANGATE_* variables override);
 * logs to /dev/null at FANGATE_LOG_LEVEL (default info, as in production) so their cost is included.
 */
export async function startBenchApp(options: BenchAppOptions = {}): Promise<BenchApp> {
  const dataDir = await mkdtemp(join(tmpdir(), 'fangate-bench-'));
  const scratch = await scratchDatabase();
  const config = loadConfig({
    ...env,
    ...(scratch.url ? { DATABASE_URL: scratch.url } : {}),
    FANGATE_PORT: '0',
    FANGATE_HOST: '127.0.0.1',
    FANGATE_DATA_DIR: dataDir,
    FANGATE_SANDBOX: 'off',
    FANGATE_BOOTSTRAP_API_KEY: settings.apiKey,
    FANGATE_MASTER_KEY: env.FANGATE_MASTER_KEY || generateKeySpec('bench'),
    FANGATE_RATE_LIMIT_PER_MIN: env.FANGATE_RATE_LIMIT_PER_MIN || '1000000',
    FANGATE_CONNECT_RATE_LIMIT_PER_HOUR: env.FANGATE_CONNECT_RATE_LIMIT_PER_HOUR || '1000000',
    FANGATE_LOG_LEVEL: env.FANGATE_LOG_LEVEL || 'info',
    ...options.env,
  });
  const fangate = await createFanGate({
    config,
    logger: createLogger({ level: config.logLevel, destination: pino.destination({ dest: '/dev/null', sync: false }) }),
    inMemory: !config.databaseUrl && options.pglite !== 'disk',
    ...(options.monitor ? { monitor: options.monitor } : {}),
  });
  try {
    await fangate.start();
  } catch (error) {
    await fangate.stop().catch(() => undefined);
    await rm(dataDir, { recursive: true, force: true });
    await scratch.drop();
    throw error;
  }
  const address = fangate.http.server.address();
  const base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  const apiKey = settings.apiKey;
  return {
    fangate,
    config,
    base,
    apiKey,
    async api(path, init = {}) {
      const headers: Record<string, string> = { authorization: `Bearer ${apiKey}` };
      if (init.body !== undefined) headers['content-type'] = 'application/json';
      return fetchJson(`${base}${path}`, { method: init.method ?? 'GET', headers, body: init.body === undefined ? undefined : JSON.stringify(init.body) });
    },
    async close() {
      await fangate.stop();
      await rm(dataDir, { recursive: true, force: true });
      await scratch.drop();
    },
  };
}

export async function fetchJson(url: string, init: RequestInit = {}): Promise<{ status: number; body: any }> {
  const response = await fetch(url, init);
  const text = await response.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON */
  }
  return { status: response.status, body };
}

export interface BenchSandbox {
  url: string;
  /** The child's process id (absent when it runs in this process). */
  pid?: number;
  close(): Promise<void>;
}

/** The sandbox platform in this process (its work then counts in this process's CPU and memory). */
export async function startSandboxHere(): Promise<BenchSandbox> {
  const sandbox = await startSandbox({ port: 0, logger: false });
  return { url: sandbox.url, close: () => sandbox.close() };
}

/** The sandbox platform in a child process, so the measuring process holds only FanGate. */
export async function startSandboxChild(): Promise<BenchSandbox> {
  const script = join(dirname(fileURLToPath(import.meta.url)), 'sandbox-child.ts');
  const child = fork(script, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const url = await new Promise<string>((resolve, reject) => {
    child.once('message', (message) => resolve((message as { url: string }).url));
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`sandbox child exited early (code ${code})`)));
  });
  return {
    url,
    pid: child.pid,
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** FanGate pointed at a sandbox (both platforms' URLs). */
export async function startBenchAppWithSandbox(sandbox: BenchSandbox, options: BenchAppOptions = {}): Promise<BenchApp> {
  return startBenchApp({ ...options, env: { FANGATE_ONLYFANS_URL: sandbox.url, FANGATE_FANSLY_URL: sandbox.url, ...options.env } });
}

export interface Throughput {
  route: string;
  reqPerSec: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

/** autocannon against one GET route after a sanity probe and a warm-up. */
export async function measureThroughput(base: string, route: string, headers: Record<string, string> = {}, label = `GET ${route}`): Promise<Throughput> {
  const { connections, duration, warmupSeconds } = settings;
  const url = `${base}${route}`;
  // Sanity first: a benchmark of error responses measures nothing.
  const probe = await fetch(url, { headers });
  if (probe.status !== 200) throw new Error(`${route} answered ${probe.status}: ${await probe.text()}`);
  if (warmupSeconds > 0) await autocannon({ url, headers, connections, duration: warmupSeconds });
  const result = await autocannon({ url, headers, connections, duration });
  return {
    route: label,
    reqPerSec: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
  };
}

export function throughputTable(rows: Throughput[]): void {
  printTable(
    ['route', 'req/s', 'p50 ms', 'p99 ms', 'non-2xx', 'errors'],
    rows.map((r) => [r.route, r.reqPerSec.toFixed(0), r.p50.toFixed(1), r.p99.toFixed(1), String(r.non2xx), String(r.errors)]),
  );
}

/** First column left-aligned, the others right-aligned. */
export function printTable(header: string[], cells: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? '').length)));
  const line = (c: string[]) => c.map((v, i) => (i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  ');
  console.log('');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const c of cells) console.log(line(c));
  console.log('');
}

/** Nearest-rank percentile of `values` (p from 0 to 100); NaN when empty. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

/** Runs `task(i)` for i in [0, count) with at most `concurrency` at a time. */
export async function pool<T>(count: number, concurrency: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const results = new Array<T>(count);
  let next = 0;
  const lanes = Array.from({ length: Math.min(concurrency, count) }, async () => {
    while (next < count) {
      const i = next++;
      results[i] = await task(i);
    }
  });
  await Promise.all(lanes);
  return results;
}

export const ms = (value: number) => (Number.isFinite(value) ? value.toFixed(1) : '-');

/** Runs a benchmark body, closing what it opened, and exits with 1 on error. */
export async function runBench(body: () => Promise<void>, cleanup: Array<() => Promise<void>>): Promise<never> {
  let exitCode = 0;
  try {
    await body();
  } catch (error) {
    console.error(error);
    exitCode = 1;
  } finally {
    for (const close of cleanup.reverse()) await close().catch((error) => console.error('cleanup failed:', error));
  }
  process.exit(exitCode);
}

// ---------------------------------------------------------------------------------------------------------------
// Honest measurement (DESIGN 13): FanGate as `npm start` runs it (compiled, in its own process), the load in
// another process, and a baseline measured in the same run.

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** dist/ as `npm start` runs it: rebuilt (incrementally) when a source file is newer than the last build. */
export function ensureBuilt(): void {
  const built = join(ROOT, 'dist', '.tsbuildinfo');
  const builtAt = existsSync(built) ? statSync(built).mtimeMs : 0;
  const newest = readdirSync(join(ROOT, 'src'), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .reduce((max, e) => Math.max(max, statSync(join(e.parentPath ?? e.path, e.name)).mtimeMs), 0);
  if (newest <= builtAt) return;
  console.error('bench: src/ changed since the last build; running npm run build:server');
  const result = spawnSync('npm', ['run', '--silent', 'build:server'], { cwd: ROOT, stdio: 'inherit' });
  if (result.status !== 0) throw new Error('npm run build:server failed');
}

export interface ServerProcess {
  base: string;
  pid: number;
  apiKey: string;
  kind: 'pglite' | 'postgres';
  dataDir: string;
  api(path: string, init?: { method?: string; body?: unknown }): Promise<{ status: number; body: any }>;
  /** Resident memory of the server process, in bytes. */
  rss(): Promise<number>;
  /** CPU time (user + system) the server process used so far, in ms (Linux; NaN elsewhere). */
  cpuMs(): number;
  close(): Promise<void>;
}

export interface ServerProcessOptions {
  env?: Record<string, string>;
  /** Point both platforms at this sandbox and turn the embedded one off (its work then counts elsewhere). */
  sandbox?: BenchSandbox;
  /** Reuse a data dir (restart); a fresh temporary one otherwise (removed on close). */
  dataDir?: string;
}

/**
 * `node bin/fangate.js serve` (what `npm start` runs: compiled dist/) in a child process on a free port: embedded
 * PGlite on disk unless DATABASE_URL is set; rate limits raised out of the way (the FANGATE_* variables override);
 * logs at info (FANGATE_LOG_LEVEL) to /dev/null, so their cost is included.
 */
export async function startServerProcess(options: ServerProcessOptions = {}): Promise<ServerProcess> {
  ensureBuilt();
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'fangate-bench-')));
  // A restart on a kept data dir (options.dataDir) keeps its database too: DATABASE_URL's own.
  const scratch = options.dataDir ? { url: env.DATABASE_URL || undefined, drop: async () => undefined } : await scratchDatabase();
  const port = await freePort();
  const sandboxPort = await freePort();
  const childEnv: Record<string, string> = {
    ...(env as Record<string, string>),
    ...(scratch.url ? { DATABASE_URL: scratch.url } : {}),
    FANGATE_PORT: String(port),
    FANGATE_HOST: '127.0.0.1',
    FANGATE_PUBLIC_URL: `http://127.0.0.1:${port}`,
    FANGATE_DATA_DIR: dataDir,
    FANGATE_SANDBOX_PORT: String(sandboxPort),
    FANGATE_BOOTSTRAP_API_KEY: settings.apiKey,
    FANGATE_MASTER_KEY: env.FANGATE_MASTER_KEY || (env.DATABASE_URL ? generateKeySpec('bench') : ''),
    FANGATE_RATE_LIMIT_PER_MIN: env.FANGATE_RATE_LIMIT_PER_MIN || '1000000',
    FANGATE_CONNECT_RATE_LIMIT_PER_HOUR: env.FANGATE_CONNECT_RATE_LIMIT_PER_HOUR || '1000000',
    FANGATE_LOG_LEVEL: env.FANGATE_LOG_LEVEL || 'info',
    ...(options.sandbox ? { FANGATE_SANDBOX: 'off', FANGATE_ONLYFANS_URL: options.sandbox.url, FANGATE_FANSLY_URL: options.sandbox.url } : {}),
    ...options.env,
  };
  if (!childEnv.FANGATE_MASTER_KEY) delete childEnv.FANGATE_MASTER_KEY;
  // BENCH_SERVER_LOG=file keeps the server's log lines (to follow one request or attempt through a run).
  const logFile = env.BENCH_SERVER_LOG ? openSync(env.BENCH_SERVER_LOG, 'w') : 'ignore';
  const child = spawn(process.execPath, [...(env.BENCH_SERVER_NODE_ARGS ? env.BENCH_SERVER_NODE_ARGS.split(' ') : []), join(ROOT, 'bin/fangate.js'), 'serve'], { cwd: ROOT, env: childEnv, stdio: ['ignore', logFile, 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const base = `http://127.0.0.1:${port}`;
  const startedAt = performance.now();
  for (;;) {
    const failed =
      child.exitCode !== null ? `fangate serve exited (${child.exitCode}):\n${stderr}` : performance.now() - startedAt > 120_000 ? `fangate serve not ready in 120 s:\n${stderr}` : undefined;
    if (failed) {
      child.kill('SIGKILL');
      await scratch.drop().catch(() => undefined);
      throw new Error(failed);
    }
    if ((await fetch(`${base}/readyz`).then((r) => r.status, () => 0)) === 200) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const apiKey = settings.apiKey;
  return {
    base,
    pid: child.pid!,
    apiKey,
    kind: childEnv.DATABASE_URL ? 'postgres' : 'pglite',
    dataDir,
    async api(path, init = {}) {
      const headers: Record<string, string> = { authorization: `Bearer ${apiKey}` };
      if (init.body !== undefined) headers['content-type'] = 'application/json';
      return fetchJson(`${base}${path}`, { method: init.method ?? 'GET', headers, body: init.body === undefined ? undefined : JSON.stringify(init.body) });
    },
    rss: () => processRss(child.pid!),
    cpuMs: () => processCpuMs(child.pid!),
    async close() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
      if (!options.dataDir) await rm(dataDir, { recursive: true, force: true });
      await scratch.drop();
    },
  };
}

/** Resident memory of a process in bytes (Linux /proc; ps elsewhere). */
export async function processRss(pid: number): Promise<number> {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
    if (kb) return Number(kb) * 1024;
  } catch {
    /* not Linux */
  }
  const out = spawnSync('ps', ['-o', 'rss=', '-p', String(pid)], { encoding: 'utf8' }).stdout.trim();
  return Number(out) * 1024;
}

/** CPU time (user + system) of a process in ms, from /proc (NaN where there is none). */
export function processCpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return Number.NaN;
  }
}

/** CPU time of every PostgreSQL server process on this machine (backends, WAL writer, …) in ms; NaN without /proc. */
export function postgresCpuMs(): number {
  try {
    let total = 0;
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let stat: string;
      try {
        stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      } catch {
        continue; // ended meanwhile
      }
      if (!stat.includes(' (postgres) ')) continue;
      const fields = stat.split(') ')[1]!.split(' ');
      total += ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
    }
    return total;
  } catch {
    return Number.NaN;
  }
}

/**
 * Where the CPU went during a phase, per process, in ms per unit of work (per connect, per delivery): on 2 cores
 * a phase that keeps them busy is bounded by the sum. `parts` are the processes to watch; `postgres` adds every
 * PostgreSQL process (the embedded database counts inside FanGate).
 */
export function cpuMeter(parts: Record<string, number | undefined>, options: { postgres?: boolean } = {}) {
  const read = () => {
    const now: Record<string, number> = {};
    for (const [name, pid] of Object.entries(parts)) now[name] = pid === undefined ? Number.NaN : processCpuMs(pid);
    if (options.postgres) now.PostgreSQL = postgresCpuMs();
    return now;
  };
  let start = read();
  let startedAt = performance.now();
  return {
    restart() {
      start = read();
      startedAt = performance.now();
    },
    /** CPU ms per unit since the last restart, per process, with the total and the wall time. */
    per(units: number): { perUnit: Record<string, number>; total: number; busyCores: number } {
      const end = read();
      const perUnit: Record<string, number> = {};
      let total = 0;
      for (const name of Object.keys(end)) {
        const used = end[name]! - start[name]!;
        perUnit[name] = used / units;
        if (Number.isFinite(used)) total += used;
      }
      return { perUnit, total: total / units, busyCores: total / (performance.now() - startedAt) };
    },
  };
}

export type CpuUse = ReturnType<ReturnType<typeof cpuMeter>['per']>;

/**
 * A table of `cpuMeter` readings, one row per phase: a column per watched process (in the meter's order), their
 * sum and the cores busy. `format` writes one figure (ms per unit by default).
 */
export function printCpuTable(title: string, rows: Array<[label: string, used: CpuUse]>, format: (perUnitMs: number) => string = ms): void {
  const parts = Object.keys(rows[0]?.[1].perUnit ?? {});
  printTable(
    [title, ...parts, 'all', 'cores busy'],
    rows.map(([label, used]) => [label, ...parts.map((part) => format(used.perUnit[part]!)), format(used.total), used.busyCores.toFixed(2)]),
  );
}

/** The bare Fastify route of the baseline (bench/bare-child.mjs) in its own process. */
export async function startBareFastify(): Promise<BenchSandbox> {
  const child = fork(join(ROOT, 'bench/bare-child.mjs'), [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const url = await new Promise<string>((resolve, reject) => {
    child.once('message', (message) => resolve((message as { url: string }).url));
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`bare Fastify child exited early (code ${code})`)));
  });
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** autocannon in a child process (bench/load-child.ts) against `url`: the measured process only serves. */
export function loadFromChild(url: string, headers: Record<string, string>, label: string): Promise<Throughput> {
  const { connections, duration, warmupSeconds } = settings;
  const child = fork(join(ROOT, 'bench/load-child.ts'), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('message', (result) => resolve({ route: label, ...(result as Omit<Throughput, 'route'>) }));
    child.once('error', reject);
    child.once('exit', (code) => code !== 0 && reject(new Error(`load child exited with ${code}`)));
    child.send({ url, headers, connections, duration, warmupSeconds });
  });
}

export interface LoadTarget {
  url: string;
  headers?: Record<string, string>;
  label: string;
}

/** A route's figures over several rounds: the median of each, and every round's requests/s. */
export interface RoundsThroughput extends Throughput {
  rounds: number[];
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/**
 * Each target loaded in turn, `settings.rounds` times, the order reversed every other round, each figure the
 * median of its rounds. On two shared cores one 5-second run of a baseline and one of a route, minutes apart,
 * moved the ratio by ±20 % from one run to the next (and the one measured first in a pair read lower); taking
 * them in turn and the median brings a baseline and its route under the same conditions.
 */
export async function loadInRounds(targets: LoadTarget[]): Promise<RoundsThroughput[]> {
  const results = targets.map(() => [] as Throughput[]);
  for (let round = 0; round < settings.rounds; round++) {
    const order = targets.map((_, i) => i);
    if (round % 2 === 1) order.reverse();
    for (const i of order) results[i]!.push(await loadFromChild(targets[i]!.url, targets[i]!.headers ?? {}, targets[i]!.label));
  }
  return results.map((runs, i) => ({
    route: targets[i]!.label,
    reqPerSec: median(runs.map((r) => r.reqPerSec)),
    p50: median(runs.map((r) => r.p50)),
    p99: median(runs.map((r) => r.p99)),
    non2xx: runs.reduce((sum, r) => sum + r.non2xx, 0),
    errors: runs.reduce((sum, r) => sum + r.errors, 0),
    rounds: runs.map((r) => r.reqPerSec),
  }));
}

export function roundsTable(rows: RoundsThroughput[]): void {
  printTable(
    ['route', 'req/s (median)', 'each round', 'p50 ms', 'p99 ms', 'non-2xx', 'errors'],
    rows.map((r) => [r.route, r.reqPerSec.toFixed(0), r.rounds.map((v) => v.toFixed(0)).join(' '), r.p50.toFixed(1), r.p99.toFixed(1), String(r.non2xx), String(r.errors)]),
  );
}

/** Sanity first: a benchmark of error responses measures nothing. */
export async function expectOk(url: string, headers: Record<string, string> = {}): Promise<void> {
  const probe = await fetch(url, { headers });
  if (probe.status !== 200) throw new Error(`${url} answered ${probe.status}: ${await probe.text()}`);
}

/** One line of the `npm run bench` summary: a figure beside the baseline of the same run, and the goal. */
export interface SummaryRow {
  bench: string;
  figure: string;
  value: number;
  unit: string;
  baseline?: { label: string; value: number };
  /** A ratio goal (value / baseline ≥ min) or an absolute one (value ≤ max, value ≥ min). */
  goal?: { ratioMin?: number; max?: number; min?: number };
}

/** Prints the rows and, under `npm run bench` (BENCH_SUMMARY_FILE), appends them to its summary. */
export function report(rows: SummaryRow[]): void {
  const file = env.BENCH_SUMMARY_FILE;
  if (file) appendFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  printSummary(rows);
}

export function goalText(row: SummaryRow): string {
  const g = row.goal;
  if (!g) return '-';
  if (g.ratioMin !== undefined) return `ratio ≥ ${g.ratioMin}`;
  if (g.max !== undefined) return `≤ ${g.max} ${row.unit}`;
  if (g.min !== undefined) return `≥ ${g.min} ${row.unit}`;
  return '-';
}

export function goalMet(row: SummaryRow): string {
  const g = row.goal;
  if (!g || !Number.isFinite(row.value)) return '';
  const ratio = row.baseline ? row.value / row.baseline.value : Number.NaN;
  if (g.ratioMin !== undefined) return ratio >= g.ratioMin ? 'met' : 'MISSED';
  if (g.max !== undefined) return row.value <= g.max ? 'met' : 'MISSED';
  if (g.min !== undefined) return row.value >= g.min ? 'met' : 'MISSED';
  return '';
}

const num = (v: number) => (!Number.isFinite(v) ? '-' : Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2));

export function printSummary(rows: SummaryRow[]): void {
  printTable(
    ['bench', 'figure', 'value', 'baseline (same run)', 'ratio', 'goal', ''],
    rows.map((r) => [
      r.bench,
      r.figure,
      `${num(r.value)} ${r.unit}`,
      r.baseline ? `${num(r.baseline.value)} ${r.unit} (${r.baseline.label})` : '-',
      // A baseline of 0 (a latency below autocannon's 1 ms resolution) has no ratio.
      r.baseline && r.baseline.value > 0 ? (r.value / r.baseline.value).toFixed(2) : '-',
      goalText(r),
      goalMet(r),
    ]),
  );
}

/** A client process (bench/connect-child.ts) the parent hands jobs to, one at a time. */
export function startClientChild() {
  const child = fork(join(ROOT, 'bench/connect-child.ts'), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return {
    pid: child.pid,
    run<T>(job: object): Promise<T> {
      return new Promise((resolve, reject) => {
        const onExit = (code: number | null) => reject(new Error(`client child exited (${code})`));
        child.once('exit', onExit);
        child.once('message', (message: { ok?: T; error?: string }) => {
          child.off('exit', onExit);
          if (message.error) reject(new Error(`client child: ${message.error}`));
          else resolve(message.ok as T);
        });
        child.send(job);
      });
    },
    close: async () => {
      if (child.connected) child.disconnect();
      if (child.exitCode === null) await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}
