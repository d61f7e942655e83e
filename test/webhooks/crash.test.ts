import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Webhook } from 'standardwebhooks';
import { afterEach, expect, it } from 'vitest';
import { startTestApp, type StartOptions } from '../support/app.js';
import { createTestStore, describeEachStore } from '../support/stores.js';
import { createEndpoint, startReceiver } from './helpers.js';

/**
 * At least once across crashes (DESIGN 9): a process killed with SIGKILL between the outbox write and the
 * fan-out, or while a receiver holds its request, loses no event; the next process delivers it.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FIXTURE = join(ROOT, 'test/fixtures/webhook-crash-worker.ts');

let cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  const pending = cleanups.reverse();
  cleanups = [];
  for (const cleanup of pending) await Promise.resolve(cleanup()).catch(() => undefined);
});

/** Runs the fixture until it printed the recorded event and `until` holds, then kills it with SIGKILL. */
async function runAndKill(env: Record<string, string>, until: () => Promise<void> = async () => undefined): Promise<string> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', FIXTURE], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code)));
  cleanups.push(() => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL'));
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const recorded = await new Promise<string>((resolve, reject) => {
    let buffer = '';
    child.stdout!.on('data', (chunk) => {
      buffer += chunk;
      const line = buffer.split('\n').find((l) => l.includes('"recorded"'));
      if (line) resolve(JSON.parse(line).id);
    });
    void exited.then((how) => reject(new Error(`fixture exited (${how}) early:\n${stderr}`)));
  });
  await until();
  child.kill('SIGKILL');
  expect(await exited).toBe('SIGKILL');
  return recorded;
}

describeEachStore('webhooks: delivery survives a killed worker', (kind) => {
  it('an event written just before the crash, and one whose request was in flight, both arrive', async () => {
    let hang = true;
    const receiver = await startReceiver(() => (hang ? 'hang' : { status: 200 }));
    cleanups.push(() => receiver.close());
    const dataDir = await mkdtemp(join(tmpdir(), 'fangate-wh-crash-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const store = await createTestStore(kind);
    cleanups.push(() => store.drop());
    const reuse: StartOptions = {
      ...(kind === 'pglite' ? { persistent: true, dataDir } : { store, dataDir }),
      env: { FANGATE_ALLOW_PRIVATE_WEBHOOKS: 'true' },
      webhooks: { pollMs: 100 },
    };
    const fixtureEnv: Record<string, string> = store.databaseUrl ? { FIXTURE_DATABASE_URL: store.databaseUrl } : { FIXTURE_DATA_DIR: dataDir };

    const first = await startTestApp(kind, reuse);
    const endpoint = await createEndpoint(first, { endpoint_url: receiver.url, events: ['accounts.updated'] });
    await first.fangate.stop();

    // 1. Killed after the outbox write, before any fan-out.
    const early = await runAndKill({ ...fixtureEnv, FIXTURE_MODE: 'outbox' });
    // 2. A process with workers: it fans out both events and is killed while the receiver holds the requests.
    const late = await runAndKill({ ...fixtureEnv, FIXTURE_MODE: 'full' }, async () => {
      await receiver.waitFor(2, 60_000);
    });
    expect(new Set(receiver.received.map((r) => r.headers['webhook-id']))).toEqual(new Set([early, late]));

    // The next process takes over once the dead worker's lease ends (moved forward on its clock).
    hang = false;
    const second = await startTestApp(kind, reuse);
    cleanups.push(() => second.fangate.stop());
    second.clock.advance(60_000);
    const all = await receiver.waitFor(4, 60_000);
    const ids = all.map((r) => r.headers['webhook-id']);
    expect(ids.filter((id) => id === early).length).toBeGreaterThanOrEqual(2);
    expect(ids.filter((id) => id === late).length).toBeGreaterThanOrEqual(2);
    for (const r of all.slice(2)) expect(new Webhook(endpoint.signing_secret).verify(r.body, r.headers as Record<string, string>)).toBeTruthy();
    const deadline = Date.now() + 30_000;
    let deliveries = (await second.api(`/api/webhooks/${endpoint.id}/deliveries`)).body.data;
    while (!deliveries.every((d: { status: string }) => d.status === 'succeeded') && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      deliveries = (await second.api(`/api/webhooks/${endpoint.id}/deliveries`)).body.data;
    }
    expect(deliveries.map((d: { event_id: string; status: string }) => [d.event_id, d.status]).sort()).toEqual([[early, 'succeeded'], [late, 'succeeded']].sort());
  }, 180_000);
});
