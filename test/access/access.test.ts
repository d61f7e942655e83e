import { afterAll, beforeAll, expect, it } from 'vitest';
import { decryptSession } from '../../src/accounts/repository.js';
import { startSandbox } from '../../src/sandbox/index.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { describeEachStore } from '../support/stores.js';
import { accountRow, connectAccount, connectFansly, eventsOf, follow, forceReauth, importAccount, otherOrgKey, revokeSessions, UA } from '../accounts/helpers.js';

const BURST = 6;

type LogEntry = { method: string; path: string; status: number; has_body: boolean; content_type: string | null; rotated: boolean };

describeEachStore('Access API: /api/{account_id}/proxy/*', (kind) => {
  let app: TestApp;
  let sandbox: Awaited<ReturnType<typeof startSandbox>>;
  let sandboxOffset = 0;

  beforeAll(async () => {
    // The platform's clock is ours to move (the 60 s grace of a rotated-out cookie).
    sandbox = await startSandbox({ port: 0, logger: false, clock: () => Date.now() + sandboxOffset });
    app = await startTestApp(kind, { sandbox, env: { FANGATE_ACCESS_BURST: String(BURST), FANGATE_ACCESS_RATE_PER_MIN: '60' } });
  });
  afterAll(async () => {
    await app?.close();
    await sandbox?.close();
  });

  const log = async (email: string): Promise<LogEntry[]> => {
    const res = await fetch(`${sandbox.url}/__sandbox/requests?email=${encodeURIComponent(email)}&platform=onlyfans`);
    return ((await res.json()) as { data: LogEntry[] }).data;
  };
  const storedSession = async (id: string) => decryptSession(app.fangate.vault, (await accountRow(app, id))!)!;
  /** The same call made directly with the stored session, as a browser would. */
  const direct = async (id: string, path: string) => {
    const s = await storedSession(id);
    const res = await fetch(`${sandbox.url}/api2/v2/${path}`, { headers: { cookie: s.cookies, 'x-bc': s.xbc, 'user-id': s.authId, 'user-agent': UA, accept: 'application/json' } });
    return { status: res.status, body: await res.json() };
  };

  it('passes a GET through with its query string: same answer as the platform, one upstream request, no cookies back', async () => {
    const email = 'acc-get@sandbox.test';
    const { account } = await importAccount(app, email);
    const before = (await log(email)).length;

    const res = await app.api(`/api/${account.id}/proxy/posts?limit=3&offset=6`);
    expect(res.status, res.text).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.headers.get('set-cookie')).toBeNull();
    expect(res.body.list).toHaveLength(3);
    expect(res.body).toMatchObject({ hasMore: true, nextOffset: 9 });
    expect(res.headers.get('ratelimit-limit')).toBe(String(BURST));
    expect(res.headers.get('ratelimit-remaining')).toBe(String(BURST - 1));

    const entries = (await log(email)).slice(before);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ method: 'GET', path: '/api2/v2/posts?limit=3&offset=6', status: 200, has_body: false });

    // The API root may be given too; and the answer is the platform's own.
    const rooted = await app.api(`/api/${account.id}/proxy/api2/v2/posts?limit=3&offset=6`);
    expect(rooted.status).toBe(200);
    expect(rooted.body).toEqual(res.body);
    expect((await direct(account.id, 'posts?limit=3&offset=6')).body).toEqual(res.body);

    // Platform errors pass through with their status (a bad limit is the platform's 400).
    const bad = await app.api(`/api/${account.id}/proxy/posts?limit=0`);
    expect(bad.status).toBe(400);
    expect((await log(email)).slice(before)).toHaveLength(4);

    // The path goes on as it was sent, still encoded: an encoded line break is the platform's 404, not a 500.
    const odd = await app.api(`/api/${account.id}/proxy/posts%0D%0Ax`);
    expect(odd.status).toBe(404);
    expect(odd.headers.get('x-fangate-relayed')).toBe('true');
    expect((await log(email)).at(-1)).toMatchObject({ path: '/api2/v2/posts%0D%0Ax' });
  });

  it('passes a POST body through (scope accounts:write) and a DELETE', async () => {
    const email = 'acc-post@sandbox.test';
    const { account } = await importAccount(app, email);
    const chats = await app.api(`/api/${account.id}/proxy/chats?limit=1`);
    expect(chats.status, chats.text).toBe(200);
    const chatId = chats.body.list[0].withUser.id;
    const before = (await log(email)).length;

    const sent = await app.api(`/api/${account.id}/proxy/chats/${chatId}/messages`, { method: 'POST', body: { text: 'Hello from FanGate' } });
    expect(sent.status, sent.text).toBe(200);
    expect(sent.body).toMatchObject({ text: 'Hello from FanGate' });
    const entries = (await log(email)).slice(before);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ method: 'POST', path: `/api2/v2/chats/${chatId}/messages`, has_body: true, content_type: 'application/json', status: 200 });

    const messages = await app.api(`/api/${account.id}/proxy/chats/${chatId}/messages?limit=5`);
    expect(messages.body.list.map((m: { id: number }) => m.id)).toContain(sent.body.id);
    const unsent = await app.api(`/api/${account.id}/proxy/chats/${chatId}/messages/${sent.body.id}`, { method: 'DELETE' });
    expect(unsent.status, unsent.text).toBe(200);
    expect(unsent.body).toEqual({ success: true });

    // A key that may only read cannot write through the platform.
    const key = await app.api('/api/api-keys', { method: 'POST', body: { name: 'reader', scopes: ['accounts:read'] } });
    expect(key.status, key.text).toBe(201);
    expect((await app.api(`/api/${account.id}/proxy/posts`, { key: key.body.key })).status).toBe(200);
    const denied = await app.api(`/api/${account.id}/proxy/chats/${chatId}/messages`, { method: 'POST', body: { text: 'no' }, key: key.body.key });
    expect(denied.status).toBe(403);
    expect(denied.body.code).toBe('forbidden');
  });

  it('stores a rotated cookie at once and uses it on the next call', async () => {
    const email = 'acc-rotate@sandbox.test';
    const { account } = await importAccount(app, email);
    const first = await storedSession(account.id);
    const marked = await fetch(`${sandbox.url}/__sandbox/sessions/rotate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ platform: 'onlyfans', email }) });
    expect(((await marked.json()) as { rotating: number }).rotating).toBeGreaterThan(0);

    const res = await app.api(`/api/${account.id}/proxy/users/me`);
    expect(res.status, res.text).toBe(200);
    expect(res.headers.get('set-cookie')).toBeNull();
    expect((await log(email)).at(-1)).toMatchObject({ rotated: true });
    const second = await storedSession(account.id);
    expect(second.cookies).not.toBe(first.cookies);
    expect(second.cookies).toMatch(/sess=[0-9a-f]{32}/);
    expect(res.text).not.toContain(second.cookies.split('sess=')[1]!.slice(0, 32));

    // The replaced cookie dies 60 s later on the platform: the next call works, with the new one.
    sandboxOffset += 61_000;
    try {
      const next = await app.api(`/api/${account.id}/proxy/users/me`);
      expect(next.status, next.text).toBe(200);
      expect((await log(email)).at(-1)).toMatchObject({ status: 200, rotated: false });
    } finally {
      sandboxOffset -= 61_000;
    }
  });

  it('parallel calls while the platform rotates: the stored cookie keeps working', async () => {
    const email = 'acc-parallel@sandbox.test';
    const { account } = await importAccount(app, email);
    const first = await storedSession(account.id);
    await fetch(`${sandbox.url}/__sandbox/sessions/rotate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ platform: 'onlyfans', email }) });
    const before = (await log(email)).length;
    const answers = await Promise.all(Array.from({ length: 5 }, () => app.api(`/api/${account.id}/proxy/posts?limit=1`)));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200]);
    const entries = (await log(email)).slice(before);
    expect(entries).toHaveLength(5);
    expect(entries.filter((e) => e.rotated)).toHaveLength(1);
    expect((await storedSession(account.id)).cookies).not.toBe(first.cookies);
    sandboxOffset += 61_000;
    try {
      expect((await app.api(`/api/${account.id}/proxy/posts?limit=1`)).status).toBe(200);
    } finally {
      sandboxOffset -= 61_000;
    }
  });

  it('Fansly: paths below /api/v1, rotated tokens stored', async () => {
    const account = await connectFansly(app, 'acc-fansly+rotate');
    const before = await storedSession(account.id);
    const res = await app.api(`/api/${account.id}/proxy/posts?limit=2`);
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ success: true, response: { data: expect.any(Array), hasMore: true } });
    expect(res.body.response.data).toHaveLength(2);
    const entries = ((await (await fetch(`${sandbox.url}/__sandbox/requests?email=acc-fansly%2Brotate&platform=fansly`)).json()) as { data: LogEntry[] }).data;
    expect(entries.at(-1)).toMatchObject({ method: 'GET', path: '/api/v1/posts?limit=2', status: 200, rotated: true });
    const after = await storedSession(account.id);
    expect(after.token).not.toBe(before.token);
    sandboxOffset += 61_000;
    try {
      expect((await app.api(`/api/${account.id}/proxy/account/me`)).status).toBe(200);
    } finally {
      sandboxOffset -= 61_000;
    }
  });

  it('answers 503 while re-authenticating, 410 after expiry, 404 for another organisation', async () => {
    const { account } = await connectAccount(app, 'acc-reauth+sms@sandbox.test');
    const attemptId = await forceReauth(app, account.id);
    expect((await follow(app, attemptId)).state).toBe('needs_otp');
    const busy = await app.api(`/api/${account.id}/proxy/posts`);
    expect(busy.status, busy.text).toBe(503);
    expect(busy.body).toMatchObject({ code: 'account_reauthenticating', retryable: true, retryAfterSec: 30 });
    expect(busy.headers.get('retry-after')).toBe('30');

    const { account: imported } = await importAccount(app, 'acc-expired@sandbox.test');
    expect((await app.api(`/api/accounts/${imported.id}/invalidate`, { method: 'POST' })).status).toBe(200);
    const gone = await app.api(`/api/${imported.id}/proxy/posts`, { method: 'POST', body: {} });
    expect(gone.status, gone.text).toBe(410);
    expect(gone.body).toMatchObject({ code: 'account_expired', retryable: false });

    const other = await otherOrgKey(app, 'acc-other-org');
    const hidden = await app.api(`/api/${imported.id}/proxy/posts`, { key: other });
    expect(hidden.status).toBe(404);
    expect(hidden.body.code).toBe('not_found');
    expect((await app.api('/api/acct_nope/proxy/posts')).status).toBe(404);
    // The other /api routes still resolve.
    expect((await app.api('/api/accounts')).status).toBe(200);
    expect((await app.api(`/api/accounts/${imported.id}`)).status).toBe(200);
  });

  it('the next call after any change of an account sees the change, though the account was just used', async () => {
    // The node keeps the account in memory between calls; every change must reach the very next call.
    const { account } = await importAccount(app, 'acc-cached-a@sandbox.test');
    expect((await app.api(`/api/${account.id}/proxy/users/me`)).status).toBe(200);
    expect((await app.api(`/api/${account.id}/proxy/users/me`)).status).toBe(200);
    expect((await app.api(`/api/accounts/${account.id}/invalidate`, { method: 'POST' })).status).toBe(200);
    expect((await app.api(`/api/${account.id}/proxy/users/me`)).status).toBe(410);

    const { account: connected } = await connectAccount(app, 'acc-cached-b+sms@sandbox.test');
    expect((await app.api(`/api/${connected.id}/proxy/users/me`)).status).toBe(200);
    const attemptId = await forceReauth(app, connected.id);
    expect((await follow(app, attemptId)).state).toBe('needs_otp');
    expect((await app.api(`/api/${connected.id}/proxy/users/me`)).status).toBe(503);

    const { account: deleted } = await importAccount(app, 'acc-cached-c@sandbox.test');
    expect((await app.api(`/api/${deleted.id}/proxy/users/me`)).status).toBe(200);
    expect((await app.api(`/api/accounts/${deleted.id}`, { method: 'DELETE' })).status).toBe(204);
    expect((await app.api(`/api/${deleted.id}/proxy/users/me`)).status).toBe(404);
  });

  it('answers 401 session_expired on a revoked session and starts a re-authentication', async () => {
    const email = 'acc-revoked@sandbox.test';
    const { account } = await connectAccount(app, email);
    await revokeSessions(app, email);
    const res = await app.api(`/api/${account.id}/proxy/posts`);
    expect(res.status, res.text).toBe(401);
    expect(res.body).toMatchObject({ code: 'session_expired', retryable: true, attempt_id: expect.stringMatching(/^auth_/) });
    expect((await follow(app, res.body.attempt_id)).state).toBe('completed_success');
    expect((await app.api(`/api/${account.id}/proxy/posts`)).status).toBe(200);
    expect((await eventsOf(app, account.id)).map((e) => e.event)).toContain('accounts.reconnected');

    // Without stored credentials the account expires instead.
    const importedEmail = 'acc-revoked-imp@sandbox.test';
    const { account: imported } = await importAccount(app, importedEmail);
    await revokeSessions(app, importedEmail);
    const dead = await app.api(`/api/${imported.id}/proxy/posts`);
    expect(dead.status, dead.text).toBe(401);
    expect(dead.body).toMatchObject({ code: 'session_expired', retryable: false, attempt_id: null });
    expect((await app.api(`/api/accounts/${imported.id}`)).body.status).toBe('expired');
    expect((await app.api(`/api/${imported.id}/proxy/posts`)).status).toBe(410);
  });

  it('passes a 403 that is no "logged out" on as the platform sent it, past the part read to tell', async () => {
    const { account } = await importAccount(app, 'acc-refused@sandbox.test');
    const bytes = 200 * 1024; // more than the 64 KiB FanGate reads first
    const res = await app.api(`/api/${account.id}/proxy/media/download?status=403&bytes=${bytes}&chunk_bytes=4096`, { headers: { 'accept-encoding': 'identity' } });
    expect(res.status).toBe(403);
    expect(res.headers.get('x-fangate-relayed')).toBe('true');
    expect(res.text).toBe('a'.repeat(bytes));
    expect((await app.api(`/api/accounts/${account.id}`)).body.status).toBe('active');
  });

  it('answers 502 upstream_error when the platform connection ends in the middle of a 403 FanGate reads, and the account stays active', async () => {
    const { account } = await importAccount(app, 'acc-cut@sandbox.test');
    const res = await app.api(`/api/${account.id}/proxy/media/download?status=403&bytes=200000&chunk_bytes=4096&chunk_ms=20&cut_after=8192`, { headers: { 'accept-encoding': 'identity' } });
    expect(res.status, res.text).toBe(502);
    expect(res.body).toMatchObject({ code: 'upstream_error', retryable: true, upstreamStatus: 403 });
    expect((await app.api(`/api/accounts/${account.id}`)).body.status).toBe('active');
    // Nothing of it reads as FanGate's own failure.
    expect(app.logs.join('')).not.toMatch(/"level":50[^\n]*media\/download/);
  });

  it('answers 429 rate_limited after the burst, with RateLimit headers', async () => {
    const { account } = await importAccount(app, 'acc-burst@sandbox.test');
    const statuses: number[] = [];
    for (let i = 0; i < BURST; i++) statuses.push((await app.api(`/api/${account.id}/proxy/posts?limit=1`)).status);
    expect(statuses).toEqual(Array(BURST).fill(200));
    const limited = await app.api(`/api/${account.id}/proxy/posts?limit=1`);
    expect(limited.status, limited.text).toBe(429);
    expect(limited.body).toMatchObject({ code: 'rate_limited', retryable: true });
    expect(limited.body.retryAfterSec).toBeGreaterThanOrEqual(1);
    expect(limited.body.detail).toMatch(/60 requests per minute/);
    expect(limited.headers.get('ratelimit-remaining')).toBe('0');
    expect(limited.headers.get('retry-after')).toBe(String(limited.body.retryAfterSec));
    // Per account: another account is not limited.
    const { account: other } = await importAccount(app, 'acc-burst-2@sandbox.test');
    expect((await app.api(`/api/${other.id}/proxy/posts?limit=1`)).status).toBe(200);
  });

  it('answers 502 upstream_error when the proxy cannot be reached', async () => {
    const { account } = await importAccount(app, 'acc-proxy@sandbox.test');
    expect((await app.api(`/api/accounts/${account.id}`, { method: 'PATCH', body: { customProxy: { host: '127.0.0.1', port: 9 } } })).status).toBe(200);
    const res = await app.api(`/api/${account.id}/proxy/posts`);
    expect(res.status, res.text).toBe(502);
    expect(res.body).toMatchObject({ code: 'upstream_error', upstreamStatus: null });
  });
});
