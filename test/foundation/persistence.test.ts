import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, expect, it } from 'vitest';
import { ADMIN_TOKEN, startTestApp, TEST_MASTER_KEY, type TestApp } from '../support/app.js';
import { createTestStore, describeEachStore } from '../support/stores.js';
import { FANGATE_CLI } from '../support/cli.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

let cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  const pending = cleanups.reverse();
  cleanups = [];
  for (const cleanup of pending) await Promise.resolve(cleanup()).catch(() => undefined);
});

const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

describeEachStore('persistence', (kind) => {
  it('an organisation and its API key created through the admin API survive a stop and start', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'fangate-persist-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const store = await createTestStore(kind);
    cleanups.push(() => store.drop());
    const reuse = kind === 'pglite' ? { persistent: true, dataDir } : { store, dataDir };

    const first: TestApp = await startTestApp(kind, reuse);
    let firstOpen = true;
    cleanups.push(() => firstOpen && first.close());
    const org = await first.api('/admin/orgs', { method: 'POST', key: null, headers: admin, body: { name: 'Persistent Pictures' } });
    expect(org.status).toBe(201);
    expect(org.body).toEqual({ id: expect.stringMatching(/^org_/), name: 'Persistent Pictures' });
    const created = await first.api(`/admin/orgs/${org.body.id}/api-keys`, {
      method: 'POST',
      key: null,
      headers: admin,
      body: { name: 'crm', scopes: ['accounts:read', 'webhooks:read'] },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ id: expect.stringMatching(/^key_/), key: expect.stringMatching(/^fg_/), name: 'crm' });
    const key: string = created.body.key;
    const before = await first.api('/api/whoami', { key });
    expect(before.status).toBe(200);
    await first.close();
    firstOpen = false;

    // Stopped: nothing answers any more.
    await expect(fetch(`${first.url}/healthz`)).rejects.toThrow();

    const second = await startTestApp(kind, reuse);
    cleanups.push(() => second.close());
    const after = await second.api('/api/whoami', { key });
    expect(after.status).toBe(200);
    expect(after.body).toEqual({
      organization: { id: org.body.id, name: 'Persistent Pictures' },
      api_key: { id: created.body.id, name: 'crm', scopes: ['accounts:read', 'webhooks:read'] },
    });
    // Still exactly one such organisation: the restart did not re-create anything.
    const again = await second.api('/admin/orgs', { method: 'POST', key: null, headers: admin, body: { name: 'Persistent Pictures' } });
    expect(again.status).toBe(409);
    // And an invented key is still refused after the restart.
    expect((await second.api('/api/whoami', { key: `${key.slice(0, -4)}zzzz` })).status).toBe(401);
  }, 60_000);
});

it('a second process cannot open a PGlite data dir that a running FanGate holds, and says who holds it', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'fangate-lock-'));
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  const running = await startTestApp('pglite', { persistent: true, dataDir });
  cleanups.push(() => running.close());

  const env: NodeJS.ProcessEnv = { ...process.env, FANGATE_DATA_DIR: dataDir, FANGATE_MASTER_KEY: TEST_MASTER_KEY, FANGATE_SANDBOX: 'off', FANGATE_PORT: '0' };
  delete env.DATABASE_URL;
  const second = spawn(process.execPath, [...FANGATE_CLI, 'serve'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  second.stdout.on('data', (chunk) => (output += chunk));
  second.stderr.on('data', (chunk) => (output += chunk));
  cleanups.push(() => second.exitCode === null && second.signalCode === null && second.kill('SIGKILL'));
  const code = await new Promise<number | null>((resolve) => second.once('exit', (c) => resolve(c)));

  expect(code).not.toBe(0);
  expect(output).toContain(`in use by process ${process.pid}`);
  expect(output).toContain(dataDir);
  // The refused process did not disturb the running one.
  const whoami = await running.api('/api/whoami');
  expect(whoami.status).toBe(200);
  expect(whoami.body.organization.name).toBe('default');
}, 60_000);
