/**
 * Health monitor throughput: BENCH_ACCOUNTS (default 10,000) imported accounts with live sandbox sessions,
 * all due at once, checked by ONE worker (`monitor.runDue`, the job the schedule runs): health checks per
 * second. Then the spread of the first checks over the interval for accounts created together. The
 * sandbox runs in a child process. Printed, not asserted. Goal (DESIGN 13): ≥ 1,000 checks/s per worker.
 *
 *   npm run bench:monitor
 *   BENCH_ACCOUNTS=2000 npm run bench:monitor
 *   DATABASE_URL=postgres://… FANGATE_MASTER_KEY=… npm run bench:monitor
 */
import { sql } from 'kysely';
import { insertAccount } from '../src/accounts/repository.js';
import { newId } from '../src/lib/ids.js';
import { fetchJson, pool, printTable, report, runBench, startBenchAppWithSandbox, startSandboxChild } from './support.js';

const ACCOUNTS = Number(process.env.BENCH_ACCOUNTS ?? 10_000);
const CONCURRENCY = Number(process.env.BENCH_MONITOR_CONCURRENCY ?? 64);
const UA = 'Mozilla/5.0 (X11; Linux x86_64) FanGateBench/1.0';
const INTERVAL_SEC = 900;

const sandbox = await startSandboxChild();
// The schedule's own tick is pushed out of the way: this process drives one worker's run by hand.
const app = await startBenchAppWithSandbox(sandbox, { monitor: { tickMs: 3_600_000, concurrency: CONCURRENCY } });

await runBench(async () => {
  const { db } = app.fangate.database;
  const org = await app.api('/api/whoami');
  const orgId = org.body.organization.id as string;
  console.log(`Health monitor: ${app.fangate.database.kind}, ${ACCOUNTS} accounts, one worker, ${CONCURRENCY} checks at a time, sandbox in a child process, node ${process.version}`);

  // Accounts as an import leaves them (a live minted session each), written straight to the database.
  let t = performance.now();
  const created = new Date();
  await pool(ACCOUNTS, 32, async (i) => {
    const minted = await fetchJson(`${sandbox.url}/__sandbox/sessions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ platform: 'onlyfans', email: `bench-mon-${i}@sandbox.test`, user_agent: UA }),
    });
    const s = minted.body as { auth_id: string; cookies: string; xbc: string; user: { id: string; username: string } };
    await insertAccount(
      db,
      app.fangate.vault,
      {
        id: newId('acct'), orgId, platform: 'onlyfans', displayName: s.user.username, authType: 'raw_data', imported: true, rememberCredentials: false,
        clientReferenceId: null, user: { id: s.user.id, username: s.user.username, name: s.user.username, avatar: null }, proxy: { type: 'none' },
        proxyPassword: null, proxyUsername: null, userAgent: UA, deviceId: s.xbc, credentials: null, totpSecret: null,
        session: { authId: s.auth_id, cookies: s.cookies, xbc: s.xbc, userAgent: UA }, lastChallenges: [],
      },
      created,
    );
  });
  console.log(`setup: ${ACCOUNTS} accounts in ${((performance.now() - t) / 1000).toFixed(1)} s`);

  // Spread of the first checks of accounts created together, in tenths of the interval.
  const offsets = await db.selectFrom('accounts').select(sql<number>`extract(epoch from (next_check_at - created_at))`.as('offset')).execute();
  const deciles = Array.from({ length: 10 }, () => 0);
  for (const { offset } of offsets) deciles[Math.min(9, Math.floor((Number(offset) / INTERVAL_SEC) * 10))]!++;
  printTable(
    ['first check after creation (share of the interval)', 'accounts'],
    deciles.map((n, d) => [`${d * 10}–${d * 10 + 10} %`, String(n)]),
  );

  // Everything due now: one worker's run.
  await db.updateTable('accounts').set({ next_check_at: sql`now() - interval '1 second'` }).execute();
  t = performance.now();
  const checked = await app.fangate.monitor.runDue(3_600_000);
  const seconds = (performance.now() - t) / 1000;
  const valid = await db.selectFrom('accounts').select((eb) => eb.fn.countAll<number>().as('n')).where('last_checked_at', '>', created).where('status', '=', 'active').executeTakeFirstOrThrow();
  printTable(
    ['run', 'checked', 'valid', 'seconds', 'checks/s'],
    [['one worker, all due', String(checked), String(valid.n), seconds.toFixed(1), (checked / seconds).toFixed(0)]],
  );
  console.log(`checks per second per worker: ${(checked / seconds).toFixed(0)} (goal ≥ 1,000)`);
  report([{ bench: `monitor (${app.fangate.database.kind})`, figure: 'health checks/s, one worker', value: checked / seconds, unit: '/s', goal: { min: 1000 } }]);

  // After the run, the next checks: one interval after each check, so as spread as the run itself.
  const next = await db.selectFrom('accounts').select([sql<number>`extract(epoch from (min(next_check_at) - now()))`.as('first'), sql<number>`extract(epoch from (max(next_check_at) - now()))`.as('last')]).executeTakeFirstOrThrow();
  console.log(`next checks between ${Number(next.first).toFixed(0)} s and ${Number(next.last).toFixed(0)} s from now (interval ${INTERVAL_SEC} s)`);
}, [() => app.close(), () => sandbox.close()]);
