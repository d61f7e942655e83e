import { afterAll, beforeAll, expect, it } from 'vitest';
import { SANDBOX_PASSWORD } from '../../src/sandbox/index.js';
import { expectSettled, startAttempt } from '../connect/login-helpers.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { describeEachStore } from '../support/stores.js';

/** The monitor never spends more logins than FANGATE_ACCOUNT_LOGINS_PER_HOUR: it waits for the budget instead. */
describeEachStore('health monitor and the login budget', (kind) => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp(kind, { env: { FANGATE_ACCOUNT_LOGINS_PER_HOUR: '1' } });
  });
  afterAll(async () => {
    await app?.close();
  });

  it('a dead session with the hour budget spent keeps the account reauthenticating and retries after the window', async () => {
    const email = 'budget1@sandbox.test';
    const accountId = (await expectSettled(app, await startAttempt(app, { email, password: SANDBOX_PASSWORD }), 'completed_success')).account_id;
    const forced = await app.api(`/api/authenticate/${accountId}/reauthenticate?force=true`, { method: 'POST' });
    expect(forced.status, forced.text).toBe(200);
    await expectSettled(app, forced.body.attempt_id, 'completed_success');

    const revoke = await fetch(`${app.sandbox.url}/__sandbox/sessions/revoke`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ platform: 'onlyfans', email }) });
    expect(revoke.status).toBe(200);
    const check = await app.api(`/api/accounts/${accountId}/check`, { method: 'POST' });
    expect(check.status, check.text).toBe(200);
    expect(check.body).toMatchObject({ session_valid: false, attempt_id: null, account: { status: 'reauthenticating' } });
    const nextCheck = new Date(check.body.account.next_check_at).getTime() - app.clock.now().getTime();
    expect(nextCheck).toBeGreaterThan(50 * 60_000);
    expect(nextCheck).toBeLessThanOrEqual(60 * 60_000 + 5_000);
    const events = await app.fangate.database.db.selectFrom('events').select('event').where('account_id', '=', accountId).execute();
    expect(events.map((e) => e.event)).not.toContain('accounts.session_expired');
  });
});
