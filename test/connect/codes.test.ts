import { afterAll, beforeAll, expect, it } from 'vitest';
import { SANDBOX_EMAIL_CODE, SANDBOX_SMS_CODE, sandboxTotp } from '../../src/sandbox/index.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { describeEachStore } from '../support/stores.js';
import { expectConnected, expectSettled, getAttempt, platformRequests, sendEmail, startAttempt, submit, submitCode } from './login-helpers.js';

/** Codes (DESIGN 3.3): wrong codes, retries, the cap of 5, and what PUT refuses. */

const PASSWORD = 'password';

function expectProblem(res: { status: number; body: any }, status: number, code: string) {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.body).toMatchObject({ status, code });
}

/** A wrong code is 4–16 characters but not the platform's. */
const WRONG = '000000';

describeEachStore('connect codes', (kind) => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp(kind);
  });
  afterAll(() => app?.close());

  /** The attempt's state history, as the console's attempt page lists it. */
  const history = (id: string) =>
    app.fangate.database.db.selectFrom('attempt_transitions').select(['from_state', 'to_state', 'error_code']).where('attempt_id', '=', id).orderBy('seq').execute();

  it('a wrong SMS code asks again on the same channel with 4 attempts left; the right one then connects', async () => {
    const login = 'code1+sms@sandbox.test';
    const id = await startAttempt(app, { email: login, password: PASSWORD });
    await expectSettled(app, id, 'needs_otp');
    const retry = await submitCode(app, id, WRONG);
    expect(retry).toMatchObject({
      state: 'wrong_2fa_code_retry', next_actions: ['submit_code'], otp_channel: 'sms', phone_last4: '4242', attempts_remaining: 4,
      error: null, account_id: null,
    });
    const done = await submitCode(app, id, SANDBOX_SMS_CODE);
    expectConnected(app, done, { email: login, username: 'code1', name: 'Code1', can_reauth: false });
    // Codes after the end are refused.
    expectProblem(await submit(app, id, { code: SANDBOX_SMS_CODE }), 409, 'attempt_not_awaiting_input');
    // The state history (the console's attempt page) has one row per change of state, in order, none for
    // writes that kept the state (a step starting, the refused code).
    const steps = (await history(id)).map((t) => `${t.from_state ?? '(started)'} → ${t.to_state}${t.error_code ? ` ${t.error_code}` : ''}`);
    expect(steps).toEqual([
      '(started) → pending', 'pending → needs_otp', 'needs_otp → pending', 'pending → wrong_2fa_code_retry', 'wrong_2fa_code_retry → pending',
      'pending → completed_success',
    ]);
  });

  it('the fifth wrong code ends the attempt 2fa_failed with no attempts left', async () => {
    const id = await startAttempt(app, { email: 'code2+sms@sandbox.test', password: PASSWORD });
    await expectSettled(app, id, 'needs_otp');
    for (const left of [4, 3, 2, 1]) {
      expect(await submitCode(app, id, WRONG)).toMatchObject({ state: 'wrong_2fa_code_retry', otp_channel: 'sms', attempts_remaining: left });
    }
    const failed = await submitCode(app, id, WRONG);
    expect(failed).toMatchObject({
      state: 'completed_failed', next_actions: [], attempts_remaining: 0, account_id: null, account: null,
      error: { code: '2fa_failed', message: expect.any(String) }, completed_at: expect.any(String),
    });
    // Even the right code is too late now.
    expectProblem(await submit(app, id, { code: SANDBOX_SMS_CODE }), 409, 'attempt_not_awaiting_input');
    expect(await getAttempt(app, id)).toMatchObject({ state: 'completed_failed', error: { code: '2fa_failed' } });
    // The history's last change names the error; the refused code after the end wrote none.
    expect((await history(id)).at(-1)).toEqual({ from_state: 'pending', to_state: 'completed_failed', error_code: '2fa_failed' });
  });

  it('wrong codes count over the whole attempt, across channels', async () => {
    // +app+sms: two wrong app codes, the right one, then three wrong SMS codes make five.
    const id = await startAttempt(app, { email: 'code3+app+sms@sandbox.test', password: PASSWORD });
    await expectSettled(app, id, 'needs_app_otp');
    expect(await submitCode(app, id, WRONG)).toMatchObject({ state: 'wrong_2fa_code_retry', otp_channel: 'app', attempts_remaining: 4, phone_last4: null });
    expect(await submitCode(app, id, WRONG)).toMatchObject({ state: 'wrong_2fa_code_retry', otp_channel: 'app', attempts_remaining: 3 });
    expect(await submitCode(app, id, sandboxTotp())).toMatchObject({ state: 'needs_otp', otp_channel: 'sms', phone_last4: '4242', attempts_remaining: 3 });
    expect(await submitCode(app, id, WRONG)).toMatchObject({ state: 'wrong_2fa_code_retry', otp_channel: 'sms', attempts_remaining: 2 });
    expect(await submitCode(app, id, WRONG)).toMatchObject({ state: 'wrong_2fa_code_retry', attempts_remaining: 1 });
    expect(await submitCode(app, id, WRONG)).toMatchObject({ state: 'completed_failed', attempts_remaining: 0, error: { code: '2fa_failed' } });
  });

  it('the email code before the email was sent is a wrong code (the platform only accepts it after sending)', async () => {
    const login = 'code4+email@sandbox.test';
    const id = await startAttempt(app, { email: login, password: PASSWORD });
    await expectSettled(app, id, 'needs_email');
    const retry = await submitCode(app, id, SANDBOX_EMAIL_CODE);
    expect(retry).toMatchObject({ state: 'wrong_2fa_code_retry', otp_channel: 'email', email_mask: 'c***@sandbox.test', attempts_remaining: 4 });
    expect((await platformRequests(app, login)).filter((r) => r.path === '/api2/v2/users/login/otp').map((r) => r.status)).toEqual([400]);
  });

  it('sending the email and then its code connects; send-email-to-creator is refused outside needs_email', async () => {
    const login = 'code5+email+sms@sandbox.test';
    const id = await startAttempt(app, { email: login, password: PASSWORD });
    await expectSettled(app, id, 'needs_email');
    await sendEmail(app, id, login);
    // Asking again at once is refused with the cool-down's wait; the attempt is untouched.
    const again = await app.api(`/api/authenticate/${id}/send-email-to-creator`, { method: 'POST' });
    expectProblem(again, 429, 'email_recently_sent');
    expect(again.body.retryAfterSec).toBeGreaterThan(0);
    expect(again.body.retryAfterSec).toBeLessThanOrEqual(60);
    expect(again.headers.get('retry-after')).toBe(String(again.body.retryAfterSec));
    expect(await getAttempt(app, id)).toMatchObject({ state: 'needs_email', next_actions: ['submit_code', 'send_email_to_creator'] });
    expect(await submitCode(app, id, SANDBOX_EMAIL_CODE)).toMatchObject({ state: 'needs_otp' });
    const refused = await app.api(`/api/authenticate/${id}/send-email-to-creator`, { method: 'POST' });
    expect(refused.status).toBe(409);
    expect(refused.body.code).toMatch(/^attempt_not_awaiting/);
    expect(await getAttempt(app, id)).toMatchObject({ state: 'needs_otp', attempts_remaining: 5 });
    const done = await submitCode(app, id, SANDBOX_SMS_CODE);
    expect(done.state).toBe('completed_success');
    expectProblem(await app.api(`/api/authenticate/${id}/send-email-to-creator`, { method: 'POST' }), 409, 'attempt_not_awaiting_email');
  });

  it('PUT takes exactly one of code and selfie_verification_completed, and codes of 4-16 characters', async () => {
    const id = await startAttempt(app, { email: 'code6+sms@sandbox.test', password: PASSWORD });
    await expectSettled(app, id, 'needs_otp');
    const both = await submit(app, id, { code: SANDBOX_SMS_CODE, selfie_verification_completed: true });
    expectProblem(both, 422, 'validation_failed');
    const neither = await submit(app, id, {});
    expectProblem(neither, 422, 'validation_failed');
    for (const code of ['123', '12345678901234567']) {
      const res = await submit(app, id, { code });
      expectProblem(res, 422, 'validation_failed');
      expect(res.body.errors).toEqual([expect.objectContaining({ field: 'code' })]);
    }
    // A selfie confirmation is not what an SMS challenge takes.
    expectProblem(await submit(app, id, { selfie_verification_completed: true }), 409, 'attempt_not_awaiting_input');
    // None of that cost an attempt or moved the attempt.
    expect(await getAttempt(app, id)).toMatchObject({ state: 'needs_otp', attempts_remaining: 5 });
    // 4 and 16 characters are codes (wrong ones here).
    expect(await submitCode(app, id, '0000')).toMatchObject({ state: 'wrong_2fa_code_retry', attempts_remaining: 4 });
    expect(await submitCode(app, id, '0000000000000000')).toMatchObject({ state: 'wrong_2fa_code_retry', attempts_remaining: 3 });
    expect((await submitCode(app, id, SANDBOX_SMS_CODE)).state).toBe('completed_success');
  });

  it('a code sent to a selfie check is refused with 409', async () => {
    const id = await startAttempt(app, { email: 'code7+face@sandbox.test', password: PASSWORD });
    await expectSettled(app, id, 'needs_face_otp');
    expectProblem(await submit(app, id, { code: SANDBOX_SMS_CODE }), 409, 'attempt_not_awaiting_input');
    expect(await getAttempt(app, id)).toMatchObject({ state: 'needs_face_otp' });
  });

  it('acting on an unknown attempt is 404', async () => {
    const missing = 'auth_doesnotexist0000000000';
    expectProblem(await app.api(`/api/authenticate/${missing}`), 404, 'not_found');
    expectProblem(await submit(app, missing, { code: SANDBOX_SMS_CODE }), 404, 'not_found');
    expectProblem(await app.api(`/api/authenticate/${missing}/send-email-to-creator`, { method: 'POST' }), 404, 'not_found');
    expectProblem(await app.api(`/api/authenticate/${missing}`, { method: 'DELETE' }), 404, 'not_found');
  });
});
