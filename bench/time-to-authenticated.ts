/**
 * Time to authenticated: from sending `POST /api/authenticate` to the moment a long-poll (`GET …?wait=30&state=pending`)
 * answers `completed_success`, as a client following the docs sees it; for `raw_data` (a session minted by the sandbox
 * beforehand, outside the timing) and `email_password` without 2FA (a distinct identity per connect, so the sandbox's
 * login lock never applies); first one after the other, then BENCH_TTA_CONCURRENCY at once. The clients run in a
 * child process (bench/connect-child.ts), FanGate as `npm start` runs it in another, the sandbox in a third. Baseline
 * of the same run: the round trip of a bare Fastify route in its own process, from the same client process.
 * Goals (issue #14, PostgreSQL, 16 in flight): raw_data ≥ 300 connects/s completed, p50 ≤ 60 ms; sequential p50 ≤ 25 ms.
 *
 *   npm run bench:tta
 *   BENCH_TTA_COUNT=500 BENCH_TTA_CONCURRENCY=16 npm run bench:tta
 *   DATABASE_URL=postgres://… npm run bench:tta
 */
import type { ConnectResult } from './connect-child.js';
import { cpuMeter, type CpuUse, ms, printCpuTable, printTable, report, runBench, startBareFastify, startClientChild, startSandboxChild, startServerProcess } from './support.js';

const count = Number(process.env.BENCH_TTA_COUNT ?? 100);
const concurrency = Number(process.env.BENCH_TTA_CONCURRENCY ?? 16);

const cleanup: Array<() => Promise<void>> = [];
await runBench(async () => {
  const bare = await startBareFastify();
  cleanup.push(() => bare.close());
  const sandbox = await startSandboxChild();
  cleanup.push(() => sandbox.close());
  const server = await startServerProcess({ sandbox });
  cleanup.push(() => server.close());
  const clients = startClientChild();
  cleanup.push(() => clients.close());
  let tag = 0;
  const connects = (method: 'raw_data' | 'email_password', n: number, lanes: number) =>
    clients.run<ConnectResult>({ base: server.base, apiKey: server.apiKey, sandboxUrl: sandbox.url, method, count: n, concurrency: lanes, tag: `tta${process.pid}-${tag++}` });

  console.log(`FanGate time to authenticated: ${server.kind}, ${count} connects per method one after the other, then ${count} with ${concurrency} at a time; clients in a child process, node ${process.version}`);
  // Warm-up: first-use costs (JIT, pools, prepared plans) are not what this measures.
  await clients.run({ latencyOf: `${bare.url}/healthz`, count: 100 });
  for (const method of ['raw_data', 'email_password'] as const) await connects(method, 5, 1);

  const floor = await clients.run<{ p50: number; p99: number }>({ latencyOf: `${bare.url}/healthz`, count: 300 });
  const rows: string[][] = [['baseline: bare Fastify GET /healthz (sequential, 300)', '-', ms(floor.p50), ms(floor.p99), '-', '-']];
  const results: Record<string, ConnectResult> = {};
  // CPU per connect by process: with 2 cores, a phase that keeps both busy is bounded by the sum.
  const cpu = cpuMeter({ FanGate: server.pid, sandbox: sandbox.pid, clients: clients.pid }, { postgres: server.kind === 'postgres' });
  const cpuRows: Array<[string, CpuUse]> = [];
  for (const [phase, lanes] of [['sequential', 1], [`${concurrency} concurrent`, concurrency]] as const) {
    for (const method of ['raw_data', 'email_password'] as const) {
      cpu.restart();
      const r = await connects(method, count, lanes);
      const used = cpu.per(count);
      results[`${method} ${lanes}`] = r;
      rows.push([`${method} (${phase}, ${count}, ${r.perSecond.toFixed(1)}/s)`, ms(r.startP50), ms(r.p50), ms(r.p99), ms(r.max), r.polls.toFixed(2)]);
      cpuRows.push([`${method} (${phase})`, used]);
    }
  }
  printTable(['connect (phase, n, completed/s)', 'POST p50 ms', 'p50 ms', 'p99 ms', 'max ms', 'long-polls'], rows);
  console.log('p50/p99/max: POST sent → long-poll answered completed_success; POST p50: POST sent → 200 (attempt pending).\n');
  printCpuTable('CPU ms per connect', cpuRows);
  console.log('CPU time (user + system) each process used during the phase, divided by the connects; "cores busy": all of it over the wall time (this machine has 2).');
  const seq = results['raw_data 1']!;
  const par = results[`raw_data ${concurrency}`]!;
  const base = { label: 'bare Fastify round trip', value: floor.p50 };
  const bench = `tta (${server.kind})`;
  report([
    { bench, figure: `raw_data connects/s, ${concurrency} in flight`, value: par.perSecond, unit: '/s', goal: server.kind === 'postgres' && concurrency === 16 ? { min: 300 } : undefined },
    { bench, figure: `raw_data p50, ${concurrency} in flight`, value: par.p50, unit: 'ms', baseline: base, goal: server.kind === 'postgres' && concurrency === 16 ? { max: 60 } : undefined },
    { bench, figure: 'raw_data p50, sequential', value: seq.p50, unit: 'ms', baseline: base, goal: server.kind === 'postgres' ? { max: 25 } : undefined },
    { bench, figure: `email_password p50, ${concurrency} in flight`, value: results[`email_password ${concurrency}`]!.p50, unit: 'ms', baseline: base },
  ]);
}, cleanup);
