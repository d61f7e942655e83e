import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_PASSWORD } from '../../src/sandbox/index.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { describeEachStore } from '../support/stores.js';
import { expectSettled, platformRequests, startAttempt } from './login-helpers.js';

/**
 * Re-authentications spare the creator's account (DESIGN 2, issue 11 item 5): at most
 * FANGATE_ACCOUNT_LOGINS_PER_HOUR upstream logins per account and hour, and concurrent credential
 * updates leave exactly one re-authentication running.
 */
const LIMIT = 3;
const logins = (requests: Array<{ method: string; path: string }>) => requests.filter((r) => r.method === 'POST' && r.path === '/api2/v2/users/login').length;

describeEachStore('upstream logins per account', (kind) => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp(kind, { env: { FANGATE_ACCOUNT_LOGINS_PER_HOUR: String(LIMIT) } });
  });
  afterAll(async () => {
    await app?.close();
  });

  async function connect(email: string): Promise<string> {
    const id = await startAttempt(app, { email, password: SANDBOX_PASSWORD });
    const attempt = await expectSettled(app, id, 'completed_success');
    return attempt.account_id;
  }

  it('forced re-authentications stop at the hourly limit with a 429 that names the window, and resume an hour later', async () => {
    const email = 'limit1@sandbox.test';
    const accountId = await connect(email);
    for (let i = 0; i < LIMIT; i++) {
      const res = await app.api(`/api/authenticate/${accountId}/reauthenticate?force=true`, { method: 'POST' });
      expect(res.status, res.text).toBe(200);
      await expectSettled(app, res.body.attempt_id, 'completed_success');
    }
    const refused = await app.api(`/api/authenticate/${accountId}/reauthenticate?force=true`, { method: 'POST' });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('content-type')).toMatch(/application\/problem\+json/);
    expect(refused.body).toMatchObject({ code: 'rate_limited', retryable: true });
    expect(refused.body.detail).toMatch(/per hour/);
    expect(refused.body.retryAfterSec).toBeGreaterThan(3_000);
    expect(refused.body.retryAfterSec).toBeLessThanOrEqual(3_600);
    // Credentials updates count too: they log in upstream as well.
    const update = await app.api(`/api/authenticate/${accountId}/credentials`, { method: 'PUT', body: { email, password: SANDBOX_PASSWORD } });
    expect(update.status).toBe(429);
    // The platform saw the connect and exactly LIMIT re-authentications, nothing more.
    expect(logins(await platformRequests(app, email))).toBe(1 + LIMIT);

    app.clock.advance(3_600_000 + 1_000);
    const later = await app.api(`/api/authenticate/${accountId}/reauthenticate?force=true`, { method: 'POST' });
    expect(later.status, later.text).toBe(200);
    await expectSettled(app, later.body.attempt_id, 'completed_success');
    app.clock.reset();
  });

  it('six concurrent credential updates leave exactly one re-authentication running', async () => {
    const email = 'limit2+sms@sandbox.test';
    // Connected through the SMS check, so each re-authentication parks on needs_otp and stays running.
    const id = await startAttempt(app, { email, password: SANDBOX_PASSWORD });
    await expectSettled(app, id, 'needs_otp');
    const put = await app.api(`/api/authenticate/${id}`, { method: 'PUT', body: { code: '123456' } });
    expect(put.status).toBe(202);
    const accountId = (await expectSettled(app, id, 'completed_success')).account_id;

    const answers = await Promise.all(
      Array.from({ length: 6 }, () => app.api(`/api/authenticate/${accountId}/credentials`, { method: 'PUT', body: { email, password: SANDBOX_PASSWORD } })),
    );
    const started = answers.filter((a) => a.status === 200).map((a) => a.body.attempt_id as string);
    // Over the hourly limit, the rest are refused: never more logins than allowed.
    expect(answers.filter((a) => a.status !== 200).every((a) => a.status === 429)).toBe(true);
    expect(started.length).toBe(LIMIT);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const states = await Promise.all(started.map(async (attemptId) => (await app.api(`/api/authenticate/${attemptId}`)).body));
    const running = states.filter((a) => a.completed_at === null);
    expect(running).toHaveLength(1);
    for (const other of states.filter((a) => a.completed_at !== null)) expect(other.error?.code).toBe('cancelled');
  });
});

describe('login limit default', () => {
  it('is 5 per account and hour', async () => {
    const { loadConfig } = await import('../../src/config.js');
    expect(loadConfig({}).rateLimit.accountLoginsPerHour).toBe(5);
  });
});
