import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_PASSWORD } from '../../src/sandbox/index.js';
import { freePort, startTestApp, type TestApp } from '../support/app.js';
import { startHttpProxy, startSocksProxy, type TestProxy } from '../support/proxies.js';
import { describeEachStore } from '../support/stores.js';

/**
 * Proxies as the platform sees them (DESIGN 8): every upstream request of an account leaves through its
 * proxy with its browser's user agent, and keeps doing so on later logins. The sandbox's request log shows
 * the TCP peer, so the test proxies bind their outgoing side to other loopback addresses.
 */

const TERMINAL = ['completed_success', 'completed_failed'];
const PROXY_USER = 'fangate';
const PROXY_PASS = 'Proxy-Secret-4419';

interface Helpers {
  app: () => TestApp;
}

function helpers({ app }: Helpers) {
  async function until(id: string) {
    const deadline = Date.now() + 25_000;
    let res = await app().api(`/api/authenticate/${id}`);
    for (;;) {
      expect(res.status).toBe(200);
      if (TERMINAL.includes(res.body.state)) return res.body;
      if (Date.now() > deadline) throw new Error(`attempt ${id} stuck in ${res.body.state}`);
      res = await app().api(`/api/authenticate/${id}?wait=10&state=${res.body.state}`);
    }
  }
  async function connect(body: Record<string, unknown>) {
    const res = await app().api('/api/authenticate', { method: 'POST', body: { password: SANDBOX_PASSWORD, ...body } });
    expect(res.status, res.text).toBe(200);
    return { started: res, attempt: await until(res.body.attempt_id) };
  }
  async function sandbox(path: string, body?: unknown) {
    const res = await fetch(`${app().sandbox.url}${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    expect(res.status).toBe(200);
    return (await res.json()) as any;
  }
  const requestLog = async (email: string) => (await sandbox(`/__sandbox/requests?email=${encodeURIComponent(email)}`)).data as { remote_address: string; user_agent: string; path: string }[];
  const revoke = (email: string) => sandbox('/__sandbox/sessions/revoke', { platform: 'onlyfans', email });
  const accountRow = (id: string) => app().fangate.database.db.selectFrom('accounts').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  async function reauth(accountId: string, query = '') {
    const res = await app().api(`/api/authenticate/${accountId}/reauthenticate${query}`, { method: 'POST' });
    expect(res.status, res.text).toBe(200);
    return until(res.body.attempt_id);
  }
  return { until, connect, requestLog, revoke, accountRow, reauth };
}

describeEachStore('connect through proxies', (kind) => {
  describe('customProxy', () => {
    let app: TestApp;
    let http: TestProxy;
    let socks: TestProxy;
    const h = helpers({ app: () => app });

    beforeAll(async () => {
      app = await startTestApp(kind);
      http = await startHttpProxy({ localAddress: '127.0.0.2', auth: { username: PROXY_USER, password: PROXY_PASS } });
      socks = await startSocksProxy({ localAddress: '127.0.0.2', auth: { username: PROXY_USER, password: PROXY_PASS } });
    });
    afterAll(async () => {
      await app?.close();
      await http?.close();
      await socks?.close();
    });

    for (const protocol of ['http', 'socks5'] as const) {
      it(`${protocol}: every request of the account leaves through the proxy with its user agent, also on re-authentication`, async () => {
        const proxy = protocol === 'http' ? http : socks;
        const email = `proxied-${protocol}@sandbox.test`;
        const customProxy = { protocol, host: '127.0.0.1', port: proxy.port, username: PROXY_USER, password: PROXY_PASS };
        const before = proxy.connections;
        const { started, attempt } = await h.connect({ email, customProxy });
        expect(attempt.state, JSON.stringify(attempt.error)).toBe('completed_success');
        expect(attempt.account.proxy).toEqual({ type: 'custom', host: '127.0.0.1', port: proxy.port });
        expect(proxy.connections).toBeGreaterThan(before);
        expect(started.text).not.toContain(PROXY_PASS);
        expect(JSON.stringify(attempt)).not.toContain(PROXY_PASS);

        const { user_agent: userAgent } = await h.accountRow(attempt.account_id);
        const first = await h.requestLog(email);
        expect(first.length).toBeGreaterThan(0);
        expect(first.map((r) => r.remote_address)).toEqual(first.map(() => '127.0.0.2'));
        expect(first.map((r) => r.user_agent)).toEqual(first.map(() => userAgent));

        // Logged out elsewhere: FanGate checks the session and logs in again, through the same proxy and browser.
        await h.revoke(email);
        const again = await h.reauth(attempt.account_id);
        expect(again.state, JSON.stringify(again.error)).toBe('completed_success');
        const later = (await h.requestLog(email)).slice(first.length);
        expect(later.some((r) => r.path === '/api2/v2/users/login')).toBe(true);
        expect(later.map((r) => r.remote_address)).toEqual(later.map(() => '127.0.0.2'));
        expect(later.map((r) => r.user_agent)).toEqual(later.map(() => userAgent));
        expect(again.account.proxy).toEqual({ type: 'custom', host: '127.0.0.1', port: proxy.port });
      });
    }

    it('a credentials update with a new customProxy moves the account to it', async () => {
      const email = 'proxy-switch@sandbox.test';
      const { attempt } = await h.connect({ email });
      expect(attempt.account.proxy).toEqual({ type: 'none' });
      const direct = await h.requestLog(email);
      expect(direct.map((r) => r.remote_address)).toEqual(direct.map(() => '127.0.0.1'));

      const customProxy = { protocol: 'socks5', host: '127.0.0.1', port: socks.port, username: PROXY_USER, password: PROXY_PASS };
      const res = await app.api(`/api/authenticate/${attempt.account_id}/credentials`, { method: 'PUT', body: { email, password: SANDBOX_PASSWORD, customProxy } });
      expect(res.status, res.text).toBe(200);
      const updated = await h.until(res.body.attempt_id);
      expect(updated.state, JSON.stringify(updated.error)).toBe('completed_success');
      expect(updated.account.proxy).toEqual({ type: 'custom', host: '127.0.0.1', port: socks.port });

      // Every later request of the account uses it, with the stored proxy password.
      await h.revoke(email);
      expect((await h.reauth(attempt.account_id)).state).toBe('completed_success');
      const later = (await h.requestLog(email)).slice(direct.length);
      expect(later.map((r) => r.remote_address)).toEqual(later.map(() => '127.0.0.2'));
    });

    it('a proxy nobody listens on fails the attempt with proxy_error, without reaching the platform', async () => {
      const email = 'proxy-dead@sandbox.test';
      const { attempt } = await h.connect({ email, customProxy: { host: '127.0.0.1', port: await freePort() } });
      expect(attempt.state).toBe('completed_failed');
      expect(attempt.error.code).toBe('proxy_error');
      expect(attempt.account_id).toBeNull();
      expect(await h.requestLog(email)).toEqual([]);
    });

    it('a wrong proxy password fails proxy_error (HTTP and SOCKS5)', async () => {
      for (const proxy of [http, socks]) {
        const protocol = proxy === http ? 'http' : 'socks5';
        const email = `proxy-badpass-${protocol}@sandbox.test`;
        const { attempt } = await h.connect({ email, customProxy: { protocol, host: '127.0.0.1', port: proxy.port, username: PROXY_USER, password: 'not-the-password' } });
        expect(attempt.state).toBe('completed_failed');
        expect(attempt.error.code).toBe('proxy_error');
        expect(JSON.stringify(attempt)).not.toContain('not-the-password');
        expect(await h.requestLog(email)).toEqual([]);
      }
    });

    it('proxyCountry without a configured pool is a 422 naming proxyCountry', async () => {
      const res = await app.api('/api/authenticate', { method: 'POST', body: { email: 'nopool@sandbox.test', password: SANDBOX_PASSWORD, proxyCountry: 'us' } });
      expect(res.status).toBe(422);
      expect(res.body.code).toBe('validation_failed');
      expect(res.body.errors.map((e: { field: string }) => e.field)).toContain('proxyCountry');
    });
  });

  describe('proxyCountry (operator pool)', () => {
    let app: TestApp;
    const proxies: Record<string, TestProxy> = {};
    const h = helpers({ app: () => app });

    beforeAll(async () => {
      proxies['127.0.0.2'] = await startHttpProxy({ localAddress: '127.0.0.2' });
      proxies['127.0.0.3'] = await startHttpProxy({ localAddress: '127.0.0.3' });
      proxies['127.0.0.4'] = await startHttpProxy({ localAddress: '127.0.0.4' });
      const pool =
        `us=http://127.0.0.1:${proxies['127.0.0.2'].port},http://127.0.0.1:${proxies['127.0.0.3'].port};` +
        `ca=http://127.0.0.1:${await freePort()},http://127.0.0.1:${proxies['127.0.0.4'].port}`;
      app = await startTestApp(kind, { env: { FANGATE_PROXY_POOL: pool } });
    });
    afterAll(async () => {
      await app?.close();
      for (const proxy of Object.values(proxies)) await proxy.close();
    });

    const addresses = (log: { remote_address: string }[]) => [...new Set(log.map((r) => r.remote_address))];

    it('keeps the account on one pool proxy, and moves it to the other proxy of the country when that one dies', async () => {
      const email = 'pool-sticky@sandbox.test';
      const { attempt } = await h.connect({ email, proxyCountry: 'us' });
      expect(attempt.state, JSON.stringify(attempt.error)).toBe('completed_success');
      expect(attempt.account.proxy).toEqual({ type: 'country', country: 'us' });
      const accountId = attempt.account_id;

      const connectLog = await h.requestLog(email);
      const exit = addresses(connectLog)[0]!;
      expect(addresses(connectLog)).toEqual([exit]);
      expect(['127.0.0.2', '127.0.0.3']).toContain(exit);
      const other = exit === '127.0.0.2' ? '127.0.0.3' : '127.0.0.2';

      // Sticky: later logins leave from the same address, whatever the pool's rotation does for others.
      for (let i = 0; i < 2; i++) {
        expect((await h.reauth(accountId, '?force=true')).state).toBe('completed_success');
        await h.connect({ email: `pool-other-${i}@sandbox.test`, proxyCountry: 'us' });
      }
      const stickyLog = await h.requestLog(email);
      expect(stickyLog.length).toBeGreaterThan(connectLog.length);
      expect(addresses(stickyLog)).toEqual([exit]);

      // The account's proxy dies: the next login fails over to the other proxy of the country and succeeds.
      await proxies[exit]!.close();
      const moved = await h.reauth(accountId, '?force=true');
      expect(moved.state, JSON.stringify(moved.error)).toBe('completed_success');
      expect(moved.account.proxy).toEqual({ type: 'country', country: 'us' });
      const afterFailover = (await h.requestLog(email)).slice(stickyLog.length);
      expect(afterFailover.length).toBeGreaterThan(0);
      expect(addresses(afterFailover)).toEqual([other]);

      // The account now lives on the other proxy: its session is checked through it (and is valid)…
      const check = await app.api(`/api/authenticate/${accountId}/reauthenticate`, { method: 'POST' });
      expect(check.status, check.text).toBe(400);
      expect(check.body.code).toBe('already_authenticated');
      // …and the move was announced.
      const updated = await app.fangate.database.db.selectFrom('events').select(['event', 'payload']).where('account_id', '=', accountId).where('event', '=', 'accounts.updated').execute();
      expect(updated.length).toBeGreaterThanOrEqual(1);
    });

    it('a new account whose first pool pick is dead is stored on the proxy that worked', async () => {
      // "ca" lists a dead proxy first: the pool's first pick for the country is it.
      const email = 'pool-new@sandbox.test';
      const { attempt } = await h.connect({ email, proxyCountry: 'ca' });
      expect(attempt.state, JSON.stringify(attempt.error)).toBe('completed_success');
      expect(attempt.account.proxy).toEqual({ type: 'country', country: 'ca' });
      expect(addresses(await h.requestLog(email))).toEqual(['127.0.0.4']);
      // The session is checked through the proxy that worked (and found valid), not the dead one.
      const check = await app.api(`/api/authenticate/${attempt.account_id}/reauthenticate`, { method: 'POST' });
      expect(check.status, check.text).toBe(400);
      expect(addresses(await h.requestLog(email))).toEqual(['127.0.0.4']);
    });

    it('a country outside the pool is a 422 naming proxyCountry; so is combining it with customProxy', async () => {
      const uk = await app.api('/api/authenticate', { method: 'POST', body: { email: 'pool-uk@sandbox.test', password: SANDBOX_PASSWORD, proxyCountry: 'uk' } });
      expect(uk.status).toBe(422);
      expect(uk.body.errors.map((e: { field: string }) => e.field)).toContain('proxyCountry');
      const both = await app.api('/api/authenticate', {
        method: 'POST',
        body: { email: 'pool-both@sandbox.test', password: SANDBOX_PASSWORD, proxyCountry: 'us', customProxy: { host: '127.0.0.1', port: 1 } },
      });
      expect(both.status).toBe(422);
      expect(both.body.errors.map((e: { field: string }) => e.field)).toContain('proxyCountry');
      expect(await h.requestLog('pool-uk@sandbox.test')).toEqual([]);
    });
  });
});
