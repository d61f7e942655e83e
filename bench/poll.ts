/**
 * Poll: `GET /api/authenticate/{id}` (the route clients poll: API key, rate limit, attempt load, serialisation) on
 * an attempt parked on `needs_otp` (`jane+sms@sandbox.test`, the state a client polls longest), against the baseline
 * of the same run, a bare Fastify route in its own process. FanGate runs as `npm start` runs it (compiled, its own
 * process); the sandbox in another process, idle while measuring; autocannon in a third. Printed, not asserted.
 * Goal (issue #14): poll ≥ 0.4 of the bare route's requests/s on PostgreSQL, ≥ 0.3 on PGlite.
 *
 *   npm run bench:poll
 *   BENCH_DURATION=10 BENCH_CONNECTIONS=50 npm run bench:poll
 *   BENCH_ROUNDS=5 npm run bench:poll        (rounds of baseline and route in turn, medians; default 3)
 *   DATABASE_URL=postgres://… npm run bench:poll
 */
import { expectOk, loadInRounds, report, type RoundsThroughput, roundsTable, runBench, settings, startBareFastify, startSandboxChild, startServerProcess, type ServerProcess } from './support.js';

const { connections, duration, warmupSeconds, rounds } = settings;

/** Long-polls until the attempt leaves `pending`. */
async function settle(server: ServerProcess, attemptId: string): Promise<any> {
  for (let i = 0; i < 10; i++) {
    const { status, body } = await server.api(`/api/authenticate/${attemptId}?wait=30&state=pending`);
    if (status !== 200) throw new Error(`poll answered ${status}: ${JSON.stringify(body)}`);
    if (body.state !== 'pending') return body;
  }
  throw new Error('attempt still pending after 10 long-polls');
}

const cleanup: Array<() => Promise<void>> = [];
await runBench(async () => {
  const bare = await startBareFastify();
  cleanup.push(() => bare.close());
  const sandbox = await startSandboxChild();
  cleanup.push(() => sandbox.close());
  const server = await startServerProcess({ sandbox });
  cleanup.push(() => server.close());

  const started = await server.api('/api/authenticate', { method: 'POST', body: { auth_type: 'email_password', email: 'jane+sms@sandbox.test', password: 'password' } });
  if (started.status !== 200) throw new Error(`start answered ${started.status}: ${JSON.stringify(started.body)}`);
  const attempt = await settle(server, started.body.attempt_id);
  if (attempt.state !== 'needs_otp') throw new Error(`expected needs_otp, got ${attempt.state} ${JSON.stringify(attempt.error)}`);
  const auth = { authorization: `Bearer ${server.apiKey}` };
  const pollUrl = `${server.base}/api/authenticate/${attempt.attempt_id}`;
  await Promise.all([expectOk(`${bare.url}/json`), expectOk(pollUrl, auth)]);

  console.log(`FanGate poll: ${server.kind}, ${connections} connections, ${duration} s per route (+${warmupSeconds} s warm-up) in ${rounds} rounds, load in a child process, node ${process.version}`);
  console.log(`attempt ${attempt.attempt_id} parked on ${attempt.state}`);
  const [baseline, poll] = (await loadInRounds([
    { url: `${bare.url}/json`, label: 'baseline: bare Fastify GET /json (own process)' },
    { url: pollUrl, headers: auth, label: 'FanGate GET /api/authenticate/{id}' },
  ])) as [RoundsThroughput, RoundsThroughput];
  roundsTable([baseline, poll]);
  const after = await server.api(`/api/authenticate/${attempt.attempt_id}`);
  if (after.body?.state !== 'needs_otp') console.log(`WARNING: the attempt left needs_otp during the run (now ${after.body?.state}).`);
  if ([baseline, poll].some((r) => r.non2xx + r.errors > 0)) console.log('WARNING: some responses were not 2xx or failed; the figures are not clean.');
  report([
    {
      bench: `poll (${server.kind})`,
      figure: 'GET /api/authenticate/{id} req/s',
      value: poll.reqPerSec,
      unit: 'req/s',
      baseline: { label: 'bare Fastify', value: baseline.reqPerSec },
      goal: { ratioMin: server.kind === 'postgres' ? 0.4 : 0.3 },
    },
    { bench: `poll (${server.kind})`, figure: 'GET /api/authenticate/{id} p50', value: poll.p50, unit: 'ms', baseline: { label: 'bare Fastify', value: baseline.p50 } },
  ]);
}, cleanup);
