import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { accountSecretPlace } from '../../src/accounts/model.js';
import { SANDBOX_EMAIL_CODE, SANDBOX_PASSWORD, SANDBOX_SMS_CODE, SANDBOX_TOTP_SECRET } from '../../src/sandbox/index.js';
import type { PlatformSession } from '../../src/platforms/types.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { startHttpProxy, startSocksProxy, type TestProxy } from '../support/proxies.js';
import { describeEachStore } from '../support/stores.js';

/**
 * Secret canary (DESIGN 2, 11; issue 4): connect accounts every way with distinctive secrets, then look for
 * them in plain text everywhere a secret could leak — every API response, every log line, and every row of
 * every table (pg-boss jobs included). Encrypted columns are fine; the secret itself never is.
 */

const TERMINAL = ['completed_success', 'completed_failed'];
const UA = 'Mozilla/5.0 (Canary) FanGateSecretsTest/7.7';
const PROXY_PASS = 'Canary-Proxy-Pass-7781';
const SOCKS_PASS = 'Canary-Socks-Pass-5523';
const WRONG_PROXY_PASS = 'Canary-Wrong-Proxy-3301';
const WRONG_LOGIN_PASS = 'Canary-Wrong-Login-6612';
const WRONG_CODE = '90817263';

/** Every row of every table of the public and pgboss schemas (partitioned parents included) as text. */
async function dumpAll(db: Kysely<any>): Promise<string> {
  const tables = await sql<{ schema: string; name: string }>`
    select n.nspname as schema, c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname in ('public', 'pgboss') and c.relkind in ('r', 'p')`.execute(db);
  const out: string[] = [];
  for (const t of tables.rows) {
    const rows = await sql<{ row: string }>`select t::text as row from ${sql.table(`${t.schema}.${t.name}`)} t`.execute(db);
    out.push(`-- ${t.schema}.${t.name}`, ...rows.rows.map((r) => r.row));
  }
  return out.join('\n');
}

describeEachStore('connect: no secret in plain text in responses, logs or the database', (kind) => {
  let app: TestApp;
  let httpProxy: TestProxy;
  let socksProxy: TestProxy;
  const responses: string[] = [];
  /** Secrets that must appear nowhere (name → value). */
  const secrets = new Map<string, string>([
    ['proxy password', PROXY_PASS],
    ['socks password', SOCKS_PASS],
    ['wrong proxy password', WRONG_PROXY_PASS],
    ['wrong login password', WRONG_LOGIN_PASS],
    ['wrong code', WRONG_CODE],
    ['totp secret', SANDBOX_TOTP_SECRET],
    ['totp secret (as typed)', 'jbsw-y3dp-ehpk-3pxp'],
    ['password in JSON', `"password":"${SANDBOX_PASSWORD}"`],
    ['password in jsonb', `"password": "${SANDBOX_PASSWORD}"`],
    ['password in a query', `password=${SANDBOX_PASSWORD}`],
    ['sms code in JSON', `"${SANDBOX_SMS_CODE}"`],
    ['sms code in a query', `code=${SANDBOX_SMS_CODE}`],
    ['email code in JSON', `"${SANDBOX_EMAIL_CODE}"`],
  ]);
  /** Secrets that the contract hands to the developer once (the deeplink), so absent from logs and the database only. */
  const handOffCodes: string[] = [];
  const accountIds: string[] = [];

  async function api(path: string, init: Parameters<TestApp['api']>[1] = {}) {
    const res = await app.api(path, init);
    responses.push(res.text);
    return res;
  }
  async function until(path: string, done: (state: string) => boolean = (s) => TERMINAL.includes(s)) {
    const deadline = Date.now() + 25_000;
    let res = await api(path);
    while (!done(res.body.state)) {
      if (Date.now() > deadline) throw new Error(`${path} stuck in ${res.body.state}`);
      res = await api(`${path}?wait=10&state=${res.body.state}`);
    }
    return res.body;
  }
  async function start(body: object, platform: 'onlyfans' | 'fansly' = 'onlyfans') {
    const res = await api(platform === 'fansly' ? '/api/fansly/authenticate' : '/api/authenticate', { method: 'POST', body });
    expect(res.status, res.text).toBe(200);
    return res.body;
  }
  async function mint(email: string) {
    const res = await fetch(`${app.sandbox.url}/__sandbox/sessions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ platform: 'onlyfans', email, user_agent: UA }),
    });
    const session = (await res.json()) as { auth_id: string; cookies: string; xbc: string; user_agent: string };
    const sess = /sess=([^;]+)/.exec(session.cookies)![1]!;
    secrets.set(`sess of ${email}`, sess);
    secrets.set(`x-bc of ${email}`, session.xbc);
    return session;
  }
  const revoke = (email: string) =>
    fetch(`${app.sandbox.url}/__sandbox/sessions/revoke`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ platform: 'onlyfans', email }) });

  beforeAll(async () => {
    app = await startTestApp(kind);
    httpProxy = await startHttpProxy({ localAddress: '127.0.0.2', auth: { username: 'canary', password: PROXY_PASS } });
    socksProxy = await startSocksProxy({ localAddress: '127.0.0.2', auth: { username: 'canary', password: SOCKS_PASS } });
  });
  afterAll(async () => {
    await app?.close();
    await httpProxy?.close();
    await socksProxy?.close();
  });

  it('runs every kind of connect with distinctive secrets', async () => {
    // email + password through an authenticated HTTP proxy, +sms with a wrong code first, then re-authenticated.
    const sms = await start({ email: 'canary+sms@sandbox.test', password: SANDBOX_PASSWORD, customProxy: { host: '127.0.0.1', port: httpProxy.port, username: 'canary', password: PROXY_PASS } });
    let attempt = await until(`/api/authenticate/${sms.attempt_id}`, (s) => s === 'needs_otp' || TERMINAL.includes(s));
    expect(attempt.state).toBe('needs_otp');
    expect((await api(`/api/authenticate/${sms.attempt_id}`, { method: 'PUT', body: { code: WRONG_CODE } })).status).toBe(202);
    attempt = await until(`/api/authenticate/${sms.attempt_id}`, (s) => s === 'wrong_2fa_code_retry' || TERMINAL.includes(s));
    expect(attempt.state).toBe('wrong_2fa_code_retry');
    expect((await api(`/api/authenticate/${sms.attempt_id}`, { method: 'PUT', body: { code: SANDBOX_SMS_CODE } })).status).toBe(202);
    attempt = await until(`/api/authenticate/${sms.attempt_id}`);
    expect(attempt.state, JSON.stringify(attempt.error)).toBe('completed_success');
    accountIds.push(attempt.account_id);
    const forced = await api(`/api/authenticate/${attempt.account_id}/reauthenticate?force=true`, { method: 'POST' });
    expect(forced.status).toBe(200);
    const parked = await until(`/api/authenticate/${forced.body.attempt_id}`, (s) => s !== 'pending');
    expect(parked.state).toBe('needs_otp');
    await api(`/api/authenticate/${parked.attempt_id}`, { method: 'PUT', body: { code: SANDBOX_SMS_CODE } });
    expect((await until(`/api/authenticate/${parked.attempt_id}`)).state).toBe('completed_success');

    // An authenticator-app account through SOCKS5, with the TOTP secret as a creator would type it.
    const app2 = await start({
      email: 'canary+app@sandbox.test', password: SANDBOX_PASSWORD, totp_secret: 'jbsw-y3dp-ehpk-3pxp',
      customProxy: { protocol: 'socks5', host: '127.0.0.1', port: socksProxy.port, username: 'canary', password: SOCKS_PASS },
    });
    attempt = await until(`/api/authenticate/${app2.attempt_id}`);
    expect(attempt.state, JSON.stringify(attempt.error)).toBe('completed_success');
    accountIds.push(attempt.account_id);
    await revoke('canary+app@sandbox.test');
    const reauth = await api(`/api/authenticate/${attempt.account_id}/reauthenticate`, { method: 'POST' });
    expect(reauth.status).toBe(200);
    expect((await until(`/api/authenticate/${reauth.body.attempt_id}`)).state).toBe('completed_success');

    // The email device check, with its code.
    const email = await start({ email: 'canary+email@sandbox.test', password: SANDBOX_PASSWORD });
    attempt = await until(`/api/authenticate/${email.attempt_id}`, (s) => s !== 'pending');
    expect(attempt.state).toBe('needs_email');
    expect((await api(`/api/authenticate/${email.attempt_id}/send-email-to-creator`, { method: 'POST' })).status).toBe(202);
    // The email is requested by a job: retry the code until the platform has sent it.
    for (let i = 0; i < 20; i++) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      const put = await api(`/api/authenticate/${email.attempt_id}`, { method: 'PUT', body: { code: SANDBOX_EMAIL_CODE } });
      if (put.status !== 202) continue;
      attempt = await until(`/api/authenticate/${email.attempt_id}`, (s) => s !== 'pending');
      if (attempt.state !== 'wrong_2fa_code_retry') break;
    }
    expect(attempt.state, JSON.stringify(attempt.error)).toBe('completed_success');
    accountIds.push(attempt.account_id);

    // raw_data, with a credentials update to another raw session of the same user.
    const { user: _first, ...first } = (await mint('canary-raw@sandbox.test')) as any;
    const raw = await start({ auth_type: 'raw_data', ...first });
    attempt = await until(`/api/authenticate/${raw.attempt_id}`);
    expect(attempt.state, JSON.stringify(attempt.error)).toBe('completed_success');
    accountIds.push(attempt.account_id);
    const { user: _user, ...second } = (await mint('canary-raw@sandbox.test')) as any;
    const update = await api(`/api/authenticate/${attempt.account_id}/credentials`, { method: 'PUT', body: { auth_type: 'raw_data', ...second } });
    expect(update.status).toBe(200);
    expect((await until(`/api/authenticate/${update.body.attempt_id}`)).state).toBe('completed_success');

    // The mobile hand-off, with a session from the phone.
    const mobile = await start({ auth_type: 'mobile_app' });
    const code = mobile.mobile_auth_session_deeplink.slice('fangate://auth/'.length);
    handOffCodes.push(code);
    const { user: _u, ...phone } = (await mint('canary-mobile@sandbox.test')) as any;
    const handed = await api(`/api/mobile-auth/${code}`, { method: 'POST', key: null, body: phone });
    expect(handed.status, handed.text).toBe(200);
    attempt = await until(`/api/authenticate/${mobile.attempt_id}`);
    expect(attempt.state).toBe('completed_success');
    expect(JSON.stringify(attempt)).not.toContain(code); // gone once used
    accountIds.push(attempt.account_id);
    // A second one, cancelled while waiting: its code must not linger either.
    const cancelled = await start({ auth_type: 'mobile_app' });
    handOffCodes.push(cancelled.mobile_auth_session_deeplink.slice('fangate://auth/'.length));
    expect((await api(`/api/authenticate/${cancelled.attempt_id}`, { method: 'DELETE' })).status).toBe(200);
    expect(JSON.stringify((await api(`/api/authenticate/${cancelled.attempt_id}`)).body)).not.toContain(handOffCodes[1]);
    const used = await api(`/api/mobile-auth/${handOffCodes[1]}`, { method: 'POST', key: null, body: phone });
    expect(used.status).toBe(404);

    // Failures: a wrong password, a wrong proxy password.
    const wrong = await start({ email: 'canary-wrong@sandbox.test', password: WRONG_LOGIN_PASS });
    expect((await until(`/api/authenticate/${wrong.attempt_id}`)).error.code).toBe('invalid_credentials');
    const badProxy = await start({ email: 'canary-badproxy@sandbox.test', password: SANDBOX_PASSWORD, customProxy: { host: '127.0.0.1', port: httpProxy.port, username: 'canary', password: WRONG_PROXY_PASS } });
    expect((await until(`/api/authenticate/${badProxy.attempt_id}`)).error.code).toBe('proxy_error');

    // Fansly, with its new-device email code.
    const fansly = await start({ username: 'canary+email', password: SANDBOX_PASSWORD }, 'fansly');
    attempt = await until(`/api/fansly/authenticate/${fansly.attempt_id}`, (s) => s !== 'pending');
    expect(attempt.state).toBe('needs_email');
    await api(`/api/fansly/authenticate/${fansly.attempt_id}`, { method: 'PUT', body: { code: SANDBOX_EMAIL_CODE } });
    attempt = await until(`/api/fansly/authenticate/${fansly.attempt_id}`);
    expect(attempt.state, JSON.stringify(attempt.error)).toBe('completed_success');
    accountIds.push(attempt.account_id);

    // The event stream of an attempt is a response too.
    const events = await fetch(`${app.url}/api/authenticate/${sms.attempt_id}/events`, { headers: { authorization: `Bearer ${(await import('../support/app.js')).BOOTSTRAP_KEY}` } });
    responses.push(await events.text());

    // Every session FanGate holds (logins included) is a secret too: read them with the vault.
    const rows = await app.fangate.database.db.selectFrom('accounts').selectAll().where('id', 'in', accountIds).execute();
    expect(rows).toHaveLength(accountIds.length);
    for (const row of rows) {
      const session = app.fangate.vault.decryptJson<PlatformSession>(row.session_enc!, accountSecretPlace(row, 'session_enc'));
      const jar = new Map(session.cookies.split(';').map((p) => p.trim().split('=') as [string, string]));
      const value = jar.get('sess') ?? jar.get('fansly-token') ?? (session as { token?: string }).token;
      if (value) secrets.set(`session of ${row.id}`, value);
      // (The x-bc of a session FanGate logged in itself is the account's own device token, which it keeps
      // as the device id to log in from the same browser again; the creator's x-bc values are checked above.)
    }
    expect([...secrets.keys()].filter((k) => k.startsWith('session of')).length).toBeGreaterThanOrEqual(accountIds.length - 1);
  });

  it('no secret appears in any API response', () => {
    expect(responses.length).toBeGreaterThan(30);
    const all = responses.join('\n');
    expect(all).toContain('completed_success'); // the collection is real
    expect([...secrets].filter(([, value]) => all.includes(value)).map(([name]) => name), 'secrets in API responses').toEqual([]);
  });

  it('no secret, nor a hand-off code, appears in any log line', () => {
    expect(app.logs.length).toBeGreaterThan(30);
    const all = app.logs.join('\n');
    expect(all).toContain('/mobile-auth/'); // the hand-off requests were logged, without their code
    expect([...secrets].filter(([, value]) => all.includes(value)).map(([name]) => name), 'secrets in the logs').toEqual([]);
    for (const code of handOffCodes) expect(all.includes(code), 'a hand-off code in the logs').toBe(false);
  });

  it('no secret, nor a hand-off code, appears in any column of any table (pg-boss jobs included)', async () => {
    const dump = await dumpAll(app.fangate.database.db);
    expect(dump).toContain('fgv1:'); // encrypted values are there…
    expect(dump).toMatch(/-- pgboss\.job/); // …and the job tables were read
    expect(dump).toContain(accountIds[0]!);
    expect([...secrets].filter(([, value]) => dump.includes(value)).map(([name]) => name), 'secrets in the database').toEqual([]);
    for (const code of handOffCodes) expect(dump.includes(code), 'a hand-off code in the database').toBe(false);
  });
});
