import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { createTestStore, type TestStore } from '../support/stores.js';

const serverUrl = process.env.FANGATE_TEST_DATABASE_URL;

/** N API nodes + M workers on one PostgreSQL (DESIGN 1): PGlite is one process, so PostgreSQL only. */
describe.skipIf(!serverUrl)('scale-out: API node and worker node on one PostgreSQL', () => {
  let store: TestStore;
  let api: TestApp;
  let worker: TestApp;
  beforeAll(async () => {
    store = await createTestStore('postgres');
    api = await startTestApp('postgres', { store, env: { FANGATE_ROLE: 'api' } });
    worker = await startTestApp('postgres', { store, sandbox: api.sandbox, env: { FANGATE_ROLE: 'worker' } });
  });
  afterAll(async () => {
    await worker?.fangate.stop();
    await api?.close();
    await store?.drop();
  });

  it('the API node takes the requests, the worker logs in, and the long-poll on the API node wakes at once', async () => {
    const start = await api.api('/api/authenticate', { method: 'POST', body: { email: 'scale+sms@sandbox.test', password: 'password' } });
    expect(start.status).toBe(200);
    const parked = await api.api(`/api/authenticate/${start.body.attempt_id}?wait=15&state=pending`);
    expect(parked.body.state).toBe('needs_otp');
    await api.api(`/api/authenticate/${start.body.attempt_id}`, { method: 'PUT', body: { code: '123456' } });
    const done = await api.api(`/api/authenticate/${start.body.attempt_id}?wait=15&state=pending`);
    expect(done.body.state).toBe('completed_success');
    expect(done.body.account.platform_user.username).toBe('scale');
    // The worker serves no API, only health.
    expect((await worker.api('/api/whoami')).status).toBe(404);
    expect((await worker.api('/readyz', { key: null })).status).toBe(200);
  });
});
