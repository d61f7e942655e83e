import { networkInterfaces } from 'node:os';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Agent } from 'undici';
import { startSandbox, type RunningSandbox } from '../../src/sandbox/index.js';
import { OnlyFans, UA, call, startTestSandbox } from './helpers.js';

let sandbox: RunningSandbox;
let of: OnlyFans;

beforeAll(async () => {
  ({ sandbox } = await startTestSandbox());
  of = new OnlyFans(sandbox.url);
});
afterAll(() => sandbox.close());
beforeEach(() => sandbox.reset());

const control = (path: string) => `${sandbox.url}/__sandbox${path}`;

describe('control API', () => {
  it('mints an OnlyFans session a browser would hold', async () => {
    const minted = await call(control('/sessions'), {
      body: { platform: 'onlyfans', email: 'jane+sms@sandbox.test', user_agent: UA },
    });
    expect(minted.status).toBe(200);
    expect(minted.body).toEqual({
      auth_id: expect.stringMatching(/^\d{12}$/),
      cookies: expect.stringMatching(/^auth_id=\d+; sess=\w+; fp=\w+$/),
      xbc: expect.any(String),
      user_agent: UA,
      user: { id: minted.body.auth_id, username: 'jane' },
    });
    // No challenge for a minted session, and the same id as a login.
    const me = await call(of.url('/users/me'), {
      headers: { cookie: minted.body.cookies, 'x-bc': minted.body.xbc, 'user-agent': UA, 'user-id': minted.body.auth_id },
    });
    expect(me.status).toBe(200);
    expect(String(me.body.id)).toBe(minted.body.auth_id);
    const sms = await of.login('jane+sms@sandbox.test');
    expect(sms.body.status).toBe('challenge');
  });

  it('mints a Fansly session (token as `token` and as the fansly-token cookie)', async () => {
    const minted = await call(control('/sessions'), { body: { platform: 'fansly', email: 'jane+app', user_agent: UA } });
    expect(minted.status).toBe(200);
    expect(minted.body).toMatchObject({
      auth_id: expect.stringMatching(/^\d{18}$/),
      token: expect.any(String),
      user_agent: UA,
      user: { id: minted.body.auth_id, username: 'jane' },
    });
    expect(minted.body.cookies).toBe(`fansly-token=${minted.body.token}`);
    const me = await call(`${sandbox.url}/api/v1/account/me`, { headers: { authorization: minted.body.token, 'user-agent': UA } });
    expect(me.body.response.account.id).toBe(minted.body.auth_id);
  });

  it('logs the upstream requests of a user, newest last', async () => {
    const session = await of.session('jane@sandbox.test');
    await of.get('/users/me', session, { 'user-agent': 'Other/1.0' });
    await of.get('/chats?limit=2', session);
    const log = await call(control('/requests?email=jane@sandbox.test'));
    expect(log.body.data.map((entry: { method: string; path: string; status: number; user_agent: string }) => [
      entry.method,
      entry.path,
      entry.status,
      entry.user_agent,
    ])).toEqual([
      ['POST', '/api2/v2/users/login', 200, UA],
      ['GET', '/api2/v2/users/me', 401, 'Other/1.0'],
      ['GET', '/api2/v2/chats?limit=2', 200, UA],
    ]);
    expect((await call(control('/requests?email=nobody@sandbox.test'))).body).toEqual({ data: [] });
  });

  it('resets users, sessions and counters', async () => {
    const session = await of.session('jane@sandbox.test');
    const reset = await call(control('/reset'), { method: 'POST' });
    expect(reset.status).toBe(200);
    expect((await of.get('/users/me', session)).status).toBe(401);
    expect((await call(control('/requests?email=jane@sandbox.test'))).body).toEqual({ data: [] });
    // A bodyless POST with a JSON content type is fine too.
    const withType = await call(control('/reset'), { method: 'POST', headers: { 'content-type': 'application/json' } });
    expect(withType.status).toBe(200);
  });

  it('answers bad control requests with 4xx JSON', async () => {
    const cases: Array<[string, Parameters<typeof call>[1], number]> = [
      ['/sessions', { raw: '{"platform":' }, 400],
      ['/sessions', { body: { platform: 'onlyfans', email: 'jane@sandbox.test' } }, 400],
      ['/sessions', { body: { platform: 'myspace', email: 'jane@sandbox.test', user_agent: UA } }, 400],
      ['/sessions', { body: { platform: 'onlyfans', email: 'jane@gmail.com', user_agent: UA } }, 400],
      ['/sessions', { body: { platform: 'onlyfans', email: ['jane@sandbox.test'], user_agent: UA } }, 400],
      ['/sessions', { raw: 'email=jane', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, 415],
      ['/sessions/revoke', { body: {} }, 400],
      ['/requests', {}, 400],
      ['/face/abc/complete', { method: 'POST' }, 404],
      ['/face/not a token!/complete', { method: 'POST' }, 400],
      ['/nothing', {}, 404],
    ];
    for (const [path, options, status] of cases) {
      const reply = await call(control(path), options);
      expect(reply.status, `${path} ${JSON.stringify(options)}`).toBe(status);
      expect(reply.body.error).toMatchObject({ code: status, reason: expect.any(String), message: expect.any(String) });
    }
  });

  const external = Object.values(networkInterfaces())
    .flat()
    .find((info) => info && info.family === 'IPv4' && !info.internal)?.address;
  // Needs an address that is not loopback to call from; reported as skipped where there is none.
  it.skipIf(!external)('refuses callers that are not on loopback', async () => {
    if (!external) throw new Error('unreachable');
    const open = await startSandbox({ host: '0.0.0.0' });
    const agent = new Agent({ connect: { localAddress: external } });
    try {
      const url = `http://${external}:${open.port}/__sandbox/reset`;
      const reply = await call(url, { method: 'POST', dispatcher: agent });
      expect(reply.status).toBe(403);
      expect(reply.body.error.reason).toBe('forbidden');
      // The platform itself answers anyone.
      expect((await call(`http://${external}:${open.port}/api2/v2/users/me`, { dispatcher: agent })).status).toBe(401);
    } finally {
      await agent.close();
      await open.close();
    }
  });

  it('starts with a pino logger, and fails cleanly on a taken port', async () => {
    const logged = await startSandbox({ logger: pino({ level: 'silent' }) });
    try {
      expect((await call(`${logged.url}/api2/v2/users/me`)).status).toBe(401);
      await expect(startSandbox({ port: logged.port })).rejects.toThrow(/EADDRINUSE/);
    } finally {
      await logged.close();
    }
  });
});
