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
import { measureThroughput, runBench, settings, startBenchApp, throughputTable } from './support.js';

const { connections, duration, warmupSeconds } = settings;
const app = await startBenchApp();

await runBench(async () => {
  console.log(`FanGate HTTP baseline: ${app.fangate.database.kind}, ${connections} connections, ${duration} s per route (+${warmupSeconds} s warm-up), log level ${app.config.logLevel}, node ${process.version}`);
  const bare = await measureThroughput(app.base, '/healthz');
  const whoami = await measureThroughput(app.base, '/api/whoami', { authorization: `Bearer ${app.apiKey}` });

  throughputTable([bare, whoami]);
  console.log(`whoami / bare throughput: ${(whoami.reqPerSec / bare.reqPerSec).toFixed(2)} (${((1 - whoami.reqPerSec / bare.reqPerSec) * 100).toFixed(0)}% fewer requests/s)`);
  console.log(`whoami / bare p50 latency: ${(whoami.p50 / Math.max(bare.p50, 0.001)).toFixed(2)}x`);
  if (bare.non2xx + whoami.non2xx + bare.errors + whoami.errors > 0) {
    console.log('WARNING: some responses were not 2xx or failed; the figures above are not a clean baseline.');
  }
}, [() => app.close()]);
