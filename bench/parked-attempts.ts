/**
 * Parked attempts: the memory FanGate holds for attempts waiting on a code. FanGate runs as `npm start` runs it
 * (compiled, its own process, embedded PGlite on disk unless DATABASE_URL is set), the sandbox in a child process,
 * and the clients in another (bench/connect-child.ts): they park BENCH_PARKED attempts (default 10,000) on
 * `needs_otp`, each a distinct `park-…+sms@sandbox.test` so the sandbox's login lock never applies. The baseline is the
 * server's own resident memory before, in the same run (after a warm-up of 50 attempts); the figure is its growth
 * once the attempts are parked and the process has idled BENCH_PARKED_SETTLE_MS (default 5000). With PGlite the
 * database's buffer cache is part of this process; with PostgreSQL it is not.
 * Goal (issue #14): 10,000 parked attempts grow the server's RSS by ≤ 50 MB.
 *
 *   npm run bench:parked
 *   BENCH_PARKED=1000 npm run bench:parked                 (quick; the growth is also shown per 10,000)
 *   BENCH_PARKED_CONCURRENCY=100 DATABASE_URL=postgres://… npm run bench:parked
 *
 * Attempts expire after 10 minutes on needs_otp (DESIGN 3): parking 10,000 needs ≥ 17 attempts/s to hold them all.
 */
import { printTable, report, runBench, startClientChild, startSandboxChild, startServerProcess, ms } from './support.js';

const env = process.env;
const total = Number(env.BENCH_PARKED ?? 10_000);
const concurrency = Number(env.BENCH_PARKED_CONCURRENCY ?? 50);
const MB = (bytes: number) => bytes / 1024 / 1024;

const cleanup: Array<() => Promise<void>> = [];
await runBench(async () => {
  const sandbox = await startSandboxChild();
  cleanup.push(() => sandbox.close());
  const server = await startServerProcess({ sandbox });
  cleanup.push(() => server.close());
  const clients = startClientChild();
  cleanup.push(() => clients.close());
  const job = (n: number, tag: string) => ({ park: n, base: server.base, apiKey: server.apiKey, concurrency, tag: `${process.pid}${tag}` });

  // Where the memory is: the server's own figures from /metrics (V8 heap, memory outside it such as buffers).
  const memory = async () => {
    const text = await fetch(`${server.base}/metrics`).then((r) => r.text());
    const read = (name: string) => Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? Number.NaN);
    return { heapTotal: read('fangate_nodejs_heap_size_total_bytes'), heapUsed: read('fangate_nodejs_heap_size_used_bytes'), external: read('fangate_nodejs_external_memory_bytes') };
  };
  console.log(`FanGate parked attempts: ${total} on needs_otp, ${concurrency} clients in a child process, ${server.kind}, sandbox in another process, node ${process.version}`);
  const idle = await server.rss();
  const idleMemory = await memory();
  await clients.run(job(50, 'w'));
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const before = await server.rss();
  const beforeMemory = await memory();
  const cpu0 = server.cpuMs();
  const t0 = performance.now();
  const parked = await clients.run<{ perSecond: number; p50: number; p99: number }>(job(total, 'p'));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = server.cpuMs() - cpu0;
  const after = await server.rss();
  const afterMemory = await memory();
  await new Promise((resolve) => setTimeout(resolve, Number(env.BENCH_PARKED_SETTLE_MS ?? 5000)));
  const settled = await server.rss();
  const settledMemory = await memory();

  console.log(`parked ${total} attempts in ${seconds.toFixed(1)} s (${parked.perSecond.toFixed(0)}/s); start → needs_otp p50 ${ms(parked.p50)} ms, p99 ${ms(parked.p99)} ms`);
  console.log(`server CPU: ${(cpu / 1000).toFixed(1)} s, ${(cpu / total).toFixed(1)} ms per attempt`);
  const row = (label: string, rss: number, m: Awaited<ReturnType<typeof memory>>) =>
    [label, MB(rss).toFixed(1), MB(m.heapTotal).toFixed(1), MB(m.heapUsed).toFixed(1), MB(m.external).toFixed(1)];
  printTable(
    ['server memory, MB', 'RSS', 'V8 heap', 'heap used', 'external'],
    [
      row('idle, right after start', idle, idleMemory),
      row('after 50 warm-up attempts (baseline)', before, beforeMemory),
      row(`after ${total} parked`, after, afterMemory),
      row(`after ${total} parked and idle`, settled, settledMemory),
    ],
  );
  // Not extrapolated: a short run's growth is mostly warm-up (heap and JIT settling, the tables' first pages).
  report([
    {
      bench: `parked (${server.kind})`,
      figure: `RSS growth, ${total} on needs_otp`,
      value: MB(settled - before),
      unit: 'MB',
      goal: total >= 10_000 ? { max: 50 } : undefined,
    },
    { bench: `parked (${server.kind})`, figure: 'idle RSS after start', value: MB(idle), unit: 'MB' },
  ]);
}, cleanup);
