/**
 * Time to authenticated: from sending `POST /api/authenticate` to the moment a long-poll
 * (`GET …?wait=30&state=pending`) answers `completed_success`, as a client following the docs sees
 * it. For `raw_data` (a session minted by the sandbox beforehand, outside the timing) and for
 * `email_password` without 2FA (a distinct `bench-<i>@sandbox.test` per connect, so the sandbox's
 * 10 logins/hour lock never applies); first one after the other, then several at once. The bare
 * `GET /healthz` latency of the same run is the floor.
 *
 *   npm run bench:tta
 *   BENCH_TTA_COUNT=200 BENCH_TTA_CONCURRENCY=20 npm run bench:tta
 *   DATABASE_URL=postgres://… FANGATE_MASTER_KEY=… npm run bench:tta
 *
 * Embedded PGlite in memory unless DATABASE_URL is set; the sandbox runs in this process. Job
 * workers use the production settings (NOTIFY wake-up, 2 s polling as the fallback).
 */
import { fetchJson, ms, percentile, pool, printTable, runBench, startBenchAppWithSandbox, startSandboxHere } from './support.js';

const count = Number(process.env.BENCH_TTA_COUNT ?? 50);
const concurrency = Number(process.env.BENCH_TTA_CONCURRENCY ?? 10);
const USER_AGENT = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36 fangate-bench';

const sandbox = await startSandboxHere();
const app = await startBenchAppWithSandbox(sandbox).catch(async (error) => {
  await sandbox.close();
  throw error;
});

type Method = 'raw_data' | 'email_password';
interface Sample {
  /** POST sent → its 200 received. */
  start: number;
  /** POST sent → long-poll answered completed_success. */
  total: number;
  /** Long-polls it took (each answers on a state change, or after 30 s). */
  polls: number;
}

let serial = 0;
/** What the client knows before it starts: credentials, or a session copied from the browser. */
async function prepare(method: Method): Promise<Record<string, unknown>> {
  const i = serial++;
  if (method === 'email_password') return { auth_type: 'email_password', email: `bench-${i}@sandbox.test`, password: 'password' };
  const minted = await fetchJson(`${sandbox.url}/__sandbox/sessions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ platform: 'onlyfans', email: `bench-raw-${i}@sandbox.test`, user_agent: USER_AGENT }),
  });
  if (minted.status !== 200) throw new Error(`sandbox session mint answered ${minted.status}: ${JSON.stringify(minted.body)}`);
  const { auth_id, cookies, xbc, user_agent } = minted.body;
  return { auth_type: 'raw_data', auth_id, cookies, xbc, user_agent };
}

async function connect(method: Method): Promise<Sample> {
  const body = await prepare(method);
  const t0 = performance.now();
  const started = await app.api('/api/authenticate', { method: 'POST', body });
  const start = performance.now() - t0;
  if (started.status !== 200) throw new Error(`start (${method}) answered ${started.status}: ${JSON.stringify(started.body)}`);
  let state: string = started.body.state;
  let polls = 0;
  while (state === 'pending') {
    if (++polls > 10) throw new Error(`${method} attempt ${started.body.attempt_id} still pending after 10 long-polls`);
    const { status, body: attempt } = await app.api(`/api/authenticate/${started.body.attempt_id}?wait=30&state=pending`);
    if (status !== 200) throw new Error(`poll answered ${status}: ${JSON.stringify(attempt)}`);
    state = attempt.state;
    if (state !== 'pending' && state !== 'completed_success') throw new Error(`${method} attempt ended ${state}: ${JSON.stringify(attempt.error)}`);
  }
  return { start, total: performance.now() - t0, polls };
}

async function healthzLatency(n: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const response = await fetch(`${app.base}/healthz`);
    await response.arrayBuffer();
    samples.push(performance.now() - t0);
  }
  return samples;
}

await runBench(async () => {
  console.log(`FanGate time to authenticated: ${app.fangate.database.kind}, ${count} connects per method one after the other, then ${count} with ${concurrency} at a time; log level ${app.config.logLevel}, node ${process.version}`);
  // Warm-up: first-use costs (JIT, connection pools, prepared plans) are not what this measures.
  await healthzLatency(50);
  for (const method of ['raw_data', 'email_password'] as const) await pool(3, 1, () => connect(method));

  const bare = await healthzLatency(200);
  const rows: string[][] = [['GET /healthz (sequential, 200)', '-', ms(percentile(bare, 50)), ms(percentile(bare, 99)), ms(Math.max(...bare)), '-']];
  for (const [phase, lanes] of [['sequential', 1], [`${concurrency} concurrent`, concurrency]] as const) {
    for (const method of ['raw_data', 'email_password'] as const) {
      const t0 = performance.now();
      const samples = await pool(count, lanes, () => connect(method));
      const wall = (performance.now() - t0) / 1000;
      const totals = samples.map((s) => s.total);
      rows.push([
        `${method} (${phase}, ${count}, ${(count / wall).toFixed(1)}/s)`,
        ms(percentile(samples.map((s) => s.start), 50)),
        ms(percentile(totals, 50)),
        ms(percentile(totals, 99)),
        ms(Math.max(...totals)),
        (samples.reduce((sum, s) => sum + s.polls, 0) / samples.length).toFixed(2),
      ]);
    }
  }
  printTable(['connect (phase, n, completed/s)', 'POST p50 ms', 'p50 ms', 'p99 ms', 'max ms', 'long-polls'], rows);
  console.log('p50/p99/max: POST sent → long-poll answered completed_success; POST p50: POST sent → 200 (attempt pending).');
}, [() => sandbox.close(), () => app.close()]);
