import { afterAll, beforeAll, expect, it } from 'vitest';
import { SANDBOX_SMS_CODE, SANDBOX_TOTP_SECRET } from '../../src/sandbox/index.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { describeEachStore } from '../support/stores.js';
import { distinctStates, expectConnected, expectSettled, getAttempt, mintSession, readEvents, settle, startAttempt, submitCode } from './login-helpers.js';

/**
 * Start options of DESIGN 3.1 seen end to end: totp_secret, remember_credentials, client_reference_id, name,
 * force_connect and the duplicate check, and raw_data sessions the platform accepts or rejects.
 */

const PASSWORD = 'password';

async function revoke(app: TestApp, email: string) {
  const res = await fetch(`${app.sandbox.url}/__sandbox/sessions/revoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ platform: 'onlyfans', email }),
  });
  expect(res.status).toBe(200);
}

describeEachStore('connect options', (kind) => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp(kind);
  });
  afterAll(() => app?.close());

  it('with totp_secret, +app connects without ever asking for the app code, and FanGate can re-authenticate alone', async () => {
    const login = 'opt1+app@sandbox.test';
    const id = await startAttempt(app, { email: login, password: PASSWORD, totp_secret: SANDBOX_TOTP_SECRET });
    const { attempts, ended } = await readEvents(app, id);
    expect(ended).toBe(true);
    const states = distinctStates(attempts);
    expect(states.at(-1)).toBe('completed_success');
    expect(states).not.toContain('needs_app_otp');
    expect(states).not.toContain('wrong_2fa_code_retry');
    expectConnected(app, attempts.at(-1), { email: login, username: 'opt1', name: 'Opt1', can_reauth: true });
  });

  it('with totp_secret, +app+sms parks only on the SMS code; the account cannot re-authenticate alone (SMS needs the creator)', async () => {
    const login = 'opt2+app+sms@sandbox.test';
    // The secret as an authenticator app shows it: lower case, grouped.
    const id = await startAttempt(app, { email: login, password: PASSWORD, totp_secret: 'jbsw y3dp ehpk 3pxp' });
    const { attempts } = await readEvents(app, id, async (attempt) => {
      if (attempt.state === 'needs_otp') await app.api(`/api/authenticate/${id}`, { method: 'PUT', body: { code: SANDBOX_SMS_CODE } });
    });
    const states = distinctStates(attempts);
    // The stream may open after the worker already parked the attempt.
    expect(states[0] === 'pending' ? states : ['pending', ...states]).toEqual(['pending', 'needs_otp', 'pending', 'completed_success']);
    expectConnected(app, attempts.at(-1), { email: login, username: 'opt2', name: 'Opt2', can_reauth: false });
  });

  it('remember_credentials: false stores no credentials, so the account cannot re-authenticate alone', async () => {
    const login = 'opt3@sandbox.test';
    const id = await startAttempt(app, { email: login, password: PASSWORD, remember_credentials: false });
    const done = await expectSettled(app, id, 'completed_success');
    expectConnected(app, done, { email: login, username: 'opt3', name: 'Opt3', remember_credentials: false, can_reauth: false });
    const row = await app.fangate.database.db.selectFrom('accounts').select(['credentials_enc']).where('id', '=', done.account_id).executeTakeFirstOrThrow();
    expect(row.credentials_enc).toBeNull();
  });

  it('client_reference_id is echoed on the attempt and the account; name is the display name', async () => {
    const login = 'opt4+sms@sandbox.test';
    const id = await startAttempt(app, { email: login, password: PASSWORD, client_reference_id: 'crm-creator-42', name: 'Opt Four (main)' });
    expect(await expectSettled(app, id, 'needs_otp')).toMatchObject({ client_reference_id: 'crm-creator-42' });
    const done = await submitCode(app, id, SANDBOX_SMS_CODE);
    expect(done.client_reference_id).toBe('crm-creator-42');
    expectConnected(app, done, {
      email: login, username: 'opt4', name: 'Opt4', can_reauth: false, client_reference_id: 'crm-creator-42', display_name: 'Opt Four (main)',
    });
  });

  it('connecting the same platform user twice fails account_already_connected; force_connect reconnects the same account', async () => {
    const login = 'opt5@sandbox.test';
    const first = await expectSettled(app, await startAttempt(app, { email: login, password: PASSWORD, name: 'First' }), 'completed_success');
    const accountId = first.account_id;

    const again = await expectSettled(app, await startAttempt(app, { email: login, password: PASSWORD }), 'completed_failed');
    expect(again).toMatchObject({
      account_id: null, account: null,
      error: { code: 'account_already_connected', existing_account_id: accountId, message: expect.any(String) },
    });

    const forced = await expectSettled(
      app,
      await startAttempt(app, { email: login, password: PASSWORD, force_connect: true, name: 'Second', client_reference_id: 'ref-5' }),
      'completed_success',
    );
    expect(forced.account_id).toBe(accountId);
    expectConnected(app, forced, { email: login, username: 'opt5', name: 'Opt5', display_name: 'Second', client_reference_id: 'ref-5' });
    // Still one account for that user.
    const accounts = await app.fangate.database.db.selectFrom('accounts').select('id').where('platform_user_id', '=', first.account.platform_user.id).execute();
    expect(accounts.map((a) => a.id)).toEqual([accountId]);
    // The earlier failure keeps its answer.
    expect((await getAttempt(app, again.attempt_id)).error.existing_account_id).toBe(accountId);
  });

  it('two attempts for the same creator finishing at once: one connects, the other fails account_already_connected naming it', async () => {
    const login = 'opt8+sms@sandbox.test';
    const [a, b] = await Promise.all([startAttempt(app, { email: login, password: PASSWORD }), startAttempt(app, { email: login, password: PASSWORD })]);
    await Promise.all([expectSettled(app, a, 'needs_otp'), expectSettled(app, b, 'needs_otp')]);
    // Both codes at the same moment (a double click, two tabs).
    const submitted = await Promise.all([a, b].map((id) => app.api(`/api/authenticate/${id}`, { method: 'PUT', body: { code: SANDBOX_SMS_CODE } })));
    expect(submitted.map((r) => r.status)).toEqual([202, 202]);
    const results = await Promise.all([settle(app, a), settle(app, b)]);
    const winner = results.find((r) => r.state === 'completed_success');
    const loser = results.find((r) => r.state !== 'completed_success');
    expect(winner, JSON.stringify(results)).toBeDefined();
    expect(loser).toMatchObject({
      state: 'completed_failed', account_id: null, error: { code: 'account_already_connected', existing_account_id: winner.account_id },
    });
    const accounts = await app.fangate.database.db.selectFrom('accounts').select('id').where('platform_user_id', '=', winner.account.platform_user.id).execute();
    expect(accounts.map((r) => r.id)).toEqual([winner.account_id]);
  });

  it('raw_data: a live browser session connects; a revoked one fails session_invalid; a connected one is a 409 at once', async () => {
    const login = 'opt6@sandbox.test';
    const session = await mintSession(app, login);
    const body = { auth_type: 'raw_data', auth_id: session.auth_id, cookies: session.cookies, xbc: session.xbc, user_agent: session.user_agent };

    const done = await expectSettled(app, await startAttempt(app, body), 'completed_success');
    expect(done).toMatchObject({ auth_type: 'raw_data', error: null });
    expect(done.account).toMatchObject({
      auth_type: 'raw_data', status: 'active', remember_credentials: true, can_reauth: false, display_name: session.auth_id,
      platform_user: { id: session.user.id, username: 'opt6' },
    });

    const duplicate = await app.api('/api/authenticate', { method: 'POST', body });
    expect(duplicate.status).toBe(409);
    expect(duplicate.body).toMatchObject({ code: 'account_already_connected', existing_account_id: done.account_id });

    const other = 'opt7@sandbox.test';
    const dead = await mintSession(app, other);
    await revoke(app, other);
    const failed = await expectSettled(
      app,
      await startAttempt(app, { auth_type: 'raw_data', auth_id: dead.auth_id, cookies: dead.cookies, xbc: dead.xbc, user_agent: dead.user_agent }),
      'completed_failed',
    );
    expect(failed).toMatchObject({ account_id: null, account: null, error: { code: 'session_invalid', message: expect.any(String) } });
  });
});
