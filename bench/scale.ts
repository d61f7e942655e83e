/**
 * Scale curve: poll p50 and connect throughput with 1k, 10k and 100k accounts and attempts already in the database
 * (BENCH_SCALE_SIZES, default 1000,10000,100000). Rows are seeded fast by SQL while the server is stopped: copies of
 * one real account and attempt (made through the API first) with new ids, their health checks parked far ahead so
 * the monitor leaves them alone. At each size FanGate runs as `npm start` runs it (compiled, own process), autocannon
 * polls one attempt parked on needs_otp from a child process, and a client process (bench/connect-child.ts) completes
 * BENCH_SCALE_CONNECTS raw_data connects (default 100) with 16 in flight. Sequential scans of accounts and
 * auth_attempts during the measured window (pg_stat_user_tables) show a hot query without an index.
 * The curve should stay flat. Printed, not asserted.
 *
 *   npm run bench:scale
 *   BENCH_SCALE_SIZES=1000,10000 npm run bench:scale
 *   BENCH_SCALE_ANALYZE=0 npm run bench:scale                 (no ANALYZE after seeding: plans on stale statistics)
 *   DATABASE_URL=postgres://…/scratch npm run bench:scale     (seeds rows into that database: use a scratch one)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { openDatabase, type Database } from '../src/db/database.js';
import { createLogger } from '../src/logger.js';
import type { ConnectResult } from './connect-child.js';
import { loadFromChild, ms, printTable, report, runBench, settings, startClientChild, startSandboxChild, startServerProcess, type ServerProcess, type SummaryRow } from './support.js';

const sizes = (process.env.BENCH_SCALE_SIZES ?? '1000,10000,100000').split(',').map(Number).filter((n) => n > 0);
const connectsPerSize = Number(process.env.BENCH_SCALE_CONNECTS ?? 100);
const databaseUrl = process.env.DATABASE_URL || undefined;
/** BENCH_SCALE_ANALYZE=0: the planner keeps the statistics of before the seeding, as after a bulk import (PGlite analyses only on its vacuum interval). */
const analyze = process.env.BENCH_SCALE_ANALYZE !== '0';

async function withDatabase<T>(dataDir: string, fn: (db: Database) => Promise<T>): Promise<T> {
  const db = await openDatabase({ databaseUrl, pgliteDir: databaseUrl ? undefined : join(dataDir, 'pgdata'), logger: createLogger({ level: 'warn' }) });
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

async function seqScans(db: Database): Promise<number> {
  const { rows } = await sql<{ n: string }>`select coalesce(sum(seq_scan), 0)::text as n from pg_stat_user_tables where relname in ('accounts', 'auth_attempts')`.execute(db.db);
  return Number(rows[0]?.n ?? 0);
}

/** Copies of the template account and attempt up to `target` of each (jsonb_populate_record: every column kept). */
async function seed(db: Database, template: { accountId: string; attemptId: string }, target: number): Promise<number> {
  // One connection throughout: the session setting below must hold for every statement.
  return db.db.connection().execute(async (c) => {
  const { rows } = await sql<{ n: string }>`select count(*)::text as n from accounts`.execute(c);
  const have = Number(rows[0]!.n);
  if (have >= target) return 0;
  const t0 = performance.now();
  // Seeded rows are history, not changes: no change triggers (NOTIFY per row) while copying.
  await sql`set session_replication_role = replica`.execute(c);
  for (let from = have; from < target; from += 20_000) {
    const to = Math.min(target, from + 20_000);
    await sql`
      insert into accounts
      select (jsonb_populate_record(null::accounts, to_jsonb(a) || jsonb_build_object(
        'id', 'acc_seed' || lpad(g::text, 8, '0'), 'platform_user_id', 'seed' || g, 'platform_username', 'seed' || g,
        'next_check_at', now() + interval '10 years', 'created_at', now() - (g || ' seconds')::interval))).*
      from accounts a, generate_series(${from + 1}::int, ${to}::int) g where a.id = ${template.accountId}`.execute(c);
    await sql`
      insert into auth_attempts
      select (jsonb_populate_record(null::auth_attempts, to_jsonb(t) || jsonb_build_object(
        'id', 'att_seed' || lpad(g::text, 8, '0'), 'account_id', 'acc_seed' || lpad(g::text, 8, '0'), 'state', 'completed_success',
        'mobile_code_hash', null, 'completed_at', now(), 'created_at', now() - (g || ' seconds')::interval))).*
      from auth_attempts t, generate_series(${from + 1}::int, ${to}::int) g where t.id = ${template.attemptId}`.execute(c);
  }
  await sql`set session_replication_role = default`.execute(c);
  if (analyze) {
    await sql`analyze accounts`.execute(c);
    await sql`analyze auth_attempts`.execute(c);
  }
  return performance.now() - t0;
  });
}

const cleanup: Array<() => Promise<void>> = [];
await runBench(async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'fangate-scale-'));
  cleanup.push(() => rm(dataDir, { recursive: true, force: true }));
  const sandbox = await startSandboxChild();
  cleanup.push(() => sandbox.close());
  const clients = startClientChild();
  cleanup.push(() => clients.close());
  let server: ServerProcess | undefined;
  cleanup.push(async () => server?.close());
  const start = async () => (server = await startServerProcess({ sandbox, dataDir }));
  const stop = async () => {
    await server?.close();
    server = undefined;
  };

  // The template: one real account (raw_data connect) and one attempt parked on needs_otp to poll.
  await start();
  await clients.run<ConnectResult>({ base: server!.base, apiKey: server!.apiKey, sandboxUrl: sandbox.url, method: 'raw_data', count: 1, concurrency: 1, tag: `scale${process.pid}-t` });
  const parked = await server!.api('/api/authenticate', { method: 'POST', body: { auth_type: 'email_password', email: `scale-${process.pid}+sms@sandbox.test`, password: 'password' } });
  let polled = parked.body;
  while (polled?.state === 'pending') polled = (await server!.api(`/api/authenticate/${parked.body.attempt_id}?wait=30&state=pending`)).body;
  if (polled?.state !== 'needs_otp') throw new Error(`poll target: expected needs_otp, got ${JSON.stringify(polled)}`);
  await stop();
  const template = await withDatabase(dataDir, async (db) => {
    const { rows } = await sql<{ accountId: string; attemptId: string }>`select account_id as "accountId", id as "attemptId" from auth_attempts where state = 'completed_success' and account_id is not null limit 1`.execute(db.db);
    if (!rows[0]) throw new Error('no completed attempt to copy');
    return rows[0];
  });

  console.log(`FanGate scale curve: ${databaseUrl ? 'postgres' : 'pglite'}, sizes ${sizes.join(', ')}; poll: ${settings.connections} connections for ${settings.duration} s from a child process; ${connectsPerSize} raw_data connects with 16 in flight; node ${process.version}`);
  const rows: string[][] = [];
  const summary: SummaryRow[] = [];
  let first: { p50: number; perSecond: number } | undefined;
  let tag = 0;
  for (const size of sizes) {
    const seeded = await withDatabase(dataDir, (db) => seed(db, template, size));
    const scansBefore = await withDatabase(dataDir, seqScans);
    await start();
    const poll = await loadFromChild(`${server!.base}/api/authenticate/${parked.body.attempt_id}`, { authorization: `Bearer ${server!.apiKey}` }, 'poll');
    const connect = await clients.run<ConnectResult>({ base: server!.base, apiKey: server!.apiKey, sandboxUrl: sandbox.url, method: 'raw_data', count: connectsPerSize, concurrency: 16, tag: `scale${process.pid}-${tag++}` });
    await stop();
    const scans = (await withDatabase(dataDir, seqScans)) - scansBefore;
    rows.push([String(size), seeded ? `${(seeded / 1000).toFixed(1)} s` : '-', ms(poll.p50), poll.reqPerSec.toFixed(0), String(poll.non2xx + poll.errors), connect.perSecond.toFixed(1), ms(connect.p50), String(scans)]);
    first ??= { p50: poll.p50, perSecond: connect.perSecond };
    const bench = `scale (${databaseUrl ? 'postgres' : 'pglite'})`;
    summary.push(
      { bench, figure: `poll req/s with ${size} accounts`, value: poll.reqPerSec, unit: 'req/s', baseline: { label: `at ${sizes[0]}`, value: rows.length === 1 ? poll.reqPerSec : Number(rows[0]![3]) } },
      { bench, figure: `connects/s with ${size} accounts`, value: connect.perSecond, unit: '/s', baseline: { label: `at ${sizes[0]}`, value: first.perSecond } },
    );
  }
  printTable(['accounts = attempts', 'seeded in', 'poll p50 ms', 'poll req/s', 'poll errors', 'connects/s', 'connect p50 ms', 'seq scans (accounts, attempts)'], rows);
  console.log('seq scans: sequential scans of accounts and auth_attempts while the server ran at that size (start, polls, connects, monitor); 0 or a handful means every hot query used an index.');
  report(summary);
}, cleanup);
