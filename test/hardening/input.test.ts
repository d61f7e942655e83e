import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectAccount, connectFansly, importAccount, mintSession, UA } from '../accounts/helpers.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { describeEachStore } from '../support/stores.js';
import { rawGet, rawRequest } from './raw.js';

/**
 * Issue 11 items 2, 3, 9 and issue 12 item 2: bad input is a 4xx problem document naming the field,
 * never a 500 and never a silent coercion; validation speaks for people and names every bad field once.
 */

const PROBLEM = 'application/problem+json';

type Res = { status: number; headers: Headers | Record<string, string>; body: any; text?: string };
const header = (res: Res, name: string) => (res.headers instanceof Headers ? res.headers.get(name) : res.headers[name]);

function expectProblem(res: Res, status: number, code?: string) {
  const body = typeof res.body === 'string' ? JSON.parse(res.body) : res.body;
  expect(res.status, JSON.stringify(body)).toBe(status);
  expect(header(res, 'content-type')).toContain(PROBLEM);
  expect(body).toMatchObject({ status, type: expect.stringMatching(/^urn:fangate:problem:/), code: expect.any(String), request_id: expect.any(String) });
  if (code) expect(body.code).toBe(code);
  expect(body.message).toBe(body.detail);
  return body;
}

/** A 422 whose errors name exactly `fields`, each message starting with its field name. */
function expectInvalid(res: Res, fields: string[]) {
  const body = expectProblem(res, 422, 'validation_failed');
  expect(body.errors.map((e: { field: string }) => e.field).sort(), JSON.stringify(body)).toEqual([...fields].sort());
  for (const error of body.errors) expect(error.message.startsWith(error.field), error.message).toBe(true);
  return body;
}

const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64url');

describeEachStore('hardening: input', (kind) => {
  let app: TestApp;
  let accountId: string;
  beforeAll(async () => {
    app = await startTestApp(kind);
    accountId = (await importAccount(app, 'hard-input@sandbox.test')).account.id;
  }, 180_000);
  afterAll(() => app?.close());

  const attemptCount = async () =>
    Number((await app.fangate.database.db.selectFrom('auth_attempts').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);

  describe('NUL bytes and lone surrogates', () => {
    it('in a path id: 422 naming the parameter', async () => {
      expectInvalid(await app.api('/api/accounts/acct_%00x'), ['id']);
      expectInvalid(await app.api('/api/authenticate/auth_%00x'), ['attempt_id']);
      expectInvalid(await app.api('/api/fansly/authenticate/auth_%00x', { method: 'DELETE' }), ['attempt_id']);
      expectInvalid(await app.api('/api/api-keys/key_%00', { method: 'DELETE' }), ['id']);
      expectInvalid(await app.api('/api/acct_%00x/me'), ['account_id']);
    });

    it('in list filters and cursors: 422 naming the parameter', async () => {
      expectInvalid(await app.api('/api/accounts?username=a%00b'), ['username']);
      expectInvalid(await app.api('/api/accounts?client_reference_id=%00'), ['client_reference_id']);
      expectInvalid(await app.api(`/api/accounts?cursor=${b64('2026-01-01T00:00:00.000Z|acct_\u0000')}`), ['cursor']);
      expectInvalid(await app.api('/api/accounts?cursor=%00'), ['cursor']);
    });

    it('in body strings: 422 naming the field, and nothing is written', async () => {
      const before = await attemptCount();
      const login = { email: 'hard-nul@sandbox.test', password: 'password' };
      expectInvalid(await app.api('/api/authenticate', { method: 'POST', body: { ...login, client_reference_id: 'a\u0000' } }), ['client_reference_id']);
      expectInvalid(await app.api('/api/authenticate', { method: 'POST', body: { ...login, name: 'x\ud800' } }), ['name']);
      expectInvalid(await app.api('/api/authenticate', { method: 'POST', body: { ...login, password: '\udc00pw' } }), ['password']);
      expectInvalid(await app.api('/api/fansly/authenticate', { method: 'POST', body: { username: 'a\u0000', password: 'password' } }), ['username']);
      expectInvalid(await app.api(`/api/accounts/${accountId}`, { method: 'PATCH', body: { display_name: 'a\u0000b' } }), ['display_name']);
      // A member name with a NUL is named too (as an unknown field).
      const odd = await app.api('/api/authenticate', { method: 'POST', body: { ...login, 'x\u0000': 1 } });
      expectProblem(odd, 422, 'validation_failed');
      expect(await attemptCount()).toBe(before);
    });
  });

  describe('cursors', () => {
    it('a cursor dated outside what PostgreSQL holds is 422, not 500', async () => {
      // -271821-04-20: a valid JavaScript date, far before PostgreSQL's range.
      for (const path of ['/api/accounts', '/api/api-keys']) {
        const res = await app.api(`${path}?cursor=LTI3MTgyMS0wNC0yMFQwMDowMDowMC4wMDBafGE`);
        expectInvalid(res, ['cursor']);
        expectInvalid(await app.api(`${path}?cursor=${b64('+275760-09-13T00:00:00.000Z|acct_a')}`), ['cursor']);
        expectInvalid(await app.api(`${path}?cursor=${b64('0000-01-01T00:00:00.000Z|acct_a')}`), ['cursor']);
        expectInvalid(await app.api(`${path}?cursor=${b64('garbage')}`), ['cursor']);
      }
      // A real cursor still works.
      const page = await app.api('/api/api-keys?limit=1');
      await app.api('/api/api-keys', { method: 'POST', body: { name: 'second' } });
      const again = await app.api('/api/api-keys?limit=1');
      expect(again.body.next_cursor).toEqual(expect.any(String));
      expect((await app.api(`/api/api-keys?limit=1&cursor=${again.body.next_cursor}`)).status).toBe(200);
      expect(page.status).toBe(200);
    });
  });

  describe('user agents, x-bc and cookies must be valid HTTP header values', () => {
    const BAD = ['Mozilla/5.0\r\nX-Evil: 1', 'Mozilla/5.0 \u0007 bell', 'Mozilla/5.0 😀', 'Mozilla/5.0 \u202Eevil', 'Mozilla/5.0 \ud800', 'Mozilla\u0085next'];

    it('on import and rotation: 422 naming userAgent or xbc, and the platform is not called', async () => {
      const session = await mintSession(app, 'hard-ua@sandbox.test');
      for (const bad of BAD) {
        expectInvalid(await app.api('/api/accounts/import', { method: 'POST', body: { cookie: session.cookies, userAgent: bad } }), ['userAgent']);
        expectInvalid(await app.api('/api/accounts/import', { method: 'POST', body: { cookie: session.cookies, userAgent: UA, xbc: bad } }), ['xbc']);
        expectInvalid(await app.api(`/api/accounts/import/${accountId}`, { method: 'PATCH', body: { cookie: session.cookies, userAgent: bad } }), ['userAgent']);
      }
      const body = expectInvalid(await app.api('/api/accounts/import', { method: 'POST', body: { cookie: session.cookies, userAgent: 'a\r\nb' } }), ['userAgent']);
      expect(body.errors[0].message).toMatch(/HTTP header/);
      // A Latin-1 user agent is a valid header value and is accepted.
      const latinUa = 'Mozilla/5.0 (Navegador Español)';
      const latinSession = await mintSession(app, 'hard-ua-latin@sandbox.test', latinUa);
      const latin = await app.api('/api/accounts/import', { method: 'POST', body: { cookie: latinSession.cookies, userAgent: latinUa } });
      expect(latin.status, latin.text).toBe(201);
    });

    it('on a raw_data connect: 422 at the door instead of a poison attempt', async () => {
      const before = await attemptCount();
      const session = await mintSession(app, 'hard-raw@sandbox.test');
      const raw = { auth_type: 'raw_data', auth_id: session.auth_id, cookies: session.cookies, xbc: session.xbc, user_agent: session.user_agent };
      for (const bad of BAD) {
        expectInvalid(await app.api('/api/authenticate', { method: 'POST', body: { ...raw, user_agent: bad } }), ['user_agent']);
        expectInvalid(await app.api('/api/authenticate', { method: 'POST', body: { ...raw, xbc: bad } }), ['xbc']);
        expectInvalid(await app.api('/api/authenticate', { method: 'POST', body: { ...raw, cookies: `${session.cookies}; x=${bad}` } }), ['cookies']);
      }
      expect(await attemptCount()).toBe(before);
    });

    it('on the mobile hand-off: 422 naming the field', async () => {
      const code = 'c'.repeat(43);
      for (const bad of BAD) {
        const res = await app.api(`/api/mobile-auth/${code}`, { method: 'POST', key: null, body: { auth_id: '123', cookies: 'auth_id=123; sess=a; fp=b', xbc: 'x', user_agent: bad } });
        expectInvalid(res, ['user_agent']);
      }
    });
  });

  describe('answers before routing are problem documents too', () => {
    it('431 for a 70 KB header', async () => {
      const res = await rawGet(app.url, '/api/whoami', [`x-big: ${'a'.repeat(70 * 1024)}`]);
      expectProblem(res, 431);
    });

    it('400 for a NUL in a header', async () => {
      expectProblem(await rawGet(app.url, '/api/whoami', ['x-odd: a\u0000b']), 400);
      expectProblem(await rawRequest(app.url, 'GARBAGE\r\n\r\n'), 400);
    });

    it('414 for a 5,000-character id', async () => {
      expectProblem(await app.api(`/api/accounts/${'a'.repeat(5000)}`), 414, 'uri_too_long');
    });

    it('400 bad_url for an escape that is not UTF-8', async () => {
      expectProblem(await rawGet(app.url, '/api/accounts/%ff%fe'), 400, 'bad_url');
      expectProblem(await app.api('/api/accounts/%ff%fe'), 400, 'bad_url');
    });
  });

  describe('no silent coercion in bodies', () => {
    it('"password": 5 is 422, not the string "5"', async () => {
      const before = await attemptCount();
      const body = expectInvalid(await app.api('/api/authenticate', { method: 'POST', body: { email: 'hard-coerce@sandbox.test', password: 5 } }), ['password']);
      expect(body.errors[0].message).toBe('password must be a string');
      expectInvalid(await app.api('/api/authenticate', { method: 'POST', body: { email: 'hard-coerce@sandbox.test', password: 'password', force_connect: 'true' } }), ['force_connect']);
      expect(await attemptCount()).toBe(before);
    });

    it('remember_credentials: null is 422, not false', async () => {
      const before = await attemptCount();
      const body = expectInvalid(
        await app.api('/api/authenticate', { method: 'POST', body: { email: 'hard-null@sandbox.test', password: 'password', remember_credentials: null } }),
        ['remember_credentials'],
      );
      expect(body.errors[0].message).toBe('remember_credentials must be true or false');
      expect(await attemptCount()).toBe(before);
    });

    it('customProxy 0, "" or false is 422 and the proxy stays', async () => {
      const before = (await app.api(`/api/accounts/${accountId}`)).body;
      for (const value of [0, '', false, 'null']) {
        const body = expectInvalid(await app.api(`/api/accounts/${accountId}`, { method: 'PATCH', body: { customProxy: value } }), ['customProxy']);
        expect(body.errors[0].message).toBe('customProxy must be an object or null');
      }
      const after = (await app.api(`/api/accounts/${accountId}`)).body;
      expect(after.proxy).toEqual(before.proxy);
      expect(after.updated_at).toBe(before.updated_at);
    });

    it('numbers too large for any column are 422, in a query or a body', async () => {
      expect(expectInvalid(await app.api('/api/accounts?limit=1e400'), ['limit']).errors[0].message).toBe('limit must be a finite number');
      const body = '{"health_check_interval_sec": 1e999}';
      expectInvalid(await app.api(`/api/accounts/${accountId}`, { method: 'PATCH', body }), ['health_check_interval_sec']);
    });

    it('query strings and path parameters still take text for numbers and booleans', async () => {
      const page = await app.api('/api/accounts?limit=1');
      expect(page.status).toBe(200);
      expect(page.body.data).toHaveLength(1);
    });
  });

  describe('messages for people, every bad field in one answer', () => {
    it('names every bad field of the body at once', async () => {
      const body = expectInvalid(
        await app.api('/api/authenticate', { method: 'POST', body: { email: 5, password: 5, remember_credentials: null, auth_type: 'magic', extra: 1 } }),
        ['email', 'password', 'remember_credentials', 'auth_type', 'extra'],
      );
      expect(body.detail).toMatch(/^The request has 5 invalid fields: /);
      const auth = body.errors.find((e: any) => e.field === 'auth_type');
      expect(auth.message).toBe('auth_type must be one of: email_password, raw_data, mobile_app');
      expect(body.errors.find((e: any) => e.field === 'extra').message).toBe('extra is not a known field');
    });

    it('names bad fields of the path, the query and the body in one answer', async () => {
      const res = await app.api('/api/authenticate/auth_%00x', { method: 'PUT', body: { code: 'ab' } });
      const body = expectInvalid(res, ['attempt_id', 'code']);
      expect(body.errors.find((e: any) => e.field === 'code').message).toBe('code must be at least 4 characters long');
    });

    it('speaks the rule, not the validator', async () => {
      const limit = expectInvalid(await app.api('/api/accounts?limit=500'), ['limit']);
      expect(limit.errors[0].message).toBe('limit must be at most 100');
      expect(limit.detail).toBe('limit must be at most 100.');
      expect(expectInvalid(await app.api('/api/api-keys?limit=0'), ['limit']).errors[0].message).toBe('limit must be at least 1');
      const required = expectInvalid(await app.api('/api/authenticate', { method: 'POST', body: { email: 'hard-req@sandbox.test' } }), ['password']);
      expect(required.errors[0].message).toMatch(/^password is required for auth_type email_password/);
      const country = expectInvalid(await app.api(`/api/accounts/${accountId}`, { method: 'PATCH', body: { proxyCountry: 'usa' } }), ['proxyCountry']);
      expect(country.errors[0].message).toBe('proxyCountry must be a two-letter country code such as us');
      const email = expectInvalid(await app.api('/api/authenticate', { method: 'POST', body: { email: 'nope', password: 'x' } }), ['email']);
      expect(email.errors[0].message).toBe('email must be an email address');
      for (const res of [limit, required, country, email]) for (const e of res.errors) expect(e.message).not.toMatch(/must NOT|should|fewer than/);
    });

    it('a body that is not an object says so', async () => {
      const res = expectInvalid(await app.api('/api/authenticate', { method: 'POST', body: '[]' }), ['body']);
      expect(res.errors[0].message).toBe('body must be a JSON object');
    });
  });

  describe('seed fields on every problem', () => {
    it('message equals detail on 401, 404, 422 and 429 answers', async () => {
      expectProblem(await app.api('/api/whoami', { key: 'fg_nope_nope_nope_nope' }), 401);
      expectProblem(await app.api('/api/accounts/acct_missing'), 404);
      expectProblem(await app.api('/api/nothing-here'), 404);
    });

    it('already_authenticated carries the seed message and reason, on both platforms', async () => {
      const { account } = await connectAccount(app, 'hard-seed@sandbox.test');
      const onlyfans = expectProblem(await app.api(`/api/authenticate/${account.id}/reauthenticate`, { method: 'POST' }), 400, 'already_authenticated');
      expect(onlyfans).toMatchObject({ message: "Can't re-authenticate account at this time.", reason: 'Account is already successfully authenticated' });
      const fansly = await connectFansly(app, 'hardseedf');
      const fanslyRes = expectProblem(await app.api(`/api/fansly/authenticate/${fansly.id}/reauthenticate`, { method: 'POST' }), 400, 'already_authenticated');
      expect(fanslyRes).toMatchObject({ message: "Can't re-authenticate account at this time.", reason: 'Account is already successfully authenticated' });
    });
  });
});
