import { afterAll, beforeAll, expect, it } from 'vitest';
import { connectAccount, otherOrgKey } from '../accounts/helpers.js';
import { ADMIN_TOKEN, startTestApp, type TestApp } from '../support/app.js';
import { describeEachStore } from '../support/stores.js';

/**
 * Console sessions over plain HTTP on both stores (the browser suite runs on PGlite): a sign-in makes a
 * server-side session, the pages need it, another organisation's pages are 404, sign-out ends it.
 */
describeEachStore('operator console: sessions and access', (kind) => {
  let app: TestApp;
  let orgId: string;
  let otherOrgId: string;
  let otherKeyWithConsole: string;

  beforeAll(async () => {
    app = await startTestApp(kind);
    orgId = (await app.api('/api/whoami')).body.organization.id;
    await connectAccount(app, 'console-http@sandbox.test');
    const otherKey = await otherOrgKey(app, 'console-http-other');
    otherOrgId = (await app.api('/api/whoami', { key: otherKey })).body.organization.id;
    otherKeyWithConsole = (await app.api('/api/api-keys', { method: 'POST', body: { scopes: ['console'] }, key: otherKey })).body.key;
  });
  afterAll(() => app?.close());

  const form = (path: string, body: Record<string, string>, cookie?: string) =>
    fetch(`${app.url}${path}`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: app.url, ...(cookie ? { cookie } : {}) },
      body: new URLSearchParams(body).toString(),
    });
  const get = (path: string, cookie?: string) => fetch(`${app.url}${path}`, { redirect: 'manual', headers: cookie ? { cookie } : {} });
  const signIn = async (token: string) => {
    const res = await form('/console/sign-in', { token });
    expect(res.status).toBe(303);
    const setCookie = res.headers.get('set-cookie') ?? '';
    expect(setCookie).toMatch(/^fangate_console=[A-Za-z0-9]{43};/);
    expect(setCookie).toContain('HttpOnly');
    expect(setCookie).toContain('SameSite=Strict');
    expect(setCookie).toContain('Path=/console');
    expect(setCookie).not.toContain('Secure'); // plain http here
    return setCookie.split(';')[0]!;
  };

  it('refuses bad tokens with 401 and stores only a hash of the session token', async () => {
    const bad = await form('/console/sign-in', { token: 'fg_not_a_key' });
    expect(bad.status).toBe(401);
    expect(bad.headers.get('set-cookie')).toBeNull();
    const cookie = await signIn(ADMIN_TOKEN);
    const token = cookie.split('=')[1]!;
    const rows = await app.fangate.database.db.selectFrom('console_sessions').selectAll().execute();
    expect(rows.length).toBeGreaterThan(0);
    expect(JSON.stringify(rows)).not.toContain(token);
    expect(JSON.stringify(rows)).not.toContain(ADMIN_TOKEN);
  });

  it('the admin opens every organisation; an API key only its own (others 404)', async () => {
    const admin = await signIn(ADMIN_TOKEN);
    const orgs = await get('/console/orgs', admin);
    expect(orgs.status).toBe(200);
    const html = await orgs.text();
    expect(html).toContain('console-http-other');
    for (const org of [orgId, otherOrgId]) {
      for (const page of ['accounts', 'attempts', 'webhooks', 'links', 'audit']) {
        const res = await get(`/console/orgs/${org}/${page}`, admin);
        expect(res.status, `${org}/${page}`).toBe(200);
        expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
      }
    }
    expect(await (await get(`/console/orgs/${orgId}/accounts`, admin)).text()).toContain('console-http@sandbox.test');

    const keyed = await signIn(otherKeyWithConsole);
    expect((await get(`/console/orgs/${otherOrgId}/accounts`, keyed)).status).toBe(200);
    for (const page of ['accounts', 'attempts', 'webhooks', 'links', 'audit']) {
      expect((await get(`/console/orgs/${orgId}/${page}`, keyed)).status, page).toBe(404);
    }
    expect((await get('/console/orgs/org_doesnotexist/accounts', admin)).status).toBe(404);
    // Bad input in the path is a 4xx page, never a 500.
    expect((await get('/console/orgs/bad%20id/accounts', admin)).status).toBeLessThan(500);
    expect((await get(`/console/orgs/${orgId}/accounts?cursor=garbage`, admin)).status).toBe(422);
  });

  it('signs out everywhere: the cookie no longer opens anything, on the session store both nodes share', async () => {
    const cookie = await signIn(ADMIN_TOKEN);
    const page = await (await get('/console/orgs', cookie)).text();
    const csrf = /name="csrf" value="([^"]+)"/.exec(page)?.[1];
    expect(csrf).toBeTruthy();
    expect((await form('/console/sign-out', { csrf: 'wrong' }, cookie)).status).toBe(403);
    expect((await form('/console/sign-out', { csrf: csrf! }, cookie)).status).toBe(200);
    const after = await get('/console/orgs', cookie);
    expect(after.status).toBe(303);
    expect(after.headers.get('location')).toBe('/console/sign-in');
  });
});
