import { expect } from 'vitest';
import { ADMIN_TOKEN, type TestApp } from '../support/app.js';
import { mintSession as mintAnySession } from '../connect/login-helpers.js';

/** Helpers of the accounts tests: accounts made the way a developer makes them (connect, import). */

export const UA = 'Mozilla/5.0 (X11; Linux x86_64) FanGateAccountsTest/1.0';
const TERMINAL = new Set(['completed_success', 'completed_failed']);
const CHALLENGES = new Set(['needs_otp', 'needs_app_otp', 'needs_email', 'needs_face_otp', 'wrong_2fa_code_retry', 'awaiting_mobile_session']);

/** Long-polls the attempt (`?wait=10&state=<last seen>`) until it is terminal or waits for input. */
export async function follow(app: TestApp, attemptId: string, base = '/api/authenticate', timeoutMs = 25_000) {
  let state = 'pending';
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await app.api(`${base}/${attemptId}?wait=10&state=${state}`);
    expect(res.status, res.text).toBe(200);
    state = res.body.state;
    if (TERMINAL.has(state) || CHALLENGES.has(state)) return res.body;
    if (Date.now() > deadline) throw new Error(`attempt ${attemptId} still ${state}: ${res.text}`);
  }
}

/** Connects `email` (password `password`) through the real login flow; `+sms` users get the code. */
export async function connectAccount(app: TestApp, email: string, extra: Record<string, unknown> = {}) {
  const start = await app.api('/api/authenticate', { method: 'POST', body: { email, password: 'password', ...extra } });
  expect(start.status, start.text).toBe(200);
  let attempt = await follow(app, start.body.attempt_id);
  if (attempt.state === 'needs_otp') {
    const code = await app.api(`/api/authenticate/${attempt.attempt_id}`, { method: 'PUT', body: { code: '123456' } });
    expect(code.status, code.text).toBe(202);
    attempt = await follow(app, attempt.attempt_id);
  }
  expect(attempt.state, JSON.stringify(attempt)).toBe('completed_success');
  return { account: attempt.account as Record<string, any>, attemptId: attempt.attempt_id as string };
}

/** Connects a Fansly account by username through the real login flow. */
export async function connectFansly(app: TestApp, username: string) {
  const start = await app.api('/api/fansly/authenticate', { method: 'POST', body: { username, password: 'password' } });
  expect(start.status, start.text).toBe(200);
  const attempt = await follow(app, start.body.attempt_id, '/api/fansly/authenticate');
  expect(attempt.state, JSON.stringify(attempt)).toBe('completed_success');
  return attempt.account as Record<string, any>;
}

/** Starts `POST /api/authenticate/{id}/reauthenticate?force=true` and follows it to its first stop. */
export async function forceReauth(app: TestApp, accountId: string) {
  const res = await app.api(`/api/authenticate/${accountId}/reauthenticate?force=true`, { method: 'POST' });
  expect(res.status, res.text).toBe(200);
  return res.body.attempt_id as string;
}

export interface MintedSession {
  auth_id: string;
  cookies: string;
  xbc: string;
  user_agent: string;
  user: { id: string; username: string };
}

/** An OnlyFans session as a creator's browser (with this suite's user agent) holds it. */
export const mintSession = (app: TestApp, email: string, userAgent = UA): Promise<MintedSession> => mintAnySession(app, email, 'onlyfans', userAgent);

export async function revokeSessions(app: TestApp, email: string) {
  const res = await fetch(`${app.sandbox.url}/__sandbox/sessions/revoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ platform: 'onlyfans', email }),
  });
  expect(res.status).toBe(200);
}

/** Imports a freshly minted session of `email`; answers the 201 body. */
export async function importAccount(app: TestApp, email: string, extra: Record<string, unknown> = {}) {
  const session = await mintSession(app, email);
  const res = await app.api('/api/accounts/import', { method: 'POST', body: { cookie: session.cookies, userAgent: UA, xbc: session.xbc, ...extra } });
  expect(res.status, res.text).toBe(201);
  return { account: res.body as Record<string, any>, session };
}

/** What the sandbox platform saw for a user, oldest first. */
export async function platformRequests(app: TestApp, email: string) {
  const res = await fetch(`${app.sandbox.url}/__sandbox/requests?email=${encodeURIComponent(email)}&platform=onlyfans`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { data: Array<{ method: string; path: string; status: number; user_agent: string; remote_address: string }> }).data;
}

/** A second organisation and an API key of it (admin API). */
export async function otherOrgKey(app: TestApp, name: string): Promise<string> {
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
  const org = await app.api('/admin/orgs', { method: 'POST', body: { name }, headers: admin, key: null });
  expect(org.status, org.text).toBe(201);
  const key = await app.api(`/admin/orgs/${org.body.id}/api-keys`, { method: 'POST', body: {}, headers: admin, key: null });
  expect(key.status, key.text).toBe(201);
  return key.body.key as string;
}

/** The account row as stored, for checks a user's DBA would make. */
export function accountRow(app: TestApp, id: string) {
  return app.fangate.database.db.selectFrom('accounts').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Every `accounts.*` outbox event of one account, oldest first. */
export function eventsOf(app: TestApp, accountId: string) {
  return app.fangate.database.db.selectFrom('events').selectAll().where('account_id', '=', accountId).orderBy('created_at', 'asc').orderBy('id', 'asc').execute();
}
