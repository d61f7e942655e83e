import { afterAll, beforeAll, expect, it } from 'vitest';
import { SANDBOX_EMAIL_CODE, sandboxTotp } from '../../src/sandbox/index.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { describeEachStore } from '../support/stores.js';
import { expectConnected, expectSettled, getAttempt, startAttempt, submit, submitCode } from './login-helpers.js';

/** The Fansly connect routes (DESIGN 4): same model and states, plus the seed's status fields. */

const PASSWORD = 'password';
const FANSLY = 'fansly' as const;

describeEachStore('connect Fansly', (kind) => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp(kind);
  });
  afterAll(() => app?.close());

  it('+email by username: needs_email with the code already mailed (submit_code only), then the code connects', async () => {
    const id = await startAttempt(app, { username: 'fan1+email', password: PASSWORD }, FANSLY);
    const parked = await expectSettled(app, id, 'needs_email', { platform: FANSLY });
    expect(parked).toMatchObject({
      platform: 'fansly', next_actions: ['submit_code'], otp_channel: 'email', email_mask: 'f***@sandbox.test', attempts_remaining: 5,
      status: 'challenge-email', needs_code: true, twofa_type: 2, masked_email: 'f***@sandbox.test',
      polling_url: `${app.url}/api/fansly/authenticate/${id}`,
    });
    // Fansly has no send step: the OnlyFans-only route does not exist here.
    expect((await app.api(`/api/fansly/authenticate/${id}/send-email-to-creator`, { method: 'POST' })).status).toBe(404);

    const done = await submitCode(app, id, SANDBOX_EMAIL_CODE, FANSLY);
    expectConnected(app, done, { platform: FANSLY, email: 'fan1+email', username: 'fan1', name: 'Fan1', can_reauth: false });
    expect(done).toMatchObject({ status: 'authenticated', needs_code: false, twofa_type: null });
  });

  it('+app: needs_app_otp with twofa_type 0 and no masked email; a wrong code retries, the TOTP connects', async () => {
    const id = await startAttempt(app, { username: 'fan2+app', password: PASSWORD }, FANSLY);
    expect(await expectSettled(app, id, 'needs_app_otp', { platform: FANSLY })).toMatchObject({
      next_actions: ['submit_code'], otp_channel: 'app', attempts_remaining: 5,
      status: 'challenge-2fa', needs_code: true, twofa_type: 0, masked_email: null,
    });
    expect(await submitCode(app, id, '000000', FANSLY)).toMatchObject({
      state: 'wrong_2fa_code_retry', next_actions: ['submit_code'], otp_channel: 'app', attempts_remaining: 4, needs_code: true, twofa_type: 0,
    });
    const done = await submitCode(app, id, sandboxTotp(), FANSLY);
    expectConnected(app, done, { platform: FANSLY, email: 'fan2+app', username: 'fan2', name: 'Fan2', can_reauth: false });
  });

  it('+email+app: the email code, then the app code', async () => {
    const id = await startAttempt(app, { email: 'fan3+email+app@sandbox.test', password: PASSWORD }, FANSLY);
    await expectSettled(app, id, 'needs_email', { platform: FANSLY });
    expect(await submitCode(app, id, SANDBOX_EMAIL_CODE, FANSLY)).toMatchObject({ state: 'needs_app_otp', twofa_type: 0, masked_email: null });
    expect((await submitCode(app, id, sandboxTotp(), FANSLY)).state).toBe('completed_success');
  });

  it('a plain identity connects by username or by email; OnlyFans-only tags change nothing here', async () => {
    for (const [body, username] of [
      [{ username: 'fan4', password: PASSWORD }, 'fan4'],
      [{ email: 'fan5@sandbox.test', password: PASSWORD }, 'fan5'],
      [{ username: 'fan6+sms+face', password: PASSWORD }, 'fan6'],
    ] as const) {
      const id = await startAttempt(app, body, FANSLY);
      const done = await expectSettled(app, id, 'completed_success', { platform: FANSLY });
      const login = 'username' in body ? body.username : body.email;
      expectConnected(app, done, { platform: FANSLY, email: login, username, name: username.replace(/^f/, 'F') });
      expect(done).toMatchObject({ status: 'authenticated', needs_code: false, twofa_type: null, masked_email: null });
    }
  });

  it('a wrong password fails invalid_credentials (status failed)', async () => {
    const id = await startAttempt(app, { username: 'fan7', password: 'wrong-password' }, FANSLY);
    expect(await expectSettled(app, id, 'completed_failed', { platform: FANSLY })).toMatchObject({
      error: { code: 'invalid_credentials' }, status: 'failed', needs_code: false, account_id: null,
    });
  });

  it('attempt ids do not cross platforms: an OnlyFans attempt is 404 on the Fansly routes and back', async () => {
    const onlyfans = await startAttempt(app, { email: 'fan8+sms@sandbox.test', password: PASSWORD });
    await expectSettled(app, onlyfans, 'needs_otp');
    const fansly = await startAttempt(app, { username: 'fan9+app', password: PASSWORD }, FANSLY);
    await expectSettled(app, fansly, 'needs_app_otp', { platform: FANSLY });

    for (const [id, other] of [[onlyfans, '/api/fansly/authenticate'], [fansly, '/api/authenticate']] as const) {
      for (const res of [
        await app.api(`${other}/${id}`),
        await app.api(`${other}/${id}?wait=1`),
        await app.api(`${other}/${id}/events`),
        await app.api(`${other}/${id}`, { method: 'PUT', body: { code: '123456' } }),
        await app.api(`${other}/${id}`, { method: 'DELETE' }),
      ]) {
        expect(res.status, res.text).toBe(404);
        expect(res.body.code).toBe('not_found');
      }
    }
    // Nothing happened to either attempt.
    expect(await getAttempt(app, onlyfans)).toMatchObject({ state: 'needs_otp', attempts_remaining: 5 });
    expect(await getAttempt(app, fansly, FANSLY)).toMatchObject({ state: 'needs_app_otp', attempts_remaining: 5 });
    // The OnlyFans attempt has no Fansly fields.
    expect(await getAttempt(app, onlyfans)).not.toHaveProperty('twofa_type');
  });

  it('Fansly takes only email_password, with exactly one of email and username', async () => {
    for (const [body, field] of [
      [{ auth_type: 'raw_data', auth_id: '1', cookies: 'auth_id=1; sess=a; fp=b', xbc: 'x', user_agent: 'ua' }, 'auth_type'],
      [{ password: PASSWORD }, 'email'],
      [{ username: 'fan10', email: 'fan10@sandbox.test', password: PASSWORD }, 'username'],
      [{ username: 'fan10' }, 'password'],
    ] as const) {
      const res = await app.api('/api/fansly/authenticate', { method: 'POST', body });
      expect(res.status, res.text).toBe(422);
      expect(res.body.code).toBe('validation_failed');
      expect(res.body.errors.map((e: { field: string }) => e.field)).toContain(field);
    }
    // A code of 3 characters is refused on this side too.
    const id = await startAttempt(app, { username: 'fan11+app', password: PASSWORD }, FANSLY);
    await expectSettled(app, id, 'needs_app_otp', { platform: FANSLY });
    expect((await submit(app, id, { code: '123' }, FANSLY)).status).toBe(422);
  });
});
