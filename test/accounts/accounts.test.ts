import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accountSecretPlace } from '../../src/accounts/model.js';
import { decryptSession } from '../../src/accounts/repository.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { describeEachStore } from '../support/stores.js';
import {
  accountRow,
  connectAccount,
  connectFansly,
  eventsOf,
  follow,
  forceReauth,
  importAccount,
  mintSession,
  otherOrgKey,
  platformRequests,
  UA,
} from './helpers.js';

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

describeEachStore('accounts: list, get, patch, delete, invalidate', (kind) => {
  let app: TestApp;
  let a: Record<string, any>; // login, crm-a
  let b: Record<string, any>; // login, crm-b
  let c: Record<string, any>; // imported, crm-a
  let f: Record<string, any>; // Fansly

  beforeAll(async () => {
    app = await startTestApp(kind);
    a = (await connectAccount(app, 'list-a@sandbox.test', { client_reference_id: 'crm-a' })).account;
    b = (await connectAccount(app, 'list-b@sandbox.test', { client_reference_id: 'crm-b', name: 'Creator B' })).account;
    c = (await importAccount(app, 'list-c@sandbox.test', { clientReferenceId: 'crm-a' })).account;
    f = await connectFansly(app, 'listf');
  });
  afterAll(() => app?.close());

  const ids = (res: { body: { data: Array<{ id: string }> } }) => res.body.data.map((x) => x.id);

  describe('list', () => {
    it('lists every account of the organisation, newest first', async () => {
      const res = await app.api('/api/accounts');
      expect(res.status, res.text).toBe(200);
      expect(ids(res)).toEqual([f.id, c.id, b.id, a.id]);
      expect(res.body).toMatchObject({ has_more: false, next_cursor: null });
      const listed = res.body.data.find((x: { id: string }) => x.id === a.id);
      expect(listed).toMatchObject({
        platform: 'onlyfans',
        display_name: 'list-a@sandbox.test',
        status: 'active',
        is_authenticated: true,
        auth_type: 'email_password',
        imported: false,
        remember_credentials: true,
        can_reauth: true,
        platform_user: { username: 'list-a' },
        client_reference_id: 'crm-a',
        proxy: { type: 'none' },
        health_check_interval_sec: 900,
        expired_at: null,
      });
      expect(listed.created_at).toMatch(ISO);
    });

    it('paginates with limit and cursor without gaps or repeats', async () => {
      const first = await app.api('/api/accounts?limit=3');
      expect(first.status).toBe(200);
      expect(ids(first)).toEqual([f.id, c.id, b.id]);
      expect(first.body.has_more).toBe(true);
      expect(first.body.next_cursor).toEqual(expect.any(String));
      const second = await app.api(`/api/accounts?limit=3&cursor=${first.body.next_cursor}`);
      expect(second.status).toBe(200);
      expect(ids(second)).toEqual([a.id]);
      expect(second.body).toMatchObject({ has_more: false, next_cursor: null });

      const pages: string[] = [];
      let cursor: string | null = null;
      do {
        const page: Awaited<ReturnType<TestApp['api']>> = await app.api(`/api/accounts?limit=1${cursor ? `&cursor=${cursor}` : ''}`);
        expect(page.body.data).toHaveLength(1);
        pages.push(...ids(page));
        cursor = page.body.next_cursor;
      } while (cursor);
      expect(pages).toEqual([f.id, c.id, b.id, a.id]);
    });

    it('rejects a bad cursor or limit with 422 naming the field', async () => {
      const cursor = await app.api('/api/accounts?cursor=not-a-cursor');
      expect(cursor.status).toBe(422);
      expect(cursor.body).toMatchObject({ code: 'validation_failed', errors: [{ field: 'cursor' }] });
      for (const limit of ['0', '101', 'ten']) {
        const res = await app.api(`/api/accounts?limit=${limit}`);
        expect(res.status, limit).toBe(422);
        expect(res.body.errors[0].field).toBe('limit');
      }
      const status = await app.api('/api/accounts?status=sleeping');
      expect(status.status).toBe(422);
      expect(status.body.errors[0].field).toBe('status');
    });

    it('filters by platform, client_reference_id and username', async () => {
      expect(ids(await app.api('/api/accounts?platform=fansly'))).toEqual([f.id]);
      expect(ids(await app.api('/api/accounts?platform=onlyfans'))).toEqual([c.id, b.id, a.id]);
      expect(ids(await app.api('/api/accounts?client_reference_id=crm-a'))).toEqual([c.id, a.id]);
      expect(ids(await app.api('/api/accounts?client_reference_id=crm-b'))).toEqual([b.id]);
      expect(ids(await app.api('/api/accounts?client_reference_id=nobody'))).toEqual([]);
      expect(ids(await app.api('/api/accounts?username=list-b'))).toEqual([b.id]);
      expect(ids(await app.api('/api/accounts?username=LIST-B'))).toEqual([b.id]);
      expect(ids(await app.api('/api/accounts?username=listf'))).toEqual([f.id]);
      expect(ids(await app.api('/api/accounts?username=listf&platform=onlyfans'))).toEqual([]);
      expect(ids(await app.api('/api/accounts?client_reference_id=crm-a&limit=1'))).toEqual([c.id]);
    });

    it('filters by status', async () => {
      const { account } = await connectAccount(app, 'list-status@sandbox.test');
      expect(ids(await app.api('/api/accounts?status=expired'))).toEqual([]);
      const invalidated = await app.api(`/api/accounts/${account.id}/invalidate`, { method: 'POST' });
      expect(invalidated.status, invalidated.text).toBe(200);
      expect(ids(await app.api('/api/accounts?status=expired'))).toEqual([account.id]);
      expect(ids(await app.api('/api/accounts?status=active'))).not.toContain(account.id);
      expect(ids(await app.api('/api/accounts?status=active'))).toEqual(expect.arrayContaining([a.id, b.id, c.id, f.id]));
      expect(await app.api(`/api/accounts/${account.id}`, { method: 'DELETE' })).toMatchObject({ status: 204 });
    });
  });

  describe('get', () => {
    it('answers the account as the connect attempt showed it', async () => {
      const res = await app.api(`/api/accounts/${b.id}`);
      expect(res.status, res.text).toBe(200);
      expect(res.body).toEqual({ ...b, last_checked_at: expect.stringMatching(ISO), updated_at: expect.stringMatching(ISO) });
      expect(res.body.display_name).toBe('Creator B');
      // Never a secret: no cookie, no password.
      const session = decryptSession(app.fangate.vault, (await accountRow(app, b.id))!)!;
      expect(res.text).not.toContain(/sess=([^;]+)/.exec(session.cookies)![1]);
      expect(res.text).not.toMatch(/sess=|"password"/);
    });

    it('answers the platform user of a Fansly account on the Access API too', async () => {
      const me = await app.api(`/api/${f.id}/me`);
      expect(me.status, me.text).toBe(200);
      expect(me.body).toEqual(f.platform_user);
      expect(me.body.username).toBe('listf');
    });

    it('answers 404 not_found for an unknown id', async () => {
      for (const id of ['acct_doesnotexist', 'import']) {
        const res = await app.api(`/api/accounts/${id}`);
        expect(res.status, id).toBe(404);
        expect(res.body).toMatchObject({ code: 'not_found', status: 404 });
      }
    });

    it('needs an API key, and the accounts:write scope to change anything', async () => {
      expect((await app.api(`/api/accounts/${a.id}`, { key: null })).status).toBe(401);
      const created = await app.api('/api/api-keys', { method: 'POST', body: { name: 'read-only', scopes: ['accounts:read'] } });
      expect(created.status, created.text).toBe(201);
      const readOnly = created.body.key as string;
      expect((await app.api(`/api/accounts/${a.id}`, { key: readOnly })).status).toBe(200);
      expect((await app.api(`/api/${a.id}/me`, { key: readOnly })).status).toBe(200);
      const patch = await app.api(`/api/accounts/${a.id}`, { method: 'PATCH', body: { display_name: 'nope' }, key: readOnly });
      expect(patch.status).toBe(403);
      expect(patch.body.code).toBe('forbidden');
      expect((await app.api(`/api/accounts/${a.id}`, { method: 'DELETE', key: readOnly })).status).toBe(403);
      expect((await app.api(`/api/accounts/${a.id}/invalidate`, { method: 'POST', key: readOnly })).status).toBe(403);
      expect((await app.api(`/api/accounts/${a.id}`)).body.display_name).toBe('list-a@sandbox.test');
    });
  });

  describe('patch', () => {
    it('changes display_name and client_reference_id, and null clears the reference', async () => {
      const { account } = await connectAccount(app, 'patch-names@sandbox.test', { client_reference_id: 'before' });
      const renamed = await app.api(`/api/accounts/${account.id}`, { method: 'PATCH', body: { display_name: 'Renamed', client_reference_id: 'after' } });
      expect(renamed.status, renamed.text).toBe(200);
      expect(renamed.body).toMatchObject({ id: account.id, display_name: 'Renamed', client_reference_id: 'after', status: 'active' });
      expect(new Date(renamed.body.updated_at).getTime()).toBeGreaterThanOrEqual(new Date(account.updated_at).getTime());
      expect((await app.api(`/api/accounts/${account.id}`)).body).toMatchObject({ display_name: 'Renamed', client_reference_id: 'after' });
      expect(ids(await app.api('/api/accounts?client_reference_id=after'))).toEqual([account.id]);

      const cleared = await app.api(`/api/accounts/${account.id}`, { method: 'PATCH', body: { client_reference_id: null } });
      expect(cleared.status).toBe(200);
      expect(cleared.body).toMatchObject({ display_name: 'Renamed', client_reference_id: null });
      expect(ids(await app.api('/api/accounts?client_reference_id=after'))).toEqual([]);

      const updates = (await eventsOf(app, account.id)).filter((e) => e.event === 'accounts.updated');
      expect(updates).toHaveLength(2);
      expect(updates[0]).toMatchObject({ client_reference_id: 'after', attempt_id: null });
      expect((updates[0]!.payload as any).account).toMatchObject({ id: account.id, display_name: 'Renamed', client_reference_id: 'after' });
      expect((updates[1]!.payload as any).account.client_reference_id).toBeNull();
    });

    it('changes health_check_interval_sec (60 s at least)', async () => {
      const ok = await app.api(`/api/accounts/${a.id}`, { method: 'PATCH', body: { health_check_interval_sec: 60 } });
      expect(ok.status, ok.text).toBe(200);
      expect(ok.body.health_check_interval_sec).toBe(60);
      const row = await accountRow(app, a.id);
      // The next check follows the new interval.
      expect(row!.next_check_at!.getTime()).toBeLessThanOrEqual(Date.now() + 61_000);
      for (const value of [30, 59, 0, 86_401, 90.5]) {
        const bad = await app.api(`/api/accounts/${a.id}`, { method: 'PATCH', body: { health_check_interval_sec: value } });
        expect(bad.status, String(value)).toBe(422);
        expect(bad.body).toMatchObject({ code: 'validation_failed', errors: [{ field: 'health_check_interval_sec' }] });
      }
      expect((await app.api(`/api/accounts/${a.id}`)).body.health_check_interval_sec).toBe(60);
    });

    it('moves the account to a custom proxy, storing its password encrypted and never showing it', async () => {
      const password = 'proxy-Pa55-canary';
      const res = await app.api(`/api/accounts/${b.id}`, {
        method: 'PATCH',
        body: { customProxy: { protocol: 'socks5', host: 'proxy.example.net', port: 1080, username: 'pu', password } },
      });
      expect(res.status, res.text).toBe(200);
      expect(res.body.proxy).toEqual({ type: 'custom', host: 'proxy.example.net', port: 1080 });
      expect(res.text).not.toContain(password);
      const row = await accountRow(app, b.id);
      // The username is a secret like the password (issue 11): in the vault, not in the proxy column.
      expect(row!.proxy).toEqual({ type: 'custom', protocol: 'socks5', host: 'proxy.example.net', port: 1080 });
      expect(app.fangate.vault.decrypt(row!.proxy_username_enc!, accountSecretPlace(row!, 'proxy_username_enc'))).toBe('pu');
      expect(row!.proxy_password_enc).toEqual(expect.any(String));
      expect(row!.proxy_password_enc).not.toContain(password);
      expect(app.fangate.vault.decrypt(row!.proxy_password_enc!, accountSecretPlace(row!, 'proxy_password_enc'))).toBe(password);
      const events = await eventsOf(app, b.id);
      expect(events.at(-1)!.event).toBe('accounts.updated');
      expect(JSON.stringify(events.map((e) => e.payload))).not.toContain(password);

      // null goes back to a direct connection and forgets the password.
      const direct = await app.api(`/api/accounts/${b.id}`, { method: 'PATCH', body: { customProxy: null } });
      expect(direct.status, direct.text).toBe(200);
      expect(direct.body.proxy).toEqual({ type: 'none' });
      expect((await accountRow(app, b.id))!.proxy_password_enc).toBeNull();
      expect((await accountRow(app, b.id))!.proxy_username_enc).toBeNull();
    });

    it('rejects bad proxies and unknown fields with 422 naming the field, changing nothing', async () => {
      const before = (await app.api(`/api/accounts/${c.id}`)).body;
      const cases: Array<[unknown, string]> = [
        [{ proxyCountry: 'us', customProxy: { host: 'proxy.example.net', port: 3128 } }, 'proxyCountry'],
        [{ customProxy: { host: 'proxy.example.net', port: 0 } }, 'customProxy.port'],
        [{ customProxy: { host: 'proxy.example.net', port: 65536 } }, 'customProxy.port'],
        [{ customProxy: { host: 'proxy.example.net', port: 3128, password: 'secret' } }, 'customProxy.username'],
        [{ proxyCountry: 'us' }, 'proxyCountry'], // no FANGATE_PROXY_POOL in this app
        [{ health_check_interval_sec: 30 }, 'health_check_interval_sec'],
        [{ nickname: 'x' }, 'nickname'],
        [{ display_name: '' }, 'display_name'],
        [{ display_name: 'ok', status: 'active' }, 'status'],
      ];
      for (const [body, field] of cases) {
        const res = await app.api(`/api/accounts/${c.id}`, { method: 'PATCH', body });
        expect(res.status, JSON.stringify(body)).toBe(422);
        expect(res.headers.get('content-type')).toContain('application/problem+json');
        expect(res.body.code).toBe('validation_failed');
        expect(res.body.errors.map((e: { field: string }) => e.field), JSON.stringify(body)).toContain(field);
      }
      const malformed = await app.api(`/api/accounts/${c.id}`, { method: 'PATCH', body: '{"display_name":' });
      expect(malformed.status).toBe(400);
      expect((await app.api(`/api/accounts/${c.id}`)).body).toEqual(before);
    });

    it('answers 404 for an unknown account', async () => {
      const res = await app.api('/api/accounts/acct_doesnotexist', { method: 'PATCH', body: { display_name: 'x' } });
      expect(res.status).toBe(404);
      expect(res.body.code).toBe('not_found');
    });
  });

  describe('delete', () => {
    it('cancels running attempts, logs out upstream, erases every secret and emits accounts.disconnected', async () => {
      const email = 'delete+sms@sandbox.test';
      const { account, attemptId: connectId } = await connectAccount(app, email, { client_reference_id: 'crm-del', totp_secret: 'JBSWY3DPEHPK3PXP' });
      // A re-authentication parked on the SMS code holds the stored credentials on its attempt.
      const reauthId = await forceReauth(app, account.id);
      const parked = await follow(app, reauthId);
      expect(parked.state).toBe('needs_otp');
      const rowBefore = await accountRow(app, account.id);
      expect(rowBefore!.credentials_enc).not.toBeNull();
      const sessionBefore = decryptSession(app.fangate.vault, rowBefore!)!;

      const res = await app.api(`/api/accounts/${account.id}`, { method: 'DELETE' });
      expect(res.status, res.text).toBe(204);
      expect(res.text).toBe('');

      // The id answers 404 everywhere.
      expect((await app.api(`/api/accounts/${account.id}`)).status).toBe(404);
      expect((await app.api(`/api/accounts/${account.id}`, { method: 'DELETE' })).status).toBe(404);
      expect((await app.api(`/api/accounts/${account.id}`, { method: 'PATCH', body: { display_name: 'x' } })).status).toBe(404);
      expect((await app.api(`/api/accounts/${account.id}/invalidate`, { method: 'POST' })).status).toBe(404);
      expect((await app.api(`/api/${account.id}/me`)).status).toBe(404);
      expect(ids(await app.api('/api/accounts?client_reference_id=crm-del'))).toEqual([]);

      // The running re-authentication was cancelled.
      const reauth = await app.api(`/api/authenticate/${reauthId}`);
      expect(reauth.body).toMatchObject({ state: 'completed_failed', error: { code: 'cancelled' } });

      // No secret is left anywhere: the row is gone, the attempts hold nothing.
      expect(await accountRow(app, account.id)).toBeUndefined();
      const attempts = await app.fangate.database.db
        .selectFrom('auth_attempts')
        .select(['id', 'input_enc', 'resume_enc', 'pending_code_enc', 'mobile_code_hash'])
        .where('id', 'in', [connectId, reauthId])
        .execute();
      expect(attempts).toHaveLength(2);
      for (const attempt of attempts) expect(attempt).toEqual({ id: attempt.id, input_enc: null, resume_enc: null, pending_code_enc: null, mobile_code_hash: null });

      // The platform saw the logout.
      const requests = await platformRequests(app, email);
      expect(requests.at(-1)).toMatchObject({ method: 'POST', path: '/api2/v2/users/logout', status: 200 });

      const events = await eventsOf(app, account.id);
      const disconnected = events.filter((e) => e.event === 'accounts.disconnected');
      expect(disconnected).toHaveLength(1);
      expect(disconnected[0]).toMatchObject({ account_id: account.id, client_reference_id: 'crm-del', attempt_id: null });
      expect((disconnected[0]!.payload as any).account).toMatchObject({ id: account.id, platform_user: account.platform_user, client_reference_id: 'crm-del' });
      const payload = JSON.stringify(disconnected[0]!.payload);
      expect(payload).not.toContain(/sess=([^;]+)/.exec(sessionBefore.cookies)![1]);
      expect(payload).not.toMatch(/sess=|"password"|JBSWY3DPEHPK3PXP/);
    });

    it('deletes even when the platform cannot be reached for the logout', async () => {
      const { account } = await connectAccount(app, 'delete-offline@sandbox.test');
      // A proxy nobody listens on: the logout fails, the deletion does not.
      const moved = await app.api(`/api/accounts/${account.id}`, { method: 'PATCH', body: { customProxy: { host: '127.0.0.1', port: 9 } } });
      expect(moved.status).toBe(200);
      const res = await app.api(`/api/accounts/${account.id}`, { method: 'DELETE' });
      expect(res.status, res.text).toBe(204);
      expect(await accountRow(app, account.id)).toBeUndefined();
      expect((await eventsOf(app, account.id)).map((e) => e.event)).toContain('accounts.disconnected');
      expect((await platformRequests(app, 'delete-offline@sandbox.test')).map((r) => r.path)).not.toContain('/api2/v2/users/logout');
    });
  });

  describe('invalidate', () => {
    it('marks the account expired, keeps it, and lets it be re-authenticated', async () => {
      const { account } = await connectAccount(app, 'invalidate@sandbox.test');
      const before = Date.now();
      const res = await app.api(`/api/accounts/${account.id}/invalidate`, { method: 'POST' });
      expect(res.status, res.text).toBe(200);
      expect(res.body).toMatchObject({ id: account.id, status: 'expired', is_authenticated: false, can_reauth: true });
      expect(new Date(res.body.expired_at).getTime()).toBeGreaterThanOrEqual(before - 1000);
      expect((await app.api(`/api/accounts/${account.id}`)).body).toEqual(res.body);

      const me = await app.api(`/api/${account.id}/me`);
      expect(me.status).toBe(410);
      expect(me.body).toMatchObject({ code: 'account_expired', retryable: false });

      // Again: nothing changes.
      const again = await app.api(`/api/accounts/${account.id}/invalidate`, { method: 'POST' });
      expect(again.status).toBe(200);
      expect(again.body.expired_at).toBe(res.body.expired_at);
      const expired = (await eventsOf(app, account.id)).filter((e) => e.event === 'accounts.session_expired');
      expect(expired).toHaveLength(1);
      expect((expired[0]!.payload as any).account).toMatchObject({ id: account.id, status: 'expired' });

      // Reconnect with the stored credentials.
      const reauth = await app.api(`/api/authenticate/${account.id}/reauthenticate`, { method: 'POST' });
      expect(reauth.status, reauth.text).toBe(200);
      expect((await follow(app, reauth.body.attempt_id)).state).toBe('completed_success');
      const back = await app.api(`/api/accounts/${account.id}`);
      expect(back.body).toMatchObject({ id: account.id, status: 'active', expired_at: null });
      expect((await app.api(`/api/${account.id}/me`)).status).toBe(200);
    });

    it('cancels a running re-authentication', async () => {
      const { account } = await connectAccount(app, 'invalidate-running+sms@sandbox.test');
      const reauthId = await forceReauth(app, account.id);
      expect((await follow(app, reauthId)).state).toBe('needs_otp');
      const res = await app.api(`/api/accounts/${account.id}/invalidate`, { method: 'POST' });
      expect(res.status).toBe(200);
      expect(res.body.status).toBe('expired');
      expect((await app.api(`/api/authenticate/${reauthId}`)).body).toMatchObject({ state: 'completed_failed', error: { code: 'cancelled' } });
      expect((await app.api(`/api/accounts/${account.id}`)).body.status).toBe('expired');
    });
  });

  describe('tenant isolation', () => {
    it("answers 404 on every accounts route for another organisation's account ids", async () => {
      const other = await otherOrgKey(app, `other-${kind}`);
      const session = await mintSession(app, 'list-c@sandbox.test');
      const rotate = { cookie: session.cookies, userAgent: UA, xbc: session.xbc };
      const calls: Array<[string, string, unknown?]> = [
        ['GET', `/api/accounts/${a.id}`],
        ['PATCH', `/api/accounts/${a.id}`, { display_name: 'hijacked' }],
        ['POST', `/api/accounts/${a.id}/invalidate`],
        ['DELETE', `/api/accounts/${a.id}`],
        ['PATCH', `/api/accounts/import/${c.id}`, rotate],
        ['GET', `/api/accounts/${c.id}`],
        ['DELETE', `/api/accounts/${c.id}`],
        ['GET', `/api/${a.id}/me`],
        ['GET', `/api/${c.id}/me`],
      ];
      for (const [method, path, body] of calls) {
        const res = await app.api(path, { method, body, key: other });
        expect(res.status, `${method} ${path}: ${res.text}`).toBe(404);
        expect(res.body.code).toBe('not_found');
      }
      const list = await app.api('/api/accounts', { key: other });
      expect(list.status).toBe(200);
      expect(list.body.data).toEqual([]);
      expect((await app.api(`/api/accounts?username=list-a`, { key: other })).body.data).toEqual([]);

      // Nothing happened to them.
      expect((await app.api(`/api/accounts/${a.id}`)).body).toMatchObject({ status: 'active', display_name: 'list-a@sandbox.test' });
      expect((await app.api(`/api/accounts/${c.id}`)).status).toBe(200);

      // The same platform user is a separate account in another organisation.
      const imported = await app.api('/api/accounts/import', { method: 'POST', body: rotate, key: other });
      expect(imported.status, imported.text).toBe(201);
      expect(imported.body.id).not.toBe(c.id);
      expect(imported.body.platform_user.id).toBe(c.platform_user.id);
    });
  });
});
