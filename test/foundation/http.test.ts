import { Validator } from '@seriousme/openapi-schema-validator';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, BOOTSTRAP_KEY, startTestApp, type TestApp } from '../support/app.js';
import { describeEachStore } from '../support/stores.js';
import { compileRouteSchemas } from '../../src/http/server.js';

const PROBLEM = 'application/problem+json';

function expectProblem(res: { status: number; headers: Headers; body: any }, status: number, code: string) {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toContain(PROBLEM);
  expect(res.body).toMatchObject({ status, code, type: `urn:fangate:problem:${code}` });
  expect(typeof res.body.title).toBe('string');
  expect(typeof res.body.detail).toBe('string');
  expect(typeof res.body.retryable).toBe('boolean');
  expect(res.body.request_id).toBe(res.headers.get('x-request-id'));
}

describeEachStore('HTTP foundation', (kind) => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp(kind, { env: { FANGATE_RATE_LIMIT_PER_MIN: '1000' } });
  });
  afterAll(() => app?.close());

  describe('authentication', () => {
    it('whoami answers the bootstrap key with the default organisation and every scope', async () => {
      const res = await app.api('/api/whoami');
      expect(res.status).toBe(200);
      expect(res.body.organization).toMatchObject({ name: 'default' });
      expect(res.body.organization.id).toMatch(/^org_/);
      expect(res.body.api_key.id).toMatch(/^key_/);
      expect(res.body.api_key.scopes).toEqual(['accounts:read', 'accounts:write', 'webhooks:read', 'webhooks:write', 'keys:write', 'audit:read', 'console']);
    });

    it('refuses a missing, malformed or unknown key with a 401 problem', async () => {
      expectProblem(await app.api('/api/whoami', { key: null }), 401, 'unauthorized');
      expectProblem(await app.api('/api/whoami', { headers: { authorization: 'Basic abc' }, key: null }), 401, 'unauthorized');
      expectProblem(await app.api('/api/whoami', { key: 'fg_not_a_real_key_0000000000' }), 401, 'unauthorized');
    });

    it('enforces scopes with 403 forbidden', async () => {
      const created = await app.api('/api/api-keys', { method: 'POST', body: { name: 'reader', scopes: ['accounts:read'] } });
      expect(created.status).toBe(201);
      expectProblem(await app.api('/api/api-keys', { key: created.body.key }), 403, 'forbidden');
      // A key cannot mint a key with more than it holds.
      const writer = await app.api('/api/api-keys', { method: 'POST', body: { scopes: ['keys:write'] } });
      expectProblem(await app.api('/api/api-keys', { method: 'POST', body: { scopes: ['webhooks:write'] }, key: writer.body.key }), 403, 'forbidden');
    });
  });

  describe('API keys', () => {
    it('creates a key shown once, lists it without the secret, and revokes it at once', async () => {
      const created = await app.api('/api/api-keys', { method: 'POST', body: { name: 'CRM backend' } });
      expect(created.status).toBe(201);
      expect(created.body).toMatchObject({ name: 'CRM backend' });
      expect(created.body.key).toMatch(/^fg_[A-Za-z0-9]{32}$/);
      expect((await app.api('/api/whoami', { key: created.body.key })).body.api_key.id).toBe(created.body.id);

      const listed = await app.api('/api/api-keys?limit=100');
      expect(listed.status).toBe(200);
      const entry = listed.body.data.find((k: any) => k.id === created.body.id);
      expect(entry).toMatchObject({ name: 'CRM backend', prefix: created.body.key.slice(0, 10) });
      expect(listed.text).not.toContain(created.body.key);

      expect((await app.api(`/api/api-keys/${created.body.id}`, { method: 'DELETE' })).status).toBe(204);
      expectProblem(await app.api('/api/whoami', { key: created.body.key }), 401, 'unauthorized');
      expectProblem(await app.api(`/api/api-keys/${created.body.id}`, { method: 'DELETE' }), 404, 'not_found');
    });

    // Two API nodes on one PostgreSQL: the other node's key cache is dropped by NOTIFY, within the documented 1 s.
    it.skipIf(kind !== 'postgres')('a key revoked on one node fails on another within 1 s, and for good', async () => {
      const other = await startTestApp(kind, { store: app.store, sandbox: app.sandbox });
      try {
        const created = await app.api('/api/api-keys', { method: 'POST', body: { name: 'two-nodes' } });
        expect((await other.api('/api/whoami', { key: created.body.key })).status).toBe(200);
        expect((await app.api(`/api/api-keys/${created.body.id}`, { method: 'DELETE' })).status).toBe(204);
        const revokedAt = Date.now();
        while ((await other.api('/api/whoami', { key: created.body.key })).status === 200 && Date.now() - revokedAt < 1000) {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        expectProblem(await other.api('/api/whoami', { key: created.body.key }), 401, 'unauthorized');
        expect(Date.now() - revokedAt).toBeLessThan(1500);
      } finally {
        await other.fangate.stop();
      }
    });

    it('paginates with a cursor', async () => {
      for (let i = 0; i < 3; i++) await app.api('/api/api-keys', { method: 'POST', body: { name: `page-${i}` } });
      const first = await app.api('/api/api-keys?limit=2');
      expect(first.body.data).toHaveLength(2);
      expect(first.body.has_more).toBe(true);
      const second = await app.api(`/api/api-keys?limit=2&cursor=${first.body.next_cursor}`);
      expect(second.status).toBe(200);
      const ids = [...first.body.data, ...second.body.data].map((k: any) => k.id);
      expect(new Set(ids).size).toBe(ids.length);
      expectProblem(await app.api('/api/api-keys?limit=0'), 422, 'validation_failed');
      expectProblem(await app.api('/api/api-keys?cursor=garbage'), 422, 'validation_failed');
    });
  });

  describe('admin API and tenant isolation', () => {
    it('creates organisations and keys; another organisation sees 404 for foreign ids', async () => {
      const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
      expectProblem(await app.api('/admin/orgs', { method: 'POST', body: { name: 'acme' }, key: null }), 401, 'unauthorized');
      const org = await app.api('/admin/orgs', { method: 'POST', body: { name: 'acme' }, headers: admin, key: null });
      expect(org.status).toBe(201);
      expect(org.body).toEqual({ id: expect.stringMatching(/^org_/), name: 'acme' });
      expectProblem(await app.api('/admin/orgs', { method: 'POST', body: { name: 'acme' }, headers: admin, key: null }), 409, 'organization_exists');
      expectProblem(await app.api('/admin/orgs/org_missing/api-keys', { method: 'POST', body: {}, headers: admin, key: null }), 404, 'not_found');

      const key = await app.api(`/admin/orgs/${org.body.id}/api-keys`, { method: 'POST', body: {}, headers: admin, key: null });
      expect(key.status).toBe(201);
      expect(key.body.scopes).toEqual(['accounts:read', 'accounts:write', 'webhooks:read', 'webhooks:write', 'keys:write', 'audit:read', 'console']);
      const who = await app.api('/api/whoami', { key: key.body.key });
      expect(who.body.organization).toEqual(org.body);

      // acme cannot see or revoke the default organisation's keys.
      const mine = await app.api('/api/whoami');
      expectProblem(await app.api(`/api/api-keys/${mine.body.api_key.id}`, { method: 'DELETE', key: key.body.key }), 404, 'not_found');
      const acmeList = await app.api('/api/api-keys?limit=100', { key: key.body.key });
      expect(acmeList.body.data.map((k: any) => k.id)).toEqual([key.body.id]);
      expect((await app.api('/api/whoami')).status).toBe(200);
    });
  });

  describe('errors are problem documents', () => {
    it('unknown routes and wrong methods', async () => {
      expectProblem(await app.api('/api/nope'), 404, 'not_found');
      expectProblem(await app.api('/nope', { key: null }), 404, 'not_found');
      expectProblem(await app.api('/api/whoami', { method: 'PATCH', body: {} }), 404, 'not_found');
    });

    it('malformed JSON, wrong content type, oversized body, empty body', async () => {
      expectProblem(await app.api('/api/api-keys', { method: 'POST', body: '{"name": ' }), 400, 'malformed_json');
      expectProblem(await app.api('/api/api-keys', { method: 'POST', body: 'name=x', headers: { 'content-type': 'text/plain' } }), 415, 'unsupported_media_type');
      expectProblem(await app.api('/api/api-keys', { method: 'POST', body: 'name=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 415, 'unsupported_media_type');
      expectProblem(await app.api('/api/api-keys', { method: 'POST', body: JSON.stringify({ name: 'x'.repeat(2 * 1024 * 1024) }) }), 413, 'payload_too_large');
      expectProblem(await app.api('/api/api-keys', { method: 'POST', body: '' }), 400, 'malformed_json');
    });

    it('validation errors are 422 with one entry per bad field', async () => {
      const res = await app.api('/api/api-keys', { method: 'POST', body: { name: '', scopes: ['root'], colour: 'red' } });
      expectProblem(res, 422, 'validation_failed');
      const fields = res.body.errors.map((e: any) => e.field).sort();
      expect(fields).toEqual(['colour', 'name', 'scopes.0']);
      for (const e of res.body.errors) expect(e.message.length).toBeGreaterThan(3);
      // Nothing was created by the refused request.
      const list = await app.api('/api/api-keys?limit=100');
      expect(list.body.data.some((k: any) => k.name === '')).toBe(false);
    });

    it('keeps a sane caller request id and makes one otherwise', async () => {
      const mine = await app.api('/api/whoami', { headers: { 'x-request-id': 'trace-123' } });
      expect(mine.headers.get('x-request-id')).toBe('trace-123');
      const made = await app.api('/api/whoami', { headers: { 'x-request-id': 'bad id with spaces' } });
      expect(made.headers.get('x-request-id')).toMatch(/^req_/);
      expect(app.logs.some((line) => line.includes('"trace-123"'))).toBe(true);
    });
  });

  describe('idempotency', () => {
    it('replays the first response for the same key and body, refuses a different body', async () => {
      const headers = { 'idempotency-key': `idem-${kind}-1` };
      const first = await app.api('/api/api-keys', { method: 'POST', body: { name: 'idem' }, headers });
      const again = await app.api('/api/api-keys', { method: 'POST', body: { name: 'idem' }, headers });
      expect(first.status).toBe(201);
      expect(again.status).toBe(201);
      expect(again.body).toEqual(first.body);
      expect(again.headers.get('idempotent-replayed')).toBe('true');
      const list = await app.api('/api/api-keys?limit=100');
      expect(list.body.data.filter((k: any) => k.name === 'idem')).toHaveLength(1);
      expectProblem(await app.api('/api/api-keys', { method: 'POST', body: { name: 'other' }, headers }), 422, 'idempotency_key_reused');
    });

    it('forgets a key after 24 hours: the same key then creates again', async () => {
      const headers = { 'idempotency-key': `idem-${kind}-expiry` };
      const first = await app.api('/api/api-keys', { method: 'POST', body: { name: 'idem-old' }, headers });
      await app.fangate.database.db
        .updateTable('idempotency_keys')
        .set({ created_at: new Date(Date.now() - 25 * 3_600_000) })
        .where('key', '=', headers['idempotency-key'])
        .execute();
      // The workers' sweep (every 500 ms in tests) deletes it; the bound is generous because the full suite
      // loads both cores (5 s was once not enough there).
      await expect
        .poll(async () => (await app.fangate.database.db.selectFrom('idempotency_keys').select('key').where('key', '=', headers['idempotency-key']).execute()).length, { timeout: 15_000 })
        .toBe(0);
      const again = await app.api('/api/api-keys', { method: 'POST', body: { name: 'idem-new' }, headers });
      expect(again.status).toBe(201);
      expect(again.headers.get('idempotent-replayed')).toBeNull();
      expect(again.body.id).not.toBe(first.body.id);
    });

    it('scopes keys to the organisation', async () => {
      const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
      const org = await app.api('/admin/orgs', { method: 'POST', body: { name: `idem-org-${kind}` }, headers: admin, key: null });
      const other = await app.api(`/admin/orgs/${org.body.id}/api-keys`, { method: 'POST', body: {}, headers: admin, key: null });
      const headers = { 'idempotency-key': 'shared-key' };
      const a = await app.api('/api/api-keys', { method: 'POST', body: { name: 'same' }, headers });
      const b = await app.api('/api/api-keys', { method: 'POST', body: { name: 'same' }, headers, key: other.body.key });
      expect(a.status).toBe(201);
      expect(b.status).toBe(201);
      expect(b.body.id).not.toBe(a.body.id);
    });
  });

  describe('operations endpoints', () => {
    it('healthz, readyz and metrics', async () => {
      expect((await app.api('/healthz', { key: null })).body).toEqual({ status: 'ok' });
      expect((await app.api('/readyz', { key: null })).body).toEqual({ status: 'ready', database: kind });
      const metrics = await app.api('/metrics', { key: null });
      expect(metrics.status).toBe(200);
      expect(metrics.text).toContain('fangate_http_requests_total{method="GET",route="/api/whoami",status="200"}');
      expect(metrics.text).toContain('fangate_process_cpu_user_seconds_total');
    });

    it('readyz answers 503 naming a migration that is not applied, and ready again once it is', async () => {
      const db = app.fangate.database.db;
      const { rows } = await sql<{ name: string; timestamp: string }>`select name, timestamp from kysely_migration order by name desc limit 1`.execute(db);
      const latest = rows[0]!;
      await sql`delete from kysely_migration where name = ${latest.name}`.execute(db);
      try {
        const pending = await app.api('/readyz', { key: null });
        expect(pending.status).toBe(503);
        expect(pending.body).toMatchObject({ code: 'migrations_pending', detail: `Migrations not applied: ${latest.name}.` });
      } finally {
        await sql`insert into kysely_migration (name, timestamp) values (${latest.name}, ${latest.timestamp})`.execute(db);
      }
      expect((await app.api('/readyz', { key: null })).body).toEqual({ status: 'ready', database: kind });
    });

    it('serves a valid OpenAPI 3.1 document and an interactive reference', async () => {
      const doc = await app.api('/openapi.json', { key: null });
      expect(doc.status).toBe(200);
      expect(doc.body.openapi).toBe('3.1.0');
      const validator = new Validator();
      const result = await validator.validate(doc.body);
      expect(result.errors ?? []).toEqual([]);
      expect(result.valid).toBe(true);
      expect(Object.keys(doc.body.paths)).toEqual(expect.arrayContaining(['/api/whoami', '/api/api-keys', '/api/api-keys/{id}', '/admin/orgs', '/readyz']));
      // Every operation says what it does, and every JSON body and answer comes with an example.
      const hasExample = (c: any) => c && (c.example !== undefined || c.examples !== undefined || c.schema?.examples !== undefined);
      const gaps: string[] = [];
      for (const [path, operations] of Object.entries<any>(doc.body.paths)) {
        for (const [method, op] of Object.entries<any>(operations)) {
          if (!op.summary) gaps.push(`${method} ${path}: summary`);
          const body = op.requestBody?.content?.['application/json'];
          if (body && !hasExample(body)) gaps.push(`${method} ${path}: request example`);
          for (const [status, response] of Object.entries<any>(op.responses ?? {})) {
            if (!response.description || response.description === 'Default Response') gaps.push(`${method} ${path} ${status}: description`);
            const content = response.content?.['application/json'] ?? response.content?.['application/problem+json'];
            if (content && !hasExample(content)) gaps.push(`${method} ${path} ${status}: example`);
          }
        }
      }
      expect(gaps).toEqual([]);
      const docs = await fetch(`${app.url}/docs/`);
      expect(docs.status).toBe(200);
      expect(await docs.text()).toContain('swagger-ui');
    });
  });

  describe('route schemas', () => {
    it('compile on first use, and every one of them compiles', async () => {
      // Start compiles none of them (start-up time); a schema broken by a change must still show up here.
      expect(compileRouteSchemas(app.fangate.http)).toBeGreaterThan(100);
      expect((await app.api('/api/whoami')).status).toBe(200);
      expectProblem(await app.api('/api/api-keys', { method: 'POST', body: { name: 5 } }), 422, 'validation_failed');
    });
  });

  describe('secrets stay out of logs', () => {
    it('never logs API keys, admin tokens or created keys', async () => {
      const created = await app.api('/api/api-keys', { method: 'POST', body: { name: 'log-canary' } });
      await app.api('/api/whoami', { key: created.body.key });
      await app.api('/api/whoami', { key: 'fg_wrong_key_canary_00000000' });
      await app.api('/admin/orgs', { method: 'POST', body: { name: `canary-${kind}` }, headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, key: null });
      const all = app.logs.join('\n');
      expect(all.length).toBeGreaterThan(1000);
      for (const secret of [BOOTSTRAP_KEY, created.body.key, 'fg_wrong_key_canary_00000000', ADMIN_TOKEN]) expect(all).not.toContain(secret);
    });
  });
});

describeEachStore('rate limiting', (kind) => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp(kind, { env: { FANGATE_RATE_LIMIT_PER_MIN: '5' } });
  });
  afterAll(() => app?.close());

  it('counts per API key and answers 429 rate_limited with RateLimit headers', async () => {
    const first = await app.api('/api/whoami');
    expect(first.headers.get('ratelimit-limit')).toBe('5');
    expect(first.headers.get('ratelimit-remaining')).toBe('4');
    expect(Number(first.headers.get('ratelimit-reset'))).toBeGreaterThan(0);
    for (let i = 0; i < 4; i++) expect((await app.api('/api/whoami')).status).toBe(200);
    const limited = await app.api('/api/whoami');
    expectProblem(limited, 429, 'rate_limited');
    expect(limited.body.retryable).toBe(true);
    expect(limited.body.retryAfterSec).toBeGreaterThan(0);
    expect(limited.headers.get('retry-after')).toBeTruthy();
    // Another key has its own budget.
    const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
    const org = await app.api('/admin/orgs', { method: 'POST', body: { name: 'rl' }, headers: admin, key: null });
    const other = await app.api(`/admin/orgs/${org.body.id}/api-keys`, { method: 'POST', body: {}, headers: admin, key: null });
    expect((await app.api('/api/whoami', { key: other.body.key })).status).toBe(200);
  });
});
