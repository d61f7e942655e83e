import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_EMAIL_CODE, SANDBOX_SMS_CODE, sandboxTotp } from '../../src/sandbox/index.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { describeEachStore } from '../support/stores.js';
import {
  completeFace,
  confirmSelfie,
  confirmSelfieTooEarly,
  expectConnected,
  expectSettled,
  getAttempt,
  mintSession,
  platformRequests,
  waitForOpenPlatformRequests,
  sendEmail,
  startAttempt,
  submitCode,
} from './login-helpers.js';

/**
 * Every sandbox identity tag, alone and combined, through the OnlyFans connect API (DESIGN 3, 7): each
 * checkpoint is relayed with exactly the fields a developer's UI needs, and the login ends connected.
 */

const PASSWORD = 'password';
const NO_CHALLENGE = { otp_channel: null, phone_last4: null, email_mask: null, face_verification_url: null, attempts_remaining: null };

const sms = { state: 'needs_otp', next_actions: ['submit_code'], otp_channel: 'sms', phone_last4: '4242', email_mask: null, face_verification_url: null, attempts_remaining: 5 };
const app_ = { state: 'needs_app_otp', next_actions: ['submit_code'], otp_channel: 'app', phone_last4: null, email_mask: null, face_verification_url: null, attempts_remaining: 5 };
const email = (mask: string) => ({
  state: 'needs_email', next_actions: ['send_email_to_creator', 'submit_code'], otp_channel: 'email', phone_last4: null, email_mask: mask,
  face_verification_url: null, attempts_remaining: 5,
});
const face = (t: TestApp) => ({
  state: 'needs_face_otp', next_actions: ['open_face_verification', 'confirm_selfie'], otp_channel: 'face', phone_last4: null, email_mask: null,
  face_verification_url: expect.stringMatching(new RegExp(`^${t.sandbox.url}/face/[A-Za-z0-9_-]+$`)), attempts_remaining: null,
});
/** Every challenge state waits for the creator for 10 minutes. */
function expectInputWindow(attempt: { updated_at: string; expires_at: string }) {
  const window = Date.parse(attempt.expires_at) - Date.parse(attempt.updated_at);
  expect(window).toBeGreaterThan(9.9 * 60_000);
  expect(window).toBeLessThanOrEqual(10 * 60_000);
}

describeEachStore('connect flows by sandbox identity', (kind) => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp(kind);
  });
  afterAll(() => app?.close());

  describe('single tags', () => {
    it('a plain identity connects in one trip, with the full account of the platform user', async () => {
      const login = 'flow1@sandbox.test';
      const id = await startAttempt(app, { email: login, password: PASSWORD });
      const pending = await getAttempt(app, id);
      expect(pending).toMatchObject({
        attempt_id: id, platform: 'onlyfans', auth_type: 'email_password', kind: 'connect', error: null,
        mobile_auth_session_deeplink: null, client_reference_id: null, polling_url: `${app.url}/api/authenticate/${id}`,
      });
      // The worker may already be done; until then nothing is connected yet.
      if (pending.state === 'pending') expect(pending).toMatchObject({ account_id: null, account: null, completed_at: null, next_actions: [] });
      else expect(pending.state).toBe('completed_success');

      const done = await expectSettled(app, id, 'completed_success');
      expect(done).toMatchObject({ ...NO_CHALLENGE, progress: 'Connected' });
      expectConnected(app, done, { email: login, username: 'flow1', name: 'Flow1', can_reauth: true });
      // The account is the platform's user for that identity.
      const minted = await mintSession(app, login);
      expect(done.account.platform_user.id).toBe(minted.user.id);
      // A later GET answers the same finished attempt.
      expect(await getAttempt(app, id)).toEqual(done);
    });

    it('+sms parks on needs_otp with the phone hint, and the SMS code connects', async () => {
      const login = 'flow2+sms@sandbox.test';
      const id = await startAttempt(app, { email: login, password: PASSWORD });
      const parked = await expectSettled(app, id, 'needs_otp');
      expect(parked).toMatchObject({ ...sms, account_id: null, account: null, error: null, completed_at: null });
      expectInputWindow(parked);

      const done = await submitCode(app, id, SANDBOX_SMS_CODE);
      // SMS codes need the creator: FanGate cannot re-authenticate this account alone.
      expectConnected(app, done, { email: login, username: 'flow2', name: 'Flow2', can_reauth: false });
    });

    it('+app parks on needs_app_otp, and the current authenticator code connects', async () => {
      const login = 'flow3+app@sandbox.test';
      const id = await startAttempt(app, { email: login, password: PASSWORD });
      expect(await expectSettled(app, id, 'needs_app_otp')).toMatchObject(app_);
      const done = await submitCode(app, id, sandboxTotp());
      expectConnected(app, done, { email: login, username: 'flow3', name: 'Flow3', can_reauth: false });
    });

    it('+email parks on needs_email with the masked address; after send-email-to-creator the emailed code connects', async () => {
      const login = 'flow4+email@sandbox.test';
      const id = await startAttempt(app, { email: login, password: PASSWORD });
      expect(await expectSettled(app, id, 'needs_email')).toMatchObject(email('f***@sandbox.test'));
      await sendEmail(app, id, login);
      // The attempt says the email went out: the code comes first now.
      expect(await getAttempt(app, id)).toMatchObject({ ...email('f***@sandbox.test'), next_actions: ['submit_code', 'send_email_to_creator'], email_sent_at: expect.any(String) });
      const done = await submitCode(app, id, SANDBOX_EMAIL_CODE);
      expectConnected(app, done, { email: login, username: 'flow4', name: 'Flow4', can_reauth: false });
    });

    it('+face parks on needs_face_otp; confirming before the selfie is done parks again; after the selfie it connects', async () => {
      const login = 'flow5+face@sandbox.test';
      const id = await startAttempt(app, { email: login, password: PASSWORD });
      const parked = await expectSettled(app, id, 'needs_face_otp');
      expect(parked).toMatchObject(face(app));
      // The page the creator is sent to is the platform's selfie page.
      const page = await fetch(parked.face_verification_url);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('Confirm selfie');

      // "I did it" while the platform still waits for the selfie: a clear 409, the same check stands.
      const early = await confirmSelfieTooEarly(app, id);
      expect(early).toMatchObject({ ...face(app), face_verification_url: parked.face_verification_url });

      await completeFace(app, parked.face_verification_url);
      const done = await confirmSelfie(app, id);
      expectConnected(app, done, { email: login, username: 'flow5', name: 'Flow5', can_reauth: false });
    });

    it('+locked fails account_locked; a wrong password fails invalid_credentials, locked or not', async () => {
      const locked = await startAttempt(app, { email: 'flow6+locked@sandbox.test', password: PASSWORD });
      const failed = await expectSettled(app, locked, 'completed_failed');
      expect(failed).toMatchObject({
        ...NO_CHALLENGE, next_actions: [], account_id: null, account: null, progress: 'Failed',
        error: { code: 'account_locked', message: expect.any(String) }, completed_at: expect.any(String),
      });

      for (const login of ['flow6+locked@sandbox.test', 'flow7@sandbox.test']) {
        const id = await startAttempt(app, { email: login, password: 'not-the-password' });
        expect(await expectSettled(app, id, 'completed_failed')).toMatchObject({
          ...NO_CHALLENGE, next_actions: [], account_id: null, account: null, error: { code: 'invalid_credentials', message: expect.any(String) },
        });
      }
      // An address the platform does not know is the platform's "wrong email or password" too.
      const stranger = await startAttempt(app, { email: 'flow7@example.com', password: PASSWORD });
      expect((await expectSettled(app, stranger, 'completed_failed')).error.code).toBe('invalid_credentials');
    });

    it('+flaky: FanGate retries the platform\'s 502s and still connects', async () => {
      const plain = 'flow8+flaky@sandbox.test';
      const first = await startAttempt(app, { email: plain, password: PASSWORD });
      expectConnected(app, await expectSettled(app, first, 'completed_success'), { email: plain, username: 'flow8', name: 'Flow8' });

      // With a code step, the second upstream call is the one answered 502.
      const login = 'flow9+flaky+sms@sandbox.test';
      const id = await startAttempt(app, { email: login, password: PASSWORD });
      expect(await expectSettled(app, id, 'needs_otp')).toMatchObject(sms);
      const done = await submitCode(app, id, SANDBOX_SMS_CODE);
      expectConnected(app, done, { email: login, username: 'flow9', name: 'Flow9', can_reauth: false });
      const seen = await platformRequests(app, login);
      const codeCalls = seen.filter((r) => r.path === '/api2/v2/users/login/otp');
      expect(codeCalls.map((r) => r.status)).toEqual([502, 200]);
    });

    it('+expire connects (the session dies later, upstream)', async () => {
      const login = 'flow10+expire@sandbox.test';
      const id = await startAttempt(app, { email: login, password: PASSWORD });
      expectConnected(app, await expectSettled(app, id, 'completed_success'), { email: login, username: 'flow10', name: 'Flow10' });
    });

    it('+slow: the attempt stays pending while the platform is slow, takes no input meanwhile, and connects', async () => {
      const login = 'flow11+slow+sms@sandbox.test';
      const id = await startAttempt(app, { email: login, password: PASSWORD });
      // Alongside, a slow login cancelled while the platform is still answering: its late success is dropped.
      const cancelledLogin = 'flow17+slow@sandbox.test';
      const cancelled = await startAttempt(app, { email: cancelledLogin, password: PASSWORD });
      // Cancelled only once both logins are at the platform (a step that had not started would never call it).
      await waitForOpenPlatformRequests(app, 2);
      const cancel = await app.api(`/api/authenticate/${cancelled}`, { method: 'DELETE' });
      expect(cancel.status).toBe(200);
      expect(cancel.body).toMatchObject({ state: 'completed_failed', error: { code: 'cancelled' } });
      // The platform takes 2 s per call: the attempt is still signing in.
      const busy = await getAttempt(app, id);
      expect(busy).toMatchObject({ state: 'pending', next_actions: [], ...NO_CHALLENGE });
      const early = await app.api(`/api/authenticate/${id}`, { method: 'PUT', body: { code: SANDBOX_SMS_CODE } });
      expect(early.status).toBe(409);
      expect(early.body.code).toBe('attempt_not_awaiting_input');
      const email_ = await app.api(`/api/authenticate/${id}/send-email-to-creator`, { method: 'POST' });
      expect(email_.status).toBe(409);

      expect(await expectSettled(app, id, 'needs_otp')).toMatchObject(sms);
      const verifying = await app.api(`/api/authenticate/${id}`, { method: 'PUT', body: { code: SANDBOX_SMS_CODE } });
      expect(verifying.status).toBe(202);
      // A second code while the first is being checked is refused, not queued.
      const twice = await app.api(`/api/authenticate/${id}`, { method: 'PUT', body: { code: SANDBOX_SMS_CODE } });
      expect(twice.status).toBe(409);
      expect(twice.body.code).toBe('attempt_not_awaiting_input');
      expectConnected(app, await expectSettled(app, id, 'completed_success'), { email: login, username: 'flow11', name: 'Flow11', can_reauth: false });

      // By now the cancelled login has answered upstream too; the attempt stays cancelled and no account exists.
      expect((await platformRequests(app, cancelledLogin)).map((r) => r.status)).toEqual([200]);
      expect(await getAttempt(app, cancelled)).toMatchObject({ state: 'completed_failed', error: { code: 'cancelled' }, account_id: null, account: null });
      const minted = await mintSession(app, cancelledLogin);
      const accounts = await app.fangate.database.db.selectFrom('accounts').select('id').where('platform_user_id', '=', minted.user.id).execute();
      expect(accounts).toEqual([]);
    });
  });

  describe('combined tags', () => {
    it('+sms+email: the email device check first, then the SMS code', async () => {
      const login = 'flow12+sms+email@sandbox.test';
      const id = await startAttempt(app, { email: login, password: PASSWORD });
      expect(await expectSettled(app, id, 'needs_email')).toMatchObject(email('f***@sandbox.test'));
      await sendEmail(app, id, login);
      const second = await submitCode(app, id, SANDBOX_EMAIL_CODE);
      expect(second).toMatchObject(sms);
      expectInputWindow(second);
      const done = await submitCode(app, id, SANDBOX_SMS_CODE);
      expectConnected(app, done, { email: login, username: 'flow12', name: 'Flow12', can_reauth: false });
    });

    it('+email+face: the email check, then the selfie', async () => {
      const login = 'flow13+email+face@sandbox.test';
      const id = await startAttempt(app, { email: login, password: PASSWORD });
      expect(await expectSettled(app, id, 'needs_email')).toMatchObject(email('f***@sandbox.test'));
      await sendEmail(app, id, login);
      const selfie = await submitCode(app, id, SANDBOX_EMAIL_CODE);
      expect(selfie).toMatchObject(face(app));
      await completeFace(app, selfie.face_verification_url);
      expectConnected(app, await confirmSelfie(app, id), { email: login, username: 'flow13', name: 'Flow13', can_reauth: false });
    });

    it('+app+sms: the authenticator code, then the SMS code', async () => {
      const login = 'flow14+app+sms@sandbox.test';
      const id = await startAttempt(app, { email: login, password: PASSWORD });
      expect(await expectSettled(app, id, 'needs_app_otp')).toMatchObject(app_);
      expect(await submitCode(app, id, sandboxTotp())).toMatchObject(sms);
      expectConnected(app, await submitCode(app, id, SANDBOX_SMS_CODE), { email: login, username: 'flow14', name: 'Flow14', can_reauth: false });
    });

    it('+sms+app+email+face: every checkpoint in the platform\'s order (email, face, app, sms)', async () => {
      const login = 'flow15+sms+app+email+face@sandbox.test';
      const id = await startAttempt(app, { email: login, password: PASSWORD });
      expect(await expectSettled(app, id, 'needs_email')).toMatchObject(email('f***@sandbox.test'));
      await sendEmail(app, id, login);
      const selfie = await submitCode(app, id, SANDBOX_EMAIL_CODE);
      expect(selfie).toMatchObject(face(app));
      await completeFace(app, selfie.face_verification_url);
      expect(await confirmSelfie(app, id)).toMatchObject(app_);
      expect(await submitCode(app, id, sandboxTotp())).toMatchObject(sms);
      expectConnected(app, await submitCode(app, id, SANDBOX_SMS_CODE), { email: login, username: 'flow15', name: 'Flow15', can_reauth: false });
    });

    it('+flaky+email+face: the email send and the selfie check are retried past 502s too', async () => {
      const login = 'flow18+flaky+email+face@sandbox.test';
      const id = await startAttempt(app, { email: login, password: PASSWORD });
      expect(await expectSettled(app, id, 'needs_email')).toMatchObject(email('f***@sandbox.test'));
      await sendEmail(app, id, login);
      const selfie = await submitCode(app, id, SANDBOX_EMAIL_CODE);
      expect(selfie).toMatchObject(face(app));
      await completeFace(app, selfie.face_verification_url);
      expectConnected(app, await confirmSelfie(app, id), { email: login, username: 'flow18', name: 'Flow18', can_reauth: false });
      expect((await platformRequests(app, login)).some((r) => r.status === 502)).toBe(true);
    });

    it('+locked+sms fails account_locked before any code is asked', async () => {
      const id = await startAttempt(app, { email: 'flow16+locked+sms@sandbox.test', password: PASSWORD });
      expect(await expectSettled(app, id, 'completed_failed')).toMatchObject({ ...NO_CHALLENGE, error: { code: 'account_locked' } });
    });
  });
});
