import { afterAll, beforeAll, expect, it } from 'vitest';
import { ADMIN_TOKEN, startTestApp, type TestApp } from '../support/app.js';
import { describeEachStore } from '../support/stores.js';

describeEachStore('connect rate limit', (kind) => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp(kind, { env: { FANGATE_CONNECT_RATE_LIMIT_PER_HOUR: '2' } });
  });
  afterAll(() => app?.close());

  it('allows FANGATE_CONNECT_RATE_LIMIT_PER_HOUR connect attempts per organisation and hour, then 429', async () => {
    const start = (email: string, key?: string) => app.api('/api/authenticate', { method: 'POST', body: { email, password: 'password' }, ...(key ? { key } : {}) });
    const first = await start('rl1@sandbox.test');
    expect(first.status).toBe(200);
    expect(first.headers.get('ratelimit-limit')).toBe('2');
    expect((await start('rl2@sandbox.test')).status).toBe(200);
    const limited = await start('rl3@sandbox.test');
    expect(limited.status).toBe(429);
    expect(limited.body).toMatchObject({ code: 'rate_limited', retryable: true });
    expect(limited.body.retryAfterSec).toBeGreaterThan(60);
    // Reading attempts is not a connect: it goes on.
    expect((await app.api(`/api/authenticate/${first.body.attempt_id}`)).status).toBe(200);

    // The budget is the organisation's: another organisation starts with its own.
    const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
    const org = await app.api('/admin/orgs', { method: 'POST', body: { name: 'rl-other' }, headers: admin, key: null });
    const key = await app.api(`/admin/orgs/${org.body.id}/api-keys`, { method: 'POST', body: {}, headers: admin, key: null });
    expect((await start('rl4@sandbox.test', key.body.key)).status).toBe(200);
  });
});
