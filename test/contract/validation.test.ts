import { afterAll, beforeAll, expect, it } from 'vitest';
import { BOOTSTRAP_KEY, startTestApp, type TestApp } from '../support/app.js';
import { startHttpProxy, type TestProxy } from '../support/proxies.js';
import { describeEachStore } from '../support/stores.js';
import { expectSettled } from '../connect/login-helpers.js';

/** DESIGN 2: every bad field in one 422, messages for people, no coercion, the seeds' fields on every problem. */
describeEachStore('validation and seed compatibility', (kind) => {
  let app: TestApp;
  let proxy: TestProxy;
  beforeAll(async () => {
    proxy = await startHttpProxy();
    app = await startTestApp(kind, { env: { FANGATE_PROXY_POOL: `us=${proxy.url}` } });
  });
  afterAll(async () => {
    await app?.close();
    await proxy?.close();
  });

  const VALIDATOR_SPEAK = /must NOT|must have required property|must match pattern|must be equal to one of|#\//;

  it('does not coerce: "password": 5 is a 422 naming password', async () => {
    const res = await app.api('/api/authenticate', { method: 'POST', body: { email: 'coerce@sandbox.test', password: 5 } });
    expect(res.status).toBe(422);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(res.body).toMatchObject({ code: 'validation_failed', errors: [{ field: 'password', message: 'password must be a string' }] });
    for (const body of [{ email: 'coerce@sandbox.test', password: 'password', force_connect: 'true' }, { email: 'coerce@sandbox.test', password: 'password', customProxy: { host: 'p.example.net', port: '8080' } }]) {
      const answer = await app.api('/api/authenticate', { method: 'POST', body });
      expect(answer.status).toBe(422);
    }
  });

  it('names every bad field in one answer: schema errors and the combinations together, in words for people', async () => {
    const res = await app.api('/api/authenticate', {
      method: 'POST',
      body: { password: 5, name: '', totp_secret: 'short', proxyCountry: 'us', customProxy: { host: 'proxy.example.net', port: 3128 }, surprise: true },
    });
    expect(res.status).toBe(422);
    const byField = Object.fromEntries((res.body.errors as { field: string; message: string }[]).map((e) => [e.field, e.message]));
    expect(byField).toEqual({
      password: 'password must be a string',
      name: 'name must not be empty',
      totp_secret: 'totp_secret must be at least 16 characters long',
      surprise: 'surprise is not a known field',
      // Beyond the schema: the rules of the combination, in the same answer.
      email: 'email is required for auth_type email_password',
      proxyCountry: 'proxyCountry cannot be combined with customProxy: choose one',
    });
    for (const message of Object.values(byField)) expect(message).not.toMatch(VALIDATOR_SPEAK);
    expect(res.body.detail).toMatch(/^The request has 6 invalid fields: /);
    expect(res.body.message).toBe(res.body.detail);

    // The same on the credentials update, and on query strings and path parameters.
    const credentials = await app.api('/api/authenticate/acct_nope/credentials', { method: 'PUT', body: { auth_type: 'raw_data', cookies: 7 } });
    expect(credentials.status).toBe(422);
    expect((credentials.body.errors as { field: string }[]).map((e) => e.field).sort()).toEqual(['auth_id', 'cookies', 'user_agent', 'xbc']);
    const list = await app.api('/api/authenticate?limit=0&state=finished');
    expect(list.status).toBe(422);
    expect(list.body.errors).toEqual([
      { field: 'limit', message: 'limit must be at least 1' },
      { field: 'state', message: expect.stringMatching(/^state must be one of: pending, /) },
    ]);
  });

  it('carries the seeds\' message (and reason) on every problem', async () => {
    const problems = [
      await app.api('/api/accounts', { key: 'fg_wrong_key_000000000000000000' }),
      await app.api('/api/accounts/acct_doesnotexist000000000000'),
      await app.api('/api/nowhere'),
      await app.api('/api/authenticate', { method: 'POST', body: { email: 'x' } }),
    ];
    expect(problems.map((p) => p.status)).toEqual([401, 404, 404, 422]);
    for (const problem of problems) {
      expect(problem.body).toMatchObject({ type: expect.stringMatching(/^urn:fangate:problem:/), title: expect.any(String), code: expect.any(String), request_id: expect.any(String) });
      expect(problem.body.message).toBe(problem.body.detail);
    }
  });

  it("replays the seed documentation's requests and reads what a seed client reads", async () => {
    // Start with proxyCountry (the seed's own field name) through the operator's pool.
    const started = await app.api('/api/authenticate', { method: 'POST', body: { email: `seed-${kind}@sandbox.test`, password: 'password', proxyCountry: 'us' } });
    expect(started.status).toBe(200);
    expect(started.body).toMatchObject({ message: 'Authentication process started. Query the polling_url to check the progress.', attempt_id: expect.stringMatching(/^auth_/) });
    const polled = await fetch(started.body.polling_url, { headers: { authorization: `Bearer ${BOOTSTRAP_KEY}` } });
    expect(polled.status).toBe(200);
    const done = await expectSettled(app, started.body.attempt_id, 'completed_success');
    const accountId = done.account_id as string;
    expect(done.account).toMatchObject({ id: accountId, proxy: { type: 'country', country: 'us' } });
    expect(proxy.connections).toBeGreaterThan(0);

    // PUT …/credentials with the seed's body.
    const updated = await app.api(`/api/authenticate/${accountId}/credentials`, { method: 'PUT', body: { email: `seed-${kind}@sandbox.test`, password: 'password' } });
    expect(updated.status).toBe(200);
    expect(updated.body).toMatchObject({
      message: 'Authentication credentials updated. Re-authentication started. Query the polling_url to check the progress.',
      attempt_id: expect.stringMatching(/^auth_/),
      polling_url: expect.stringContaining(`/api/authenticate/${updated.body.attempt_id}`),
    });
    await expectSettled(app, updated.body.attempt_id, 'completed_success');

    // Fansly reauthenticate on a valid session: the seed's 400 with its message and reason.
    const fansly = await app.api('/api/fansly/authenticate', { method: 'POST', body: { username: `seedfansly${kind}`, password: 'password' } });
    const fanslyDone = await expectSettled(app, fansly.body.attempt_id, 'completed_success', { platform: 'fansly' });
    const refused = await app.api(`/api/fansly/authenticate/${fanslyDone.account_id}/reauthenticate`, { method: 'POST' });
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ code: 'already_authenticated', message: "Can't re-authenticate account at this time.", reason: 'Account is already successfully authenticated' });
    const forced = await app.api(`/api/fansly/authenticate/${fanslyDone.account_id}/reauthenticate?force=true`, { method: 'POST' });
    expect(forced.status).toBe(200);
    expect(forced.body).toMatchObject({ success: true, message: 'Re-authentication started.', attempt_id: expect.stringMatching(/^auth_/), polling_url: expect.any(String) });
  });
});
