/**
 * Poll: `GET /api/authenticate/{id}` (API key, rate limit, attempt load, expiry check, account
 * lookup, serialisation) against the bare `GET /healthz`, in one run, same process, same settings.
 * The attempt is parked on `needs_otp` (`jane+sms@sandbox.test`), the state a client polls longest.
 *
 *   npm run bench:poll
 *   BENCH_DURATION=10 BENCH_CONNECTIONS=50 npm run bench:poll
 *   DATABASE_URL=postgres://… FANGATE_MASTER_KEY=… npm run bench:poll
 *
 * Embedded PGlite in memory unless DATABASE_URL is set; the sandbox runs in this process but is
 * idle while measuring (the attempt is parked before the first request). Rate limits are raised
 * out of the way (FANGATE_RATE_LIMIT_PER_MIN overrides).
 */
import { measureThroughput, runBench, settings, startBenchAppWithSandbox, startSandboxHere, throughputTable } from './support.js';

const { connections, duration, warmupSeconds } = settings;
const sandbox = await startSandboxHere();
const app = await startBenchAppWithSandbox(sandbox).catch(async (error) => {
  await sandbox.close();
  throw error;
});

/** Polls (long-polling on `pending`) until the attempt leaves `pending`. */
async function settle(attemptId: string): Promise<any> {
  for (let i = 0; i < 10; i++) {
    const { status, body } = await app.api(`/api/authenticate/${attemptId}?wait=30&state=pending`);
    if (status !== 200) throw new Error(`poll answered ${status}: ${JSON.stringify(body)}`);
    if (body.state !== 'pending') return body;
  }
  throw new Error('attempt still pending after 10 long-polls');
}

await runBench(async () => {
  const started = await app.api('/api/authenticate', { method: 'POST', body: { auth_type: 'email_password', email: 'jane+sms@sandbox.test', password: 'password' } });
  if (started.status !== 200) throw new Error(`start answered ${started.status}: ${JSON.stringify(started.body)}`);
  const attempt = await settle(started.body.attempt_id);
  if (attempt.state !== 'needs_otp') throw new Error(`expected needs_otp, got ${attempt.state} ${JSON.stringify(attempt.error)}`);

  console.log(`FanGate poll benchmark: ${app.fangate.database.kind}, ${connections} connections, ${duration} s per route (+${warmupSeconds} s warm-up), log level ${app.config.logLevel}, node ${process.version}`);
  console.log(`attempt ${attempt.attempt_id} parked on ${attempt.state}`);
  const bare = await measureThroughput(app.base, '/healthz');
  const poll = await measureThroughput(app.base, `/api/authenticate/${attempt.attempt_id}`, { authorization: `Bearer ${app.apiKey}` }, 'GET /api/authenticate/{id}');

  throughputTable([bare, poll]);
  console.log(`poll / bare throughput: ${(poll.reqPerSec / bare.reqPerSec).toFixed(2)} (${((1 - poll.reqPerSec / bare.reqPerSec) * 100).toFixed(0)}% fewer requests/s)`);
  console.log(`poll / bare p50 latency: ${(poll.p50 / Math.max(bare.p50, 0.001)).toFixed(2)}x`);
  const after = await app.api(`/api/authenticate/${attempt.attempt_id}`);
  if (after.body?.state !== 'needs_otp') console.log(`WARNING: the attempt left needs_otp during the run (now ${after.body?.state}).`);
  if (bare.non2xx + poll.non2xx + bare.errors + poll.errors > 0) {
    console.log('WARNING: some responses were not 2xx or failed; the figures above are not a clean baseline.');
  }
}, [() => sandbox.close(), () => app.close()]);
