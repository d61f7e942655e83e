import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decryptSession } from '../../src/accounts/repository.js';
import { startSandbox } from '../../src/sandbox/index.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { startHttpProxy, type TestProxy } from '../support/proxies.js';
import { describeEachStore } from '../support/stores.js';
import { accountRow, connectAccount, eventsOf, follow, forceReauth, importAccount, platformRequests, revokeSessions } from './helpers.js';

const MINUTE = 60_000;

describeEachStore('Access API: GET /api/{account_id}/me', (kind) => {
  let app: TestApp;
  let sandbox: Awaited<ReturnType<typeof startSandbox>>;
  let sandboxOffset = 0;
  let directProxy: TestProxy;
  const pool: TestProxy[] = [];

  beforeAll(async () => {
    // The platform's clock is ours to move (cookie rotation).
    sandbox = await startSandbox({ port: 0, logger: false, clock: () => Date.now() + sandboxOffset });
    directProxy = await startHttpProxy({ localAddress: '127.0.0.2' });
    pool.push(await startHttpProxy({ localAddress: '127.0.0.3' }), await startHttpProxy({ localAddress: '127.0.0.4' }));
    app = await startTestApp(kind, { sandbox, env: { FANGATE_PROXY_POOL: `us=${pool.map((p) => p.url).join(',')}` } });
  });
  afterAll(async () => {
    await app?.close();
    await sandbox?.close();
    for (const proxy of [directProxy, ...pool]) await proxy?.close();
  });

  it('answers the platform user of the account', async () => {
    const { account } = await connectAccount(app, 'me-plain@sandbox.test');
    const res = await app.api(`/api/${account.id}/me`);
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual(account.platform_user);
    expect(res.body).toMatchObject({ username: 'me-plain', name: 'Me-plain' });
    expect((await platformRequests(app, 'me-plain@sandbox.test')).at(-1)).toMatchObject({ method: 'GET', path: '/api2/v2/users/me', status: 200 });
    const unknown = await app.api('/api/acct_doesnotexist/me');
    expect(unknown.status).toBe(404);
    expect(unknown.body.code).toBe('not_found');
  });

  it('does not shadow the other /api routes', async () => {
    expect((await app.api('/api/whoami')).status).toBe(200);
    expect((await app.api('/api/accounts')).status).toBe(200);
    const list = await app.api('/api/accounts/me');
    expect(list.status).toBe(404); // an account id "me", not the Access API
    expect(list.body.detail).toMatch(/Account/);
  });

  it('answers 503 account_reauthenticating with Retry-After while a re-authentication waits for a code', async () => {
    const { account } = await connectAccount(app, 'me-reauth+sms@sandbox.test');
    const attemptId = await forceReauth(app, account.id);
    expect((await follow(app, attemptId)).state).toBe('needs_otp');
    expect((await app.api(`/api/accounts/${account.id}`)).body.status).toBe('awaiting_2fa');

    const res = await app.api(`/api/${account.id}/me`);
    expect(res.status, res.text).toBe(503);
    expect(res.body).toMatchObject({ code: 'account_reauthenticating', retryable: true, retryAfterSec: 30 });
    expect(res.headers.get('retry-after')).toBe('30');

    const code = await app.api(`/api/authenticate/${attemptId}`, { method: 'PUT', body: { code: '123456' } });
    expect(code.status).toBe(202);
    expect((await follow(app, attemptId)).state).toBe('completed_success');
    expect((await app.api(`/api/${account.id}/me`)).status).toBe(200);
  });

  it('answers 503 while FanGate logs in again by itself', async () => {
    const { account } = await connectAccount(app, 'me-slow+slow@sandbox.test');
    const attemptId = await forceReauth(app, account.id);
    // Every platform call of a +slow user takes 2 s: the login is still running.
    const res = await app.api(`/api/${account.id}/me`);
    expect(res.status, res.text).toBe(503);
    expect(res.body).toMatchObject({ code: 'account_reauthenticating', retryable: true, retryAfterSec: 5 });
    expect(res.headers.get('retry-after')).toBe('5');
    expect((await follow(app, attemptId)).state).toBe('completed_success');
    expect((await app.api(`/api/${account.id}/me`)).status).toBe(200);
  });

  it('answers 410 account_expired for an expired account', async () => {
    const { account } = await importAccount(app, 'me-expired@sandbox.test');
    expect((await app.api(`/api/accounts/${account.id}/invalidate`, { method: 'POST' })).status).toBe(200);
    const res = await app.api(`/api/${account.id}/me`);
    expect(res.status, res.text).toBe(410);
    expect(res.body).toMatchObject({ code: 'account_expired', status: 410, retryable: false });
  });

  it('answers 502 upstream_error with upstreamStatus 401 when the platform refuses the session, and queues a health check', async () => {
    const { account } = await importAccount(app, 'me-revoked@sandbox.test');
    const before = await accountRow(app, account.id);
    expect(before!.next_check_at!.getTime()).toBeGreaterThan(Date.now() + 10 * MINUTE);
    await revokeSessions(app, 'me-revoked@sandbox.test');

    const asked = app.clock.now();
    const res = await app.api(`/api/${account.id}/me`);
    expect(res.status, res.text).toBe(502);
    expect(res.body).toMatchObject({ code: 'upstream_error', upstreamStatus: 401, retryable: false });
    // The answer only makes the account due at once; the health monitor's check decides what follows (it may
    // have run already, so the row is not asserted in between): the session is gone and nothing can renew it,
    // so the account expires.
    const t0 = Date.now();
    let checked = (await accountRow(app, account.id))!;
    while (checked.status === 'active' && Date.now() - t0 < 15_000) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      checked = (await accountRow(app, account.id))!;
    }
    expect(checked.status).toBe('expired');
    expect(checked.last_checked_at!.getTime()).toBeGreaterThanOrEqual(asked.getTime());
  });

  it('answers 502 upstream_error with the platform status when the platform fails', async () => {
    // A +flaky user: every second platform call answers 502 (the login was the first).
    const { account } = await connectAccount(app, 'me-flaky+flaky@sandbox.test');
    const failed = await app.api(`/api/${account.id}/me`);
    expect(failed.status, failed.text).toBe(502);
    expect(failed.body).toMatchObject({ code: 'upstream_error', upstreamStatus: 502, retryable: true });
    const next = await app.api(`/api/${account.id}/me`);
    expect(next.status, next.text).toBe(200);
    expect(next.body.username).toBe('me-flaky');
  });

  it("goes through the account's proxy, and says so when the proxy fails", async () => {
    const email = 'me-proxy@sandbox.test';
    const { account } = await connectAccount(app, email);
    const dead = await app.api(`/api/accounts/${account.id}`, { method: 'PATCH', body: { customProxy: { host: '127.0.0.1', port: 9 } } });
    expect(dead.status).toBe(200);
    const failed = await app.api(`/api/${account.id}/me`);
    expect(failed.status, failed.text).toBe(502);
    expect(failed.body).toMatchObject({ code: 'upstream_error', retryable: true });
    expect(failed.body.detail).toMatch(/proxy failed/);

    const live = await app.api(`/api/accounts/${account.id}`, { method: 'PATCH', body: { customProxy: { host: directProxy.host, port: directProxy.port } } });
    expect(live.status).toBe(200);
    const me = await app.api(`/api/${account.id}/me`);
    expect(me.status, me.text).toBe(200);
    expect((await platformRequests(app, email)).at(-1)).toMatchObject({ path: '/api2/v2/users/me', status: 200, remote_address: '127.0.0.2' });
  });

  it('sticks to a pool proxy of the country and moves to another one when it fails', async () => {
    const email = 'me-pool@sandbox.test';
    const { account } = await connectAccount(app, email);
    const moved = await app.api(`/api/accounts/${account.id}`, { method: 'PATCH', body: { proxyCountry: 'us' } });
    expect(moved.status, moved.text).toBe(200);
    expect(moved.body.proxy).toEqual({ type: 'country', country: 'us' });

    expect((await app.api(`/api/${account.id}/me`)).status).toBe(200);
    expect((await app.api(`/api/${account.id}/me`)).status).toBe(200);
    const seen = (await platformRequests(app, email)).slice(-2).map((r) => r.remote_address);
    expect(seen[0]).toMatch(/^127\.0\.0\.[34]$/);
    expect(seen[1]).toBe(seen[0]); // sticky

    // Its proxy dies: the next call fails over inside the country and the account keeps the new one.
    const used = pool[seen[0] === '127.0.0.3' ? 0 : 1]!;
    const other = seen[0] === '127.0.0.3' ? '127.0.0.4' : '127.0.0.3';
    await used.close();
    const res = await app.api(`/api/${account.id}/me`);
    expect(res.status, res.text).toBe(200);
    expect((await platformRequests(app, email)).at(-1)).toMatchObject({ path: '/api2/v2/users/me', remote_address: other });
    const events = await eventsOf(app, account.id);
    expect(events.at(-1)!.event).toBe('accounts.updated');
    expect((await app.api(`/api/accounts/${account.id}`)).body.proxy).toEqual({ type: 'country', country: 'us' });
    expect((await app.api(`/api/${account.id}/me`)).status).toBe(200);
    expect((await platformRequests(app, email)).at(-1)!.remote_address).toBe(other);
  });

  // Moves the platform's clock: keep it last.
  describe('cookie rotation', () => {
    it('stores the cookies the platform rotates, so the session keeps working', async () => {
      const { account, session } = await importAccount(app, 'me-rotate@sandbox.test');
      const sessOf = (cookies: string) => /(?:^|;\s*)sess=([^;]+)/.exec(cookies)![1];

      sandboxOffset += 16 * MINUTE; // the sess cookie is now old enough to be rotated
      const first = await app.api(`/api/${account.id}/me`);
      expect(first.status, first.text).toBe(200);
      const stored = decryptSession(app.fangate.vault, (await accountRow(app, account.id))!)!;
      expect(sessOf(stored.cookies)).not.toBe(sessOf(session.cookies));
      expect(stored.cookies).toContain(`auth_id=${session.auth_id}`);
      expect((await accountRow(app, account.id))!.session_enc).not.toContain(sessOf(stored.cookies));

      sandboxOffset += 2 * MINUTE; // the old sess value no longer works
      const later = await app.api(`/api/${account.id}/me`);
      expect(later.status, later.text).toBe(200);
      expect(later.body.username).toBe('me-rotate');
    });
  });
});
