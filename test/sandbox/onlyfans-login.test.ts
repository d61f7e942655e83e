import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Agent } from 'undici';
import {
  SANDBOX_EMAIL_CODE,
  SANDBOX_PHONE_LAST4,
  SANDBOX_SMS_CODE,
  sandboxTotp,
  type RunningSandbox,
} from '../../src/sandbox/index.js';
import { ManualClock, OTHER_UA, OnlyFans, call, cookiesOf, startTestSandbox } from './helpers.js';

let sandbox: RunningSandbox;
let clock: ManualClock;
let of: OnlyFans;

beforeAll(async () => {
  ({ sandbox, clock } = await startTestSandbox());
  of = new OnlyFans(sandbox.url);
});
afterAll(() => sandbox.close());
beforeEach(() => sandbox.reset());

describe('OnlyFans login', () => {
  it('logs a plain identity in with cookies auth_id, sess, fp and the x-bc value', async () => {
    const reply = await of.login('jane@sandbox.test');
    expect(reply.status).toBe(200);
    expect(reply.body.status).toBe('authenticated');
    expect(reply.body.user).toMatchObject({ username: 'jane', name: 'Jane' });
    const cookies = cookiesOf(reply.setCookies);
    expect(Object.keys(cookies).sort()).toEqual(['auth_id', 'fp', 'sess']);
    expect(cookies.auth_id).toBe(String(reply.body.user.id));
    expect(reply.body.x_bc).toMatch(/\w{8,}/);

    const me = await of.get('/users/me', of.sessionOf(reply));
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ id: reply.body.user.id, username: 'jane', name: 'Jane' });
    expect(me.body.avatar).toMatch(new RegExp(`^${sandbox.url}/avatars/\\d+\\.svg$`));
    expect((await call(me.body.avatar)).status).toBe(200);
  });

  it('refuses any password but "password", and addresses outside @sandbox.test', async () => {
    for (const [email, password] of [
      ['jane@sandbox.test', 'wrong'],
      ['jane@example.com', 'password'],
    ] as const) {
      const reply = await of.login(email, password);
      expect(reply.status).toBe(401);
      expect(reply.body.error).toMatchObject({ code: 401, reason: 'invalid_credentials', message: 'Wrong email or password' });
    }
  });

  it('fails +locked with account_locked (after the password check)', async () => {
    const locked = await of.login('jane+locked@sandbox.test');
    expect(locked.status).toBe(403);
    expect(locked.body.error.reason).toBe('account_locked');
    expect((await of.login('jane+locked@sandbox.test', 'nope')).body.error.reason).toBe('invalid_credentials');
  });

  it('asks +sms for the SMS code 123456 sent to …4242 and counts wrong codes', async () => {
    const start = await of.login('jane+sms@sandbox.test');
    expect(start.status).toBe(200);
    expect(start.body).toMatchObject({
      status: 'challenge',
      challenge: { type: 'sms', phone_last4: SANDBOX_PHONE_LAST4 },
      attempts_remaining: 10,
    });
    expect(start.setCookies).toEqual([]);
    const token = start.body.login_token;

    const wrong = await of.post('/users/login/otp', { login_token: token, code: '000000' });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error).toMatchObject({ reason: 'wrong_code', attempts_remaining: 9 });

    const done = await of.post('/users/login/otp', { login_token: token, code: SANDBOX_SMS_CODE });
    expect(done.status).toBe(200);
    expect(done.body.status).toBe('authenticated');
    expect(cookiesOf(done.setCookies).sess).toBeTruthy();
    expect((await of.get('/users/me', of.sessionOf(done))).status).toBe(200);

    // A finished login token is gone.
    const again = await of.post('/users/login/otp', { login_token: token, code: SANDBOX_SMS_CODE });
    expect(again.status).toBe(401);
    expect(again.body.error.reason).toBe('login_token_invalid');
  });

  it('asks +app for a TOTP of the sandbox secret, at the sandbox clock', async () => {
    const start = await of.login('jane+app@sandbox.test');
    expect(start.body.challenge).toEqual({ type: 'app' });
    const token = start.body.login_token;
    const stale = sandboxTotp(clock.now() - 10 * 60_000);
    expect((await of.post('/users/login/otp', { login_token: token, code: stale })).body.error.reason).toBe('wrong_code');
    const done = await of.post('/users/login/otp', { login_token: token, code: sandboxTotp(clock.now()) });
    expect(done.body.status).toBe('authenticated');
  });

  it('only accepts the email code 654321 after the email was sent', async () => {
    const start = await of.login('jane+email@sandbox.test');
    expect(start.body.challenge).toEqual({ type: 'email', email_mask: 'j***@sandbox.test', email_sent: false });
    const token = start.body.login_token;

    const early = await of.post('/users/login/otp', { login_token: token, code: SANDBOX_EMAIL_CODE });
    expect(early.status).toBe(400);
    expect(early.body.error.reason).toBe('wrong_code');

    const sent = await of.post('/users/login/email/send', { login_token: token });
    expect(sent.status).toBe(200);
    expect(sent.body.challenge).toMatchObject({ type: 'email', email_sent: true });
    expect(sent.body.attempts_remaining).toBe(9);

    const done = await of.post('/users/login/otp', { login_token: token, code: SANDBOX_EMAIL_CODE });
    expect(done.body.status).toBe('authenticated');
  });

  it('parks +face on a selfie page whose form POST completes the check', async () => {
    const start = await of.login('jane+face@sandbox.test');
    expect(start.body.challenge).toMatchObject({ type: 'face', face_status: 'pending' });
    const faceUrl: string = start.body.challenge.face_url;
    expect(faceUrl).toMatch(new RegExp(`^${sandbox.url}/face/[\\w-]+$`));
    const token = start.body.login_token;

    const pending = await of.post('/users/login/face/check', { login_token: token });
    expect(pending.body).toMatchObject({ status: 'challenge', challenge: { type: 'face', face_status: 'pending' } });
    const code = await of.post('/users/login/otp', { login_token: token, code: '123456' });
    expect(code.status).toBe(409);
    expect(code.body.error).toMatchObject({ reason: 'challenge_mismatch', challenge: 'face' });

    const page = await call(faceUrl);
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/text\/html/);
    expect(page.text).toContain('Confirm selfie');
    expect(page.text).toMatch(/<form method="post" action="\/face\/[\w-]+">/);

    const confirm = await call(faceUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      raw: '',
    });
    expect(confirm.status).toBe(303);
    expect(confirm.headers.location).toBe(new URL(faceUrl).pathname);
    expect((await call(faceUrl)).text).toContain('Selfie confirmed');

    const done = await of.post('/users/login/face/check', { login_token: token });
    expect(done.body.status).toBe('authenticated');
  });

  it('completes a selfie through the control API too, and 404s unknown face tokens', async () => {
    const start = await of.login('jane+face@sandbox.test');
    const faceToken = start.body.challenge.face_url.split('/').pop();
    const complete = await call(`${sandbox.url}/__sandbox/face/${faceToken}/complete`, { method: 'POST' });
    expect(complete.status).toBe(200);
    expect(complete.body).toEqual({ token: faceToken, status: 'completed' });
    expect((await of.post('/users/login/face/check', { login_token: start.body.login_token })).body.status).toBe(
      'authenticated',
    );
    expect((await call(`${sandbox.url}/__sandbox/face/nope/complete`, { method: 'POST' })).status).toBe(404);
    expect((await call(`${sandbox.url}/face/nope`)).status).toBe(404);
  });

  it('chains challenges: jane+sms+email meets the email check, then the SMS code', async () => {
    const start = await of.login('jane+sms+email@sandbox.test');
    const token = start.body.login_token;
    expect(start.body.challenge.type).toBe('email');
    expect((await of.post('/users/login/otp', { login_token: token, code: SANDBOX_SMS_CODE })).status).toBe(400);
    await of.post('/users/login/email/send', { login_token: token });
    const next = await of.post('/users/login/otp', { login_token: token, code: SANDBOX_EMAIL_CODE });
    expect(next.body).toMatchObject({ status: 'challenge', login_token: token, challenge: { type: 'sms' } });
    expect(next.setCookies).toEqual([]);
    const send = await of.post('/users/login/email/send', { login_token: token });
    expect(send.status).toBe(409);
    expect(send.body.error.challenge).toBe('sms');
    const done = await of.post('/users/login/otp', { login_token: token, code: SANDBOX_SMS_CODE });
    expect(done.body.status).toBe('authenticated');
  });

  it('resumes a login from nothing but the login token, on a fresh connection', async () => {
    const start = await of.login('jane+sms@sandbox.test');
    const elsewhere = new Agent();
    try {
      const other = new OnlyFans(sandbox.url, of.userAgent, elsewhere);
      const done = await other.post('/users/login/otp', { login_token: start.body.login_token, code: SANDBOX_SMS_CODE });
      expect(done.body.status).toBe('authenticated');
    } finally {
      await elsewhere.close();
    }
  });

  it('binds the login to the browser that started it', async () => {
    const start = await of.login('jane+sms@sandbox.test');
    const other = new OnlyFans(sandbox.url, OTHER_UA);
    const reply = await other.post('/users/login/otp', { login_token: start.body.login_token, code: SANDBOX_SMS_CODE });
    expect(reply.status).toBe(401);
    expect(reply.body.error.reason).toBe('user_agent_mismatch');
  });

  it('drops the login after 10 wrong codes', async () => {
    const start = await of.login('jane+sms@sandbox.test');
    const token = start.body.login_token;
    for (let remaining = 9; remaining >= 1; remaining--) {
      const wrong = await of.post('/users/login/otp', { login_token: token, code: '111111' });
      expect(wrong.body.error.attempts_remaining).toBe(remaining);
    }
    const last = await of.post('/users/login/otp', { login_token: token, code: '111111' });
    expect(last.status).toBe(429);
    expect(last.body.error.reason).toBe('too_many_attempts');
    const after = await of.post('/users/login/otp', { login_token: token, code: SANDBOX_SMS_CODE });
    expect(after.body.error.reason).toBe('login_token_invalid');
  });

  it('expires an unfinished login after 15 minutes', async () => {
    const start = await of.login('jane+sms@sandbox.test');
    clock.advance(15 * 60_000);
    const late = await of.post('/users/login/otp', { login_token: start.body.login_token, code: SANDBOX_SMS_CODE });
    expect(late.status).toBe(401);
    expect(late.body.error.reason).toBe('login_token_invalid');
  });

  it('locks a user after more than 10 logins in an hour, for the hour', async () => {
    for (let n = 0; n < 10; n++) expect((await of.login('busy@sandbox.test', n % 2 ? 'password' : 'x')).status).not.toBe(403);
    const eleventh = await of.login('busy@sandbox.test');
    expect(eleventh.status).toBe(403);
    expect(eleventh.body.error).toMatchObject({ reason: 'account_locked' });
    expect(eleventh.body.error.message).toMatch(/suspicious activity/i);
    clock.advance(59 * 60_000);
    expect((await of.login('busy@sandbox.test')).status).toBe(403);
    clock.advance(60_000);
    expect((await of.login('busy@sandbox.test')).status).toBe(200);
    // Other users are not affected.
    expect((await of.login('calm@sandbox.test')).status).toBe(200);
  });

  it('answers malformed logins with 400 JSON', async () => {
    const url = of.url('/users/login');
    const headers = { 'user-agent': of.userAgent, 'x-bc': 'abcdefgh12' };
    for (const options of [
      { raw: '{"email":', headers },
      { body: { email: 'jane@sandbox.test' }, headers },
      { body: { email: { x: 1 }, password: 'password' }, headers },
      { body: [], headers },
      { body: { email: 'jane@sandbox.test', password: 'password' }, headers: { 'user-agent': of.userAgent } },
    ]) {
      const reply = await call(url, options);
      expect(reply.status, reply.text).toBe(400);
      expect(reply.body.error).toMatchObject({ code: 400, reason: 'bad_request' });
      expect(reply.body.error.message).toEqual(expect.any(String));
    }
    const noToken = await of.post('/users/login/otp', { code: '123456' });
    expect(noToken.status).toBe(400);
  });
});
