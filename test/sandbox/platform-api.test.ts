import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Dispatcher } from 'undici';
import type { RunningSandbox } from '../../src/sandbox/index.js';
import { ManualClock, UA, call, cookiesOf, ofHeaders, startTestSandbox, type OfSession, type Reply } from './helpers.js';

/** The platform API a FanGate Access API proxies: lists, a write, rotation, dead sessions, the request log. */

let sandbox: RunningSandbox;
let clock: ManualClock;

beforeAll(async () => {
  ({ sandbox, clock } = await startTestSandbox());
});
afterAll(() => sandbox.close());
beforeEach(() => sandbox.reset());

const control = (path: string) => `${sandbox.url}/__sandbox${path}`;
const ofUrl = (path: string) => `${sandbox.url}/api2/v2${path}`;
const fyUrl = (path: string) => `${sandbox.url}/api/v1${path}`;

interface LogEntry {
  method: string;
  path: string;
  status: number;
  has_body: boolean;
  body_bytes: number | null;
  content_type: string | null;
  rotated: boolean;
}

async function requestLog(email: string, platform: 'onlyfans' | 'fansly'): Promise<LogEntry[]> {
  const reply = await call(control(`/requests?email=${encodeURIComponent(email)}&platform=${platform}`));
  return reply.body.data;
}

/** A session minted through the control API (no login request in the log, `+flaky` counter untouched). */
async function mintOf(email: string): Promise<OfSession> {
  const minted = (await call(control('/sessions'), { body: { platform: 'onlyfans', email, user_agent: UA } })).body;
  return { cookies: cookiesOf(minted.cookies.split('; ')), xbc: minted.xbc, userAgent: UA };
}

async function mintFansly(username: string): Promise<string> {
  return (await call(control('/sessions'), { body: { platform: 'fansly', email: username, user_agent: UA } })).body.token;
}

function of(session: OfSession, path: string, options: { method?: Dispatcher.HttpMethod; body?: unknown; raw?: string } = {}): Promise<Reply> {
  return call(ofUrl(path), { headers: ofHeaders(session), ...options });
}

function fy(token: string, path: string, options: { method?: Dispatcher.HttpMethod; body?: unknown; raw?: string } = {}): Promise<Reply> {
  return call(fyUrl(path), { headers: { authorization: token, 'user-agent': UA }, ...options });
}

/** The session with the `sess` value a rotating answer set (as a browser's cookie jar would keep it). */
function applied(session: OfSession, reply: Reply): OfSession {
  const sess = cookiesOf(reply.setCookies).sess;
  return sess ? { ...session, cookies: { ...session.cookies, sess } } : session;
}

const revoke = (platform: 'onlyfans' | 'fansly', email: string) =>
  call(control('/sessions/revoke'), { body: { platform, email } });

describe('OnlyFans platform API lists', () => {
  it('pages through posts, chats, subscribers and transactions with hasMore and nextOffset', async () => {
    const session = await mintOf('jane@sandbox.test');
    for (const path of ['/posts', '/chats', '/subscriptions/subscribers', '/payouts/transactions']) {
      const all = await of(session, `${path}?limit=100`);
      expect(all.status, path).toBe(200);
      const total = all.body.list.length;
      expect(total, path).toBeGreaterThanOrEqual(20);
      expect(all.body).toMatchObject({ hasMore: false, nextOffset: null });

      // Walk the pages the way an integrator does, following nextOffset.
      const walked: unknown[] = [];
      let offset: number | null = 0;
      let pages = 0;
      while (offset !== null) {
        const page: Reply = await of(session, `${path}?limit=7&offset=${offset}`);
        expect(page.body.list.length).toBeLessThanOrEqual(7);
        expect(page.body.hasMore).toBe(page.body.nextOffset !== null);
        walked.push(...page.body.list);
        offset = page.body.nextOffset;
        pages++;
      }
      expect(walked, path).toEqual(all.body.list);
      expect(pages).toBe(Math.ceil(total / 7));

      const first = await of(session, `${path}?limit=7`);
      expect(first.body).toMatchObject({ hasMore: true, nextOffset: 7 });
      // Default page: 10 from offset 0.
      expect((await of(session, path)).body.list).toEqual(all.body.list.slice(0, 10));
      // Past the end: an empty page.
      expect((await of(session, `${path}?offset=${total}`)).body).toEqual({ list: [], hasMore: false, nextOffset: null });
    }
  });

  it('answers posts of a fixed shape, newest first', async () => {
    const session = await mintOf('jane@sandbox.test');
    const { list } = (await of(session, '/posts?limit=100')).body;
    const me = (await of(session, '/users/me')).body;
    expect(me.postsCount).toBe(list.length);
    for (const post of list) {
      expect(post).toEqual({
        id: expect.any(Number),
        text: expect.any(String),
        price: expect.any(Number),
        isFree: post.price === 0,
        mediaCount: expect.any(Number),
        likesCount: expect.any(Number),
        commentsCount: expect.any(Number),
        author: { id: me.id },
        postedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      });
    }
    const times = list.map((post: { postedAt: string }) => Date.parse(post.postedAt));
    expect(times).toEqual([...times].sort((a, b) => b - a));
    expect(new Set(list.map((post: { id: number }) => post.id)).size).toBe(list.length);
  });

  it('answers the same data for the same user in every session and after a reset, other data for another user', async () => {
    const first = await mintOf('jane@sandbox.test');
    const posts = (await of(first, '/posts?limit=100')).body;
    const subscribers = (await of(first, '/subscriptions/subscribers?limit=100')).body;
    sandbox.reset();
    const again = await mintOf('jane@sandbox.test');
    expect((await of(again, '/posts?limit=100')).body).toEqual(posts);
    expect((await of(again, '/subscriptions/subscribers?limit=100')).body).toEqual(subscribers);
    const john = await mintOf('john@sandbox.test');
    expect((await of(john, '/posts?limit=100')).body.list).not.toEqual(posts.list);
  });

  it('rejects bad paging parameters with 400 and ignores unknown ones', async () => {
    const session = await mintOf('jane@sandbox.test');
    for (const query of ['limit=0', 'limit=101', 'limit=x', 'limit=2.5', 'limit=', 'offset=-1', 'offset=1.5', 'offset=1e1']) {
      const reply = await of(session, `/posts?${query}`);
      expect(reply.status, query).toBe(400);
      expect(reply.body.error.reason).toBe('bad_request');
    }
    expect((await of(session, '/posts?limit=2&utm=x')).body.list).toHaveLength(2);
  });
});

describe('OnlyFans message write', () => {
  it('creates a priced message that a later GET of the chat shows first', async () => {
    const session = await mintOf('jane@sandbox.test');
    const chats = (await of(session, '/chats?limit=100')).body.list;
    const fanId = chats[chats.length - 1].withUser.id;
    const before = (await of(session, `/chats/${fanId}/messages?limit=100`)).body.list;

    const sent = await of(session, `/chats/${fanId}/messages`, { body: { text: 'Unlock me', price: 12.5 } });
    expect(sent.status).toBe(200);
    expect(sent.body).toEqual({
      id: expect.any(Number),
      text: 'Unlock me',
      fromUser: { id: Number(session.cookies.auth_id) },
      price: 12.5,
      isFree: false,
      createdAt: new Date(clock.now()).toISOString(),
    });
    const free = await of(session, `/chats/${fanId}/messages`, { body: { text: 'Free one' } });
    expect(free.body).toMatchObject({ price: 0, isFree: true });
    expect(free.body.id).toBe(sent.body.id + 1);

    const after = await of(session, `/chats/${fanId}/messages?limit=100`);
    expect(after.body.list).toEqual([free.body, sent.body, ...before]);
    const top = (await of(session, '/chats?limit=1')).body.list[0];
    expect(top).toMatchObject({ withUser: { id: fanId }, lastMessage: free.body, messagesCount: before.length + 2 });
  });

  it('refuses bad message bodies and unknown chats', async () => {
    const session = await mintOf('jane@sandbox.test');
    const fanId = (await of(session, '/chats?limit=1')).body.list[0].withUser.id;
    for (const body of [{}, { text: '' }, { text: 'x', price: -1 }, { text: 'x', price: 201 }, { text: 'x', price: '5' }]) {
      const reply = await of(session, `/chats/${fanId}/messages`, { body });
      expect(reply.status, JSON.stringify(body)).toBe(400);
    }
    expect((await of(session, '/chats/1/messages', { body: { text: 'x' } })).status).toBe(404);
    expect((await of(session, `/chats/${fanId}/messages?limit=100`)).body.list.some((m: { text: string }) => m.text === 'x')).toBe(false);
  });

  it('deletes a sent message with DELETE; seeded history cannot be deleted', async () => {
    const session = await mintOf('jane@sandbox.test');
    const fanId = (await of(session, '/chats?limit=1')).body.list[0].withUser.id;
    const before = (await of(session, `/chats/${fanId}/messages?limit=100`)).body.list;
    const sent = (await of(session, `/chats/${fanId}/messages`, { body: { text: 'oops' } })).body;
    const removed = await of(session, `/chats/${fanId}/messages/${sent.id}`, { method: 'DELETE' });
    expect(removed.status).toBe(200);
    expect(removed.body).toEqual({ success: true });
    expect((await of(session, `/chats/${fanId}/messages?limit=100`)).body.list).toEqual(before);
    for (const id of [sent.id, before[0].id]) {
      const again = await of(session, `/chats/${fanId}/messages/${id}`, { method: 'DELETE' });
      expect(again.status).toBe(404);
      expect(again.body.error).toMatchObject({ reason: 'not_found', message: 'Message not found' });
    }
    // Ids are never reused.
    expect((await of(session, `/chats/${fanId}/messages`, { body: { text: 'again' } })).body.id).toBe(sent.id + 1);
  });
});

describe('OnlyFans cookie rotation', () => {
  it('rotates sess on every answer of a +rotate user; a replaced value works 60 s more', async () => {
    const original = await mintOf('jane+rotate@sandbox.test');
    let session = original;
    const seen = new Set([session.cookies.sess]);
    for (const path of ['/users/me', '/posts?limit=1', '/chats?limit=1']) {
      const reply = await of(session, path);
      expect(reply.status).toBe(200);
      expect(reply.setCookies).toHaveLength(1);
      expect(reply.setCookies[0]).toMatch(/^sess=[0-9a-f]{32}; Path=\/; HttpOnly; SameSite=Lax$/);
      session = applied(session, reply);
      expect(seen.has(session.cookies.sess!)).toBe(false);
      seen.add(session.cookies.sess!);
    }
    // A write rotates too.
    const fanId = (await of(session, '/chats?limit=1')).body.list[0].withUser.id;
    // (that GET rotated: keep the old value on purpose, it is within its grace period)
    const write = await of(session, `/chats/${fanId}/messages`, { body: { text: 'hi' } });
    expect(write.status).toBe(200);
    expect(cookiesOf(write.setCookies).sess).toMatch(/^[0-9a-f]{32}$/);

    // The first value, replaced by the first answer, still works 60 s after it was replaced (and, +rotate
    // rotating every answer, is answered with a new value again).
    clock.advance(59_000);
    const graced = await of(original, '/users/me');
    expect(graced.status).toBe(200);
    const latest = applied(original, graced);
    clock.advance(1_000);
    const stale = await of(original, '/users/me');
    expect(stale.status).toBe(401);
    expect(stale.body.error.reason).toBe('session_invalid');
    expect(stale.setCookies).toEqual([]);
    // The current value has no time limit: it only gets replaced by the next answer.
    clock.advance(3_600_000);
    expect((await of(latest, '/users/me')).status).toBe(200);

    const log = await requestLog('jane+rotate@sandbox.test', 'onlyfans');
    expect(log.map((entry) => [entry.status, entry.rotated])).toEqual([
      [200, true],
      [200, true],
      [200, true],
      [200, true],
      [200, true],
      [200, true],
      [401, false],
      [200, true],
    ]);
  });

  it('rotates the next answer only, once, after POST /__sandbox/sessions/rotate', async () => {
    const session = await mintOf('jane@sandbox.test');
    const other = await mintOf('jane@sandbox.test');
    expect((await of(session, '/users/me')).setCookies).toEqual([]);

    const marked = await call(control('/sessions/rotate'), { body: { platform: 'onlyfans', email: 'jane@sandbox.test' } });
    expect(marked.body).toEqual({ rotating: 2 });
    const rotating = await of(session, '/posts?limit=1');
    expect(rotating.status).toBe(200);
    const fresh = applied(session, rotating);
    expect(fresh.cookies.sess).not.toBe(session.cookies.sess);
    expect((await of(fresh, '/posts?limit=1')).setCookies).toEqual([]);
    // The second session of the user rotates at its own next answer.
    expect(cookiesOf((await of(other, '/users/me')).setCookies).sess).toBeTruthy();

    expect((await call(control('/sessions/rotate'), { body: { platform: 'onlyfans', email: 'nobody@sandbox.test' } })).body).toEqual({ rotating: 0 });
  });

  it('does not rotate on session failures, 502s or logout', async () => {
    const session = await mintOf('jane+rotate+flaky@sandbox.test');
    const ok = await of(session, '/users/me'); // call 1 succeeds
    expect(ok.setCookies).toHaveLength(1);
    const flaky = await of(applied(session, ok), '/users/me'); // call 2: 502
    expect(flaky.status).toBe(502);
    expect(flaky.setCookies).toEqual([]);
    const current = applied(session, ok);
    const logout = await of(current, '/users/logout', { method: 'POST' }); // call 3
    expect(logout.status).toBe(200);
    expect(Object.values(cookiesOf(logout.setCookies))).toEqual(['', '', '']);
  });
});

describe('OnlyFans dead sessions, +slow and +flaky on every endpoint', () => {
  const endpoints = (fanId: number): Array<[string, { method?: Dispatcher.HttpMethod; body?: unknown; raw?: string }]> => [
    ['/users/me', {}],
    ['/posts?limit=5', {}],
    ['/chats?limit=5', {}],
    [`/chats/${fanId}/messages?limit=5`, {}],
    [`/chats/${fanId}/messages`, { body: { text: 'hello' } }],
    // The message the POST above sent (the first a fresh user sends has this id).
    [`/chats/${fanId}/messages/100000000001`, { method: 'DELETE' }],
    ['/subscriptions/subscribers?limit=5', {}],
    ['/payouts/transactions?limit=5', {}],
  ];

  it('answers 401 session_invalid on every endpoint once revoked, before looking at the input', async () => {
    const session = await mintOf('jane@sandbox.test');
    const fanId = (await of(session, '/chats?limit=1')).body.list[0].withUser.id;
    for (const [path, options] of endpoints(fanId)) expect((await of(session, path, options)).status, path).toBe(200);
    expect((await revoke('onlyfans', 'jane@sandbox.test')).body).toEqual({ revoked: 1 });
    for (const [path, options] of [...endpoints(fanId), ['/posts?limit=0', {}] as const, [`/chats/${fanId}/messages`, { raw: '{' }] as const]) {
      const reply = await of(session, path, options);
      expect(reply.status, path).toBe(401);
      expect(reply.body.error, path).toEqual({ code: 401, reason: 'session_invalid', message: 'Please refresh the page' });
    }
  });

  it('answers 401 session_expired on every endpoint for a +expire session after 30 s', async () => {
    const session = await mintOf('jane+expire@sandbox.test');
    const fanId = (await of(session, '/chats?limit=1')).body.list[0].withUser.id;
    clock.advance(30_000);
    for (const [path, options] of endpoints(fanId)) {
      const reply = await of(session, path, options);
      expect(reply.status, path).toBe(401);
      expect(reply.body.error.reason, path).toBe('session_expired');
    }
  });

  it('answers every second call of a +flaky user with an HTML 502, on every endpoint', async () => {
    const session = await mintOf('jane+flaky@sandbox.test');
    const fanId = (await of(session, '/chats?limit=1')).body.list[0].withUser.id; // call 1
    const statuses: number[] = [];
    for (const [path, options] of endpoints(fanId)) {
      for (let n = 0; n < 2; n++) {
        const reply = await of(session, path, options);
        statuses.push(reply.status);
        if (reply.status === 502) expect(reply.headers['content-type']).toMatch(/text\/html/);
      }
    }
    expect(statuses).toEqual(endpoints(fanId).flatMap(() => [502, 200]));
  });

  it('makes list and write calls of a +slow user take 2 s', async () => {
    const session = await mintOf('jane+slow@sandbox.test');
    let started = Date.now();
    const list = await of(session, '/posts?limit=1');
    expect(list.status).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_990);
    const fanId = (await of(session, '/chats?limit=1')).body.list[0].withUser.id;
    started = Date.now();
    expect((await of(session, `/chats/${fanId}/messages`, { body: { text: 'slow' } })).status).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_990);
  }, 15_000);
});

describe('OnlyFans request log', () => {
  it('records one entry per call with method, path and query, status and whether a body came', async () => {
    const session = await mintOf('jane@sandbox.test');
    const fanId = (await of(session, '/chats?limit=1')).body.list[0].withUser.id;
    await of(session, '/posts?limit=3&offset=6');
    const body = JSON.stringify({ text: 'logged', price: 5 });
    await of(session, `/chats/${fanId}/messages`, { raw: body });
    await of(session, `/chats/${fanId}/messages`, { body: { text: '' } });
    await of(session, '/nothing/here');
    await of(session, '/users/logout', { method: 'POST' });
    await of(session, '/users/me');

    const log = await requestLog('jane@sandbox.test', 'onlyfans');
    expect(log.map(({ method, path, status, has_body, body_bytes, content_type, rotated }) => ({ method, path, status, has_body, body_bytes, content_type, rotated }))).toEqual([
      { method: 'GET', path: '/api2/v2/chats?limit=1', status: 200, has_body: false, body_bytes: null, content_type: null, rotated: false },
      { method: 'GET', path: '/api2/v2/posts?limit=3&offset=6', status: 200, has_body: false, body_bytes: null, content_type: null, rotated: false },
      { method: 'POST', path: `/api2/v2/chats/${fanId}/messages`, status: 200, has_body: true, body_bytes: Buffer.byteLength(body), content_type: 'application/json', rotated: false },
      { method: 'POST', path: `/api2/v2/chats/${fanId}/messages`, status: 400, has_body: true, body_bytes: 11, content_type: 'application/json', rotated: false },
      { method: 'GET', path: '/api2/v2/nothing/here', status: 404, has_body: false, body_bytes: null, content_type: null, rotated: false },
      { method: 'POST', path: '/api2/v2/users/logout', status: 200, has_body: false, body_bytes: 0, content_type: null, rotated: false },
      { method: 'GET', path: '/api2/v2/users/me', status: 401, has_body: false, body_bytes: null, content_type: null, rotated: false },
    ]);
  });
});

describe('Fansly platform API', () => {
  it('pages through posts, subscribers, groups and messages in the Fansly envelope', async () => {
    const token = await mintFansly('jane');
    for (const path of ['/posts', '/subscribers', '/messaging/groups']) {
      const all = await fy(token, `${path}?limit=100`);
      expect(all.status, path).toBe(200);
      expect(all.body).toMatchObject({ success: true, response: { hasMore: false, nextOffset: null } });
      const total = all.body.response.data.length;
      expect(total).toBeGreaterThanOrEqual(20);
      const first = await fy(token, `${path}?limit=5`);
      expect(first.body.response).toMatchObject({ hasMore: true, nextOffset: 5 });
      const second = await fy(token, `${path}?limit=5&offset=5`);
      expect([...first.body.response.data, ...second.body.response.data]).toEqual(all.body.response.data.slice(0, 10));
    }
    const account = (await fy(token, '/account/me')).body.response.account;
    const post = (await fy(token, '/posts?limit=1')).body.response.data[0];
    expect(post).toEqual({
      id: expect.stringMatching(/^\d+$/),
      accountId: account.id,
      content: expect.any(String),
      price: expect.any(Number),
      mediaCount: expect.any(Number),
      likeCount: expect.any(Number),
      replyCount: expect.any(Number),
      createdAt: expect.any(Number),
    });
    expect(post.createdAt).toBeLessThan(10_000_000_000); // epoch seconds
    const subscriber = (await fy(token, '/subscribers?limit=1')).body.response.data[0];
    expect(subscriber).toEqual({
      id: expect.stringMatching(/^\d+$/),
      username: expect.any(String),
      displayName: expect.any(String),
      subscribedAt: expect.any(Number),
      renewsAt: expect.any(Number),
      price: expect.any(Number),
    });
    // Deterministic per user.
    sandbox.reset();
    expect((await fy(await mintFansly('jane'), '/posts?limit=1')).body.response.data[0]).toEqual(post);
  });

  it('sends a priced message that the group then lists first', async () => {
    const token = await mintFansly('jane');
    const groupId = (await fy(token, '/messaging/groups?limit=1')).body.response.data[0].groupId;
    const sent = await fy(token, '/message', { body: { groupId, content: 'Unlock', price: 7.5 } });
    expect(sent.status).toBe(200);
    const account = (await fy(token, '/account/me')).body.response.account;
    expect(sent.body).toEqual({
      success: true,
      response: { id: expect.stringMatching(/^\d+$/), groupId, senderId: account.id, content: 'Unlock', price: 7.5, createdAt: Math.floor(clock.now() / 1000) },
    });
    const listed = await fy(token, `/message?groupId=${groupId}&limit=1`);
    expect(listed.body.response.data).toEqual([sent.body.response]);
    expect((await fy(token, '/message', { body: { groupId, content: 'x', price: -1 } })).status).toBe(400);

    const removed = await fy(token, `/message/${sent.body.response.id}?groupId=${groupId}`, { method: 'DELETE' });
    expect(removed.body).toEqual({ success: true, response: true });
    expect((await fy(token, `/message?groupId=${groupId}&limit=1`)).body.response.data[0].id).not.toBe(sent.body.response.id);
    const again = await fy(token, `/message/${sent.body.response.id}?groupId=${groupId}`, { method: 'DELETE' });
    expect(again.status).toBe(404);
    expect(again.body.error).toMatchObject({ reason: 'not_found', details: 'Message not found' });
  });

  it('rotates the token through Set-Cookie fansly-token for +rotate users; the old token works 60 s more', async () => {
    const original = await mintFansly('jane+rotate');
    const reply = await fy(original, '/posts?limit=1');
    expect(reply.status).toBe(200);
    expect(reply.setCookies).toHaveLength(1);
    const fresh = cookiesOf(reply.setCookies)['fansly-token'];
    expect(fresh).toMatch(/^[A-Za-z0-9_-]{48}$/);
    expect(fresh).not.toBe(original);
    // The new token works as the authorization header or as the cookie.
    expect((await fy(fresh!, '/account/me')).status).toBe(200);
    const byCookie = await call(fyUrl('/account/me'), { headers: { cookie: `fansly-token=${fresh}`, 'user-agent': UA } });
    expect(byCookie.status).toBe(200);
    clock.advance(60_000);
    const stale = await fy(original, '/account/me');
    expect(stale.status).toBe(401);
    expect(stale.body).toEqual({ success: false, error: { code: 401, reason: 'session_invalid', details: 'Please refresh the page' } });

    // Plain users: no rotation, except the one answer after POST /__sandbox/sessions/rotate.
    const plain = await mintFansly('john');
    expect((await fy(plain, '/posts?limit=1')).setCookies).toEqual([]);
    clock.advance(24 * 3_600_000);
    expect((await fy(plain, '/posts?limit=1')).setCookies).toEqual([]);
    expect((await call(control('/sessions/rotate'), { body: { platform: 'fansly', email: 'john' } })).body).toEqual({ rotating: 1 });
    const once = await fy(plain, '/subscribers?limit=1');
    expect(cookiesOf(once.setCookies)['fansly-token']).toBeTruthy();
    expect((await fy(cookiesOf(once.setCookies)['fansly-token']!, '/subscribers?limit=1')).setCookies).toEqual([]);
  });

  it('answers 401 on every endpoint for revoked and expired sessions, 502 every second call of +flaky', async () => {
    const token = await mintFansly('jane');
    const groupId = (await fy(token, '/messaging/groups?limit=1')).body.response.data[0].groupId;
    const endpoints: Array<[string, { body?: unknown }]> = [
      ['/account/me', {}],
      ['/posts?limit=2', {}],
      ['/subscribers?limit=2', {}],
      ['/messaging/groups?limit=2', {}],
      [`/message?groupId=${groupId}&limit=2`, {}],
      ['/message', { body: { groupId, content: 'hi' } }],
    ];
    await revoke('fansly', 'jane');
    for (const [path, options] of [...endpoints, ['/message', { body: {} }] as [string, { body?: unknown }]]) {
      const reply = await fy(token, path, options);
      expect(reply.status, path).toBe(401);
      expect(reply.body.error.reason, path).toBe('session_invalid');
    }

    const expiring = await mintFansly('jane+expire');
    const expiringGroup = (await fy(expiring, '/messaging/groups?limit=1')).body.response.data[0].groupId;
    clock.advance(30_000);
    for (const [path, options] of endpoints) {
      const reply = await fy(expiring, path.replace(groupId, expiringGroup), options);
      expect(reply.status, path).toBe(401);
      expect(reply.body.error.reason, path).toBe('session_expired');
    }

    const flaky = await mintFansly('jane+flaky');
    const flakyGroup = (await fy(flaky, '/messaging/groups?limit=1')).body.response.data[0].groupId; // call 1
    const statuses: number[] = [];
    for (const [path, options] of endpoints) {
      const body = options.body ? { ...(options.body as object), groupId: flakyGroup } : undefined;
      for (let n = 0; n < 2; n++) statuses.push((await fy(flaky, path.replace(groupId, flakyGroup), body ? { body } : {})).status);
    }
    expect(statuses).toEqual(endpoints.flatMap(() => [502, 200]));

    const log = await requestLog('jane+flaky', 'fansly');
    expect(log).toHaveLength(1 + 2 * endpoints.length);
    expect(log.at(-1)).toMatchObject({ method: 'POST', path: '/api/v1/message', status: 200, has_body: true, content_type: 'application/json' });
    expect(log.at(-3)).toMatchObject({ method: 'GET', path: `/api/v1/message?groupId=${flakyGroup}&limit=2`, status: 200, has_body: false });
  });
});
