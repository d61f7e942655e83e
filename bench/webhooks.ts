/**
 * Webhook delivery throughput and lag for ONE worker (DESIGN 13; printed, not asserted).
 *
 * A receiver runs in a child process on loopback. Baseline: autocannon POSTs an event-sized body to the
 * receiver directly (what the receiver and loopback can take). Then FanGate (embedded PGlite, or
 * PostgreSQL when DATABASE_URL is set), one endpoint:
 *   backlog: BENCH_WEBHOOK_EVENTS events (default 10000, over 1000 accounts) committed in one transaction,
 *            drained by the worker: deliveries/s from commit to the last receipt (goal ≥ 2,000/s);
 *   steady:  events written at BENCH_WEBHOOK_RATE/s (default 1000) for BENCH_DURATION s in small
 *            transactions: outbox-to-receiver lag p50/p99 under that load.
 * Beside the runs, the CPU time per delivery of FanGate (this process; with PGlite the database too), the
 * receiver and PostgreSQL: figures that hold up on a shared machine, where deliveries/s moves with whatever
 * else runs.
 * FANGATE_WEBHOOK_CONCURRENCY sets the deliveries in flight (default 32).
 */
import { fork } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { recordEvent } from '../src/webhooks/outbox.js';
import { cpuMeter, ms, percentile, printCpuTable, printTable, report, runBench, settings, startBenchApp } from './support.js';

const EVENTS = Number(process.env.BENCH_WEBHOOK_EVENTS ?? 10_000);
const RATE = Number(process.env.BENCH_WEBHOOK_RATE ?? 1_000);
const ACCOUNTS = 1_000;

interface Stats {
  count: number;
  lags: number[];
  duplicates: number;
}

const cleanup: Array<() => Promise<void>> = [];

await runBench(async () => {
  const child = fork(join(dirname(fileURLToPath(import.meta.url)), 'webhook-receiver-child.ts'), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  cleanup.push(async () => void child.kill('SIGTERM'));
  const url = await new Promise<string>((resolve, reject) => {
    child.once('message', (m) => resolve((m as { url: string }).url));
    child.once('exit', (code) => reject(new Error(`receiver exited (${code})`)));
  });
  const ask = <T,>(type: 'stats' | 'count') =>
    new Promise<T>((resolve) => {
      const onMessage = (m: unknown) => {
        if ((m as { type?: string }).type !== type) return;
        child.off('message', onMessage);
        resolve(m as T);
      };
      child.on('message', onMessage);
      child.send({ type });
    });
  const stats = () => ask<Stats>('stats');
  const reset = async () => {
    child.send({ type: 'reset' });
    await stats();
  };

  const payload = { account: { id: 'acct_bench', status: 'active', display_name: 'Bench', platform: 'onlyfans' }, attempt: null };
  const sampleBody = JSON.stringify({ id: 'x', event: 'accounts.updated', created_at: 'x', account_id: 'acct_bench', attempt_id: null, client_reference_id: null, payload });

  // Baseline: the receiver hit directly, as many connections as FanGate has deliveries in flight.
  const connections = Number(process.env.FANGATE_WEBHOOK_CONCURRENCY ?? 32);
  const direct = await autocannon({ url, method: 'POST', body: sampleBody, headers: { 'content-type': 'application/json' }, connections, duration: settings.duration });
  console.error(`baseline: ${direct.requests.average.toFixed(0)} req/s`);
  await reset();

  const app = await startBenchApp({ env: { FANGATE_ALLOW_PRIVATE_WEBHOOKS: 'true', FANGATE_LOG_LEVEL: process.env.FANGATE_LOG_LEVEL || 'info' } });
  cleanup.push(() => app.close());
  const created = await app.api('/api/webhooks', { method: 'POST', body: { endpoint_url: url } });
  if (created.status !== 201) throw new Error(`endpoint: ${created.status} ${JSON.stringify(created.body)}`);
  const db = app.fangate.database.db;
  const orgId = (await db.selectFrom('organizations').select('id').executeTakeFirstOrThrow()).id;
  const event = (i: number) => ({ orgId, event: 'accounts.updated' as const, accountId: `acct_bench_${i % ACCOUNTS}`, attemptId: null, clientReferenceId: null, payload });

  const waitForCount = async (n: number, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    // Polls the count alone: copying every lag 50 times a second cost this process (FanGate's) CPU.
    for (;;) {
      const { count } = await ask<{ count: number }>('count');
      const at = Date.now();
      if (count >= n || at > deadline) return { ...(await stats()), at };
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  // Backlog.
  await db.transaction().execute(async (trx) => {
    for (let i = 0; i < EVENTS; i++) await recordEvent(trx, event(i));
  });
  const committed = Date.now();
  // Where the two cores go, per process: FanGate (this one), the receiver, and PostgreSQL's processes.
  const meter = cpuMeter({ FanGate: process.pid, receiver: child.pid }, { postgres: app.fangate.database.kind === 'postgres' });
  console.error(`backlog of ${EVENTS} events committed`);
  const backlog = await waitForCount(EVENTS, 300_000);
  const drainedMs = backlog.at - committed;
  const backlogCpu = meter.per(Math.max(1, backlog.count));
  console.error(`backlog: ${backlog.count} in ${drainedMs} ms`);
  await reset();

  // Steady load.
  const tickMs = 20;
  const perTick = Math.max(1, Math.round((RATE * tickMs) / 1000));
  const steadyStart = Date.now();
  meter.restart();
  let written = 0;
  while (Date.now() - steadyStart < settings.duration * 1000) {
    const tickStart = Date.now();
    await db.transaction().execute(async (trx) => {
      for (let i = 0; i < perTick; i++) await recordEvent(trx, event(written + i));
    });
    written += perTick;
    const left = tickMs - (Date.now() - tickStart);
    if (left > 0) await new Promise((r) => setTimeout(r, left));
  }
  const writeSeconds = (Date.now() - steadyStart) / 1000;
  const steady = await waitForCount(written, 120_000);
  const steadyMeter = meter.per(Math.max(1, written));

  console.log(`\nWebhook delivery, one worker (${app.fangate.database.kind}, concurrency ${app.config.webhookConcurrency}), receiver in a child process on loopback`);
  printTable(
    ['run', 'deliveries', 'per second', 'lag p50 ms', 'lag p99 ms', 'duplicates'],
    [
      ['receiver hit directly (autocannon)', String(direct.requests.total), direct.requests.average.toFixed(0), ms(direct.latency.p50), ms(direct.latency.p99), '-'],
      [`backlog of ${EVENTS} events`, String(backlog.count), ((backlog.count / drainedMs) * 1000).toFixed(0), ms(percentile(backlog.lags, 50)), ms(percentile(backlog.lags, 99)), String(backlog.duplicates)],
      [`steady ${(written / writeSeconds).toFixed(0)} events/s`, `${steady.count}/${written}`, (written / writeSeconds).toFixed(0), ms(percentile(steady.lags, 50)), ms(percentile(steady.lags, 99)), String(steady.duplicates)],
    ],
  );
  console.log('Baseline latency is per request; FanGate lag is from the event being written to the receiver getting it.');
  printCpuTable('CPU ms per delivery', [['backlog', backlogCpu], ['steady', steadyMeter]], (perDeliveryMs) => perDeliveryMs.toFixed(3));
  console.log("CPU time (user + system) from /proc per delivery. FanGate is this process: the worker, the bench's polling of the receiver,");
  console.log('writing the events in the steady run and, on PGlite, the database. Unlike deliveries/s it hardly moves when other');
  console.log('processes compete for the cores; with 2 cores, "all" bounds deliveries/s at 2,000 / all.');
  const bench = `webhooks (${app.fangate.database.kind})`;
  report([
    { bench, figure: `deliveries/s, backlog of ${EVENTS}`, value: (backlog.count / drainedMs) * 1000, unit: '/s', baseline: { label: 'receiver hit directly', value: direct.requests.average }, goal: { min: 2000 } },
    { bench, figure: 'lag p50, steady', value: percentile(steady.lags, 50), unit: 'ms' },
    { bench, figure: 'lag p99, steady', value: percentile(steady.lags, 99), unit: 'ms' },
  ]);
}, cleanup);
