/**
 * Access API overhead: the same platform call (`GET posts?limit=10` of one account) made directly against
 * the sandbox and through `GET /api/{account_id}/proxy/posts?limit=10`, in one run. FanGate runs as `npm start`
 * runs it (compiled dist/, its own process, logs at info to /dev/null), the sandbox in a child process, the load
 * (autocannon) in another. Beside the figures, the CPU time each process used per request. Printed, not asserted.
 * Goal (DESIGN 13): proxied throughput ≥ 0.75 of direct, added p50 ≤ 1 ms.
 *
 *   npm run bench:access
 *   BENCH_DURATION=10 BENCH_CONNECTIONS=50 npm run bench:access
 *   DATABASE_URL=postgres://… npm run bench:access
 *
 * One account and one API key: on PostgreSQL every proxied call takes from the same token bucket, shared by
 * every node; real traffic (60/min per account) spreads over many accounts.
 */
import { cpuMeter, fetchJson, loadFromChild, printCpuTable, report, runBench, settings, startSandboxChild, startServerProcess, throughputTable } from './support.js';

const UA = 'Mozilla/5.0 (X11; Linux x86_64) FanGateBench/1.0';
const sandbox = await startSandboxChild();
// The per-account bucket out of the way: this measures work, not 429s.
const server = await startServerProcess({ sandbox, env: { FANGATE_ACCESS_RATE_PER_MIN: '1000000', FANGATE_ACCESS_BURST: '1000000' } }).catch(async (error) => {
  await sandbox.close();
  throw error;
});

await runBench(async () => {
  const minted = await fetchJson(`${sandbox.url}/__sandbox/sessions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ platform: 'onlyfans', email: 'bench-access@sandbox.test', user_agent: UA }),
  });
  const session = minted.body as { auth_id: string; cookies: string; xbc: string };
  const imported = await server.api('/api/accounts/import', { method: 'POST', body: { cookie: session.cookies, userAgent: UA, xbc: session.xbc } });
  if (imported.status !== 201) throw new Error(`import answered ${imported.status}: ${JSON.stringify(imported.body)}`);
  const accountId = imported.body.id as string;

  const directUrl = `${sandbox.url}/api2/v2/posts?limit=10`;
  const directHeaders = { cookie: session.cookies, 'x-bc': session.xbc, 'user-id': session.auth_id, 'user-agent': UA, accept: 'application/json' };
  const proxiedUrl = `${server.base}/api/${accountId}/proxy/posts?limit=10`;
  const proxiedHeaders = { authorization: `Bearer ${server.apiKey}` };
  // Sanity: both answer 200 with the same body.
  const [a, b] = await Promise.all([fetchJson(directUrl, { headers: directHeaders }), fetchJson(proxiedUrl, { headers: proxiedHeaders })]);
  if (a.status !== 200 || b.status !== 200 || JSON.stringify(a.body) !== JSON.stringify(b.body)) {
    throw new Error(`direct ${a.status} / proxied ${b.status}: the answers differ`);
  }

  console.log(`Access API overhead: ${server.kind}, ${settings.connections} connections, ${settings.duration} s per route (+${settings.warmupSeconds} s warm-up), FanGate, the sandbox and the load each in a process of its own, node ${process.version}`);
  // CPU per request by process: on 2 cores, the sum bounds the rate (the load generator's share is left out).
  const cpu = cpuMeter({ FanGate: server.pid, sandbox: sandbox.pid }, { postgres: server.kind === 'postgres' });
  const direct = await loadFromChild(directUrl, directHeaders, 'direct: sandbox GET /api2/v2/posts?limit=10');
  const directCpu = cpu.per(direct.reqPerSec * (settings.duration + settings.warmupSeconds));
  cpu.restart();
  const proxied = await loadFromChild(proxiedUrl, proxiedHeaders, 'proxied: GET /api/{id}/proxy/posts?limit=10');
  const proxiedCpu = cpu.per(proxied.reqPerSec * (settings.duration + settings.warmupSeconds));
  throughputTable([direct, proxied]);
  printCpuTable('CPU µs per request', [['direct', directCpu], ['proxied', proxiedCpu]], (perRequestMs) => (perRequestMs * 1000).toFixed(0));
  console.log('CPU time (user + system) of each process over the run, divided by its requests (the warm-up counted at the measured rate).\n');
  console.log(`proxied / direct throughput: ${(proxied.reqPerSec / direct.reqPerSec).toFixed(2)} (goal ≥ 0.75)`);
  console.log(`added p50 latency: ${(proxied.p50 - direct.p50).toFixed(1)} ms (goal ≤ 1 ms; autocannon reports whole ms)`);
  report([
    { bench: `access (${server.kind})`, figure: 'proxied GET posts req/s', value: proxied.reqPerSec, unit: 'req/s', baseline: { label: 'sandbox direct', value: direct.reqPerSec }, goal: { ratioMin: 0.75 } },
  ]);
  if (direct.non2xx + proxied.non2xx + direct.errors + proxied.errors > 0) console.log('WARNING: some responses were not 2xx or failed; the figures are not clean.');
}, [() => server.close(), () => sandbox.close()]);
