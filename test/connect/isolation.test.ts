import { afterAll, beforeAll, expect, it } from 'vitest';
import { SANDBOX_PASSWORD } from '../../src/sandbox/index.js';
import { ADMIN_TOKEN, startTestApp, type TestApp } from '../support/app.js';
import { describeEachStore } from '../support/stores.js';

/**
 * Tenancy (DESIGN 2): everything is scoped to the key's organisation. Another organisation's attempt and
 * account ids answer 404 — never 403, never a change — on every route; keys need their scopes.
 */

const TERMINAL = ['completed_success', 'completed_failed'];

describeEachStore('connect: organisation isolation and API key scopes', (kind) => {
  let app: TestApp;
  let otherKey: string;
  let readOnlyKey: string;
  /** Organisation A (the bootstrap key): a connected account of each platform, and an attempt parked on needs_email. */
  const a = { account: '', fanslyAccount: '', parked: '', fanslyParked: '', done: '' };

  async function until(path: string, done: (state: string) => boolean) {
    const deadline = Date.now() + 25_000;
    let res = await app.api(path);
    while (!done(res.body.state)) {
      if (Date.now() > deadline) throw new Error(`${path} stuck in ${res.body.state}`);
      res = await app.api(`${path}?wait=10&state=${res.body.state}`);
    }
    return res.body;
  }

  beforeAll(async () => {
    app = await startTestApp(kind);
    const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
    const org = await app.api('/admin/orgs', { method: 'POST', key: null, headers: admin, body: { name: `other-${kind}` } });
    expect(org.status).toBe(201);
    const key = await app.api(`/admin/orgs/${org.body.id}/api-keys`, { method: 'POST', key: null, headers: admin, body: { name: 'other' } });
    expect(key.status).toBe(201);
    otherKey = key.body.key;
    const ro = await app.api('/api/api-keys', { method: 'POST', body: { name: 'read-only', scopes: ['accounts:read'] } });
    expect(ro.status, ro.text).toBe(201);
    readOnlyKey = ro.body.key;

    const start = async (path: string, body: object) => {
      const res = await app.api(path, { method: 'POST', body: { password: SANDBOX_PASSWORD, ...body } });
      expect(res.status, res.text).toBe(200);
      return res.body.attempt_id as string;
    };
    const connected = await until(`/api/authenticate/${await start('/api/authenticate', { email: 'iso-owner@sandbox.test', client_reference_id: 'iso-ref' })}`, (s) => TERMINAL.includes(s));
    expect(connected.state).toBe('completed_success');
    a.account = connected.account_id;
    a.done = connected.attempt_id;
    const fansly = await until(`/api/fansly/authenticate/${await start('/api/fansly/authenticate', { username: 'iso-owner' })}`, (s) => TERMINAL.includes(s));
    expect(fansly.state).toBe('completed_success');
    a.fanslyAccount = fansly.account_id;
    a.parked = (await until(`/api/authenticate/${await start('/api/authenticate', { email: 'iso-parked+email@sandbox.test' })}`, (s) => s !== 'pending')).attempt_id;
    a.fanslyParked = (await until(`/api/fansly/authenticate/${await start('/api/fansly/authenticate', { username: 'iso-parked+email' })}`, (s) => s !== 'pending')).attempt_id;
  });
  afterAll(async () => {
    await app?.close();
  });

  /** What organisation B may try with A's ids; every one must be a 404 problem. */
  const foreignCalls = () => [
    ['GET', `/api/authenticate/${a.parked}`],
    ['GET', `/api/authenticate/${a.parked}?wait=2&state=needs_email`],
    ['GET', `/api/authenticate/${a.done}`],
    ['GET', `/api/authenticate/${a.parked}/events`],
    ['PUT', `/api/authenticate/${a.parked}`, { code: '654321' }],
    ['DELETE', `/api/authenticate/${a.parked}`],
    ['POST', `/api/authenticate/${a.parked}/send-email-to-creator`],
    ['GET', `/api/fansly/authenticate/${a.fanslyParked}`],
    ['GET', `/api/fansly/authenticate/${a.fanslyParked}?wait=2&state=needs_email`],
    ['GET', `/api/fansly/authenticate/${a.fanslyParked}/events`],
    ['PUT', `/api/fansly/authenticate/${a.fanslyParked}`, { code: '654321' }],
    ['DELETE', `/api/fansly/authenticate/${a.fanslyParked}`],
    ['PUT', `/api/authenticate/${a.account}/credentials`, { email: 'iso-owner@sandbox.test', password: SANDBOX_PASSWORD }],
    ['POST', `/api/authenticate/${a.account}/reauthenticate`],
    ['POST', `/api/authenticate/${a.account}/reauthenticate?force=true`],
    ['PUT', `/api/fansly/authenticate/${a.fanslyAccount}/credentials`, { username: 'iso-owner', password: SANDBOX_PASSWORD }],
    ['POST', `/api/fansly/authenticate/${a.fanslyAccount}/reauthenticate?force=true`],
    ['GET', `/api/accounts/${a.account}`],
    ['PATCH', `/api/accounts/${a.account}`, { display_name: 'hijacked' }],
    ['POST', `/api/accounts/${a.account}/invalidate`],
    ['DELETE', `/api/accounts/${a.account}`],
    ['GET', `/api/${a.account}/me`],
  ] as [string, string, object?][];

  it("answers 404 for every attempt and account id of another organisation, and changes nothing", async () => {
    const before = {
      parked: (await app.api(`/api/authenticate/${a.parked}`)).body,
      fanslyParked: (await app.api(`/api/fansly/authenticate/${a.fanslyParked}`)).body,
      account: (await app.api(`/api/accounts/${a.account}`)).body,
    };
    expect(before.parked.state).toBe('needs_email');
    expect(before.fanslyParked.state).toBe('needs_email');
    expect(before.account.status).toBe('active');

    for (const [method, path, body] of foreignCalls()) {
      const res = await app.api(path, { method, key: otherKey, ...(body ? { body } : {}) });
      expect(res.status, `${method} ${path}: ${res.text}`).toBe(404);
      expect(res.headers.get('content-type'), `${method} ${path}`).toMatch(/application\/problem\+json/);
      expect(res.body.code, `${method} ${path}`).toBe('not_found');
      expect(res.text).not.toContain('iso-owner');
    }

    // Nothing moved in organisation A.
    const parked = (await app.api(`/api/authenticate/${a.parked}`)).body;
    expect(parked.state).toBe('needs_email');
    expect(parked.updated_at).toBe(before.parked.updated_at);
    expect((await app.api(`/api/fansly/authenticate/${a.fanslyParked}`)).body.updated_at).toBe(before.fanslyParked.updated_at);
    const account = (await app.api(`/api/accounts/${a.account}`)).body;
    expect(account).toMatchObject({ status: 'active', display_name: before.account.display_name, updated_at: before.account.updated_at });
    const attempts = await app.fangate.database.db.selectFrom('auth_attempts').select('id').where('account_id', '=', a.account).execute();
    expect(attempts.map((r) => r.id)).toEqual([a.done]);
  });

  it("does not list another organisation's accounts, nor find them by filter", async () => {
    const mine = await app.api('/api/accounts');
    expect(mine.status).toBe(200);
    expect(mine.body.data.map((x: { id: string }) => x.id)).toEqual(expect.arrayContaining([a.account, a.fanslyAccount]));
    for (const query of ['', '?client_reference_id=iso-ref', '?username=iso-owner', '?platform=fansly']) {
      const theirs = await app.api(`/api/accounts${query}`, { key: otherKey });
      expect(theirs.status).toBe(200);
      expect(theirs.body.data, query).toEqual([]);
    }
  });

  it('the same platform user connects separately in another organisation', async () => {
    const res = await app.api('/api/authenticate', { method: 'POST', key: otherKey, body: { email: 'iso-owner@sandbox.test', password: SANDBOX_PASSWORD } });
    expect(res.status).toBe(200);
    let attempt = res.body;
    while (!TERMINAL.includes(attempt.state)) {
      attempt = (await app.api(`/api/authenticate/${attempt.attempt_id}?wait=10&state=${attempt.state}`, { key: otherKey })).body;
    }
    expect(attempt.state, JSON.stringify(attempt.error)).toBe('completed_success');
    expect(attempt.account_id).not.toBe(a.account);
    // …and organisation A cannot see that attempt or account either.
    expect((await app.api(`/api/authenticate/${attempt.attempt_id}`)).status).toBe(404);
    expect((await app.api(`/api/accounts/${attempt.account_id}`)).status).toBe(404);
  });

  it('answers 401 without a key or with an unknown one', async () => {
    for (const key of [null, 'fg_not_a_real_key_0000000000000000']) {
      for (const [method, path] of [
        ['GET', `/api/authenticate/${a.parked}`],
        ['POST', '/api/authenticate'],
        ['POST', `/api/authenticate/${a.account}/reauthenticate`],
        ['PUT', `/api/authenticate/${a.account}/credentials`],
        ['GET', `/api/fansly/authenticate/${a.fanslyParked}`],
      ] as const) {
        const res = await app.api(path, { method, key, ...(method === 'GET' ? {} : { body: { email: 'x@sandbox.test', password: SANDBOX_PASSWORD } }) });
        expect(res.status, `${method} ${path}`).toBe(401);
        expect(res.body.code).toBe('unauthorized');
      }
    }
  });

  it('a key with only accounts:read reads but gets 403 on every write', async () => {
    expect((await app.api(`/api/authenticate/${a.parked}`, { key: readOnlyKey })).status).toBe(200);
    expect((await app.api(`/api/authenticate/${a.parked}?wait=1&state=needs_email`, { key: readOnlyKey })).status).toBe(200);
    expect((await app.api(`/api/fansly/authenticate/${a.fanslyParked}`, { key: readOnlyKey })).status).toBe(200);
    expect((await app.api(`/api/accounts/${a.account}`, { key: readOnlyKey })).status).toBe(200);

    const writes: [string, string, object?][] = [
      ['POST', '/api/authenticate', { email: 'iso-ro@sandbox.test', password: SANDBOX_PASSWORD }],
      ['POST', '/api/fansly/authenticate', { username: 'iso-ro', password: SANDBOX_PASSWORD }],
      ['PUT', `/api/authenticate/${a.parked}`, { code: '654321' }],
      ['POST', `/api/authenticate/${a.parked}/send-email-to-creator`],
      ['DELETE', `/api/authenticate/${a.parked}`],
      ['DELETE', `/api/fansly/authenticate/${a.fanslyParked}`],
      ['PUT', `/api/authenticate/${a.account}/credentials`, { email: 'iso-owner@sandbox.test', password: SANDBOX_PASSWORD }],
      ['POST', `/api/authenticate/${a.account}/reauthenticate?force=true`],
      ['POST', `/api/fansly/authenticate/${a.fanslyAccount}/reauthenticate?force=true`],
      ['PATCH', `/api/accounts/${a.account}`, { display_name: 'ro' }],
      ['DELETE', `/api/accounts/${a.account}`],
    ];
    for (const [method, path, body] of writes) {
      const res = await app.api(path, { method, key: readOnlyKey, ...(body ? { body } : {}) });
      expect(res.status, `${method} ${path}: ${res.text}`).toBe(403);
      expect(res.body.code).toBe('forbidden');
    }
    expect((await app.api(`/api/authenticate/${a.parked}`)).body.state).toBe('needs_email');
    expect((await app.api(`/api/accounts/${a.account}`)).body.status).toBe('active');
    const iso = await fetch(`${app.sandbox.url}/__sandbox/requests?email=iso-ro%40sandbox.test`);
    expect(((await iso.json()) as { data: unknown[] }).data).toEqual([]);
  });
});
