/**
 * Time from `fangate serve` (what `npm start` runs) to a ready /readyz and a first authenticated
 * request: on a fresh data directory (database created) and again on the same one (restart), next
 * to the bare cost of starting Node with tsx in the same run. Prints; asserts nothing.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePortNumber, ms, printTable } from './support.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const KEY = 'fg_bench_startup_key_0000000000';
const RUNS = Number(process.env.BENCH_STARTUP_RUNS ?? 3);

async function timeCommand(args: string[]): Promise<number> {
  const started = performance.now();
  await new Promise<void>((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: 'ignore' });
    child.once('exit', () => resolve());
    child.once('error', reject);
  });
  return performance.now() - started;
}

/** Starts serve on `dataDir`, returns ms to /readyz 200 and to a 200 whoami, then stops it. */
async function timeServe(dataDir: string): Promise<{ ready: number; whoami: number }> {
  const port = await freePortNumber();
  const started = performance.now();
  const child = spawn(process.execPath, ['bin/fangate.js', 'serve'], {
    cwd: ROOT,
    stdio: 'ignore',
    env: { ...process.env, FANGATE_DATA_DIR: dataDir, FANGATE_PORT: String(port), FANGATE_HOST: '127.0.0.1', FANGATE_SANDBOX: 'off', FANGATE_BOOTSTRAP_API_KEY: KEY, DATABASE_URL: '' },
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const base = `http://127.0.0.1:${port}`;
  let ready = NaN;
  while (Number.isNaN(ready) && performance.now() - started < 120_000) {
    if ((await fetch(`${base}/readyz`).then((r) => r.status, () => 0)) === 200) ready = performance.now() - started;
    else await new Promise((r) => setTimeout(r, 25));
  }
  const whoami = (await fetch(`${base}/api/whoami`, { headers: { authorization: `Bearer ${KEY}` } })).status === 200 ? performance.now() - started : NaN;
  child.kill('SIGTERM');
  await exited;
  return { ready, whoami };
}

const rows: string[][] = [];
const node = [];
for (let i = 0; i < RUNS; i++) node.push(await timeCommand(['--import', 'tsx', '-e', '0']));
rows.push(['node + tsx, empty script (baseline)', ms(Math.min(...node)), '-']);
for (let i = 0; i < RUNS; i++) {
  const dataDir = await mkdtemp(join(tmpdir(), 'fangate-startup-'));
  try {
    const fresh = await timeServe(dataDir);
    const again = await timeServe(dataDir);
    rows.push([`serve, fresh data dir (run ${i + 1})`, ms(fresh.ready), ms(fresh.whoami)]);
    rows.push([`serve, existing data dir (run ${i + 1})`, ms(again.ready), ms(again.whoami)]);
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}
console.log(`FanGate start-up on embedded PGlite, ${RUNS} runs; node ${process.version}\n`);
printTable(['start', 'ms to /readyz 200', 'ms to first whoami 200'], rows);
