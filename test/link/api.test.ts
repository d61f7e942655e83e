import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { describeEachStore } from '../support/stores.js';
import { connectAccount, otherOrgKey } from '../accounts/helpers.js';

/** Page calls as the Link page's script makes them: same origin, CSRF header from the page. */
async function pageOf(app: TestApp, url: string) {
  const res = await fetch(url);
  const html = await res.text();
  const csrf = /data-csrf="([^"]+)"/.exec(html)?.[1] ?? '';
  const post = async (path: string, body: unknown = {}, headers: Record<string, string> = {}) => {
    const r = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-fangate-csrf': csrf, origin: app.url, ...headers }, body: JSON.stringify(body) });
    return { status: r.status, body: (await r.json()) as any };
  };
  const waitFor = async (pred: (s: any) => boolean, timeoutMs = 15_000) => {
    const deadline = Date.now() + timeoutMs;
    let last: any;
    while (Date.now() < deadline) {
      const r = await fetch(`${url}/state?wait=5&state=${encodeURIComponent(last?.attempt?.state ?? '')}`);
      last = await r.json();
      if (pred(last)) return last;
    }
    throw new Error(`page state never matched: ${JSON.stringify(last)}`);
  };
  return { res, html, csrf, post, waitFor };
}

async function events(app: TestApp) {
  const { rows } = await app.fangate.database.db.selectFrom('events').selectAll().where('event', 'like', 'link.%').orderBy('created_at').execute().then((r) => ({ rows: r }));
  return rows;
}

describeEachStore('link sessions API', (kind) => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp(kind);
  });
  afterAll(async () => app?.close());

  it('creates a link, stores only the token hash, and shows it by id', async () => {
    const init = await app.api('/api/link/init', { method: 'POST', body: { redirectUrl: 'https://app.example.com/done?x=1', clientReferenceId: 'crm-1' } });
    expect(init.status, init.text).toBe(201);
    expect(init.body).toEqual({ id: expect.stringMatching(/^link_/), url: expect.stringMatching(new RegExp(`^${app.url}/link/[A-Za-z0-9]{43}$`)), expiresAt: expect.any(String) });
    expect(new Date(init.body.expiresAt).getTime() - app.clock.now().getTime()).toBeGreaterThan(59 * 60_000);
    const token = init.body.url.split('/').pop();
    const rows = await app.fangate.database.db.selectFrom('link_sessions').selectAll().execute();
    expect(JSON.stringify(rows)).not.toContain(token);

    await fetch(init.body.url);
    await fetch(`${init.body.url}/state`);
    expect(app.logs.some((line) => line.includes('/link/[redacted]/state'))).toBe(true);
    expect(app.logs.join('\n')).not.toContain(token);

    const got = await app.api(`/api/link/${init.body.id}`);
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({ id: init.body.id, status: 'initialized', platform: 'onlyfans', client_reference_id: 'crm-1', connection_id: null, attempt_id: null, error: null, completed_at: null });
  });

  it('validates redirectUrl, platform, proxyCountry and connectionId', async () => {
    const bad = await app.api('/api/link/init', { method: 'POST', body: { redirectUrl: 'http://evil.example.com/', proxyCountry: 'zz', theme: 'blue' } });
    expect(bad.status).toBe(422);
    expect(bad.body.errors.map((e: { field: string }) => e.field).sort()).toEqual(['theme']);
    const bad2 = await app.api('/api/link/init', { method: 'POST', body: { redirectUrl: 'http://evil.example.com/', proxyCountry: 'zz' } });
    expect(bad2.status).toBe(422);
    expect(bad2.body.errors.map((e: { field: string }) => e.field).sort()).toEqual(['proxyCountry', 'redirectUrl']);
    for (const ok of ['http://localhost:3000/x', 'http://127.0.0.1/x', 'http://[::1]:8080/']) {
      const res = await app.api('/api/link/init', { method: 'POST', body: { redirectUrl: ok } });
      expect(res.status, ok).toBe(201);
    }
    const missing = await app.api('/api/link/init', { method: 'POST', body: { redirectUrl: 'https://a.example/', connectionId: 'acct_nope' } });
    expect(missing.status).toBe(404);
    const other = await app.api('/api/link/link_doesnotexist');
    expect(other.status).toBe(404);
    const noKey = await app.api('/api/link/init', { method: 'POST', key: null, body: { redirectUrl: 'https://a.example/' } });
    expect(noKey.status).toBe(401);
  });

  it('is idempotent with Idempotency-Key', async () => {
    const body = { redirectUrl: 'https://app.example.com/done', clientReferenceId: 'idem' };
    const a = await app.api('/api/link/init', { method: 'POST', body, headers: { 'idempotency-key': 'link-idem-1' } });
    const b = await app.api('/api/link/init', { method: 'POST', body, headers: { 'idempotency-key': 'link-idem-1' } });
    expect(a.status).toBe(201);
    expect(b.status).toBe(201);
    expect(b.body).toEqual(a.body);
    const c = await app.api('/api/link/init', { method: 'POST', body: { ...body, clientReferenceId: 'other' }, headers: { 'idempotency-key': 'link-idem-1' } });
    expect(c.status).toBe(422);
    expect(c.body.code).toBe('idempotency_key_reused');
  });

  it('follows its attempt to completed and records link.completed once, with client_reference_id', async () => {
    const init = await app.api('/api/link/init', { method: 'POST', body: { redirectUrl: 'https://app.example.com/done', clientReferenceId: 'crm-sms' } });
    const page = await pageOf(app, init.body.url);
    expect(page.res.headers.get('content-security-policy')).toContain('frame-ancestors https://app.example.com');
    const started = await page.post('/start', { method: 'email_password', login: 'lena+sms@sandbox.test', password: 'password' });
    expect(started.status, JSON.stringify(started.body)).toBe(200);
    const parked = await page.waitFor((s) => s.step === 'code');
    expect(parked.attempt).toMatchObject({ otp_channel: 'sms', phone_last4: '4242' });
    expect((await app.api(`/api/link/${init.body.id}`)).body.status).toBe('awaiting_2fa');

    const wrong = await page.post('/code', { code: '000000' });
    expect(wrong.status).toBe(200);
    const retry = await page.waitFor((s) => s.attempt?.state === 'wrong_2fa_code_retry');
    expect(retry.attempt.attempts_remaining).toBe(4);
    await page.post('/code', { code: '123456' });
    const done = await page.waitFor((s) => s.status === 'completed');
    const link = (await app.api(`/api/link/${init.body.id}`)).body;
    expect(link).toMatchObject({ status: 'completed', connection_id: expect.stringMatching(/^acct_/), attempt_id: expect.stringMatching(/^auth_/) });
    expect(done.redirect).toBe(`https://app.example.com/done?status=success&connection_id=${link.connection_id}&client_reference_id=crm-sms`);
    expect(done.result).toEqual({ type: 'fangate.link.success', connection_id: link.connection_id, client_reference_id: 'crm-sms' });
    const attempt = await app.api(`/api/authenticate/${link.attempt_id}`);
    expect(attempt.body.client_reference_id).toBe('crm-sms');

    const mine = (await events(app)).filter((e) => e.client_reference_id === 'crm-sms');
    expect(mine.map((e) => e.event)).toEqual(['link.completed']);
    expect((mine[0]!.payload as any).link).toMatchObject({ id: init.body.id, status: 'completed' });

    // Single use: the page now accepts nothing.
    const again = await page.post('/start', { method: 'mobile_app' });
    expect(again.status).toBe(409);
    expect(again.body.code).toBe('link_closed');
    const reopened = await fetch(init.body.url).then((r) => r.text());
    expect(reopened).toContain('This link has already been used');
  });

  it('catches up with an attempt that does not name its link (started by a version before migration 0035)', async () => {
    const init = await app.api('/api/link/init', { method: 'POST', body: { redirectUrl: 'https://app.example.com/done', clientReferenceId: 'crm-upgrade' } });
    const page = await pageOf(app, init.body.url);
    const started = await page.post('/start', { method: 'email_password', login: 'lena2+sms@sandbox.test', password: 'password' });
    expect(started.status, JSON.stringify(started.body)).toBe(200);
    await page.waitFor((s) => s.step === 'code');
    // As an earlier version wrote it: the attempt does not say it came from this link, so its hook skips it.
    const attemptId = (await app.api(`/api/link/${init.body.id}`)).body.attempt_id;
    await app.fangate.database.db.updateTable('auth_attempts').set({ link_session_id: null }).where('id', '=', attemptId).execute();
    await page.post('/code', { code: '123456' });
    const done = await page.waitFor((s) => s.status === 'completed');
    expect(done.result).toMatchObject({ type: 'fangate.link.success', connection_id: expect.stringMatching(/^acct_/), client_reference_id: 'crm-upgrade' });
    expect((await app.api(`/api/link/${init.body.id}`)).body).toMatchObject({ status: 'completed', connection_id: done.result.connection_id });
    // Once, however often the page asks.
    await page.waitFor((s) => s.status === 'completed');
    expect((await events(app)).filter((e) => e.client_reference_id === 'crm-upgrade').map((e) => e.event)).toEqual(['link.completed']);
  });

  it('refuses page calls without the CSRF header or from another origin', async () => {
    const init = await app.api('/api/link/init', { method: 'POST', body: { redirectUrl: 'https://app.example.com/done' } });
    const page = await pageOf(app, init.body.url);
    expect((await page.post('/start', { method: 'mobile_app' }, { 'x-fangate-csrf': 'nope' })).status).toBe(403);
    expect((await page.post('/start', { method: 'mobile_app' }, { origin: 'https://evil.example' })).status).toBe(403);
    const form = await fetch(`${init.body.url}/start`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'method=mobile_app' });
    expect([403, 415]).toContain(form.status);
    expect((await app.api(`/api/link/${init.body.id}`)).body.status).toBe('initialized');
  });

  it('fails on a locked account, lets the creator return with the error, and records link.failed', async () => {
    const init = await app.api('/api/link/init', { method: 'POST', body: { redirectUrl: 'https://app.example.com/done', clientReferenceId: 'crm-locked' } });
    const page = await pageOf(app, init.body.url);
    await page.post('/start', { method: 'email_password', login: 'lock+locked@sandbox.test', password: 'password' });
    const failed = await page.waitFor((s) => s.step === 'failed');
    expect(failed.error).toMatchObject({ code: 'account_locked', retryable: false });
    expect((await app.api(`/api/link/${init.body.id}`)).body).toMatchObject({ status: 'failed', error: { code: 'account_locked' } });
    const finished = await page.post('/finish');
    expect(finished.body.redirect).toBe('https://app.example.com/done?status=error&error_code=account_locked&client_reference_id=crm-locked');
    expect((await events(app)).filter((e) => e.client_reference_id === 'crm-locked').map((e) => e.event)).toEqual(['link.failed']);
  });

  it('cancels from the page (with the step) and by the API', async () => {
    const init = await app.api('/api/link/init', { method: 'POST', body: { redirectUrl: 'https://app.example.com/done', clientReferenceId: 'crm-cancel' } });
    const page = await pageOf(app, init.body.url);
    await page.post('/start', { method: 'email_password', login: 'can+sms@sandbox.test', password: 'password' });
    await page.waitFor((s) => s.step === 'code');
    const cancelled = await page.post('/cancel', { step: 'needs_otp' });
    expect(cancelled.body.redirect).toBe('https://app.example.com/done?status=cancelled&step=needs_otp&client_reference_id=crm-cancel');
    const link = (await app.api(`/api/link/${init.body.id}`)).body;
    expect(link.status).toBe('cancelled');
    expect((await app.api(`/api/authenticate/${link.attempt_id}`)).body.error.code).toBe('cancelled');
    expect((await events(app)).filter((e) => e.client_reference_id === 'crm-cancel').map((e) => e.event)).toEqual(['link.failed']);

    const other = await app.api('/api/link/init', { method: 'POST', body: { redirectUrl: 'https://app.example.com/done' } });
    const deleted = await app.api(`/api/link/${other.body.id}`, { method: 'DELETE' });
    expect(deleted.status).toBe(200);
    expect(deleted.body.status).toBe('cancelled');
    const gone = await pageOf(app, other.body.url);
    expect((await gone.post('/start', { method: 'mobile_app' })).body.code).toBe('link_closed');
  });

  it('expires after 60 minutes', async () => {
    const init = await app.api('/api/link/init', { method: 'POST', body: { redirectUrl: 'https://app.example.com/done' } });
    app.clock.advance(61 * 60_000);
    try {
      expect((await app.api(`/api/link/${init.body.id}`)).body.status).toBe('expired');
      const page = await pageOf(app, init.body.url);
      expect(page.html).toContain('This link has expired');
      const res = await page.post('/start', { method: 'mobile_app' });
      expect(res.status).toBe(410);
      expect(res.body.code).toBe('link_expired');
    } finally {
      app.clock.reset();
    }
  });

  it('streams the page state as Server-Sent Events until the attempt ends', async () => {
    const init = await app.api('/api/link/init', { method: 'POST', body: { redirectUrl: 'https://app.example.com/done' } });
    const page = await pageOf(app, init.body.url);
    await page.post('/start', { method: 'email_password', login: 'streamy@sandbox.test', password: 'password' });
    const res = await fetch(`${init.body.url}/events`);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const text = await res.text(); // ends after the terminal state
    const states = text.split('\n').filter((l) => l.startsWith('data: ')).map((l) => JSON.parse(l.slice(6)));
    expect(text).toMatch(/^id: 1\nevent: state\n/);
    expect(states.at(-1)).toMatchObject({ status: 'completed', step: 'done' });
    expect(text).not.toMatch(/"password"\s*:|:\s*"password"/);
  });

  it('limits code submissions through the page per link', async () => {
    const init = await app.api('/api/link/init', { method: 'POST', body: { redirectUrl: 'https://app.example.com/done' } });
    const page = await pageOf(app, init.body.url);
    const statuses: number[] = [];
    for (let i = 0; i < 11; i++) statuses.push((await page.post('/code', { code: '111111' })).status);
    expect(statuses.slice(0, 10).every((s) => s === 409)).toBe(true);
    expect(statuses[10]).toBe(429);
  });

  it("reconnects only the organisation's own accounts, on the account's platform", async () => {
    const { account } = await connectAccount(app, 'owned@sandbox.test');
    const other = await otherOrgKey(app, 'other-org-link');
    const foreign = await app.api('/api/link/init', { method: 'POST', key: other, body: { redirectUrl: 'https://a.example/', connectionId: account.id } });
    expect(foreign.status).toBe(404);
    const mismatch = await app.api('/api/link/init', { method: 'POST', body: { redirectUrl: 'https://a.example/', connectionId: account.id, platform: 'fansly' } });
    expect(mismatch.status).toBe(422);
    expect(mismatch.body.errors[0].field).toBe('platform');
    const own = await app.api('/api/link/init', { method: 'POST', body: { redirectUrl: 'https://a.example/', connectionId: account.id } });
    expect(own.status).toBe(201);
    const got = await app.api(`/api/link/${own.body.id}`);
    expect(got.body).toMatchObject({ platform: 'onlyfans', connection_id: account.id });
    expect((await app.api(`/api/link/${own.body.id}`, { key: other })).status).toBe(404);
  });

  it('names the bad field when pasted cookies are incomplete', async () => {
    const init = await app.api('/api/link/init', { method: 'POST', body: { redirectUrl: 'https://app.example.com/done' } });
    const page = await pageOf(app, init.body.url);
    const res = await page.post('/start', { method: 'raw_data', cookies: 'auth_id=1; fp=2', xbc: 'x', user_agent: 'UA' });
    expect(res.status).toBe(422);
    expect(res.body.errors).toEqual([{ field: 'cookies', message: expect.stringContaining('sess') }]);
    expect((await app.api(`/api/link/${init.body.id}`)).body.status).toBe('initialized');
    const again = await page.post('/start', { method: 'email_password', login: '', password: '' });
    expect(again.body.errors.map((e: { field: string }) => e.field)).toEqual(['login', 'password']);
  });

  it('answers an unknown token with a 404 page', async () => {
    const res = await fetch(`${app.url}/link/${'x'.repeat(43)}`);
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toContain('text/html');
  });
});
