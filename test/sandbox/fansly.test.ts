import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ProxyAgent } from 'undici';
import { SANDBOX_EMAIL_CODE, sandboxTotp, type RunningSandbox } from '../../src/sandbox/index.js';
import { startHttpProxy, type TestProxy } from '../support/proxies.js';
import { ManualClock, OTHER_UA, UA, call, startTestSandbox } from './helpers.js';

let sandbox: RunningSandbox;
let clock: ManualClock;
let proxy: TestProxy;
let proxyAgent: ProxyAgent;

beforeAll(async () => {
  ({ sandbox, clock } = await startTestSandbox());
  proxy = await startHttpProxy({ localAddress: '127.0.0.2' });
  proxyAgent = new ProxyAgent(proxy.url);
});
afterAll(async () => {
  await proxyAgent.close();
  await Promise.all([proxy.close(), sandbox.close()]);
});
beforeEach(() => sandbox.reset());

const api = (path: string) => `${sandbox.url}/api/v1${path}`;

function login(username: string, deviceId = 'device-1', extra: { password?: string; viaProxy?: boolean } = {}) {
  return call(api('/login'), {
    headers: { 'user-agent': UA },
    body: { username, password: extra.password ?? 'password', deviceId },
    ...(extra.viaProxy ? { dispatcher: proxyAgent } : {}),
  });
}

function twofa(token: string, code: string, userAgent = UA) {
  return call(api('/login/twofa'), { headers: { 'user-agent': userAgent }, body: { token, code } });
}

function get(path: string, token: string, userAgent = UA) {
  return call(api(path), { headers: { authorization: token, 'user-agent': userAgent } });
}

async function tokenOf(username: string): Promise<string> {
  const reply = await login(username);
  expect(reply.body.response.session).not.toBeNull();
  return reply.body.response.session.token;
}

describe('Fansly login', () => {
  it('logs in by username or email to the same account, answering a token bound to the device id', async () => {
    const byName = await login('jane');
    expect(byName.status).toBe(200);
    expect(byName.body).toMatchObject({
      success: true,
      response: {
        session: { token: expect.any(String), accountId: expect.stringMatching(/^\d{18}$/), deviceId: 'device-1' },
        twofa: null,
        account: { username: 'jane', displayName: 'Jane' },
      },
    });
    const byEmail = await call(api('/login'), {
      headers: { 'user-agent': UA },
      body: { email: 'Jane@sandbox.test', password: 'password', deviceId: 'device-2' },
    });
    expect(byEmail.body.response.session.accountId).toBe(byName.body.response.session.accountId);

    const me = await get('/account/me', byName.body.response.session.token);
    expect(me.status).toBe(200);
    expect(me.body.response.account).toMatchObject({ id: byName.body.response.session.accountId, username: 'jane' });
  });

  it('fails wrong passwords, unknown identities and +locked like the OnlyFans side', async () => {
    for (const [name, password] of [
      ['jane', 'nope'],
      ['jane@example.com', 'password'],
    ]) {
      const reply = await login(name!, 'd', { password });
      expect(reply.status).toBe(401);
      expect(reply.body).toEqual({
        success: false,
        error: { code: 401, reason: 'invalid_credentials', details: 'Wrong email or password' },
      });
    }
    const locked = await login('jane+locked');
    expect(locked.status).toBe(403);
    expect(locked.body.error.reason).toBe('account_locked');
  });

  it('asks +app for an authenticator code (twofa_type 0)', async () => {
    const start = await login('jane+app');
    expect(start.body.response).toEqual({ session: null, twofa: { token: expect.any(String), twofa_type: 0 } });
    const wrong = await twofa(start.body.response.twofa.token, '000000');
    expect(wrong.status).toBe(400);
    expect(wrong.body.error).toMatchObject({ reason: 'wrong_code', attempts_remaining: 9 });
    const done = await twofa(start.body.response.twofa.token, sandboxTotp(clock.now()));
    expect(done.body.response.session.token).toEqual(expect.any(String));
  });

  it('mails +email a new-device code at login (twofa_type 2), asked again for a new device or address', async () => {
    const start = await login('jane+email', 'device-1');
    expect(start.body.response.twofa).toEqual({ token: expect.any(String), twofa_type: 2, masked_email: 'j***@sandbox.test' });
    const done = await twofa(start.body.response.twofa.token, SANDBOX_EMAIL_CODE);
    expect(done.body.response.session).not.toBeNull();

    expect((await login('jane+email', 'device-1')).body.response.session).not.toBeNull();
    expect((await login('jane+email', 'device-2')).body.response.twofa.twofa_type).toBe(2);
    expect((await login('jane+email', 'device-1', { viaProxy: true })).body.response.twofa.twofa_type).toBe(2);
  });

  it('chains +email+app: email code first, then the authenticator', async () => {
    const start = await login('jane+email+app');
    const token = start.body.response.twofa.token;
    expect(start.body.response.twofa.twofa_type).toBe(2);
    const next = await twofa(token, SANDBOX_EMAIL_CODE);
    expect(next.body.response.twofa).toEqual({ token, twofa_type: 0 });
    const done = await twofa(token, sandboxTotp(clock.now()));
    expect(done.body.response.session).not.toBeNull();
  });

  it('continues a 2FA login only from the same user agent', async () => {
    const start = await login('jane+app');
    const reply = await twofa(start.body.response.twofa.token, sandboxTotp(clock.now()), OTHER_UA);
    expect(reply.status).toBe(401);
    expect(reply.body.error.reason).toBe('user_agent_mismatch');
  });

  it('answers bad login bodies with 400 in the Fansly envelope', async () => {
    for (const body of [{ username: 'jane', password: 'password' }, { password: 'password', deviceId: 'd' }, { username: 1, password: 'password', deviceId: 'd' }]) {
      const reply = await call(api('/login'), { headers: { 'user-agent': UA }, body });
      expect(reply.status, JSON.stringify(body)).toBe(400);
      expect(reply.body).toMatchObject({ success: false, error: { code: 400, reason: 'bad_request', details: expect.any(String) } });
    }
    const malformed = await call(api('/login'), { headers: { 'user-agent': UA }, raw: '{' });
    expect(malformed.status).toBe(400);
    expect(malformed.body.success).toBe(false);
    const unknown = await call(api('/nope'));
    expect(unknown.status).toBe(404);
    expect(unknown.body).toMatchObject({ success: false, error: { reason: 'not_found' } });
  });
});

describe('Fansly sessions and data', () => {
  it('binds the token to its user agent, and accepts it as the fansly-token cookie too', async () => {
    const token = await tokenOf('jane');
    const other = await get('/account/me', token, OTHER_UA);
    expect(other.status).toBe(401);
    expect(other.body.error.reason).toBe('user_agent_mismatch');
    const cookie = await call(api('/account/me'), { headers: { cookie: `fansly-token=${token}`, 'user-agent': UA } });
    expect(cookie.status).toBe(200);
    expect((await get('/account/me', 'nope')).body.error.reason).toBe('session_invalid');
  });

  it('rejects the token after logout and after a revoke', async () => {
    const token = await tokenOf('jane');
    const logout = await call(api('/logout'), { method: 'POST', headers: { authorization: token, 'user-agent': UA } });
    expect(logout.body).toEqual({ success: true, response: true });
    expect((await get('/account/me', token)).body.error.reason).toBe('session_invalid');

    const second = await tokenOf('jane');
    const revoke = await call(`${sandbox.url}/__sandbox/sessions/revoke`, { body: { platform: 'fansly', email: 'jane' } });
    expect(revoke.body).toEqual({ revoked: 1 });
    expect((await get('/account/me', second)).status).toBe(401);
  });

  it('expires +expire tokens after 30 s; +flaky alternates 502s', async () => {
    const token = await tokenOf('jane+expire');
    clock.advance(30_000);
    expect((await get('/account/me', token)).body.error.reason).toBe('session_expired');

    const flaky = await tokenOf('jane+flaky');
    const statuses = [];
    for (let n = 0; n < 3; n++) statuses.push((await get('/account/me', flaky)).status);
    expect(statuses).toEqual([502, 200, 502]);
  });

  it('lists message groups and messages, and sends a message', async () => {
    const token = await tokenOf('jane');
    const groups = await get('/messaging/groups?limit=5', token);
    expect(groups.body.response).toMatchObject({ hasMore: true, nextOffset: 5 });
    const group = groups.body.response.data[0];
    expect(group).toMatchObject({ groupId: expect.any(String), partner: { id: expect.any(String), username: expect.any(String) } });

    const messages = await get(`/message?groupId=${group.groupId}&limit=3`, token);
    expect(messages.body.response.data).toHaveLength(3);
    expect(messages.body.response.data[0]).toMatchObject({ groupId: group.groupId, createdAt: expect.any(Number) });

    const sent = await call(api('/message'), {
      headers: { authorization: token, 'user-agent': UA },
      body: { groupId: group.groupId, content: 'Hi there' },
    });
    expect(sent.status).toBe(200);
    expect(sent.body.response).toMatchObject({ content: 'Hi there', groupId: group.groupId });
    const after = await get(`/message?groupId=${group.groupId}&limit=1`, token);
    expect(after.body.response.data[0]).toEqual(sent.body.response);

    expect((await get('/message?groupId=1', token)).status).toBe(404);
    expect((await get('/message', token)).status).toBe(400);
  });
});
