import { afterAll, beforeAll, expect, it } from 'vitest';
import { SANDBOX_PASSWORD, SANDBOX_SMS_CODE, SANDBOX_TOTP_SECRET } from '../../src/sandbox/index.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { describeEachStore } from '../support/stores.js';

/**
 * The three connect methods and the life of a connected account: raw_data and mobile hand-off connects,
 * re-authentication with stored credentials, and credentials updates (DESIGN 3.1, 3.4, 4, 6).
 */

const TERMINAL = ['completed_success', 'completed_failed'];
const CREDENTIALS_MESSAGE = 'Authentication credentials updated. Re-authentication started. Query the polling_url to check the progress.';
const UA = 'Mozilla/5.0 (X11; Linux x86_64) FanGateTests/1.0';

describeEachStore('connect: raw_data, mobile hand-off, reauthenticate, credentials update', (kind) => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp(kind);
  });
  afterAll(async () => {
    await app?.close();
  });

  // ---------------------------------------------------------------------------------------------- helpers

  const base = (platform: 'onlyfans' | 'fansly') => (platform === 'fansly' ? '/api/fansly/authenticate' : '/api/authenticate');

  /** Long-polls the attempt until `done(state)` (default: a terminal state); returns it and every state seen. */
  async function until(id: string, done: (state: string) => boolean = (s) => TERMINAL.includes(s), platform: 'onlyfans' | 'fansly' = 'onlyfans') {
    const seen: string[] = [];
    const deadline = Date.now() + 25_000;
    let res = await app.api(`${base(platform)}/${id}`);
    for (;;) {
      expect(res.status).toBe(200);
      if (seen.at(-1) !== res.body.state) seen.push(res.body.state);
      if (done(res.body.state)) return { attempt: res.body, seen };
      if (Date.now() > deadline) throw new Error(`attempt ${id} stuck in ${res.body.state} (${res.body.progress})`);
      res = await app.api(`${base(platform)}/${id}?wait=10&state=${res.body.state}`);
    }
  }

  async function start(body: Record<string, unknown>, platform: 'onlyfans' | 'fansly' = 'onlyfans') {
    const res = await app.api(base(platform), { method: 'POST', body });
    expect(res.status, res.text).toBe(200);
    return res.body;
  }

  /** A connected account (email + password, answering the SMS code when asked). */
  async function connected(email: string, extra: Record<string, unknown> = {}) {
    const started = await start({ email, password: SANDBOX_PASSWORD, ...extra });
    let { attempt } = await until(started.attempt_id, (s) => TERMINAL.includes(s) || s === 'needs_otp');
    if (attempt.state === 'needs_otp') {
      const put = await app.api(`/api/authenticate/${attempt.attempt_id}`, { method: 'PUT', body: { code: SANDBOX_SMS_CODE } });
      expect(put.status).toBe(202);
      ({ attempt } = await until(attempt.attempt_id));
    }
    expect(attempt.state, JSON.stringify(attempt.error)).toBe('completed_success');
    return attempt.account as { id: string; [k: string]: any };
  }

  async function sandbox(path: string, body?: unknown) {
    const res = await fetch(`${app.sandbox.url}${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    expect(res.status).toBe(200);
    return (await res.json()) as any;
  }
  const mint = (email: string, platform = 'onlyfans') => sandbox('/__sandbox/sessions', { platform, email, user_agent: UA });
  const revoke = (email: string, platform = 'onlyfans') => sandbox('/__sandbox/sessions/revoke', { platform, email });
  const requestLog = async (email: string) => (await sandbox(`/__sandbox/requests?email=${encodeURIComponent(email)}`)).data as any[];
  const rawBody = (s: any) => ({ auth_type: 'raw_data', auth_id: s.auth_id, cookies: s.cookies, xbc: s.xbc, user_agent: s.user_agent });

  async function accountRow(id: string) {
    return app.fangate.database.db.selectFrom('accounts').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  }

  const reauth = (accountId: string, query = '', platform: 'onlyfans' | 'fansly' = 'onlyfans') =>
    app.api(`${base(platform)}/${accountId}/reauthenticate${query}`, { method: 'POST' });

  // ---------------------------------------------------------------------------------------------- raw_data

  it('raw_data: a minted session connects as a non-imported raw_data account', async () => {
    const email = `raw-ok@sandbox.test`;
    const session = await mint(email);
    const started = await start({ ...rawBody(session), client_reference_id: 'crm-raw-1' });
    expect(started.state).toBe('pending');
    const { attempt } = await until(started.attempt_id);
    expect(attempt.state).toBe('completed_success');
    expect(attempt.auth_type).toBe('raw_data');
    expect(attempt.kind).toBe('connect');
    expect(attempt.error).toBeNull();
    expect(attempt.account).toMatchObject({
      id: attempt.account_id,
      status: 'active',
      auth_type: 'raw_data',
      imported: false,
      client_reference_id: 'crm-raw-1',
      platform_user: { id: session.user.id, username: session.user.username },
    });
    // The session came from the creator's browser: FanGate used it with that browser's user agent.
    const log = await requestLog(email);
    expect(log.length).toBeGreaterThan(0);
    expect(log.every((r) => r.user_agent === UA)).toBe(true);
  });

  it('raw_data: a revoked or made-up session fails session_invalid', async () => {
    const email = 'raw-revoked@sandbox.test';
    const session = await mint(email);
    await revoke(email);
    const revoked = await until((await start(rawBody(session))).attempt_id);
    expect(revoked.attempt.state).toBe('completed_failed');
    expect(revoked.attempt.error.code).toBe('session_invalid');
    expect(revoked.attempt.account_id).toBeNull();

    const other = await mint('raw-garbage@sandbox.test');
    const garbage = { ...rawBody(other), cookies: `auth_id=${other.auth_id}; sess=0123456789abcdef0123456789abcdef; fp=ffffffffffffffffffffffffffffffff` };
    const made_up = await until((await start(garbage)).attempt_id);
    expect(made_up.attempt.state).toBe('completed_failed');
    expect(made_up.attempt.error.code).toBe('session_invalid');
  });

  it('raw_data: the same auth_id again is a 409 before any upstream call; force_connect reconnects it', async () => {
    const email = 'raw-dup@sandbox.test';
    const first = await until((await start(rawBody(await mint(email)))).attempt_id);
    expect(first.attempt.state).toBe('completed_success');
    const accountId = first.attempt.account_id;

    const again = await mint(email);
    const before = (await requestLog(email)).length;
    const dup = await app.api('/api/authenticate', { method: 'POST', body: rawBody(again) });
    expect(dup.status).toBe(409);
    expect(dup.headers.get('content-type')).toMatch(/application\/problem\+json/);
    expect(dup.body.code).toBe('account_already_connected');
    expect(dup.body.existing_account_id).toBe(accountId);
    expect((await requestLog(email)).length).toBe(before); // refused without asking the platform

    const forced = await until((await start({ ...rawBody(again), force_connect: true })).attempt_id);
    expect(forced.attempt.state).toBe('completed_success');
    expect(forced.attempt.account_id).toBe(accountId); // the same account, with the new session
    expect((await requestLog(email)).length).toBeGreaterThan(before);
  });

  // ---------------------------------------------------------------------------------------------- mobile_app

  it('mobile_app: the deeplink code completes the attempt once, without an API key', async () => {
    const started = await start({ auth_type: 'mobile_app', client_reference_id: 'crm-mobile' });
    expect(started.state).toBe('awaiting_mobile_session');
    expect(started.mobile_auth_session_deeplink).toMatch(/^fangate:\/\/auth\/[A-Za-z0-9_-]{40,}$/);
    const code = started.mobile_auth_session_deeplink.slice('fangate://auth/'.length);

    const waiting = await app.api(`/api/authenticate/${started.attempt_id}`);
    expect(waiting.body).toMatchObject({ state: 'awaiting_mobile_session', next_actions: ['open_mobile_app'], auth_type: 'mobile_app' });
    expect(waiting.body.mobile_auth_session_deeplink).toBe(started.mobile_auth_session_deeplink);

    const session = await mint('mobile-ok@sandbox.test');
    const phone = { auth_id: session.auth_id, cookies: session.cookies, xbc: session.xbc, user_agent: session.user_agent };
    const done = await app.api(`/api/mobile-auth/${code}`, { method: 'POST', body: phone, key: null });
    expect(done.status, done.text).toBe(200);
    expect(done.body.status).toBe('connected');
    expect(done.body.attempt_id).toBe(started.attempt_id);

    const { attempt } = await until(started.attempt_id);
    expect(attempt.state).toBe('completed_success');
    expect(attempt.mobile_auth_session_deeplink).toBeNull();
    expect(attempt.account).toMatchObject({ platform_user: { id: session.user.id }, imported: false, client_reference_id: 'crm-mobile' });
    expect(done.body.account_id).toBe(attempt.account_id);

    // Single use: the same code again, and a code nobody issued, are unknown.
    const twice = await app.api(`/api/mobile-auth/${code}`, { method: 'POST', body: phone, key: null });
    expect(twice.status).toBe(404);
    const unknown = await app.api(`/api/mobile-auth/${'Z'.repeat(43)}`, { method: 'POST', body: phone, key: null });
    expect(unknown.status).toBe(404);
  });

  it('mobile_app: a session the platform rejects answers 400 session_invalid and fails the attempt', async () => {
    const started = await start({ auth_type: 'mobile_app' });
    const code = started.mobile_auth_session_deeplink.slice('fangate://auth/'.length);
    const email = 'mobile-bad@sandbox.test';
    const session = await mint(email);
    await revoke(email);
    const res = await app.api(`/api/mobile-auth/${code}`, {
      method: 'POST',
      body: { auth_id: session.auth_id, cookies: session.cookies, xbc: session.xbc, user_agent: session.user_agent },
      key: null,
    });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('session_invalid');
    const { attempt } = await until(started.attempt_id);
    expect(attempt.state).toBe('completed_failed');
    expect(attempt.error.code).toBe('session_invalid');
  });

  // ---------------------------------------------------------------------------------------------- reauthenticate

  it('reauthenticate: 400 while the session is valid; after a logout it completes in one trip; ?force=true works', async () => {
    const email = 'reauth-plain@sandbox.test';
    const account = await connected(email);

    const valid = await reauth(account.id);
    expect(valid.status).toBe(400);
    expect(valid.body.code).toBe('already_authenticated');
    // Seed wording (DESIGN 3.4): the message says what happened, the reason why.
    expect(valid.body).toMatchObject({ message: "Can't re-authenticate account at this time.", reason: 'Account is already successfully authenticated' });

    await revoke(email);
    const res = await reauth(account.id);
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ success: true, message: 'Re-authentication started.' });
    expect(res.body.polling_url).toMatch(new RegExp(`/api/authenticate/${res.body.attempt_id}$`));
    const { attempt, seen } = await until(res.body.attempt_id);
    expect(attempt).toMatchObject({ state: 'completed_success', kind: 'reauthenticate', account_id: account.id });
    expect(seen).not.toContain('needs_otp');
    expect(attempt.account.status).toBe('active');

    const forced = await reauth(account.id, '?force=true');
    expect(forced.status).toBe(200);
    expect(forced.body.attempt_id).not.toBe(res.body.attempt_id);
    const second = await until(forced.body.attempt_id);
    expect(second.attempt).toMatchObject({ state: 'completed_success', kind: 'reauthenticate', account_id: account.id });
  });

  it('reauthenticate: an +sms account parks on needs_otp (account awaiting_2fa); concurrent calls share one attempt', async () => {
    const email = 'reauth+sms@sandbox.test';
    const account = await connected(email);
    await revoke(email);

    const [a, b] = await Promise.all([reauth(account.id), reauth(account.id)]);
    expect(a.status).toBe(200);
    expect(b.status).toBe(200);
    expect(b.body.attempt_id).toBe(a.body.attempt_id);

    const { attempt } = await until(a.body.attempt_id, (s) => s !== 'pending');
    expect(attempt).toMatchObject({ state: 'needs_otp', kind: 'reauthenticate', phone_last4: '4242', next_actions: ['submit_code'] });
    expect(attempt.account.status).toBe('awaiting_2fa');
    expect((await accountRow(account.id)).status).toBe('awaiting_2fa');

    // Still single-flight while it waits, even when forced.
    const third = await reauth(account.id, '?force=true');
    expect(third.body.attempt_id).toBe(a.body.attempt_id);
    const count = await app.fangate.database.db.selectFrom('auth_attempts').select('id').where('account_id', '=', account.id).where('kind', '=', 'reauthenticate').execute();
    expect(count).toHaveLength(1);

    await app.api(`/api/authenticate/${attempt.attempt_id}`, { method: 'PUT', body: { code: SANDBOX_SMS_CODE } });
    const done = await until(attempt.attempt_id);
    expect(done.attempt.state).toBe('completed_success');
    expect(done.attempt.account.status).toBe('active');
  });

  it('reauthenticate: 412 no_stored_credentials for raw_data accounts and remember_credentials: false', async () => {
    const raw = await until((await start(rawBody(await mint('reauth-raw@sandbox.test')))).attempt_id);
    expect(raw.attempt.state).toBe('completed_success');
    const rawRes = await reauth(raw.attempt.account_id, '?force=true');
    expect(rawRes.status).toBe(412);
    expect(rawRes.body.code).toBe('no_stored_credentials');

    const forgetful = await connected('reauth-forget@sandbox.test', { remember_credentials: false });
    expect(forgetful.remember_credentials).toBe(false);
    expect(forgetful.can_reauth).toBe(false);
    expect((await accountRow(forgetful.id)).credentials_enc).toBeNull();
    await revoke('reauth-forget@sandbox.test');
    const res = await reauth(forgetful.id);
    expect(res.status).toBe(412);
    expect(res.body.code).toBe('no_stored_credentials');
  });

  it('reauthenticate: an +app account with a stored totp_secret answers the app code itself', async () => {
    const email = 'reauth+app@sandbox.test';
    const started = await start({ email, password: SANDBOX_PASSWORD, totp_secret: SANDBOX_TOTP_SECRET });
    const first = await until(started.attempt_id);
    expect(first.attempt.state).toBe('completed_success');
    expect(first.seen).not.toContain('needs_app_otp');
    expect(first.attempt.account.can_reauth).toBe(true);

    await revoke(email);
    const res = await reauth(first.attempt.account_id);
    expect(res.status).toBe(200);
    const { attempt, seen } = await until(res.body.attempt_id);
    expect(attempt.state).toBe('completed_success');
    expect(seen).toEqual(expect.not.arrayContaining(['needs_app_otp', 'wrong_2fa_code_retry']));
    // The platform did ask for the app code, and got it from FanGate.
    const log = await requestLog(email);
    const otps = log.filter((r) => r.path === '/api2/v2/users/login/otp');
    expect(otps.length).toBeGreaterThanOrEqual(2);
    expect(otps.at(-1).status).toBe(200);
  });

  // ---------------------------------------------------------------------------------------------- credentials update

  it('credentials update: 200 with the pinned message; the account is reauthenticating while it runs', async () => {
    const email = 'cred+slow@sandbox.test';
    const account = await connected(email);
    const res = await app.api(`/api/authenticate/${account.id}/credentials`, { method: 'PUT', body: { email, password: SANDBOX_PASSWORD, name: 'Renamed' } });
    expect(res.status, res.text).toBe(200);
    expect(res.body.message).toBe(CREDENTIALS_MESSAGE);
    expect(res.body.polling_url).toMatch(new RegExp(`/api/authenticate/${res.body.attempt_id}$`));
    expect(res.body.mobile_auth_session_deeplink).toBeUndefined();
    // +slow: every platform call takes 2 s, so the account is still being re-authenticated here.
    expect((await accountRow(account.id)).status).toBe('reauthenticating');
    const polled = await app.api(`/api/authenticate/${res.body.attempt_id}`);
    expect(polled.body).toMatchObject({ kind: 'credentials_update', account_id: account.id });
    expect(polled.body.account.status).toBe('reauthenticating');
    // …and its Access API tells callers to come back (DESIGN 3.4).
    const me = await app.api(`/api/${account.id}/me`);
    expect(me.status, me.text).toBe(503);
    expect(me.body).toMatchObject({ code: 'account_reauthenticating', retryable: true });

    const { attempt } = await until(res.body.attempt_id);
    expect(attempt.state).toBe('completed_success');
    expect(attempt.account).toMatchObject({ status: 'active', display_name: 'Renamed', id: account.id });
  });

  it('credentials update: cancels the running attempts of the account and parks as awaiting_2fa', async () => {
    const email = 'cred+sms@sandbox.test';
    const account = await connected(email);
    await revoke(email);
    const running = await reauth(account.id);
    expect(running.status).toBe(200);
    await until(running.body.attempt_id, (s) => s === 'needs_otp');

    const res = await app.api(`/api/authenticate/${account.id}/credentials`, { method: 'PUT', body: { email, password: SANDBOX_PASSWORD } });
    expect(res.status).toBe(200);
    expect(res.body.attempt_id).not.toBe(running.body.attempt_id);
    const old = await app.api(`/api/authenticate/${running.body.attempt_id}`);
    expect(old.body.state).toBe('completed_failed');
    expect(old.body.error.code).toBe('cancelled');

    const { attempt } = await until(res.body.attempt_id, (s) => s !== 'pending');
    expect(attempt.state).toBe('needs_otp');
    expect(attempt.account.status).toBe('awaiting_2fa');
    await app.api(`/api/authenticate/${attempt.attempt_id}`, { method: 'PUT', body: { code: SANDBOX_SMS_CODE } });
    expect((await until(attempt.attempt_id)).attempt.state).toBe('completed_success');
  });

  it('credentials update: switching an email_password account to raw_data', async () => {
    const email = 'cred-switch@sandbox.test';
    const account = await connected(email);
    expect(account.auth_type).toBe('email_password');
    const res = await app.api(`/api/authenticate/${account.id}/credentials`, { method: 'PUT', body: rawBody(await mint(email)) });
    expect(res.status, res.text).toBe(200);
    const { attempt } = await until(res.body.attempt_id);
    expect(attempt).toMatchObject({ state: 'completed_success', auth_type: 'raw_data', kind: 'credentials_update', account_id: account.id });
    expect(attempt.account.auth_type).toBe('raw_data');
    expect((await accountRow(account.id)).user_agent).toBe(UA); // the session's browser from now on

    // …and on to the phone hand-off, which answers with the deeplink.
    const mobile = await app.api(`/api/authenticate/${account.id}/credentials`, { method: 'PUT', body: { auth_type: 'mobile_app' } });
    expect(mobile.status, mobile.text).toBe(200);
    expect(mobile.body.message).toBe(CREDENTIALS_MESSAGE);
    expect(mobile.body.mobile_auth_session_deeplink).toMatch(/^fangate:\/\/auth\/[A-Za-z0-9_-]{40,}$/);
    const code = mobile.body.mobile_auth_session_deeplink.slice('fangate://auth/'.length);
    const s = await mint(email);
    const phone = await app.api(`/api/mobile-auth/${code}`, { method: 'POST', key: null, body: { auth_id: s.auth_id, cookies: s.cookies, xbc: s.xbc, user_agent: s.user_agent } });
    expect(phone.status, phone.text).toBe(200);
    expect(phone.body).toMatchObject({ status: 'connected', account_id: account.id });
    expect((await accountRow(account.id)).auth_type).toBe('mobile_app');
  });

  it('credentials update: credentials of another platform user fail wrong_user and the old ones stay', async () => {
    const email = 'cred-owner@sandbox.test';
    const account = await connected(email);
    const before = await accountRow(account.id);

    const res = await app.api(`/api/authenticate/${account.id}/credentials`, { method: 'PUT', body: { email: 'cred-intruder@sandbox.test', password: SANDBOX_PASSWORD } });
    expect(res.status).toBe(200);
    const { attempt } = await until(res.body.attempt_id);
    expect(attempt.state).toBe('completed_failed');
    expect(attempt.error.code).toBe('wrong_user');
    const after = await accountRow(account.id);
    expect(after.status).toBe('active');
    expect(after.platform_user_id).toBe(before.platform_user_id);
    expect(after.credentials_enc).toBe(before.credentials_enc);

    // The stored login is still the owner's: a forced re-authentication logs in as the owner.
    const ownerLogins = (await requestLog(email)).filter((r) => r.path === '/api2/v2/users/login').length;
    const again = await reauth(account.id, '?force=true');
    expect(again.status).toBe(200);
    const done = await until(again.body.attempt_id);
    expect(done.attempt.state).toBe('completed_success');
    expect((await requestLog(email)).filter((r) => r.path === '/api2/v2/users/login').length).toBe(ownerLogins + 1);

    // Raw data of another user is refused the same way.
    const raw = await app.api(`/api/authenticate/${account.id}/credentials`, { method: 'PUT', body: rawBody(await mint('cred-intruder2@sandbox.test')) });
    const rawDone = await until(raw.body.attempt_id);
    expect(rawDone.attempt.error.code).toBe('wrong_user');
    expect((await accountRow(account.id)).auth_type).toBe('email_password');
  });

  // ---------------------------------------------------------------------------------------------- Fansly

  it('Fansly: reauthenticate answers the seed 400 while valid, works after logout and when forced; credentials update', async () => {
    const username = 'fansly-reauth';
    const started = await start({ username, password: SANDBOX_PASSWORD }, 'fansly');
    const first = await until(started.attempt_id, undefined, 'fansly');
    expect(first.attempt.state).toBe('completed_success');
    const accountId = first.attempt.account_id;

    const valid = await reauth(accountId, '', 'fansly');
    expect(valid.status).toBe(400);
    expect(valid.body.code).toBe('already_authenticated');
    expect(valid.body.detail).toBe("Can't re-authenticate account at this time.");

    // An OnlyFans route does not know a Fansly account.
    expect((await reauth(accountId, '?force=true', 'onlyfans')).status).toBe(404);

    const forced = await reauth(accountId, '?force=true', 'fansly');
    expect(forced.status).toBe(200);
    expect(forced.body.polling_url).toMatch(new RegExp(`/api/fansly/authenticate/${forced.body.attempt_id}$`));
    expect((await until(forced.body.attempt_id, undefined, 'fansly')).attempt).toMatchObject({ state: 'completed_success', kind: 'reauthenticate' });

    await revoke(username, 'fansly');
    const after = await reauth(accountId, '', 'fansly');
    expect(after.status).toBe(200);
    expect((await until(after.body.attempt_id, undefined, 'fansly')).attempt.state).toBe('completed_success');

    const update = await app.api(`/api/fansly/authenticate/${accountId}/credentials`, { method: 'PUT', body: { email: `${username}@sandbox.test`, password: SANDBOX_PASSWORD } });
    expect(update.status).toBe(200);
    expect(update.body.message).toBe(CREDENTIALS_MESSAGE);
    expect((await until(update.body.attempt_id, undefined, 'fansly')).attempt).toMatchObject({ state: 'completed_success', kind: 'credentials_update' });

    const wrong = await app.api(`/api/fansly/authenticate/${accountId}/credentials`, { method: 'PUT', body: { username: 'fansly-someone-else', password: SANDBOX_PASSWORD } });
    expect(wrong.status).toBe(200);
    expect((await until(wrong.body.attempt_id, undefined, 'fansly')).attempt.error.code).toBe('wrong_user');
  });
});
