/**
 * Access API overhead: the same platform call (`GET posts?limit=10` of one account) made directly against
 * the sandbox and through `GET /api/{account_id}/proxy/posts?limit=10`, in one run. The sandbox runs in a
 * child process, the load (autocannon) in another, FanGate in this one. Printed, not asserted.
 * Goal (DESIGN 13): proxied throughput ≥ 0.75 of direct, added p50 ≤ 1 ms.
 *
 *   npm run bench:access
 *   BENCH_DURATION=10 BENCH_CONNECTIONS=50 npm run bench:access
 *   DATABASE_URL=postgres://… FANGATE_MASTER_KEY=… npm run bench:access
 *
 * One account and one API key: on PostgreSQL every proxied call updates the same token-bucket row and the
 * same per-key rate-limit row, which serialise; real traffic (60/min per account) spreads over many rows.
 */
import { fork } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fetchJson, report, runBench, settings, startBenchAppWithSandbox, startSandboxChild, type Throughput, throughputTable } from './support.js';

const { connections, duration, warmupSeconds } = settings;
const UA = 'Mozilla/5.0 (X11; Linux x86_64) FanGateBench/1.0';
const sandbox = await startSandboxChild();
// The per-account bucket out of the way: this measures work, not 429s.
const app = await startBenchAppWithSandbox(sandbox, { env: { FANGATE_ACCESS_RATE_PER_MIN: '1000000', FANGATE_ACCESS_BURST: '1000000' } });

/** autocannon in a child process against `url`. */
function load(url: string, headers: Record<string, string>, label: string): Promise<Throughput> {
  const script = join(dirname(fileURLToPath(import.meta.url)), 'load-child.ts');
  const child = fork(script, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('message', (result) => resolve({ route: label, ...(result as Omit<Throughput, 'route'>) }));
    child.once('error', reject);
    child.once('exit', (code) => code !== 0 && reject(new Error(`load child exited with ${code}`)));
    child.send({ url, headers, connections, duration, warmupSeconds });
  });
}

await runBench(async () => {
  const minted = await fetchJson(`${sandbox.url}/__sandbox/sessions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ platform: 'onlyfans', email: 'bench-access@sandbox.test', user_agent: UA }),
  });
  const session = minted.body as { auth_id: string; cookies: string; xbc: string };
  const imported = await app.api('/api/accounts/import', { method: 'POST', body: { cookie: session.cookies, userAgent: UA, xbc: session.xbc } });
  if (imported.status !== 201) throw new Error(`import answered ${imported.status}: ${JSON.stringify(imported.body)}`);
  const accountId = imported.body.id as string;

  const directUrl = `${sandbox.url}/api2/v2/posts?limit=10`;
  const directHeaders = { cookie: session.cookies, 'x-bc': session.xbc, 'user-id': session.auth_id, 'user-agent': UA, accept: 'application/json' };
  const proxiedUrl = `${app.base}/api/${accountId}/proxy/posts?limit=10`;
  const proxiedHeaders = { authorization: `Bearer ${app.apiKey}` };
  // Sanity: both answer 200 with the same body.
  const [a, b] = await Promise.all([fetchJson(directUrl, { headers: directHeaders }), fetchJson(proxiedUrl, { headers: proxiedHeaders })]);
  if (a.status !== 200 || b.status !== 200 || JSON.stringify(a.body) !== JSON.stringify(b.body)) {
    throw new Error(`direct ${a.status} / proxied ${b.status}: the answers differ`);
  }

  console.log(`Access API overhead: ${app.fangate.database.kind}, ${connections} connections, ${duration} s per route (+${warmupSeconds} s warm-up), load in a child process, sandbox in another, node ${process.version}`);
  const direct = await load(directUrl, directHeaders, 'direct: sandbox GET /api2/v2/posts?limit=10');
  const proxied = await load(proxiedUrl, proxiedHeaders, 'proxied: GET /api/{id}/proxy/posts?limit=10');
  throughputTable([direct, proxied]);
  console.log(`proxied / direct throughput: ${(proxied.reqPerSec / direct.reqPerSec).toFixed(2)} (goal ≥ 0.75)`);
  console.log(`added p50 latency: ${(proxied.p50 - direct.p50).toFixed(1)} ms (goal ≤ 1 ms; autocannon reports whole ms)`);
  report([
    { bench: `access (${app.fangate.database.kind})`, figure: 'proxied GET posts req/s', value: proxied.reqPerSec, unit: 'req/s', baseline: { label: 'sandbox direct', value: direct.reqPerSec }, goal: { ratioMin: 0.75 } },
  ]);
  if (direct.non2xx + proxied.non2xx + direct.errors + proxied.errors > 0) console.log('WARNING: some responses were not 2xx or failed; the figures are not clean.');
}, [() => app.close(), () => sandbox.close()]);
