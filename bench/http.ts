/**
 * HTTP baseline: a bare route (`GET /healthz`) against an authenticated one (`GET /api/whoami`:
 * API key lookup, rate limit, serialisation), in one run, same process, same settings.
 *
 *   npm run bench:http
 *   BENCH_DURATION=10 BENCH_CONNECTIONS=50 npm run bench:http
 *   DATABASE_URL=postgres://… FANGATE_MASTER_KEY=… npm run bench:http
 *
 * Embedded PGlite in memory unless DATABASE_URL is set. The per-key rate limit is raised out of
 * the way (FANGATE_RATE_LIMIT_PER_MIN overrides) so the numbers measure work, not 429s. Logs go to
 * /dev/null at FANGATE_LOG_LEVEL (default info, as in production) so their cost is included.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import pino from 'pino';
import { createFanGate } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { generateKeySpec } from '../src/vault/keyring.js';

const env = process.env;
const duration = Number(env.BENCH_DURATION ?? 5);
const connections = Number(env.BENCH_CONNECTIONS ?? 20);
const warmupSeconds = Number(env.BENCH_WARMUP ?? 1);
const apiKey = env.FANGATE_BOOTSTRAP_API_KEY || 'fg_bench_bootstrap_key_000000000000';

const dataDir = await mkdtemp(join(tmpdir(), 'fangate-bench-'));
const config = loadConfig({
  ...env,
  FANGATE_PORT: '0',
  FANGATE_HOST: '127.0.0.1',
  FANGATE_DATA_DIR: dataDir,
  FANGATE_SANDBOX: 'off',
  FANGATE_BOOTSTRAP_API_KEY: apiKey,
  FANGATE_MASTER_KEY: env.FANGATE_MASTER_KEY || generateKeySpec('bench'),
  FANGATE_RATE_LIMIT_PER_MIN: env.FANGATE_RATE_LIMIT_PER_MIN || '1000000',
  FANGATE_LOG_LEVEL: env.FANGATE_LOG_LEVEL || 'info',
});
const fangate = await createFanGate({
  config,
  logger: createLogger({ level: config.logLevel, destination: pino.destination({ dest: '/dev/null', sync: false }) }),
  inMemory: !config.databaseUrl,
});
await fangate.start();
const address = fangate.http.server.address();
const base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;

interface Figures {
  route: string;
  reqPerSec: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

async function measure(route: string, headers: Record<string, string> = {}): Promise<Figures> {
  const url = `${base}${route}`;
  // Sanity first: a benchmark of error responses measures nothing.
  const probe = await fetch(url, { headers });
  if (probe.status !== 200) throw new Error(`${route} answered ${probe.status}: ${await probe.text()}`);
  if (warmupSeconds > 0) await autocannon({ url, headers, connections, duration: warmupSeconds });
  const result = await autocannon({ url, headers, connections, duration });
  return {
    route,
    reqPerSec: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
  };
}

let exitCode = 0;
try {
  console.log(`FanGate HTTP baseline: ${fangate.database.kind}, ${connections} connections, ${duration} s per route (+${warmupSeconds} s warm-up), log level ${config.logLevel}, node ${process.version}`);
  const bare = await measure('/healthz');
  const whoami = await measure('/api/whoami', { authorization: `Bearer ${apiKey}` });

  const rows = [bare, whoami];
  const header = ['route', 'req/s', 'p50 ms', 'p99 ms', 'non-2xx', 'errors'];
  const cells = rows.map((r) => [`GET ${r.route}`, r.reqPerSec.toFixed(0), r.p50.toFixed(1), r.p99.toFixed(1), String(r.non2xx), String(r.errors)]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((v, i) => (i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  ');
  console.log('');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const c of cells) console.log(line(c));
  console.log('');
  console.log(`whoami / bare throughput: ${(whoami.reqPerSec / bare.reqPerSec).toFixed(2)} (${((1 - whoami.reqPerSec / bare.reqPerSec) * 100).toFixed(0)}% fewer requests/s)`);
  console.log(`whoami / bare p50 latency: ${(whoami.p50 / Math.max(bare.p50, 0.001)).toFixed(2)}x`);
  if (bare.non2xx + whoami.non2xx + bare.errors + whoami.errors > 0) {
    console.log('WARNING: some responses were not 2xx or failed; the figures above are not a clean baseline.');
  }
} catch (error) {
  console.error(error);
  exitCode = 1;
} finally {
  await fangate.stop();
  await rm(dataDir, { recursive: true, force: true });
}
process.exit(exitCode);
