import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_SMS_CODE } from '../../src/sandbox/index.js';
import { freePort, startTestApp, type TestApp } from '../support/app.js';
import { describeEachStore } from '../support/stores.js';
import { distinctStates, expectSettled, getAttempt, readEvents, startAttempt, submit, submitCode } from './login-helpers.js';

/**
 * An attempt's life over time (DESIGN 3.2-3.3): long-poll and Server-Sent Events, cancel, the 10-minute
 * input and 20-minute overall expiry (moved with the test clock), and a platform that cannot be reached.
 */

const PASSWORD = 'password';
const MIN = 60_000;

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - started };
}

describeEachStore('connect lifecycle', (kind) => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp(kind);
  });
  afterAll(() => app?.close());

  describe('long-poll', () => {
    it('waits the full N seconds when nothing changes, and answers at once when the state already differs', async () => {
      const id = await startAttempt(app, { email: 'life1+sms@sandbox.test', password: PASSWORD });
      await expectSettled(app, id, 'needs_otp');

      const idle = await timed(() => app.api(`/api/authenticate/${id}?wait=2&state=needs_otp`));
      expect(idle.value.status).toBe(200);
      expect(idle.value.body.state).toBe('needs_otp');
      expect(idle.ms).toBeGreaterThanOrEqual(1_900);
      expect(idle.ms).toBeLessThan(6_000);

      // Without `state`, the state now is the one waited on.
      const implicit = await timed(() => app.api(`/api/authenticate/${id}?wait=2`));
      expect(implicit.value.body.state).toBe('needs_otp');
      expect(implicit.ms).toBeGreaterThanOrEqual(1_900);

      // The client last saw `pending`: the attempt has moved on since, so the answer is immediate.
      const stale = await timed(() => app.api(`/api/authenticate/${id}?wait=20&state=pending`));
      expect(stale.value.body.state).toBe('needs_otp');
      expect(stale.ms).toBeLessThan(1_500);

      // More than 30 s is not a long-poll the API offers.
      const tooLong = await app.api(`/api/authenticate/${id}?wait=31`);
      expect(tooLong.status).toBe(422);
    });

    it('returns as soon as the state changes, well before N seconds', async () => {
      const id = await startAttempt(app, { email: 'life2+sms@sandbox.test', password: PASSWORD });
      await expectSettled(app, id, 'needs_otp');

      const started = performance.now();
      const poll = app.api(`/api/authenticate/${id}?wait=20&state=needs_otp`);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect((await submit(app, id, { code: SANDBOX_SMS_CODE })).status).toBe(202);
      const changed = await poll;
      const ms = performance.now() - started;
      expect(changed.status).toBe(200);
      expect(changed.body.state).not.toBe('needs_otp');
      expect(ms).toBeLessThan(8_000);

      // Then from the state it saw, on to the end — also without waiting out the 20 s.
      const done = await timed(async () => {
        let attempt = changed.body;
        while (attempt.state === 'pending') attempt = (await app.api(`/api/authenticate/${id}?wait=20&state=pending`)).body;
        return attempt;
      });
      expect(done.value.state).toBe('completed_success');
      expect(done.ms).toBeLessThan(8_000);

      // A finished attempt answers at once whatever state is given.
      const finished = await timed(() => app.api(`/api/authenticate/${id}?wait=20&state=completed_success`));
      expect(finished.value.body.state).toBe('completed_success');
      expect(finished.ms).toBeLessThan(1_500);
    });
  });

  describe('Server-Sent Events', () => {
    it('streams each state in order and ends after the terminal one', async () => {
      const id = await startAttempt(app, { email: 'life3+sms@sandbox.test', password: PASSWORD });
      let submitted = false;
      const { attempts, ended, contentType } = await readEvents(app, id, async (attempt) => {
        if (attempt.state === 'needs_otp' && !submitted) {
          submitted = true;
          expect((await submit(app, id, { code: SANDBOX_SMS_CODE })).status).toBe(202);
        }
      });
      expect(contentType).toContain('text/event-stream');
      expect(ended).toBe(true);
      const states = distinctStates(attempts);
      // The stream may open after the worker already parked the attempt.
      expect(states[0] === 'pending' ? states : ['pending', ...states]).toEqual(['pending', 'needs_otp', 'pending', 'completed_success']);
      // Every frame is the full attempt object.
      const last = attempts.at(-1);
      expect(last).toMatchObject({ attempt_id: id, state: 'completed_success', account_id: expect.stringMatching(/^acct_/) });
      expect(last).toEqual(await getAttempt(app, id));
      expect(attempts.find((a) => a.state === 'needs_otp')).toMatchObject({ phone_last4: '4242', next_actions: ['submit_code'] });
    });

    it('ends after a cancel, and a finished attempt streams one frame and ends', async () => {
      const id = await startAttempt(app, { email: 'life4+face@sandbox.test', password: PASSWORD });
      let cancelled = false;
      const { attempts, ended } = await readEvents(app, id, async (attempt) => {
        if (attempt.state === 'needs_face_otp' && !cancelled) {
          cancelled = true;
          expect((await app.api(`/api/authenticate/${id}`, { method: 'DELETE' })).status).toBe(200);
        }
      });
      expect(ended).toBe(true);
      expect(distinctStates(attempts).slice(-2)).toEqual(['needs_face_otp', 'completed_failed']);
      expect(attempts.at(-1).error.code).toBe('cancelled');

      const again = await readEvents(app, id);
      expect(again.ended).toBe(true);
      expect(again.attempts.map((a) => a.state)).toEqual(['completed_failed']);
    });
  });

  describe('cancel', () => {
    it('DELETE ends a waiting attempt cancelled; it then takes no code and cannot be cancelled again', async () => {
      const id = await startAttempt(app, { email: 'life5+sms@sandbox.test', password: PASSWORD });
      await expectSettled(app, id, 'needs_otp');
      const res = await app.api(`/api/authenticate/${id}`, { method: 'DELETE' });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({
        attempt_id: id, state: 'completed_failed', next_actions: [], error: { code: 'cancelled', message: expect.any(String) },
        completed_at: expect.any(String), account_id: null,
      });
      expect(await getAttempt(app, id)).toEqual(res.body);
      const code = await submit(app, id, { code: SANDBOX_SMS_CODE });
      expect(code.status).toBe(409);
      expect(code.body.code).toBe('attempt_not_awaiting_input');
      const twice = await app.api(`/api/authenticate/${id}`, { method: 'DELETE' });
      expect(twice.status).toBe(409);
      // No account came out of it, and a new attempt for the same creator still works.
      const next = await startAttempt(app, { email: 'life5+sms@sandbox.test', password: PASSWORD });
      await expectSettled(app, next, 'needs_otp');
      expect((await submitCode(app, next, SANDBOX_SMS_CODE)).state).toBe('completed_success');
    });

    it('a finished attempt cannot be cancelled', async () => {
      const id = await startAttempt(app, { email: 'life6@sandbox.test', password: PASSWORD });
      await expectSettled(app, id, 'completed_success');
      const res = await app.api(`/api/authenticate/${id}`, { method: 'DELETE' });
      expect(res.status).toBe(409);
      expect(await getAttempt(app, id)).toMatchObject({ state: 'completed_success', error: null });
    });
  });

  // These move the domain clock forward; they run last in the file and leave nothing pending behind.
  describe('expiry', () => {
    it('10 minutes without an answer from the creator expire the attempt, found by the sweep and by GET', async () => {
      const id = await startAttempt(app, { email: 'life7+sms@sandbox.test', password: PASSWORD });
      const parked = await expectSettled(app, id, 'needs_otp');

      app.clock.advance(9 * MIN);
      expect(await getAttempt(app, id)).toMatchObject({ state: 'needs_otp', expires_at: parked.expires_at });

      app.clock.advance(1 * MIN + 1_000);
      // The worker's sweep expires it without anyone asking.
      const db = app.fangate.database.db;
      const deadline = Date.now() + 10_000;
      let row = await db.selectFrom('auth_attempts').select(['state', 'error_code']).where('id', '=', id).executeTakeFirstOrThrow();
      while (row.state !== 'completed_failed' && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        row = await db.selectFrom('auth_attempts').select(['state', 'error_code']).where('id', '=', id).executeTakeFirstOrThrow();
      }
      expect(row).toEqual({ state: 'completed_failed', error_code: 'expired' });

      const expired = await getAttempt(app, id);
      expect(expired).toMatchObject({
        state: 'completed_failed', next_actions: [], error: { code: 'expired', message: 'No answer from the creator for 10 minutes.' },
        completed_at: expect.any(String),
      });
      const late = await submit(app, id, { code: SANDBOX_SMS_CODE });
      expect(late.status).toBe(409);
    });

    it('an expiry is seen by GET at once, even before the sweep', async () => {
      const id = await startAttempt(app, { email: 'life8+email@sandbox.test', password: PASSWORD });
      await expectSettled(app, id, 'needs_email');
      app.clock.advance(10 * MIN + 1_000);
      expect(await getAttempt(app, id)).toMatchObject({ state: 'completed_failed', error: { code: 'expired' } });
    });

    it('20 minutes overall expire the attempt even while the creator keeps answering', async () => {
      const id = await startAttempt(app, { email: 'life9+sms@sandbox.test', password: PASSWORD });
      const parked = await expectSettled(app, id, 'needs_otp');
      const overall = Date.parse(parked.created_at) + 20 * MIN;

      app.clock.advance(9 * MIN);
      // Every answer opens a new 10-minute window for the next one…
      const first = await submitCode(app, id, '000000');
      expect(first).toMatchObject({ state: 'wrong_2fa_code_retry', attempts_remaining: 4 });
      expect(Date.parse(first.expires_at) - Date.parse(first.updated_at)).toBeGreaterThan(9.9 * MIN);

      app.clock.advance(9 * MIN);
      const second = await submitCode(app, id, '000000');
      expect(second).toMatchObject({ state: 'wrong_2fa_code_retry', attempts_remaining: 3 });
      // …but never past the overall 20 minutes.
      expect(Date.parse(second.expires_at)).toBe(overall);

      app.clock.advance(2 * MIN + 1_000);
      expect(await getAttempt(app, id)).toMatchObject({
        state: 'completed_failed', error: { code: 'expired', message: 'The attempt did not finish within 20 minutes.' },
      });
    });

    it('a long-poll wakes up when the attempt expires', async () => {
      const id = await startAttempt(app, { email: 'life10+app@sandbox.test', password: PASSWORD });
      await expectSettled(app, id, 'needs_app_otp');
      const poll = app.api(`/api/authenticate/${id}?wait=20&state=needs_app_otp`);
      await new Promise((resolve) => setTimeout(resolve, 300));
      app.clock.advance(10 * MIN + 1_000);
      const res = await timed(() => poll);
      expect(res.value.body).toMatchObject({ state: 'completed_failed', error: { code: 'expired' } });
      expect(res.ms).toBeLessThan(8_000);
    });
  });
});

describeEachStore('connect with the platform unreachable', (kind) => {
  let app: TestApp;
  beforeAll(async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    app = await startTestApp(kind, { env: { FANGATE_ONLYFANS_URL: closed, FANGATE_FANSLY_URL: closed } });
  });
  afterAll(() => app?.close());

  it('fails upstream_unavailable after retrying, on both platforms', async () => {
    const id = await startAttempt(app, { email: 'down1@sandbox.test', password: PASSWORD });
    expect(await expectSettled(app, id, 'completed_failed')).toMatchObject({
      account_id: null, account: null, error: { code: 'upstream_unavailable', message: expect.any(String) },
    });
    const fansly = await startAttempt(app, { username: 'down2', password: PASSWORD }, 'fansly');
    expect(await expectSettled(app, fansly, 'completed_failed', { platform: 'fansly' })).toMatchObject({
      error: { code: 'upstream_unavailable' }, status: 'failed',
    });
  });
});
