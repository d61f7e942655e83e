/**
 * `npm run bench`: every benchmark, one after the other, each in its own processes, with short durations by default
 * (BENCH_LONG=1 for the long ones: 10 s per route, 10,000 parked attempts, sizes up to 100k), then ONE summary table
 * of every figure beside the baseline of its run, the ratio and the goal. BENCH_ONLY=http,poll picks some.
 * Any BENCH_* variable set in the environment wins over these defaults.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureBuilt, printSummary, type SummaryRow } from './support.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const long = process.env.BENCH_LONG === '1';
const defaults: Record<string, string> = long
  ? { BENCH_DURATION: '10', BENCH_WARMUP: '2', BENCH_TTA_COUNT: '500', BENCH_PARKED: '10000', BENCH_SCALE_SIZES: '1000,10000,100000', BENCH_STARTUP_RUNS: '5' }
  : { BENCH_DURATION: '3', BENCH_WARMUP: '1', BENCH_TTA_COUNT: '100', BENCH_PARKED: '1000', BENCH_PARKED_SETTLE_MS: '2000', BENCH_SCALE_SIZES: '1000,10000', BENCH_SCALE_CONNECTS: '50', BENCH_STARTUP_RUNS: '3', BENCH_WEBHOOK_EVENTS: '2000' };

const benches: Array<[string, string[]]> = [
  ['startup', ['bench/startup.ts']],
  ['http', ['bench/http.ts']],
  ['poll', ['bench/poll.ts']],
  ['tta', ['bench/time-to-authenticated.ts']],
  ['parked', ['bench/parked-attempts.ts']],
  ['scale', ['bench/scale.ts']],
  ['access', ['bench/access.ts']],
  ['webhooks', ['bench/webhooks.ts']],
  ['monitor', ['bench/monitor.ts']],
];
const only = process.env.BENCH_ONLY?.split(',').map((s) => s.trim());

ensureBuilt();
const dir = mkdtempSync(join(tmpdir(), 'fangate-bench-summary-'));
const file = join(dir, 'summary.jsonl');
const failed: string[] = [];
for (const [name, args] of benches) {
  if (only && !only.includes(name)) continue;
  console.log(`\n=== ${name} ${'='.repeat(60)}`);
  const result = spawnSync(process.execPath, ['--import', 'tsx', ...args], { cwd: ROOT, stdio: 'inherit', env: { ...defaults, ...process.env, BENCH_SUMMARY_FILE: file } });
  if (result.status !== 0) failed.push(name);
}
const rows: SummaryRow[] = readFileSync(file, { encoding: 'utf8', flag: 'a+' })
  .split('\n')
  .filter(Boolean)
  .map((line) => JSON.parse(line) as SummaryRow);
rmSync(dir, { recursive: true, force: true });
console.log(`\n=== summary (${long ? 'BENCH_LONG=1' : 'short run; BENCH_LONG=1 for the long one'}; ${process.env.DATABASE_URL ? 'PostgreSQL' : 'embedded PGlite'}; node ${process.version}) ${'='.repeat(20)}`);
printSummary(rows);
if (failed.length > 0) console.log(`FAILED: ${failed.join(', ')} (see their output above)`);
process.exit(failed.length > 0 ? 1 : 0);
