/**
 * Parked attempts: the memory FanGate holds for attempts waiting on a code. Parks BENCH_PARKED
 * (default 10,000) attempts on `needs_otp` — one distinct `park-<i>+sms@sandbox.test` each, so the
 * sandbox's 10 logins/hour lock never applies — and prints the process memory before and after,
 * per attempt, and the time taken. Attempts are rows and steps are jobs, so the per-attempt delta
 * should be close to nothing; anything else is held in memory per attempt.
 *
 *   npm run bench:parked                       (node --expose-gc: heap figures after a full GC)
 *   BENCH_PARKED=1000 npm run bench:parked     (a quick run)
 *   BENCH_PARKED_CONCURRENCY=100 BENCH_PARKED_DRIVE=open npm run bench:parked
 *   DATABASE_URL=postgres://… FANGATE_MASTER_KEY=… npm run bench:parked
 *
 * The sandbox runs in a child process so this process holds only FanGate. Embedded PGlite on disk
 * in a temporary data dir (as `fangate serve` runs it; BENCH_PGLITE=memory keeps it in memory,
 * where the rows themselves then count in rss) unless DATABASE_URL is set. Note that PGlite's WASM
 * memory (its buffer cache) is part of this process's rss either way; with PostgreSQL it is not.
 *
 * BENCH_PARKED_DRIVE: `closed` (default) — BENCH_PARKED_CONCURRENCY clients each start an attempt
 * and long-poll it until it leaves `pending`, then start the next; `open` — start them all (with
 * that concurrency) without waiting, then poll the database until every one is parked (shows how
 * a backlog of login steps drains).
 */
import { sql } from 'kysely';
import { ms, percentile, pool, printTable, runBench, startBenchAppWithSandbox, startSandboxChild } from './support.js';

const env = process.env;
const total = Number(env.BENCH_PARKED ?? 10_000);
const concurrency = Number(env.BENCH_PARKED_CONCURRENCY ?? 50);
const drive = env.BENCH_PARKED_DRIVE === 'open' ? 'open' : 'closed';
const warmupCount = Math.min(50, total);
const gc = (globalThis as { gc?: () => void }).gc;

const sandbox = await startSandboxChild();
const app = await startBenchAppWithSandbox(sandbox, { pglite: env.BENCH_PGLITE === 'memory' ? 'memory' : 'disk' }).catch(async (error) => {
  await sandbox.close();
  throw error;
});
const db = app.fangate.database.db;

interface Memory {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}
async function memory(): Promise<Memory> {
  if (gc) {
    // Twice, with a turn of the event loop between, so weak references and finalizers settle.
    gc();
    await new Promise((resolve) => setTimeout(resolve, 100));
    gc();
  }
  const { rss, heapUsed, heapTotal, external, arrayBuffers } = process.memoryUsage();
  return { rss, heapUsed, heapTotal, external, arrayBuffers };
}
const MB = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);

async function start(i: number): Promise<string> {
  const { status, body } = await app.api('/api/authenticate', { method: 'POST', body: { auth_type: 'email_password', email: `park-${i}+sms@sandbox.test`, password: 'password' } });
  if (status !== 200) throw new Error(`start ${i} answered ${status}: ${JSON.stringify(body)}`);
  return body.attempt_id;
}

/** Long-polls until the attempt leaves `pending`; it must park on needs_otp. */
async function parked(attemptId: string): Promise<void> {
  for (let polls = 0; polls < 20; polls++) {
    const { status, body } = await app.api(`/api/authenticate/${attemptId}?wait=30&state=pending`);
    if (status !== 200) throw new Error(`poll answered ${status}: ${JSON.stringify(body)}`);
    if (body.state === 'needs_otp') return;
    if (body.state !== 'pending') throw new Error(`attempt ${attemptId} ended ${body.state}: ${JSON.stringify(body.error)}`);
  }
  throw new Error(`attempt ${attemptId} still pending after 20 long-polls`);
}

async function states(): Promise<Record<string, number>> {
  const rows = await db.selectFrom('auth_attempts').select(['state', sql<string>`count(*)`.as('n')]).groupBy('state').execute();
  return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
}

let next = 0;
/** Parks `count` attempts; returns the per-attempt latencies (closed drive) or [] (open drive). */
async function park(count: number, progress: boolean): Promise<number[]> {
  const first = next;
  next += count;
  const target = next;
  const ticker = progress ? setInterval(() => void states().then((s) => console.log(`  ${((performance.now() - t0) / 1000).toFixed(0)} s: ${JSON.stringify(s)}`)), 15_000) : undefined;
  const t0 = performance.now();
  try {
    if (drive === 'closed') {
      return await pool(count, concurrency, async (k) => {
        const t = performance.now();
        await parked(await start(first + k));
        return performance.now() - t;
      });
    }
    await pool(count, concurrency, (k) => start(first + k));
    if (progress) console.log(`  all ${count} started in ${((performance.now() - t0) / 1000).toFixed(1)} s; waiting for them to park`);
    for (;;) {
      const s = await states();
      if ((s.needs_otp ?? 0) >= target) return [];
      const off = Object.entries(s).filter(([state]) => state !== 'needs_otp' && state !== 'pending');
      if (off.length > 0) throw new Error(`attempts left the path: ${JSON.stringify(s)}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  } finally {
    clearInterval(ticker);
  }
}

await runBench(async () => {
  console.log(
    `FanGate parked attempts: ${total} on needs_otp, ${drive} drive with ${concurrency} clients, ${app.fangate.database.kind}${app.fangate.database.kind === 'pglite' ? ` (${env.BENCH_PGLITE === 'memory' ? 'in memory' : 'on disk'})` : ''}, ` +
      `sandbox in a child process, log level ${app.config.logLevel}, node ${process.version}${gc ? ', --expose-gc' : ' (run with --expose-gc for heap figures after a full GC)'}`,
  );
  // Warm-up (JIT, pools, prepared plans, the sandbox's first users) counts in "before", not per attempt.
  const w0 = performance.now();
  await park(warmupCount, false);
  console.log(`warm-up: ${warmupCount} attempts parked in ${((performance.now() - w0) / 1000).toFixed(1)} s (counted in "before")`);
  const before = await memory();

  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const latencies = await park(total - warmupCount, true);
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const after = await memory();
  // Idle a while: timers of finished requests and jobs expire, pools shrink; what stays is held.
  await new Promise((resolve) => setTimeout(resolve, Number(env.BENCH_PARKED_SETTLE_MS ?? 5000)));
  const settled = await memory();

  const counts = await states();
  const n = total - warmupCount;
  console.log(`parked ${n} attempts (+${warmupCount} warm-up) in ${seconds.toFixed(1)} s (${(n / seconds).toFixed(0)} attempts/s); states now ${JSON.stringify(counts)}`);
  console.log(`CPU of this process (FanGate + the driving clients): ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s, ${(((cpu.user + cpu.system) / 1e6 / seconds) * 100).toFixed(0)}% of one core, ${((cpu.user + cpu.system) / 1000 / n).toFixed(1)} ms per attempt`);
  if (latencies.length > 0) console.log(`start → needs_otp per attempt: p50 ${ms(percentile(latencies, 50))} ms, p99 ${ms(percentile(latencies, 99))} ms, max ${ms(Math.max(...latencies))} ms`);
  const stillParked = counts.needs_otp ?? 0;
  if (stillParked < total) {
    console.log(
      `NOTE: only ${stillParked} of ${total} are still on needs_otp: attempts expire after 10 min waiting for a code (DESIGN 3), ` +
        `so parking them all at once takes more than ${(total / 600).toFixed(0)} attempts/s; the early ones expired (and were swept) during the run.`,
    );
  }
  const keys: Array<keyof Memory> = ['rss', 'heapUsed', 'heapTotal', 'external', 'arrayBuffers'];
  printTable(
    ['memory', 'before MB', 'after MB', 'after idle MB', 'delta MB', 'per attempt (idle)'],
    keys.map((k) => [k, MB(before[k]), MB(after[k]), MB(settled[k]), MB(settled[k] - before[k]), `${((settled[k] - before[k]) / n / 1024).toFixed(2)} KiB`]),
  );
}, [
  () => sandbox.close(),
  async () => {
    const t = performance.now();
    await app.close();
    console.log(`FanGate stopped in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  },
]);
