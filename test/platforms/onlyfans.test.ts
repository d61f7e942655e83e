import type { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { Secret, TOTP } from 'otpauth';
import { request, type Dispatcher } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createDispatcher } from '../../src/net/dispatcher.js';
import { ProxyError, UpstreamUnavailableError } from '../../src/net/errors.js';
import type { ProxySpec } from '../../src/net/proxy-config.js';
import { createDrivers } from '../../src/platforms/index.js';
import { createOnlyFansDriver } from '../../src/platforms/onlyfans.js';
import type { DriverContext, PlatformDriver, PlatformSession, StepResult } from '../../src/platforms/types.js';
import {
  SANDBOX_EMAIL_CODE,
  SANDBOX_LIMITS,
  SANDBOX_PASSWORD,
  SANDBOX_PHONE_LAST4,
  SANDBOX_SMS_CODE,
  SANDBOX_TOTP_SECRET,
  startSandbox,
  type RunningSandbox,
} from '../../src/sandbox/index.js';
import { startHttpProxy, startSocksProxy, type TestProxy } from '../support/proxies.js';
import { loadUndici } from '../../src/net/undici.js';

// Outbound HTTP loads undici on first use; these tests build dispatchers directly.
await loadUndici();

/** A streamed answer's body, parsed. */
const readJson = async (body: Readable): Promise<any> => JSON.parse(await text(body));

/** The OnlyFans driver against a real sandbox over real HTTP (and real proxies). */

const UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36';
const OTHER_UA = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148';
const totp = new TOTP({ secret: Secret.fromBase32(SANDBOX_TOTP_SECRET), algorithm: 'SHA1', digits: 6, period: 30 });

let time = Date.now();
let sandbox: RunningSandbox;
let driver: PlatformDriver;
const direct = createDispatcher(null);
const dispatchers: Dispatcher[] = [direct];

beforeAll(async () => {
  sandbox = await startSandbox({ port: 0, clock: () => time });
  driver = createDrivers({ onlyfansUrl: sandbox.url, fanslyUrl: sandbox.url }).onlyfans;
});
afterAll(async () => {
  await Promise.all(dispatchers.map((dispatcher) => dispatcher.destroy()));
  await sandbox.close();
});
beforeEach(() => {
  time = Date.now();
  sandbox.reset();
});

function context(overrides: Partial<DriverContext> = {}): DriverContext {
  return { dispatcher: direct, userAgent: UA, deviceId: randomBytes(20).toString('hex'), ...overrides };
}

/** Resume state as it comes back from the encrypted column: plain JSON. */
const stored = (resume: unknown): unknown => JSON.parse(JSON.stringify(resume));

function expectChallenge(result: StepResult, kind: string) {
  expect(result.type).toBe('challenge');
  if (result.type !== 'challenge') throw new Error('unreachable');
  expect(result.kind).toBe(kind);
  return result;
}

function expectSuccess(result: StepResult) {
  expect(result.type, JSON.stringify(result)).toBe('success');
  if (result.type !== 'success') throw new Error('unreachable');
  return result;
}

async function login(email: string, ctx = context()) {
  return expectSuccess(await driver.startLogin(ctx, { login: email, password: SANDBOX_PASSWORD }));
}

async function control(path: string, body?: unknown): Promise<any> {
  const response = await request(`${sandbox.url}/__sandbox${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  expect(response.statusCode).toBe(200);
  return response.body.json();
}

const requestLog = async (email: string) =>
  (await control(`/requests?platform=onlyfans&email=${encodeURIComponent(email)}`)).data as {
    path: string;
    remote_address: string;
    user_agent: string;
    status: number;
  }[];

async function deadPort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('OnlyFans driver: login', () => {
  it('logs a plain identity in: cookies auth_id, sess, fp, the x-bc of the device and the user agent', async () => {
    const ctx = context();
    const { session, user } = await login('jane@sandbox.test', ctx);
    expect(user).toEqual({
      id: expect.stringMatching(/^\d{12}$/),
      username: 'jane',
      name: 'Jane',
      avatar: `${sandbox.url}/avatars/${user.id}.svg`,
    });
    expect(session).toEqual({
      authId: user.id,
      cookies: expect.stringMatching(new RegExp(`^auth_id=${user.id}; sess=[0-9a-f]{32}; fp=[0-9a-f]{32}$`)),
      xbc: ctx.deviceId,
      userAgent: UA,
    });
    expect(driver.platform).toBe('onlyfans');

    // The same device keeps the same fp cookie across logins (a browser keeps its cookies).
    const again = await login('jane@sandbox.test', { ...ctx });
    const fp = (cookies: string) => /fp=(\w+)/.exec(cookies)![1];
    expect(fp(again.session.cookies)).toBe(fp(session.cookies));
    expect(again.session.cookies).not.toBe(session.cookies);
  });

  it('fails a wrong password or a foreign address with invalid_credentials', async () => {
    for (const [email, password] of [
      ['jane@sandbox.test', 'nope'],
      ['jane@example.com', SANDBOX_PASSWORD],
    ] as const) {
      expect(await driver.startLogin(context(), { login: email, password })).toEqual({
        type: 'failure',
        code: 'invalid_credentials',
        message: 'Wrong email or password',
      });
    }
  });

  it('fails +locked with account_locked, and the hourly lock too', async () => {
    expect(await driver.startLogin(context(), { login: 'jane+locked@sandbox.test', password: SANDBOX_PASSWORD })).toMatchObject({
      type: 'failure',
      code: 'account_locked',
    });
    for (let i = 0; i < SANDBOX_LIMITS.loginsPerWindow; i++) await login('busy@sandbox.test');
    expect(await driver.startLogin(context(), { login: 'busy@sandbox.test', password: SANDBOX_PASSWORD })).toMatchObject({
      type: 'failure',
      code: 'account_locked',
      message: expect.stringMatching(/Suspicious activity/),
    });
  });

  it('relays +sms (…4242): a wrong code, then the right one', async () => {
    const ctx = context();
    const start = expectChallenge(await driver.startLogin(ctx, { login: 'jane+sms@sandbox.test', password: SANDBOX_PASSWORD }), 'sms');
    expect(start.phoneLast4).toBe(SANDBOX_PHONE_LAST4);
    expect(start.emailSent).toBeUndefined();

    const wrong = await driver.submitCode(ctx, stored(start.resume), '000000');
    expect(wrong).toEqual({ type: 'wrong_code', resume: start.resume });
    const done = expectSuccess(await driver.submitCode(ctx, stored(wrong.type === 'wrong_code' ? wrong.resume : null), SANDBOX_SMS_CODE));
    expect(done.user.username).toBe('jane');
    expect(done.session.xbc).toBe(ctx.deviceId);
    expect((await driver.validateSession(ctx, done.session)).valid).toBe(true);
  });

  it('relays +app with a real TOTP of the sandbox secret', async () => {
    const ctx = context();
    const start = expectChallenge(await driver.startLogin(ctx, { login: 'jane+app@sandbox.test', password: SANDBOX_PASSWORD }), 'app');
    expect(start.phoneLast4).toBeUndefined();
    expect(await driver.submitCode(ctx, stored(start.resume), '111111')).toMatchObject({ type: 'wrong_code' });
    expectSuccess(await driver.submitCode(ctx, stored(start.resume), totp.generate({ timestamp: time })));
  });

  it('relays +email: the code is only good after requestEmailCode; the address is then trusted', async () => {
    const ctx = context();
    const start = expectChallenge(await driver.startLogin(ctx, { login: 'jane+email@sandbox.test', password: SANDBOX_PASSWORD }), 'email');
    expect(start).toMatchObject({ emailMask: 'j***@sandbox.test', emailSent: false });

    expect(await driver.submitCode(ctx, stored(start.resume), SANDBOX_EMAIL_CODE)).toMatchObject({ type: 'wrong_code' });
    const sent = expectChallenge(await driver.requestEmailCode(ctx, stored(start.resume)), 'email');
    expect(sent).toMatchObject({ emailMask: 'j***@sandbox.test', emailSent: true });
    expectSuccess(await driver.submitCode(ctx, stored(sent.resume), SANDBOX_EMAIL_CODE));

    // Same address: no device check any more.
    await login('jane+email@sandbox.test');
  });

  it('relays +face: pending until completed on the platform, then the session', async () => {
    const ctx = context();
    const start = expectChallenge(await driver.startLogin(ctx, { login: 'jane+face@sandbox.test', password: SANDBOX_PASSWORD }), 'face');
    expect(start.faceUrl).toMatch(new RegExp(`^${sandbox.url}/face/[\\w-]+$`));

    const pending = expectChallenge(await driver.confirmSelfie(ctx, stored(start.resume)), 'face');
    expect(pending.faceUrl).toBe(start.faceUrl);
    // A code sent while the selfie is pending answers the selfie step, not an error.
    expectChallenge(await driver.submitCode(ctx, stored(start.resume), '123456'), 'face');

    const token = start.faceUrl!.split('/').pop()!;
    expect(await control(`/face/${token}/complete`, {})).toMatchObject({ status: 'completed' });
    expectSuccess(await driver.confirmSelfie(ctx, stored(pending.resume)));
  });

  it('chains +sms+email: email device check first, then the SMS code', async () => {
    const ctx = context();
    const first = expectChallenge(await driver.startLogin(ctx, { login: 'jane+sms+email@sandbox.test', password: SANDBOX_PASSWORD }), 'email');
    const sent = expectChallenge(await driver.requestEmailCode(ctx, stored(first.resume)), 'email');
    const sms = expectChallenge(await driver.submitCode(ctx, stored(sent.resume), SANDBOX_EMAIL_CODE), 'sms');
    expect(sms.phoneLast4).toBe(SANDBOX_PHONE_LAST4);
    expect(await driver.submitCode(ctx, stored(sms.resume), '999999')).toMatchObject({ type: 'wrong_code' });
    const done = expectSuccess(await driver.submitCode(ctx, stored(sms.resume), SANDBOX_SMS_CODE));
    expect(done.user.username).toBe('jane');
  });

  it('chains +face+app: selfie, then the authenticator code', async () => {
    const ctx = context();
    const face = expectChallenge(await driver.startLogin(ctx, { login: 'jane+face+app@sandbox.test', password: SANDBOX_PASSWORD }), 'face');
    await control(`/face/${face.faceUrl!.split('/').pop()}/complete`, {});
    const app = expectChallenge(await driver.confirmSelfie(ctx, stored(face.resume)), 'app');
    expectSuccess(await driver.submitCode(ctx, stored(app.resume), totp.generate({ timestamp: time })));
  });

  it('fails 2fa_failed when the platform drops the login after too many wrong codes', async () => {
    const ctx = context();
    const start = expectChallenge(await driver.startLogin(ctx, { login: 'jane+sms@sandbox.test', password: SANDBOX_PASSWORD }), 'sms');
    for (let i = 1; i < SANDBOX_LIMITS.wrongCodesPerLogin; i++) {
      expect(await driver.submitCode(ctx, start.resume, '000000')).toMatchObject({ type: 'wrong_code' });
    }
    expect(await driver.submitCode(ctx, start.resume, '000000')).toMatchObject({ type: 'failure', code: '2fa_failed' });
    // The login is gone on the platform.
    expect(await driver.submitCode(ctx, start.resume, SANDBOX_SMS_CODE)).toMatchObject({ type: 'failure', code: 'session_invalid' });
  });

  it('fails session_invalid when the login token expired on the platform', async () => {
    const ctx = context();
    const start = expectChallenge(await driver.startLogin(ctx, { login: 'jane+sms@sandbox.test', password: SANDBOX_PASSWORD }), 'sms');
    time += SANDBOX_LIMITS.loginTtlMs + 1;
    expect(await driver.submitCode(ctx, start.resume, SANDBOX_SMS_CODE)).toMatchObject({
      type: 'failure',
      code: 'session_invalid',
      message: expect.stringMatching(/log in again/),
    });
  });

  it('continues a login with the user agent it started with', async () => {
    const start = expectChallenge(await driver.startLogin(context(), { login: 'jane+sms@sandbox.test', password: SANDBOX_PASSWORD }), 'sms');
    // Another worker, another context object: the resume state is all it needs.
    const done = expectSuccess(await driver.submitCode(context({ userAgent: OTHER_UA }), stored(start.resume), SANDBOX_SMS_CODE));
    expect(done.session.userAgent).toBe(UA);
  });

  it('refuses a resume state that is not its own', async () => {
    await expect(driver.submitCode(context(), { platform: 'fansly', token: 'x' }, '123456')).rejects.toThrow(TypeError);
  });

  it('throws UpstreamUnavailableError on a +flaky 502 (every second call), which a retry gets past', async () => {
    const ctx = context();
    const { session } = await login('jane+flaky@sandbox.test', ctx); // call 1
    await expect(driver.validateSession(ctx, session)).rejects.toBeInstanceOf(UpstreamUnavailableError); // call 2
    expect(await driver.validateSession(ctx, session)).toMatchObject({ valid: true }); // call 3
    await expect(driver.startLogin(ctx, { login: 'jane+flaky@sandbox.test', password: SANDBOX_PASSWORD })).rejects.toThrow(/502/); // 4
    await login('jane+flaky@sandbox.test', ctx); // call 5
  });
});

describe('OnlyFans driver: sessions', () => {
  it('validates a live session and reports a revoked one as session_invalid', async () => {
    const ctx = context();
    const { session, user } = await login('jane@sandbox.test', ctx);
    expect(await driver.validateSession(ctx, session)).toEqual({ valid: true, user });

    expect(await control('/sessions/revoke', { platform: 'onlyfans', email: 'jane@sandbox.test' })).toEqual({ revoked: 1 });
    expect(await driver.validateSession(ctx, session)).toEqual({
      valid: false,
      code: 'session_invalid',
      message: 'Please refresh the page',
    });
  });

  it('sends the session with its own user agent; another one is rejected', async () => {
    const { session } = await login('jane@sandbox.test');
    // The context's user agent does not matter for a session request...
    expect((await driver.validateSession(context({ userAgent: OTHER_UA }), session)).valid).toBe(true);
    // ...the session's does.
    expect(await driver.validateSession(context(), { ...session, userAgent: OTHER_UA })).toMatchObject({
      valid: false,
      code: 'session_invalid',
      message: expect.stringMatching(/another browser/),
    });
  });

  it('answers wrong_user when auth_id does not match the session', async () => {
    const ctx = context();
    const jane = await login('jane@sandbox.test', ctx);
    const joe = await login('joe@sandbox.test', ctx);
    // The stored user id is another user's (sent as the user-id header).
    expect(await driver.validateSession(ctx, { ...jane.session, authId: joe.user.id })).toEqual({
      valid: false,
      code: 'wrong_user',
      message: 'Wrong user',
    });
    // The auth_id cookie is another user's.
    const cookies = jane.session.cookies.replace(`auth_id=${jane.user.id}`, `auth_id=${joe.user.id}`);
    expect(await driver.validateSession(ctx, { ...jane.session, cookies })).toMatchObject({ valid: false, code: 'wrong_user' });
  });

  it('validates a session minted like a creator browser holds it (raw_data / import)', async () => {
    const minted = await control('/sessions', { platform: 'onlyfans', email: 'jane+sms@sandbox.test', user_agent: OTHER_UA });
    const session: PlatformSession = { authId: minted.auth_id, cookies: minted.cookies, xbc: minted.xbc, userAgent: minted.user_agent };
    const check = await driver.validateSession(context(), session);
    expect(check).toEqual({ valid: true, user: expect.objectContaining({ id: minted.user.id, username: 'jane', name: 'Jane' }) });
    // Without an x-bc (an import that lacks it) the cookies alone still work.
    expect((await driver.validateSession(context(), { ...session, xbc: '' })).valid).toBe(true);
    // A wrong x-bc is another device.
    expect(await driver.validateSession(context(), { ...session, xbc: 'f'.repeat(40) })).toMatchObject({
      valid: false,
      code: 'session_invalid',
    });
  });

  it('reports an expired +expire session as session_invalid', async () => {
    const ctx = context();
    const { session } = await login('jane+expire@sandbox.test', ctx);
    expect((await driver.validateSession(ctx, session)).valid).toBe(true);
    time += SANDBOX_LIMITS.expireSessionMs + 1;
    expect(await driver.validateSession(ctx, session)).toMatchObject({ valid: false, code: 'session_invalid', message: /expired/ });
  });

  it('returns the rotated session when the platform sets a new sess', async () => {
    const ctx = context();
    const { session } = await login('jane@sandbox.test', ctx);
    time += SANDBOX_LIMITS.sessRotateAfterMs;
    const check = await driver.validateSession(ctx, session);
    if (!check.valid) throw new Error(check.message);
    expect(check.session).toBeDefined();
    const rotated = check.session!;
    expect(rotated.authId).toBe(session.authId);
    expect(rotated.cookies).not.toBe(session.cookies);
    expect(rotated.cookies.replace(/sess=\w+/, '')).toBe(session.cookies.replace(/sess=\w+/, ''));

    time += SANDBOX_LIMITS.sessGraceMs + 1;
    expect((await driver.validateSession(ctx, session)).valid).toBe(false);
    const again = await driver.validateSession(ctx, rotated);
    expect(again).toMatchObject({ valid: true });
    expect(again.valid && again.session).toBeFalsy();

    // request() hands rotated cookies back too.
    time += SANDBOX_LIMITS.sessRotateAfterMs;
    const response = await driver.request(ctx, rotated, { method: 'GET', path: '/api2/v2/users/me' });
    expect(response.status).toBe(200);
    expect(response.session?.cookies).toMatch(/^auth_id=\d+; sess=[0-9a-f]{32}; fp=[0-9a-f]{32}$/);
    expect(response.session?.cookies).not.toBe(rotated.cookies);
    expect(response.headers['set-cookie']).toBeUndefined();
  });

  it('keeps other cookies of an imported browser string when sess rotates', async () => {
    const minted = await control('/sessions', { platform: 'onlyfans', email: 'jane@sandbox.test', user_agent: UA });
    const session: PlatformSession = { authId: minted.auth_id, cookies: `lang=en; ${minted.cookies}; st=abc`, xbc: minted.xbc, userAgent: UA };
    time += SANDBOX_LIMITS.sessRotateAfterMs;
    const check = await driver.validateSession(context(), session);
    expect(check.valid && check.session?.cookies).toMatch(/^lang=en; auth_id=\d+; sess=[0-9a-f]{32}; fp=\w+; st=abc$/);
  });

  it('logs out: the session is dead afterwards', async () => {
    const ctx = context();
    const { session } = await login('jane@sandbox.test', ctx);
    await driver.logout(ctx, session);
    expect(await driver.validateSession(ctx, session)).toMatchObject({ valid: false, code: 'session_invalid' });
    await driver.logout(ctx, session); // best effort: a dead session is not an error
  });
});

describe('OnlyFans driver: Access API requests', () => {
  it('forwards a data call with the session and returns status, clean headers and body', async () => {
    const ctx = context();
    const { session, user } = await login('jane@sandbox.test', ctx);
    const response = await driver.request(ctx, session, {
      method: 'GET',
      path: '/api2/v2/chats?limit=5',
      // The caller cannot override the session, the browser or leak its address.
      headers: { Cookie: 'sess=evil', 'User-Agent': 'curl/8', 'X-Forwarded-For': '203.0.113.9', Accept: 'application/json' },
    });
    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    expect(Object.keys(response.headers).every((name) => name === name.toLowerCase())).toBe(true);
    expect(response.headers.connection).toBeUndefined();
    expect(response.headers['keep-alive']).toBeUndefined();
    expect(response.session).toBeUndefined();
    const page = (await readJson(response.body));
    expect(page.list).toHaveLength(5);
    expect(page.hasMore).toBe(true);

    const log = await requestLog('jane@sandbox.test');
    expect(log.at(-1)).toMatchObject({ path: '/api2/v2/chats?limit=5', user_agent: UA, status: 200 });
    expect(user.id).toMatch(/^\d+$/);
  });

  it('sends a message (write) and sees it at the top of the chats', async () => {
    const ctx = context();
    const { session, user } = await login('jane@sandbox.test', ctx);
    const chats = (await readJson((await driver.request(ctx, session, { method: 'GET', path: '/api2/v2/chats?limit=3' })).body));
    const last = chats.list[2].withUser.id;

    const sent = await driver.request(ctx, session, {
      method: 'post',
      path: `/api2/v2/chats/${last}/messages`,
      body: JSON.stringify({ text: 'Hello from FanGate' }),
    });
    expect(sent.status).toBe(200);
    expect((await readJson(sent.body))).toMatchObject({ text: 'Hello from FanGate', fromUser: { id: Number(user.id) } });

    const after = (await readJson((await driver.request(ctx, session, { method: 'GET', path: '/api2/v2/chats?limit=1' })).body));
    expect(after.list[0]).toMatchObject({ withUser: { id: last }, lastMessage: { text: 'Hello from FanGate' } });
  });

  it("returns the platform's errors as answers, not exceptions", async () => {
    const ctx = context();
    const { session } = await login('jane@sandbox.test', ctx);
    const missing = await driver.request(ctx, session, { method: 'GET', path: '/api2/v2/chats/1/messages' });
    expect(missing.status).toBe(404);
    expect((await readJson(missing.body)).error.reason).toBe('not_found');
    const revoked = await driver.request(ctx, { ...session, userAgent: OTHER_UA }, { method: 'GET', path: '/api2/v2/users/me' });
    expect(revoked.status).toBe(401);
  });

  it('never leaves the platform origin', async () => {
    const { session } = await login('jane@sandbox.test');
    for (const path of ['//example.com/x', 'http://example.com/x', 'users/me', '/a\r\nb']) {
      await expect(driver.request(context(), session, { method: 'GET', path })).rejects.toThrow(TypeError);
    }
  });
});

describe('OnlyFans driver: network', () => {
  const proxies: TestProxy[] = [];
  afterAll(() => Promise.all(proxies.map((proxy) => proxy.close())));

  async function through(kind: 'http' | 'socks5') {
    const proxy = kind === 'http' ? await startHttpProxy({ localAddress: '127.0.0.2' }) : await startSocksProxy({ localAddress: '127.0.0.2' });
    proxies.push(proxy);
    const spec: ProxySpec = { protocol: kind, host: proxy.host, port: proxy.port };
    const dispatcher = createDispatcher(spec);
    dispatchers.push(dispatcher);
    return { proxy, ctx: context({ dispatcher, proxy: spec }) };
  }

  it.each(['http', 'socks5'] as const)('goes out through a %s proxy: the platform sees its address and the user agent', async (kind) => {
    const { proxy, ctx } = await through(kind);
    const email = `proxied-${kind}+email@sandbox.test`;
    // A new address for the email gate: the check is raised even though the process is on 127.0.0.1.
    const start = expectChallenge(await driver.startLogin(ctx, { login: email, password: SANDBOX_PASSWORD }), 'email');
    const sent = await driver.requestEmailCode(ctx, start.resume);
    const { session } = expectSuccess(await driver.submitCode(ctx, sent.type === 'challenge' ? sent.resume : null, SANDBOX_EMAIL_CODE));
    expect((await driver.validateSession(ctx, session)).valid).toBe(true);
    await driver.request(ctx, session, { method: 'GET', path: '/api2/v2/subscriptions/subscribers?limit=2' });

    const log = await requestLog(email);
    expect(log.length).toBe(5);
    for (const entry of log) expect(entry).toMatchObject({ remote_address: '127.0.0.2', user_agent: UA });
    expect(proxy.connections).toBeGreaterThan(0);

    // Directly from 127.0.0.1 the address is new again.
    expectChallenge(await driver.startLogin(context(), { login: email, password: SANDBOX_PASSWORD }), 'email');
  });

  it('throws ProxyError for a dead HTTP or SOCKS5 proxy port', async () => {
    const port = await deadPort();
    for (const protocol of ['http', 'socks5'] as const) {
      const spec: ProxySpec = { protocol, host: '127.0.0.1', port };
      const dispatcher = createDispatcher(spec);
      dispatchers.push(dispatcher);
      const err = await driver
        .startLogin(context({ dispatcher, proxy: spec }), { login: 'jane@sandbox.test', password: SANDBOX_PASSWORD })
        .catch((error: unknown) => error);
      expect(err, protocol).toBeInstanceOf(ProxyError);
      expect(err).toMatchObject({ code: 'proxy_error', failure: 'unreachable' });
    }
  });

  it('throws UpstreamUnavailableError when the platform cannot be reached', async () => {
    const offline = createOnlyFansDriver({ baseUrl: `http://127.0.0.1:${await deadPort()}` });
    const err = await offline.startLogin(context(), { login: 'jane@sandbox.test', password: SANDBOX_PASSWORD }).catch((error: unknown) => error);
    expect(err).toBeInstanceOf(UpstreamUnavailableError);
  });

  it('rethrows a cancellation as it is (+slow, aborted)', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const err = await driver
      .startLogin(context({ signal: controller.signal }), { login: 'jane+slow@sandbox.test', password: SANDBOX_PASSWORD })
      .catch((error: unknown) => error);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(UpstreamUnavailableError);
    expect(err).not.toBeInstanceOf(ProxyError);
    expect((err as Error).name).toMatch(/Abort/);
  });
});
