import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decryptSession } from '../../src/accounts/repository.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { describeEachStore } from '../support/stores.js';
import { accountRow, connectAccount, eventsOf, importAccount, mintSession, platformRequests, revokeSessions, UA } from './helpers.js';

const countAccounts = async (app: TestApp) => (await app.api('/api/accounts?limit=100')).body.data.length as number;

describeEachStore('accounts: import and import rotation', (kind) => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp(kind);
  });
  afterAll(() => app?.close());

  describe('POST /api/accounts/import', () => {
    it('validates the session upstream and answers 201 with the imported account', async () => {
      const email = 'imp@sandbox.test';
      const session = await mintSession(app, email);
      const res = await app.api('/api/accounts/import', {
        method: 'POST',
        body: { cookie: session.cookies, userAgent: UA, xbc: session.xbc, clientReferenceId: 'crm-imp', name: 'Imported Jane' },
      });
      expect(res.status, res.text).toBe(201);
      expect(res.body).toEqual({
        id: expect.stringMatching(/^acct_/),
        platform: 'onlyfans',
        display_name: 'Imported Jane',
        status: 'active',
        is_authenticated: true,
        auth_type: 'raw_data',
        imported: true,
        remember_credentials: false,
        can_reauth: false,
        platform_user: { id: session.user.id, username: 'imp', name: 'Imp', avatar: expect.stringContaining(`/avatars/${session.user.id}`) },
        client_reference_id: 'crm-imp',
        proxy: { type: 'none' },
        health_check_interval_sec: 900,
        last_checked_at: expect.any(String),
        next_check_at: expect.any(String),
        expired_at: null,
        created_at: expect.any(String),
        updated_at: expect.any(String),
      });
      expect(res.text).not.toContain(session.cookies.split('sess=')[1]!.split(';')[0]!);
      expect((await app.api(`/api/accounts/${res.body.id}`)).body).toEqual(res.body);

      // Checked against the platform with the creator's browser identity.
      const requests = await platformRequests(app, email);
      expect(requests).toEqual([expect.objectContaining({ method: 'GET', path: '/api2/v2/users/me', status: 200, user_agent: UA })]);

      // Stored encrypted, readable with the vault.
      const row = await accountRow(app, res.body.id);
      expect(row!.session_enc).not.toContain(session.cookies);
      expect(decryptSession(app.fangate.vault, row!)).toMatchObject({ authId: session.auth_id, cookies: session.cookies, xbc: session.xbc, userAgent: UA });
      expect(row!.credentials_enc).toBeNull();

      const events = await eventsOf(app, res.body.id);
      expect(events.map((e) => e.event)).toEqual(['accounts.connected']);
      expect(events[0]).toMatchObject({ client_reference_id: 'crm-imp', attempt_id: null });
      expect((events[0]!.payload as any).account).toMatchObject({ id: res.body.id, imported: true });

      // No stored credentials: re-authentication is refused as the contract says.
      const reauth = await app.api(`/api/authenticate/${res.body.id}/reauthenticate`, { method: 'POST' });
      expect(reauth.status).toBe(412);
      expect(reauth.body.code).toBe('no_stored_credentials');
    });

    it('imports without xbc, names the account after the username, and the session works', async () => {
      const session = await mintSession(app, 'imp-noxbc@sandbox.test');
      const res = await app.api('/api/accounts/import', { method: 'POST', body: { cookie: session.cookies, userAgent: UA } });
      expect(res.status, res.text).toBe(201);
      expect(res.body).toMatchObject({ display_name: 'imp-noxbc', client_reference_id: null, imported: true });
      const me = await app.api(`/api/${res.body.id}/me`);
      expect(me.status, me.text).toBe(200);
      expect(me.body).toMatchObject({ id: session.user.id, username: 'imp-noxbc' });
    });

    it('answers 422 naming the field for a cookie without sess, fp or auth_id, and other bad input', async () => {
      const session = await mintSession(app, 'imp-bad@sandbox.test');
      const jar = Object.fromEntries(session.cookies.split('; ').map((c) => c.split('=') as [string, string]));
      const before = await countAccounts(app);
      const cases: Array<[Record<string, unknown>, string, RegExp?]> = [
        [{ cookie: `auth_id=${jar.auth_id}; fp=${jar.fp}`, userAgent: UA }, 'cookie', /sess/],
        [{ cookie: `auth_id=${jar.auth_id}; sess=${jar.sess}`, userAgent: UA }, 'cookie', /fp/],
        [{ cookie: `sess=${jar.sess}; fp=${jar.fp}`, userAgent: UA }, 'cookie', /auth_id/],
        [{ cookie: 'garbage', userAgent: UA }, 'cookie'],
        [{ cookie: session.cookies }, 'userAgent'],
        [{ userAgent: UA }, 'cookie'],
        [{ cookie: session.cookies, userAgent: '   ' }, 'userAgent'],
        [{ cookie: session.cookies, userAgent: UA, proxyCountry: 'us', customProxy: { host: 'proxy.example.net', port: 3128 } }, 'proxyCountry'],
        [{ cookie: session.cookies, userAgent: UA, customProxy: { host: 'proxy.example.net', port: 0 } }, 'customProxy.port'],
        [{ cookie: session.cookies, userAgent: UA, proxyCountry: 'us' }, 'proxyCountry'],
        [{ cookie: session.cookies, userAgent: UA, cookies: session.cookies }, 'cookies'],
      ];
      for (const [body, field, message] of cases) {
        const res = await app.api('/api/accounts/import', { method: 'POST', body });
        expect(res.status, JSON.stringify(body)).toBe(422);
        expect(res.body.code).toBe('validation_failed');
        const error = res.body.errors.find((e: { field: string }) => e.field === field);
        expect(error, `${JSON.stringify(body)} → ${res.text}`).toBeDefined();
        if (message) expect(error.message).toMatch(message);
      }
      expect(await countAccounts(app)).toBe(before);
      expect(await platformRequests(app, 'imp-bad@sandbox.test')).toEqual([]);
    });

    it('answers 400 session_invalid when the platform rejects the session', async () => {
      const before = await countAccounts(app);
      const session = await mintSession(app, 'imp-revoked@sandbox.test');
      await revokeSessions(app, 'imp-revoked@sandbox.test');
      const res = await app.api('/api/accounts/import', { method: 'POST', body: { cookie: session.cookies, userAgent: UA, xbc: session.xbc } });
      expect(res.status, res.text).toBe(400);
      expect(res.body).toMatchObject({ code: 'session_invalid', status: 400, retryable: false });

      // Another browser than the session's is rejected too (sessions are bound to their user agent).
      const other = await mintSession(app, 'imp-ua@sandbox.test');
      const ua = await app.api('/api/accounts/import', { method: 'POST', body: { cookie: other.cookies, userAgent: 'Mozilla/5.0 Another Browser', xbc: other.xbc } });
      expect(ua.status, ua.text).toBe(400);
      expect(ua.body.code).toBe('session_invalid');
      expect(await countAccounts(app)).toBe(before);
    });

    it('answers 409 account_already_connected with existing_account_id for a platform user already connected', async () => {
      const { account } = await importAccount(app, 'imp-dup@sandbox.test');
      const again = await mintSession(app, 'imp-dup@sandbox.test');
      const res = await app.api('/api/accounts/import', { method: 'POST', body: { cookie: again.cookies, userAgent: UA, xbc: again.xbc } });
      expect(res.status, res.text).toBe(409);
      expect(res.body).toMatchObject({ code: 'account_already_connected', existing_account_id: account.id });

      // Also when the account was connected by logging in.
      const { account: byLogin } = await connectAccount(app, 'imp-dup-login@sandbox.test');
      const copied = await mintSession(app, 'imp-dup-login@sandbox.test');
      const dup = await app.api('/api/accounts/import', { method: 'POST', body: { cookie: copied.cookies, userAgent: UA } });
      expect(dup.status, dup.text).toBe(409);
      expect(dup.body).toMatchObject({ code: 'account_already_connected', existing_account_id: byLogin.id });
    });

    it('replays the first answer for the same Idempotency-Key', async () => {
      const session = await mintSession(app, 'imp-idem@sandbox.test');
      const body = { cookie: session.cookies, userAgent: UA, xbc: session.xbc };
      const headers = { 'idempotency-key': `import-${kind}-1` };
      const first = await app.api('/api/accounts/import', { method: 'POST', body, headers });
      expect(first.status, first.text).toBe(201);
      const second = await app.api('/api/accounts/import', { method: 'POST', body, headers });
      expect(second.status).toBe(201);
      expect(second.body.id).toBe(first.body.id);
      expect(second.headers.get('idempotent-replayed')).toBe('true');
    });

    it('answers 502 upstream_error, not 500, when the proxy cannot be reached', async () => {
      const session = await mintSession(app, 'imp-proxy@sandbox.test');
      const res = await app.api('/api/accounts/import', {
        method: 'POST',
        body: { cookie: session.cookies, userAgent: UA, customProxy: { host: '127.0.0.1', port: 9 } },
      });
      expect(res.status, res.text).toBe(502);
      expect(res.body).toMatchObject({ code: 'upstream_error', retryable: true });
      expect(res.body.detail).toMatch(/proxy/i);
      expect((await app.api('/api/accounts?username=imp-proxy')).body.data).toEqual([]);
    });
  });

  describe('PATCH /api/accounts/import/{id}', () => {
    it('replaces the session in place and brings the account back to active', async () => {
      const email = 'rot@sandbox.test';
      const { account } = await importAccount(app, email, { clientReferenceId: 'crm-rot' });
      const invalidated = await app.api(`/api/accounts/${account.id}/invalidate`, { method: 'POST' });
      expect(invalidated.body.status).toBe('expired');
      await revokeSessions(app, email);

      const newUa = 'Mozilla/5.0 (Windows NT 10.0) FanGateAccountsTest/2.0';
      const fresh = await mintSession(app, email, newUa);
      const res = await app.api(`/api/accounts/import/${account.id}`, { method: 'PATCH', body: { cookie: fresh.cookies, userAgent: newUa, xbc: fresh.xbc } });
      expect(res.status, res.text).toBe(200);
      expect(res.body).toMatchObject({ id: account.id, status: 'active', is_authenticated: true, expired_at: null, imported: true, client_reference_id: 'crm-rot' });
      expect(res.body.created_at).toBe(account.created_at);

      const row = await accountRow(app, account.id);
      expect(decryptSession(app.fangate.vault, row!)).toMatchObject({ cookies: fresh.cookies, userAgent: newUa, xbc: fresh.xbc });
      expect(row!.user_agent).toBe(newUa);

      // The Access API uses the new session, with the new browser.
      const me = await app.api(`/api/${account.id}/me`);
      expect(me.status, me.text).toBe(200);
      expect((await platformRequests(app, email)).at(-1)).toMatchObject({ path: '/api2/v2/users/me', status: 200, user_agent: newUa });
      expect((await eventsOf(app, account.id)).map((e) => e.event)).toEqual(['accounts.connected', 'accounts.session_expired', 'accounts.reconnected']);
    });

    it('answers 409 wrong_user for a session of another platform user and keeps the old session', async () => {
      const { account } = await importAccount(app, 'rot-owner@sandbox.test');
      const before = await accountRow(app, account.id);
      const stranger = await mintSession(app, 'rot-stranger@sandbox.test');
      const res = await app.api(`/api/accounts/import/${account.id}`, { method: 'PATCH', body: { cookie: stranger.cookies, userAgent: UA, xbc: stranger.xbc } });
      expect(res.status, res.text).toBe(409);
      expect(res.body.code).toBe('wrong_user');
      const after = await accountRow(app, account.id);
      expect(after!.session_enc).toBe(before!.session_enc);
      expect((await app.api(`/api/${account.id}/me`)).body.username).toBe('rot-owner');
    });

    it('answers 400 not_imported for an account connected by logging in', async () => {
      const { account } = await connectAccount(app, 'rot-login@sandbox.test');
      const copied = await mintSession(app, 'rot-login@sandbox.test');
      const res = await app.api(`/api/accounts/import/${account.id}`, { method: 'PATCH', body: { cookie: copied.cookies, userAgent: UA } });
      expect(res.status, res.text).toBe(400);
      expect(res.body.code).toBe('not_imported');
      expect((await app.api(`/api/accounts/${account.id}`)).body).toMatchObject({ imported: false, auth_type: 'email_password' });
    });

    it('answers 400 session_invalid for a rejected session, 422 for a bad cookie, 404 for an unknown id', async () => {
      const { account } = await importAccount(app, 'rot-invalid@sandbox.test');
      const dead = await mintSession(app, 'rot-invalid@sandbox.test');
      const before = await accountRow(app, account.id);
      // Revoke every session (also the imported one), then offer one of them.
      await revokeSessions(app, 'rot-invalid@sandbox.test');
      const res = await app.api(`/api/accounts/import/${account.id}`, { method: 'PATCH', body: { cookie: dead.cookies, userAgent: UA, xbc: dead.xbc } });
      expect(res.status, res.text).toBe(400);
      expect(res.body.code).toBe('session_invalid');
      expect((await accountRow(app, account.id))!.session_enc).toBe(before!.session_enc);

      const fpLess = dead.cookies.replace(/; fp=[^;]*/, '');
      const bad = await app.api(`/api/accounts/import/${account.id}`, { method: 'PATCH', body: { cookie: fpLess, userAgent: UA } });
      expect(bad.status).toBe(422);
      expect(bad.body.errors).toEqual([{ field: 'cookie', message: expect.stringContaining('fp') }]);

      const unknown = await app.api('/api/accounts/import/acct_doesnotexist', { method: 'PATCH', body: { cookie: dead.cookies, userAgent: UA } });
      expect(unknown.status).toBe(404);
      expect(unknown.body.code).toBe('not_found');
    });
  });
});
