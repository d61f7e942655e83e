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
import type { DriverContext, PlatformDriver, PlatformSession, StepResult } from '../../src/platforms/types.js';
import {
  SANDBOX_EMAIL_CODE,
  SANDBOX_LIMITS,
  SANDBOX_PASSWORD,
  SANDBOX_TOTP_SECRET,
  startSandbox,
  type RunningSandbox,
} from '../../src/sandbox/index.js';
import { startHttpProxy, type TestProxy } from '../support/proxies.js';
import { loadUndici } from '../../src/net/undici.js';

// Outbound HTTP loads undici on first use; these tests build dispatchers directly.
await loadUndici();

/** A streamed answer's body, parsed. */
const readJson = async (body: Readable): Promise<any> => JSON.parse(await text(body));

/** The Fansly driver against a real sandbox over real HTTP (and a real proxy). */

const UA = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.6 Safari/605.1.15';
const OTHER_UA = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148';
const totp = new TOTP({ secret: Secret.fromBase32(SANDBOX_TOTP_SECRET), algorithm: 'SHA1', digits: 6, period: 30 });

let time = Date.now();
let sandbox: RunningSandbox;
let driver: PlatformDriver;
const direct = createDispatcher(null);
const dispatchers: Dispatcher[] = [direct];

beforeAll(async () => {
  sandbox = await startSandbox({ port: 0, clock: () => time });
  driver = createDrivers({ onlyfansUrl: sandbox.url, fanslyUrl: sandbox.url }).fansly;
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

const stored = (resume: unknown): unknown => JSON.parse(JSON.stringify(resume));

function expectChallenge(result: StepResult, kind: string) {
  expect(result.type, JSON.stringify(result)).toBe('challenge');
  if (result.type !== 'challenge') throw new Error('unreachable');
  expect(result.kind).toBe(kind);
  return result;
}

function expectSuccess(result: StepResult) {
  expect(result.type, JSON.stringify(result)).toBe('success');
  if (result.type !== 'success') throw new Error('unreachable');
  return result;
}

const start = (login: string, ctx = context()) => driver.startLogin(ctx, { login, password: SANDBOX_PASSWORD });
const login = async (name: string, ctx = context()) => expectSuccess(await start(name, ctx));

async function control(path: string, body?: unknown): Promise<any> {
  const response = await request(`${sandbox.url}/__sandbox${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  expect(response.statusCode).toBe(200);
  return response.body.json();
}

describe('Fansly driver: login', () => {
  it('logs a plain username in: account id, token, device id, no cookies', async () => {
    const ctx = context();
    const { session, user } = await login('jane', ctx);
    expect(driver.platform).toBe('fansly');
    expect(user).toEqual({
      id: expect.stringMatching(/^\d{18}$/),
      username: 'jane',
      name: 'Jane',
      avatar: `${sandbox.url}/avatars/${user.id}.svg`,
    });
    expect(session).toEqual({ authId: user.id, cookies: '', xbc: ctx.deviceId, token: expect.any(String), userAgent: UA });
    expect(session.token!.length).toBeGreaterThan(20);
  });

  it('logs in by email address as the same account', async () => {
    const byName = await login('jane');
    const byEmail = await login('jane@sandbox.test');
    expect(byEmail.user.id).toBe(byName.user.id);
  });

  it('fails a wrong password with invalid_credentials and +locked with account_locked', async () => {
    expect(await driver.startLogin(context(), { login: 'jane', password: 'nope' })).toEqual({
      type: 'failure',
      code: 'invalid_credentials',
      message: 'Wrong email or password',
    });
    expect(await start('jane+locked')).toMatchObject({ type: 'failure', code: 'account_locked', message: 'This account is locked' });
  });

  it('relays the new-device email code (mailed at login): wrong, then right; the device is then trusted', async () => {
    const ctx = context();
    const challenge = expectChallenge(await start('jane+email', ctx), 'email');
    expect(challenge).toMatchObject({ emailSent: true, emailMask: 'j***@sandbox.test' });
    expect(challenge.phoneLast4).toBeUndefined();

    // Nothing to send: the same challenge comes back.
    const again = expectChallenge(await driver.requestEmailCode(ctx, stored(challenge.resume)), 'email');
    expect(again).toEqual(challenge);

    expect(await driver.submitCode(ctx, stored(challenge.resume), '000000')).toEqual({ type: 'wrong_code', resume: challenge.resume });
    expectSuccess(await driver.submitCode(ctx, stored(challenge.resume), SANDBOX_EMAIL_CODE));

    // Same device and address: trusted. A new device: checked again.
    await login('jane+email', { ...ctx });
    expectChallenge(await start('jane+email', context()), 'email');
  });

  it('relays the authenticator app with a real TOTP', async () => {
    const ctx = context();
    const challenge = expectChallenge(await start('jane+app', ctx), 'app');
    expect(challenge.emailSent).toBeUndefined();
    expect(await driver.submitCode(ctx, stored(challenge.resume), '111111')).toMatchObject({ type: 'wrong_code' });
    expectSuccess(await driver.submitCode(ctx, stored(challenge.resume), totp.generate({ timestamp: time })));
  });

  it('chains +email+app: email first, then the app', async () => {
    const ctx = context();
    const email = expectChallenge(await start('jane+email+app', ctx), 'email');
    const app = expectChallenge(await driver.submitCode(ctx, stored(email.resume), SANDBOX_EMAIL_CODE), 'app');
    // confirmSelfie has nothing to confirm on Fansly: the challenge stands.
    expect(await driver.confirmSelfie(ctx, stored(app.resume))).toEqual(app);
    expectSuccess(await driver.submitCode(context({ userAgent: OTHER_UA }), stored(app.resume), totp.generate({ timestamp: time })));
  });

  it('fails 2fa_failed once the platform drops the login, session_invalid for an expired one', async () => {
    const ctx = context();
    const challenge = expectChallenge(await start('jane+app', ctx), 'app');
    for (let i = 1; i < SANDBOX_LIMITS.wrongCodesPerLogin; i++) {
      expect(await driver.submitCode(ctx, challenge.resume, '000000')).toMatchObject({ type: 'wrong_code' });
    }
    expect(await driver.submitCode(ctx, challenge.resume, '000000')).toMatchObject({ type: 'failure', code: '2fa_failed' });

    const late = expectChallenge(await start('joe+app', ctx), 'app');
    time += SANDBOX_LIMITS.loginTtlMs + 1;
    expect(await driver.submitCode(ctx, late.resume, totp.generate({ timestamp: time }))).toMatchObject({
      type: 'failure',
      code: 'session_invalid',
    });
  });

  it('throws UpstreamUnavailableError on a +flaky 502', async () => {
    const ctx = context();
    const { session } = await login('jane+flaky', ctx); // call 1
    await expect(driver.validateSession(ctx, session)).rejects.toBeInstanceOf(UpstreamUnavailableError); // call 2
    expect((await driver.validateSession(ctx, session)).valid).toBe(true); // call 3
    await expect(start('jane+flaky', ctx)).rejects.toBeInstanceOf(UpstreamUnavailableError); // call 4
  });
});

describe('Fansly driver: sessions', () => {
  it('validates a live session, and a revoked one is session_invalid', async () => {
    const ctx = context();
    const { session, user } = await login('jane', ctx);
    expect(await driver.validateSession(ctx, session)).toEqual({ valid: true, user });
    await control('/sessions/revoke', { platform: 'fansly', email: 'jane' });
    expect(await driver.validateSession(ctx, session)).toEqual({ valid: false, code: 'session_invalid', message: 'Please refresh the page' });
  });

  it('binds the session to its user agent', async () => {
    const { session } = await login('jane');
    expect((await driver.validateSession(context({ userAgent: OTHER_UA }), session)).valid).toBe(true);
    expect(await driver.validateSession(context(), { ...session, userAgent: OTHER_UA })).toMatchObject({
      valid: false,
      code: 'session_invalid',
      message: expect.stringMatching(/another browser/),
    });
  });

  it('answers wrong_user when the token belongs to another account than the stored one', async () => {
    const jane = await login('jane');
    const joe = await login('joe');
    expect(await driver.validateSession(context(), { ...jane.session, authId: joe.user.id })).toEqual({
      valid: false,
      code: 'wrong_user',
      message: 'Wrong user',
    });
  });

  it('validates a minted session, by token or by its fansly-token cookie', async () => {
    const minted = await control('/sessions', { platform: 'fansly', email: 'jane+app', user_agent: OTHER_UA });
    const session: PlatformSession = { authId: minted.auth_id, cookies: '', xbc: minted.xbc, token: minted.token, userAgent: OTHER_UA };
    expect(await driver.validateSession(context(), session)).toEqual({
      valid: true,
      user: expect.objectContaining({ id: minted.user.id, username: 'jane' }),
    });
    const { token: _token, ...cookieOnly } = session;
    expect((await driver.validateSession(context(), { ...cookieOnly, cookies: minted.cookies })).valid).toBe(true);
    expect(await driver.validateSession(context(), { ...cookieOnly, cookies: '' })).toMatchObject({ valid: false, code: 'session_invalid' });
  });

  it('reports an expired +expire session as session_invalid, and logs out', async () => {
    const ctx = context();
    const expiring = await login('jane+expire', ctx);
    time += SANDBOX_LIMITS.expireSessionMs + 1;
    expect(await driver.validateSession(ctx, expiring.session)).toMatchObject({ valid: false, code: 'session_invalid', message: /expired/ });

    const { session } = await login('jane', ctx);
    await driver.logout(ctx, session);
    expect(await driver.validateSession(ctx, session)).toMatchObject({ valid: false, code: 'session_invalid' });
    await driver.logout(ctx, session);
  });
});

describe('Fansly driver: Access API requests', () => {
  it('forwards a data call and the send-message write', async () => {
    const ctx = context();
    const { session, user } = await login('jane', ctx);
    const groups = await driver.request(ctx, session, {
      method: 'GET',
      path: '/api/v1/messaging/groups?limit=3',
      headers: { authorization: 'Bearer fg_mine', 'x-real-ip': '203.0.113.9' },
    });
    expect(groups.status).toBe(200);
    expect(groups.headers['content-type']).toMatch(/^application\/json/);
    expect(groups.session).toBeUndefined();
    const page = (await readJson(groups.body));
    expect(page.response.data).toHaveLength(3);
    const groupId = page.response.data[2].groupId;

    const sent = await driver.request(ctx, session, {
      method: 'POST',
      path: '/api/v1/message',
      body: JSON.stringify({ groupId, content: 'Hi from FanGate' }),
    });
    expect(sent.status).toBe(200);
    expect((await readJson(sent.body)).response).toMatchObject({ groupId, senderId: user.id, content: 'Hi from FanGate' });

    const messages = await driver.request(ctx, session, { method: 'GET', path: `/api/v1/message?groupId=${groupId}&limit=1` });
    expect((await readJson(messages.body)).response.data[0].content).toBe('Hi from FanGate');

    const unauthorised = await driver.request(ctx, { ...session, token: 'nope' }, { method: 'GET', path: '/api/v1/account/me' });
    expect(unauthorised.status).toBe(401);
  });
});

describe('Fansly driver: network', () => {
  let proxy: TestProxy;
  beforeAll(async () => {
    proxy = await startHttpProxy({ localAddress: '127.0.0.2' });
  });
  afterAll(() => proxy.close());

  it('goes out through the proxy: the platform sees its address and the user agent', async () => {
    const spec: ProxySpec = { protocol: 'http', host: proxy.host, port: proxy.port };
    const dispatcher = createDispatcher(spec);
    dispatchers.push(dispatcher);
    const ctx = context({ dispatcher, proxy: spec });
    const { session } = await login('proxied', ctx);
    await driver.request(ctx, session, { method: 'GET', path: '/api/v1/messaging/groups' });
    const { data } = await control('/requests?platform=fansly&email=proxied');
    expect(data).toHaveLength(2);
    for (const entry of data) expect(entry).toMatchObject({ remote_address: '127.0.0.2', user_agent: UA });
  });

  it('throws ProxyError for a dead proxy port', async () => {
    const server = net.createServer().listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as net.AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    for (const protocol of ['http', 'socks5'] as const) {
      const spec: ProxySpec = { protocol, host: '127.0.0.1', port };
      const dispatcher = createDispatcher(spec);
      dispatchers.push(dispatcher);
      await expect(start('jane', context({ dispatcher, proxy: spec }))).rejects.toBeInstanceOf(ProxyError);
    }
  });
});
