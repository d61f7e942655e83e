import { afterAll, beforeAll, expect, it } from 'vitest';
import { SANDBOX_PASSWORD, SANDBOX_SMS_CODE } from '../../src/sandbox/index.js';
import { expectSettled, startAttempt, submitCode } from '../connect/login-helpers.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { describeEachStore } from '../support/stores.js';

/** What an operator reads (DESIGN 11): one log line per attempt state change and account status change, domain metrics. */

const sample = (text: string, name: string, labels: Record<string, string>): number | undefined => {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (wanted.every((w) => line.includes(w))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
};

describeEachStore('logs and metrics', (kind) => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp(kind);
  });
  afterAll(async () => {
    await app?.close();
  });

  it('a connect with an SMS code is logged state by state, counted and timed, and the gauges read the database', async () => {
    const metrics = async () => (await fetch(`${app.url}/metrics`)).text();
    const before = await metrics();
    for (const name of ['fangate_attempts_total', 'fangate_attempt_duration_seconds', 'fangate_attempts_in_state', 'fangate_accounts', 'fangate_jobs_queued']) {
      expect(before).toContain(`# HELP ${name} `);
    }
    const successesBefore = sample(before, 'fangate_attempts_total', { platform: 'onlyfans', auth_type: 'email_password', outcome: 'success' }) ?? 0;

    const id = await startAttempt(app, { email: 'metrics1+sms@sandbox.test', password: SANDBOX_PASSWORD, client_reference_id: 'crm-metrics' });
    await expectSettled(app, id, 'needs_otp');
    expect(sample(await metrics(), 'fangate_attempts_in_state', { state: 'needs_otp' })).toBeGreaterThanOrEqual(1);
    const done = await submitCode(app, id, SANDBOX_SMS_CODE);
    expect(done.state).toBe('completed_success');

    const after = await metrics();
    expect(sample(after, 'fangate_attempts_total', { platform: 'onlyfans', auth_type: 'email_password', outcome: 'success' })).toBe(successesBefore + 1);
    expect(sample(after, 'fangate_attempt_duration_seconds_count', { platform: 'onlyfans', outcome: 'success' })).toBeGreaterThanOrEqual(1);
    expect(sample(after, 'fangate_accounts', { status: 'active' })).toBeGreaterThanOrEqual(1);
    expect(sample(after, 'fangate_jobs_queued', { queue: 'connect-step' })).toBeDefined();

    const lines = app.logs.map((l) => JSON.parse(l)).filter((l) => l.attemptId === id);
    const states = lines.filter((l) => l.msg === 'attempt state changed' || l.msg === 'attempt started').map((l) => l.state);
    expect(states).toEqual(expect.arrayContaining(['pending', 'needs_otp', 'completed_success']));
    for (const line of lines) {
      expect(line.clientReferenceId).toBe('crm-metrics');
      expect(line.level).toBeLessThan(50); // an expected outcome is never logged as an error
      expect(JSON.stringify(line)).not.toContain(SANDBOX_SMS_CODE);
    }
  });

  it('a re-authentication logs the account status changes', async () => {
    const id = await startAttempt(app, { email: 'metrics2@sandbox.test', password: SANDBOX_PASSWORD });
    const accountId = (await expectSettled(app, id, 'completed_success')).account_id;
    const reauth = await app.api(`/api/authenticate/${accountId}/reauthenticate?force=true`, { method: 'POST' });
    expect(reauth.status, reauth.text).toBe(200);
    await expectSettled(app, reauth.body.attempt_id, 'completed_success');
    const changes = app.logs
      .map((l) => JSON.parse(l))
      .filter((l) => l.msg === 'account status changed' && l.accountId === accountId)
      .map((l) => `${l.from}->${l.status}`);
    expect(changes).toEqual(['active->reauthenticating', 'reauthenticating->active']);
  });

  it('logs expected outcomes (a 404, a 422, a relayed upstream 502) at info with their code, never as errors', async () => {
    const id = await startAttempt(app, { email: 'metrics3@sandbox.test', password: SANDBOX_PASSWORD });
    const accountId = (await expectSettled(app, id, 'completed_success')).account_id;
    const revoked = await fetch(`${app.sandbox.url}/__sandbox/sessions/revoke`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ platform: 'onlyfans', email: 'metrics3@sandbox.test' }) });
    expect(revoked.status).toBe(200);
    const answers = [
      await app.api('/api/accounts/acct_doesnotexist0000000000'),
      await app.api('/api/authenticate', { method: 'POST', body: { email: 'x@sandbox.test', password: 5 } }),
      await app.api(`/api/${accountId}/me`),
    ];
    expect(answers.map((a) => a.status)).toEqual([404, 422, 502]);
    const ids = answers.map((a) => a.headers.get('x-request-id'));
    const lines = app.logs.map((l) => JSON.parse(l)).filter((l) => ids.includes(l.reqId) && (l.msg === 'request completed' || l.msg === 'request errored'));
    expect(lines).toHaveLength(3);
    for (const line of lines) {
      expect(line.level).toBe(30);
      expect(line.err).toBeUndefined();
      expect(typeof line.code).toBe('string');
    }
  });
});
