import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { RunningSandbox } from '../../src/sandbox/index.js';
import { ManualClock, OTHER_UA, OnlyFans, call, cookiesOf, ofHeaders, startTestSandbox, type OfSession } from './helpers.js';

let sandbox: RunningSandbox;
let clock: ManualClock;
let of: OnlyFans;

beforeAll(async () => {
  ({ sandbox, clock } = await startTestSandbox());
  of = new OnlyFans(sandbox.url);
});
afterAll(() => sandbox.close());
beforeEach(() => sandbox.reset());

const errorOf = (reply: { status: number; body: { error?: { reason?: string; message?: string } } }) => ({
  status: reply.status,
  reason: reply.body.error?.reason,
});

describe('OnlyFans sessions', () => {
  it('is bound to the user agent it was created with', async () => {
    const session = await of.session('jane@sandbox.test');
    const reply = await of.get('/users/me', session, { 'user-agent': OTHER_UA });
    expect(errorOf(reply)).toEqual({ status: 401, reason: 'user_agent_mismatch' });
    expect((await of.get('/users/me', session)).status).toBe(200);
  });

  it('answers "Wrong user" when auth_id or user-id do not match the session', async () => {
    const jane = await of.session('jane@sandbox.test');
    const john = await of.session('john@sandbox.test');
    const swapped: OfSession = { ...jane, cookies: { ...jane.cookies, auth_id: john.cookies.auth_id! } };
    const reply = await of.get('/users/me', swapped);
    expect(reply.status).toBe(401);
    expect(reply.body.error).toEqual({ code: 401, reason: 'wrong_user', message: 'Wrong user' });

    const header = await of.get('/users/me', jane, { 'user-id': john.cookies.auth_id! });
    expect(errorOf(header)).toEqual({ status: 401, reason: 'wrong_user' });

    const { auth_id: _dropped, ...withoutAuthId } = jane.cookies;
    const missing = await call(of.url('/users/me'), {
      headers: { ...ofHeaders({ ...jane, cookies: withoutAuthId }), 'user-id': '' },
    });
    expect(errorOf(missing)).toEqual({ status: 401, reason: 'wrong_user' });
  });

  it('rejects another device: a different fp cookie or x-bc header', async () => {
    const session = await of.session('jane@sandbox.test');
    const otherFp = await of.get('/users/me', { ...session, cookies: { ...session.cookies, fp: 'f'.repeat(32) } });
    expect(errorOf(otherFp)).toEqual({ status: 401, reason: 'device_mismatch' });
    const otherXbc = await of.get('/users/me', { ...session, xbc: 'b'.repeat(40) });
    expect(errorOf(otherXbc)).toEqual({ status: 401, reason: 'device_mismatch' });
  });

  it('rejects unknown or missing sess cookies', async () => {
    const session = await of.session('jane@sandbox.test');
    const unknown = await of.get('/users/me', { ...session, cookies: { ...session.cookies, sess: 'nope' } });
    expect(errorOf(unknown)).toEqual({ status: 401, reason: 'session_invalid' });
    const none = await call(of.url('/users/me'), { headers: { 'user-agent': of.userAgent } });
    expect(errorOf(none)).toEqual({ status: 401, reason: 'session_invalid' });
  });

  it('rejects the session after logout, and clears the cookies', async () => {
    const session = await of.session('jane@sandbox.test');
    const logout = await call(of.url('/users/logout'), { method: 'POST', headers: ofHeaders(session) });
    expect(logout.status).toBe(200);
    expect(logout.body).toEqual({ success: true });
    expect(logout.setCookies.every((line) => /Max-Age=0/.test(line))).toBe(true);
    expect(Object.keys(cookiesOf(logout.setCookies)).sort()).toEqual(['auth_id', 'fp', 'sess']);
    expect(errorOf(await of.get('/users/me', session))).toEqual({ status: 401, reason: 'session_invalid' });
  });

  it('rejects every session of a user revoked through the control API', async () => {
    const first = await of.session('jane@sandbox.test');
    const second = await of.session('jane@sandbox.test');
    const other = await of.session('john@sandbox.test');
    const revoke = await call(`${sandbox.url}/__sandbox/sessions/revoke`, {
      body: { platform: 'onlyfans', email: 'jane@sandbox.test' },
    });
    expect(revoke.body).toEqual({ revoked: 2 });
    expect(errorOf(await of.get('/users/me', first))).toEqual({ status: 401, reason: 'session_invalid' });
    expect(errorOf(await of.get('/users/me', second))).toEqual({ status: 401, reason: 'session_invalid' });
    expect((await of.get('/users/me', other)).status).toBe(200);
  });

  it('expires +expire sessions 30 s after login', async () => {
    const session = await of.session('jane+expire@sandbox.test');
    clock.advance(29_000);
    expect((await of.get('/users/me', session)).status).toBe(200);
    clock.advance(1_000);
    expect(errorOf(await of.get('/users/me', session))).toEqual({ status: 401, reason: 'session_expired' });
    clock.advance(3_600_000);
    expect(errorOf(await of.get('/users/me', session))).toEqual({ status: 401, reason: 'session_expired' });
    // Plain sessions do not expire.
    const plain = await of.session('jane@sandbox.test');
    clock.advance(24 * 3_600_000);
    expect((await of.get('/users/me', plain)).status).toBe(200);
  });

  it('rotates sess after 15 minutes; the previous value works for 60 s more', async () => {
    const session = await of.session('jane@sandbox.test');
    expect((await of.get('/users/me', session)).setCookies).toEqual([]);
    clock.advance(15 * 60_000);
    const rotated = await of.get('/users/me', session);
    expect(rotated.status).toBe(200);
    const fresh = cookiesOf(rotated.setCookies).sess;
    expect(fresh).toBeTruthy();
    expect(fresh).not.toBe(session.cookies.sess);
    const updated = { ...session, cookies: { ...session.cookies, sess: fresh! } };

    clock.advance(59_000);
    expect((await of.get('/users/me', session)).status).toBe(200);
    clock.advance(1_000);
    expect(errorOf(await of.get('/users/me', session))).toEqual({ status: 401, reason: 'session_invalid' });
    expect((await of.get('/users/me', updated)).status).toBe(200);
  });

  it('makes every call of a +slow user take 2 s', async () => {
    const started = Date.now();
    const session = await of.session('jane+slow@sandbox.test');
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_990);
    const again = Date.now();
    expect((await of.get('/users/me', session)).status).toBe(200);
    expect(Date.now() - again).toBeGreaterThanOrEqual(1_990);
    // Other users stay fast.
    const fast = Date.now();
    await of.session('jane@sandbox.test');
    expect(Date.now() - fast).toBeLessThan(1_000);
  });

  it('answers every second call of a +flaky user with an HTML 502', async () => {
    const login = await of.login('jane+flaky@sandbox.test');
    expect(login.status).toBe(200);
    const session = of.sessionOf(login);
    const statuses: number[] = [];
    for (let n = 0; n < 4; n++) {
      const reply = await of.get('/users/me', session);
      statuses.push(reply.status);
      if (reply.status === 502) {
        expect(reply.headers['content-type']).toMatch(/text\/html/);
        expect(reply.text).toContain('502 Bad Gateway');
      }
    }
    expect(statuses).toEqual([502, 200, 502, 200]);
  });
});

describe('OnlyFans users and data', () => {
  it('derives a stable id per email, distinct for every tag combination', async () => {
    const jane = (await of.login('jane@sandbox.test')).body.user;
    const tagged = (await of.login('Jane+Expire@sandbox.test')).body.user;
    expect(tagged.id).not.toBe(jane.id);
    expect(tagged.username).toBe('jane');
    sandbox.reset();
    expect((await of.login('JANE@sandbox.test')).body.user.id).toBe(jane.id);
    expect(Number.isSafeInteger(jane.id)).toBe(true);
  });

  it('pages through deterministic chats, subscribers and earnings', async () => {
    const session = await of.session('jane@sandbox.test');
    const first = await of.get('/chats?limit=10', session);
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ hasMore: true, nextOffset: 10 });
    expect(first.body.list).toHaveLength(10);
    expect(first.body.list[0]).toMatchObject({
      withUser: { id: expect.any(Number), username: expect.any(String), name: expect.any(String) },
      lastMessage: { id: expect.any(Number), text: expect.any(String), createdAt: expect.any(String) },
    });
    const last = await of.get('/chats?limit=10&offset=20', session);
    expect(last.body).toMatchObject({ hasMore: false, nextOffset: null });
    expect(last.body.list).toHaveLength(5);

    // Same data for the same user in another session, and after a reset.
    sandbox.reset();
    const again = await of.get('/chats?limit=10', await of.session('jane@sandbox.test'));
    expect(again.body).toEqual(first.body);
    const john = await of.get('/chats?limit=10', await of.session('john@sandbox.test'));
    expect(john.body.list).not.toEqual(first.body.list);

    const subscribers = await of.get('/subscriptions/subscribers?limit=100', session);
    expect(subscribers.status).toBe(401); // the reset ended that session
    const fresh = await of.session('jane@sandbox.test');
    const all = (await of.get('/subscriptions/subscribers?limit=100', fresh)).body.list;
    expect(all.length).toBeGreaterThanOrEqual(30);
    const paged = [
      ...(await of.get('/subscriptions/subscribers?limit=20', fresh)).body.list,
      ...(await of.get('/subscriptions/subscribers?limit=20&offset=20', fresh)).body.list,
    ];
    expect(paged).toEqual(all.slice(0, paged.length));
    expect(all[0]).toMatchObject({ id: expect.any(Number), subscribedAt: expect.any(String), price: expect.any(Number) });

    const earnings = await of.get('/payouts/transactions?limit=5', fresh);
    expect(earnings.body.list).toHaveLength(5);
    expect(earnings.body.list[0]).toMatchObject({ currency: 'USD', amount: expect.any(Number), net: expect.any(Number) });
  });

  it('sends a message that then leads the conversation and the chat list', async () => {
    const session = await of.session('jane@sandbox.test');
    const chats = (await of.get('/chats?limit=100', session)).body.list;
    const quiet = chats[chats.length - 1].withUser.id;
    const before = await of.get(`/chats/${quiet}/messages?limit=5`, session);
    expect(before.status).toBe(200);

    const sent = await call(of.url(`/chats/${quiet}/messages`), { headers: ofHeaders(session), body: { text: 'Hello from FanGate' } });
    expect(sent.status).toBe(200);
    expect(sent.body).toMatchObject({ text: 'Hello from FanGate', fromUser: { id: Number(session.cookies.auth_id) }, isFree: true });

    const after = await of.get(`/chats/${quiet}/messages?limit=5`, session);
    expect(after.body.list[0]).toEqual(sent.body);
    expect(after.body.list[1]).toEqual(before.body.list[0]);
    expect((await of.get('/chats?limit=1', session)).body.list[0].withUser.id).toBe(quiet);
  });

  it('answers bad data requests with 4xx JSON', async () => {
    const session = await of.session('jane@sandbox.test');
    expect(errorOf(await of.get('/chats/1/messages', session))).toEqual({ status: 404, reason: 'not_found' });
    expect(errorOf(await of.get('/chats/abc/messages', session))).toEqual({ status: 400, reason: 'bad_request' });
    expect(errorOf(await of.get('/chats?limit=0', session))).toEqual({ status: 400, reason: 'bad_request' });
    expect(errorOf(await of.get('/chats?limit=x', session))).toEqual({ status: 400, reason: 'bad_request' });
    expect(errorOf(await of.get('/nothing/here', session))).toEqual({ status: 404, reason: 'not_found' });
    const chat = (await of.get('/chats?limit=1', session)).body.list[0].withUser.id;
    for (const body of [{}, { text: '' }, { text: 42 }]) {
      const reply = await call(of.url(`/chats/${chat}/messages`), { headers: ofHeaders(session), body });
      expect(reply.status, JSON.stringify(body)).toBe(400);
    }
  });
});
