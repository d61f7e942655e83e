import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { ADMIN_TOKEN, BOOTSTRAP_KEY, startTestApp, type TestApp } from '../support/app.js';
import { describeEachStore } from '../support/stores.js';

/** Issue 11 items 7 and 8: limits a client cannot dodge, and keys that cannot revoke stronger keys. */

const PROBLEM = 'application/problem+json';
let n = 0;
const badKey = () => `fg_wrong_key_${String(++n).padStart(20, '0')}`;

function expect429(res: { status: number; headers: Headers; body: any; text: string }, window: RegExp) {
  expect(res.status, res.text).toBe(429);
  expect(res.headers.get('content-type')).toContain(PROBLEM);
  expect(res.body).toMatchObject({ code: 'rate_limited', retryable: true, retryAfterSec: expect.any(Number) });
  expect(res.body.detail).toMatch(window);
  expect(res.headers.get('retry-after')).toBe(String(res.body.retryAfterSec));
  return res.body;
}

describe('FANGATE_TRUST_PROXY', () => {
  const base = { FANGATE_MASTER_KEY: `k:${Buffer.alloc(32, 1).toString('base64')}` };
  it('defaults to trusting no proxy', () => {
    expect(loadConfig(base).trustProxy).toBe(false);
    expect(loadConfig({ ...base, FANGATE_TRUST_PROXY: 'none' }).trustProxy).toBe(false);
  });
  it('takes a hop count or addresses and CIDRs', () => {
    expect(loadConfig({ ...base, FANGATE_TRUST_PROXY: '2' }).trustProxy).toBe(2);
    expect(loadConfig({ ...base, FANGATE_TRUST_PROXY: '10.0.0.0/8, 127.0.0.1,::1,fd00::/8,loopback' }).trustProxy).toEqual([
      '10.0.0.0/8', '127.0.0.1', '::1', 'fd00::/8', 'loopback',
    ]);
  });
  it('refuses anything else, "true" included (that would let every client choose its IP)', () => {
    for (const bad of ['true', '10.0.0.0/33', 'proxy.internal', '10.0.0.1/8/1']) {
      expect(() => loadConfig({ ...base, FANGATE_TRUST_PROXY: bad }), bad).toThrow(ConfigError);
    }
  });
});

describeEachStore('hardening: limits', (kind) => {
  describe('without trusted proxies', () => {
    let app: TestApp;
    beforeAll(async () => {
      app = await startTestApp(kind, { env: { FANGATE_AUTH_FAILURE_LIMIT_PER_MIN: '5' } });
    }, 180_000);
    afterAll(() => app?.close());

    it('X-Forwarded-For does not change the client IP', async () => {
      // Rotating the header would give every bad key a fresh address if it were believed.
      for (let i = 0; i < 5; i++) {
        const res = await app.api('/api/whoami', { key: badKey(), headers: { 'x-forwarded-for': `203.0.113.${i}` } });
        expect(res.status, res.text).toBe(401);
      }
      const limited = await app.api('/api/whoami', { key: badKey(), headers: { 'x-forwarded-for': '203.0.113.99' } });
      const body = expect429(limited, /failed API-key checks.*per minute/);
      expect(body.retryAfterSec).toBeGreaterThan(0);
      expect(body.retryAfterSec).toBeLessThanOrEqual(60);
      // Blocked means blocked: the right key from that address waits too, so guessing gains nothing.
      expect429(await app.api('/api/whoami', { key: BOOTSTRAP_KEY }), /per minute/);
    });

    it('the mobile hand-off limit counts per real client address', async () => {
      let limited: Awaited<ReturnType<TestApp['api']>> | undefined;
      for (let i = 0; i < 40 && !limited; i++) {
        const res = await app.api(`/api/mobile-auth/${'m'.repeat(30)}${String(i).padStart(13, '0')}`, {
          method: 'POST', key: null, headers: { 'x-forwarded-for': `198.51.100.${i}` },
          body: { auth_id: '1', cookies: 'auth_id=1; sess=a; fp=b', xbc: 'x', user_agent: 'UA' },
        });
        if (res.status === 429) limited = res;
        else expect(res.status, res.text).toBe(404);
      }
      expect(limited, 'no 429 after 40 hand-offs from one address').toBeDefined();
      expect429(limited!, /per minute/);
    });
  });

  describe('behind a trusted proxy', () => {
    let app: TestApp;
    beforeAll(async () => {
      app = await startTestApp(kind, {
        env: { FANGATE_TRUST_PROXY: '127.0.0.1', FANGATE_AUTH_FAILURE_LIMIT_PER_MIN: '3', FANGATE_CONNECT_RATE_LIMIT_PER_HOUR: '3' },
      });
    }, 180_000);
    afterAll(() => app?.close());

    it("limits failed key checks per forwarded client, not the proxy's address", async () => {
      const from = (ip: string, key: string) => app.api('/api/whoami', { key, headers: { 'x-forwarded-for': ip } });
      for (let i = 0; i < 3; i++) expect((await from('192.0.2.10', badKey())).status).toBe(401);
      expect429(await from('192.0.2.10', badKey()), /per minute/);
      expect429(await from('192.0.2.10', BOOTSTRAP_KEY), /per minute/);
      // Another client behind the same proxy is not punished.
      expect((await from('192.0.2.11', BOOTSTRAP_KEY)).status).toBe(200);
      expect((await from('192.0.2.11', badKey())).status).toBe(401);
    });

    it('counts connect attempts of OnlyFans and Fansly together, per hour, and says so', async () => {
      const from = { 'x-forwarded-for': '192.0.2.20' };
      // Refused input starts nothing and does not count.
      expect((await app.api('/api/authenticate', { method: 'POST', headers: from, body: { email: 'x' } })).status).toBe(422);
      for (const [path, body] of [
        ['/api/authenticate', { email: 'lim-1@sandbox.test', password: 'password' }],
        ['/api/fansly/authenticate', { username: 'limf1', password: 'password' }],
        ['/api/authenticate', { email: 'lim-2@sandbox.test', password: 'password' }],
      ] as const) {
        const res = await app.api(path, { method: 'POST', headers: from, body });
        expect(res.status, res.text).toBe(200);
      }
      for (const [path, body] of [
        ['/api/fansly/authenticate', { username: 'limf2', password: 'password' }],
        ['/api/authenticate', { email: 'lim-3@sandbox.test', password: 'password' }],
      ] as const) {
        const limited = expect429(await app.api(path, { method: 'POST', headers: from, body }), /per hour/);
        expect(limited.detail).not.toMatch(/minute/);
        expect(limited.retryAfterSec).toBeGreaterThan(3000);
        expect(limited.retryAfterSec).toBeLessThanOrEqual(3600);
      }
      // A limited request with an Idempotency-Key is not remembered as its answer.
      const key = { ...from, 'idempotency-key': 'lim-retry-1' };
      expect((await app.api('/api/authenticate', { method: 'POST', headers: key, body: { email: 'lim-4@sandbox.test', password: 'password' } })).status).toBe(429);
      const again = await app.api('/api/authenticate', { method: 'POST', headers: key, body: { email: 'lim-4@sandbox.test', password: 'password' } });
      expect(again.status).toBe(429);
      expect(again.headers.get('idempotent-replayed')).toBeNull();
    });
  });

  describe('key revocation', () => {
    let app: TestApp;
    beforeAll(async () => {
      app = await startTestApp(kind);
    }, 180_000);
    afterAll(() => app?.close());

    it('a key revokes only keys whose scopes it holds: 403 forbidden otherwise, and the key keeps working', async () => {
      const create = async (scopes: string[]) => {
        const res = await app.api('/api/api-keys', { method: 'POST', body: { scopes } });
        expect(res.status, res.text).toBe(201);
        return res.body as { id: string; key: string };
      };
      const full = await create(['accounts:read', 'accounts:write', 'webhooks:read', 'webhooks:write', 'keys:write']);
      const keysOnly = await create(['keys:write']);
      const reader = await create(['accounts:read', 'keys:write']);
      const whoami = await app.api('/api/whoami');

      for (const target of [full.id, whoami.body.api_key.id, reader.id]) {
        const res = await app.api(`/api/api-keys/${target}`, { method: 'DELETE', key: keysOnly.key });
        expect(res.status, res.text).toBe(403);
        expect(res.body).toMatchObject({ code: 'forbidden' });
      }
      expect((await app.api('/api/whoami', { key: full.key })).status).toBe(200);
      expect((await app.api('/api/whoami')).status).toBe(200);

      // Keys with a subset of its scopes, itself included, it may revoke.
      const weaker = await create(['keys:write']);
      expect((await app.api(`/api/api-keys/${weaker.id}`, { method: 'DELETE', key: reader.key })).status).toBe(204);
      expect((await app.api(`/api/api-keys/${keysOnly.id}`, { method: 'DELETE', key: reader.key })).status).toBe(204);
      expect((await app.api('/api/whoami', { key: keysOnly.key })).status).toBe(401);
      // A full key revokes anything of its organisation; unknown ids stay 404.
      expect((await app.api(`/api/api-keys/${reader.id}`, { method: 'DELETE', key: full.key })).status).toBe(204);
      expect((await app.api('/api/api-keys/key_nope', { method: 'DELETE', key: full.key })).status).toBe(404);
    });

    it("another organisation's key id is 404, never 403", async () => {
      const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
      const org = await app.api('/admin/orgs', { method: 'POST', body: { name: 'revoke-other' }, headers: admin, key: null });
      const other = await app.api(`/admin/orgs/${org.body.id}/api-keys`, { method: 'POST', body: { scopes: ['keys:write'] }, headers: admin, key: null });
      const mine = await app.api('/api/whoami');
      const res = await app.api(`/api/api-keys/${mine.body.api_key.id}`, { method: 'DELETE', key: other.body.key });
      expect(res.status).toBe(404);
    });
  });
});
