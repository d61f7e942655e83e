/**
 * HTTP overhead: FanGate's bare `GET /healthz` and the authenticated `GET /api/whoami` (API key, rate limit,
 * serialisation) against the baseline of the same run, a bare Fastify route in its own process
 * (bench/bare-child.mjs). FanGate runs as `npm start` runs it (compiled dist/, its own process, logs at info to
 * /dev/null); autocannon runs in a third process. Printed, not asserted.
 * Goals (issue #14): /healthz ≥ 0.6 and whoami ≥ 0.5 of the bare route's requests/s.
 *
 *   npm run bench:http
 *   BENCH_DURATION=10 BENCH_CONNECTIONS=50 npm run bench:http
 *   BENCH_ROUNDS=5 npm run bench:http        (rounds of baseline and routes in turn, medians; default 3)
 *   DATABASE_URL=postgres://… npm run bench:http
 *
 * Embedded PGlite on disk unless DATABASE_URL is set; rate limits raised out of the way
 * (FANGATE_RATE_LIMIT_PER_MIN overrides) so the figures measure work, not 429s.
 */
import { expectOk, loadInRounds, report, type RoundsThroughput, roundsTable, runBench, settings, startBareFastify, startServerProcess } from './support.js';

const { connections, duration, warmupSeconds, rounds } = settings;
const bare = await startBareFastify();
const server = await startServerProcess().catch(async (error) => {
  await bare.close();
  throw error;
});

await runBench(async () => {
  const auth = { authorization: `Bearer ${server.apiKey}` };
  await Promise.all([expectOk(`${bare.url}/healthz`), expectOk(`${server.base}/healthz`), expectOk(`${server.base}/api/whoami`, auth)]);
  console.log(`FanGate HTTP overhead: ${server.kind}, ${connections} connections, ${duration} s per route (+${warmupSeconds} s warm-up) in ${rounds} rounds, load in a child process, node ${process.version}`);
  const [baseline, healthz, whoami] = (await loadInRounds([
    { url: `${bare.url}/healthz`, label: 'baseline: bare Fastify GET /healthz (own process)' },
    { url: `${server.base}/healthz`, label: 'FanGate GET /healthz' },
    { url: `${server.base}/api/whoami`, headers: auth, label: 'FanGate GET /api/whoami' },
  ])) as [RoundsThroughput, RoundsThroughput, RoundsThroughput];
  roundsTable([baseline, healthz, whoami]);
  if ([baseline, healthz, whoami].some((r) => r.non2xx + r.errors > 0)) console.log('WARNING: some responses were not 2xx or failed; the figures are not clean.');
  const base = { label: 'bare Fastify', value: baseline.reqPerSec };
  report([
    { bench: `http (${server.kind})`, figure: 'GET /healthz req/s', value: healthz.reqPerSec, unit: 'req/s', baseline: base, goal: { ratioMin: 0.6 } },
    { bench: `http (${server.kind})`, figure: 'GET /api/whoami req/s', value: whoami.reqPerSec, unit: 'req/s', baseline: base, goal: { ratioMin: 0.5 } },
  ]);
}, [() => server.close(), () => bare.close()]);
