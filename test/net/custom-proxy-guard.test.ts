import { afterAll, beforeAll, expect, it } from 'vitest';
import { SANDBOX_PASSWORD } from '../../src/sandbox/index.js';
import { expectSettled, startAttempt } from '../connect/login-helpers.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { describeEachStore } from '../support/stores.js';

/**
 * `customProxy` is no way into FanGate's own network (DESIGN 8, issue 11 item 6). Refusals are checked
 * with literal addresses, `localhost` and a resolver stub: nothing here connects to a private address.
 */
describeEachStore('custom proxy SSRF guard', (kind) => {
  let app: TestApp;
  // First answer public (the request's check), every later one loopback (a DNS rebinding before the connect).
  const answers = new Map<string, number>();
  const resolver = async (host: string) => {
    const n = answers.get(host) ?? 0;
    answers.set(host, n + 1);
    if (host === 'rebinding.proxy.test') return [{ address: n === 0 ? '93.184.216.34' : '127.0.0.1', family: 4 as const }];
    if (host === 'localhost') return [{ address: '127.0.0.1', family: 4 as const }];
    throw new Error(`unexpected lookup of ${host}`);
  };
  beforeAll(async () => {
    app = await startTestApp(kind, { env: { FANGATE_ALLOW_PRIVATE_PROXIES: 'false' }, resolver });
  });
  afterAll(async () => {
    await app?.close();
  });

  it.each(['127.0.0.1', 'localhost', '::1', '10.0.0.1', '192.168.1.1', '169.254.169.254', '100.64.0.1', 'fd00:ec2::254'])(
    'refuses customProxy.host %s with a 422 naming the field, before anything is stored',
    async (host) => {
      const res = await app.api('/api/authenticate', { method: 'POST', body: { email: 'ssrf@sandbox.test', password: SANDBOX_PASSWORD, customProxy: { host, port: 5432 } } });
      expect(res.status, res.text).toBe(422);
      expect(res.body.code).toBe('validation_failed');
      expect(res.body.errors).toEqual([expect.objectContaining({ field: 'customProxy.host' })]);
      expect(res.text).not.toMatch(/ECONNREFUSED|closed the connection/);
    },
  );

  it('refuses a private proxy on an account change too', async () => {
    const id = await startAttempt(app, { email: 'ssrf2@sandbox.test', password: SANDBOX_PASSWORD });
    const accountId = (await expectSettled(app, id, 'completed_success')).account_id;
    const res = await app.api(`/api/accounts/${accountId}`, { method: 'PATCH', body: { customProxy: { host: '127.0.0.1', port: 3128 } } });
    expect(res.status).toBe(422);
    expect(res.body.errors).toEqual([expect.objectContaining({ field: 'customProxy.host' })]);
    expect((await app.api(`/api/accounts/${accountId}`)).body.proxy).toEqual({ type: 'none' });
  });

  it('checks again at connect: a name that now resolves to loopback fails proxy_error naming only the proxy', async () => {
    const id = await startAttempt(app, { email: 'ssrf3@sandbox.test', password: SANDBOX_PASSWORD, customProxy: { host: 'rebinding.proxy.test', port: 3128 } });
    const attempt = await expectSettled(app, id, 'completed_failed');
    expect(attempt.error).toEqual({ code: 'proxy_error', message: 'The proxy http://rebinding.proxy.test:3128 could not be used.' });
    expect(answers.get('rebinding.proxy.test')).toBeGreaterThanOrEqual(2);
  });
});

describeEachStore('proxy errors', (kind) => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp(kind);
  });
  afterAll(async () => {
    await app?.close();
  });

  it('say which proxy failed, not what the probe found', async () => {
    const id = await startAttempt(app, { email: 'ssrf4@sandbox.test', password: SANDBOX_PASSWORD, customProxy: { host: '127.0.0.1', port: 1, username: 'canary-proxy-user' } });
    const attempt = await expectSettled(app, id, 'completed_failed');
    expect(attempt.error).toEqual({ code: 'proxy_error', message: 'The proxy http://127.0.0.1:1 could not be used.' });
  });
});
