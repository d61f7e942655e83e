import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { describeEachStore } from '../support/stores.js';

/**
 * Start bodies FanGate must refuse (DESIGN 2, 3.1, issue 4 "Validation"): a 422 naming every bad field, and
 * nothing written — no attempt row, no upstream call. Malformed JSON is 400, another content type 415.
 */

const PASSWORD = 'password';
const SESSION = { auth_id: '111122223333', cookies: 'auth_id=111122223333; sess=0123456789abcdef0123456789abcdef; fp=abcdef', xbc: 'x'.repeat(40), user_agent: 'Mozilla/5.0 Test' };

describeEachStore('connect start validation', (kind) => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp(kind); // no FANGATE_PROXY_POOL: the operator has no proxy pool
  });
  afterAll(() => app?.close());

  const attemptCount = async () =>
    Number((await app.fangate.database.db.selectFrom('auth_attempts').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);

  /** Posts `body`, expects a 422 whose errors name exactly `fields`, and that no attempt was created. */
  async function expectRefused(body: unknown, fields: string[], path = '/api/authenticate') {
    const before = await attemptCount();
    const res = await app.api(path, { method: 'POST', body });
    expect(res.status, `${JSON.stringify(body)} → ${res.text}`).toBe(422);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    expect(res.body).toMatchObject({ status: 422, code: 'validation_failed', retryable: false });
    expect(res.body.errors.map((e: { field: string }) => e.field).sort(), res.text).toEqual([...fields].sort());
    for (const error of res.body.errors) expect(error.message).toEqual(expect.any(String));
    expect(await attemptCount()).toBe(before);
    return res.body;
  }

  it('email_password needs email and password; the email must be an address', async () => {
    await expectRefused({ password: PASSWORD }, ['email']);
    await expectRefused({ email: 'val1@sandbox.test' }, ['password']);
    await expectRefused({}, ['email', 'password']);
    await expectRefused({ email: 'not-an-email', password: PASSWORD }, ['email']);
    await expectRefused({ email: 'val1@sandbox.test', password: '' }, ['password']);
    await expectRefused({ email: 'val1@sandbox.test', password: PASSWORD, cookies: SESSION.cookies }, ['cookies']);
  });

  it('unknown fields and auth types are refused by name', async () => {
    await expectRefused({ email: 'val2@sandbox.test', password: PASSWORD, remember_me: true }, ['remember_me']);
    await expectRefused({ auth_type: 'magic_link', email: 'val2@sandbox.test', password: PASSWORD }, ['auth_type']);
    await expectRefused({ email: 'val2@sandbox.test', password: PASSWORD, force_connect: 'yes' }, ['force_connect']);
    await expectRefused({ email: 'val2@sandbox.test', password: PASSWORD, totp_secret: 'not base32!' }, ['totp_secret']);
  });

  it('proxies: not both proxyCountry and customProxy, ports 1-65535, and no unknown country', async () => {
    const login = { email: 'val3@sandbox.test', password: PASSWORD };
    await expectRefused({ ...login, proxyCountry: 'us', customProxy: { host: 'proxy.example.net', port: 3128 } }, ['proxyCountry']);
    await expectRefused({ ...login, customProxy: { host: 'proxy.example.net', port: 0 } }, ['customProxy.port']);
    await expectRefused({ ...login, customProxy: { host: 'proxy.example.net', port: 70000 } }, ['customProxy.port']);
    await expectRefused({ ...login, customProxy: { port: 3128 } }, ['customProxy.host']);
    await expectRefused({ ...login, customProxy: { host: 'proxy.example.net', port: 3128, protocol: 'ftp' } }, ['customProxy.protocol']);
    await expectRefused({ ...login, customProxy: { host: 'proxy.example.net', port: 3128, password: 'secret' } }, ['customProxy.username']);
    // No pool configured: no country can be served.
    const noPool = await expectRefused({ ...login, proxyCountry: 'us' }, ['proxyCountry']);
    expect(noPool.errors[0].message).toMatch(/pool/i);
    await expectRefused({ ...login, proxyCountry: 'zz' }, ['proxyCountry']);
    // Nothing of it reached the platform.
    const seen = await fetch(`${app.sandbox.url}/__sandbox/requests?email=${encodeURIComponent('val3@sandbox.test')}`);
    expect(((await seen.json()) as { data: unknown[] }).data).toEqual([]);
  });

  it('raw_data needs a session whose cookies hold sess and match auth_id', async () => {
    await expectRefused({ auth_type: 'raw_data', ...SESSION, cookies: 'auth_id=111122223333; fp=abcdef' }, ['cookies']);
    await expectRefused({ auth_type: 'raw_data', ...SESSION, auth_id: '999999999999' }, ['auth_id']);
    const { xbc: _x, ...noXbc } = SESSION;
    await expectRefused({ auth_type: 'raw_data', ...noXbc }, ['xbc']);
    await expectRefused({ auth_type: 'raw_data', ...SESSION, email: 'val4@sandbox.test', password: PASSWORD }, ['email', 'password']);
    await expectRefused({ auth_type: 'raw_data', ...SESSION, totp_secret: 'JBSWY3DPEHPK3PXP' }, ['totp_secret']);
  });

  it('a body that is not a JSON object is 400 or 415, never a 500, and writes nothing', async () => {
    const before = await attemptCount();
    const malformed = await app.api('/api/authenticate', { method: 'POST', body: '{"email": "val5@sandbox.test", "password": ' });
    expect(malformed.status).toBe(400);
    expect(malformed.body).toMatchObject({ status: 400, code: 'malformed_json' });

    const form = await app.api('/api/authenticate', {
      method: 'POST', body: 'email=val5%40sandbox.test&password=password', headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(form.status).toBe(415);
    expect(form.body).toMatchObject({ status: 415 });

    for (const body of ['[]', '"val5@sandbox.test"', 'null', '42']) {
      const res = await app.api('/api/authenticate', { method: 'POST', body });
      expect(res.status, `${body} → ${res.text}`).toBeGreaterThanOrEqual(400);
      expect(res.status, `${body} → ${res.text}`).toBeLessThan(500);
    }
    expect(await attemptCount()).toBe(before);
  });

  it('a valid body after all those still starts an attempt (the refusals were about the input)', async () => {
    const before = await attemptCount();
    const res = await app.api('/api/authenticate', { method: 'POST', body: { email: 'val6@sandbox.test', password: PASSWORD } });
    expect(res.status).toBe(200);
    expect(await attemptCount()).toBe(before + 1);
  });
});
