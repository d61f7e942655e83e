import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, startTestApp, type TestApp } from '../support/app.js';
import { importAccount } from '../accounts/helpers.js';
import { createTestStore, describeEachStore, type TestStore } from '../support/stores.js';

const serverUrl = process.env.FANGATE_TEST_DATABASE_URL;
const LIMIT = 100;
/** What two nodes may admit over the limit together: (nodes - 1) x 2% of the limit (README). */
const OVERSHOOT = 1 * Math.max(1, Math.floor(LIMIT / 50));
const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

/** A new organisation with one full-scope key, through the admin API. */
async function newOrg(app: TestApp, name: string): Promise<{ orgId: string; key: string; keyId: string }> {
  const org = await app.api('/admin/orgs', { method: 'POST', headers: admin, body: { name }, key: null });
  expect(org.status).toBe(201);
  const key = await app.api(`/admin/orgs/${org.body.id}/api-keys`, { method: 'POST', headers: admin, body: { name: 'k' }, key: null });
  expect(key.status).toBe(201);
  return { orgId: org.body.id, key: key.body.key, keyId: key.body.id };
}

/** Repeats `probe` every 20 ms until it returns true or `ms` pass; answers the time it took, or Infinity. */
/** Sends `count` whoami requests with `key`, `concurrency` at a time, round-robin over `nodes`; answers the statuses. */
async function burst(nodes: TestApp[], key: string, count: number, concurrency: number): Promise<number[]> {
  const statuses: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        statuses.push((await nodes[i % nodes.length]!.api('/api/whoami', { key })).status);
      }
    }),
  );
  return statuses;
}

async function within(ms: number, probe: () => Promise<boolean>): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    if (await probe()) return performance.now() - t0;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return Number.POSITIVE_INFINITY;
}

describeEachStore('hot path: per-node caches, counted limits, steps run at once', (kind) => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp(kind, { env: { FANGATE_RATE_LIMIT_PER_MIN: String(LIMIT) } });
  });
  afterAll(async () => {
    await app?.close();
  });

  it("never answers with another organisation's principal, however often keys alternate", async () => {
    const a = await newOrg(app, `cache-a-${kind}`);
    const b = await newOrg(app, `cache-b-${kind}`);
    for (let round = 0; round < 5; round++) {
      const [whoA, whoB] = await Promise.all([app.api('/api/whoami', { key: a.key }), app.api('/api/whoami', { key: b.key })]);
      expect(whoA.body.organization.id).toBe(a.orgId);
      expect(whoA.body.api_key.id).toBe(a.keyId);
      expect(whoB.body.organization.id).toBe(b.orgId);
      expect(whoB.body.api_key.id).toBe(b.keyId);
      // Org A's key cannot reach org B's keys either.
      const listed = await app.api('/api/api-keys', { key: a.key });
      expect(listed.body.data.map((k: { id: string }) => k.id)).not.toContain(b.keyId);
    }
    // A key that differs in one character is unknown, not a cache neighbour.
    const near = a.key.slice(0, -1) + (a.key.endsWith('x') ? 'y' : 'x');
    expect((await app.api('/api/whoami', { key: near })).status).toBe(401);
  });

  it('a revoked key fails on the very next request of the node that revoked it', async () => {
    const c = await newOrg(app, `cache-c-${kind}`);
    expect((await app.api('/api/whoami', { key: c.key })).status).toBe(200); // now cached
    const revoked = await app.api(`/api/api-keys/${c.keyId}`, { method: 'DELETE', key: c.key });
    expect(revoked.status).toBe(204);
    const after = await app.api('/api/whoami', { key: c.key });
    expect(after.status).toBe(401);
    expect(after.body.code).toBe('unauthorized');
  });

  it("the poll route's per-node cache of attempts never answers another organisation", async () => {
    const e = await newOrg(app, `poll-e-${kind}`);
    const start = await app.api('/api/authenticate', { method: 'POST', body: { email: `poll-${kind}+sms@sandbox.test`, password: 'password' } });
    expect(start.status).toBe(200);
    const id = start.body.attempt_id;
    const parked = await app.api(`/api/authenticate/${id}?wait=15&state=pending`);
    expect(parked.body.state).toBe('needs_otp');
    for (let i = 0; i < 3; i++) expect((await app.api(`/api/authenticate/${id}`)).body.state).toBe('needs_otp'); // cached now
    const foreign = await app.api(`/api/authenticate/${id}`, { key: e.key });
    expect(foreign.status).toBe(404);
    expect((await app.api(`/api/fansly/authenticate/${id}`)).status).toBe(404);
    // This node's own change shows on the very next read.
    expect((await app.api(`/api/authenticate/${id}`, { method: 'PUT', body: { code: '123456' } })).status).toBe(202);
    expect((await app.api(`/api/authenticate/${id}`)).body.state).not.toBe('needs_otp');
  });

  it("an attempt's step runs at once in the process that started it, its job written already claimed by that process", async () => {
    const t0 = performance.now();
    const start = await app.api('/api/authenticate', { method: 'POST', body: { email: `inline-${kind}@sandbox.test`, password: 'password' } });
    // The attempt's first answer already says its step runs: no worker had to pick it up.
    expect(start.body.state).toBe('pending');
    const first = await app.api(`/api/authenticate/${start.body.attempt_id}`);
    if (first.body.state === 'pending') expect(first.body.progress).toBe('Signing in');
    const done = await app.api(`/api/authenticate/${start.body.attempt_id}?wait=15&state=pending`);
    expect(done.body.state).toBe('completed_success');
    expect(performance.now() - t0).toBeLessThan(10_000);
    // The job was written active in the attempt's transaction (started as it was created, as a worker's fetch
    // would leave it, with the queue's expiry), and completed by this process.
    const { rows } = await sql<{ state: string; claimed_at_once: boolean; expire_in: number; retry_count: number }>`
      select state, started_on = created_on as claimed_at_once, extract(epoch from expire_in)::int as expire_in, retry_count
      from pgboss.job where name = 'connect-step' and data->>'attemptId' = ${start.body.attempt_id}`.execute(app.fangate.database.db);
    expect(rows).toEqual([{ state: 'completed', claimed_at_once: true, expire_in: 20, retry_count: 0 }]);
  });

  it('one node counts the per-key limit exactly, even under concurrent requests', async () => {
    const d = await newOrg(app, `limit-d-${kind}`);
    const statuses = await burst([app], d.key, LIMIT + 30, 12);
    expect(statuses.filter((s) => s === 200)).toHaveLength(LIMIT);
    expect(statuses.filter((s) => s === 429)).toHaveLength(30);
    const limited = await app.api('/api/whoami', { key: d.key });
    expect(limited.status).toBe(429);
    expect(limited.body.code).toBe('rate_limited');
    expect(limited.headers.get('ratelimit-remaining')).toBe('0');
  });
});

/** Two API nodes on one PostgreSQL: PGlite is one process, so PostgreSQL only. */
describe.skipIf(!serverUrl)('hot path across two nodes on one PostgreSQL', () => {
  let store: TestStore;
  let nodeA: TestApp;
  let nodeB: TestApp;
  beforeAll(async () => {
    store = await createTestStore('postgres');
    const env = { FANGATE_RATE_LIMIT_PER_MIN: String(LIMIT) };
    nodeA = await startTestApp('postgres', { store, env });
    nodeB = await startTestApp('postgres', { store, sandbox: nodeA.sandbox, env });
  });
  afterAll(async () => {
    await nodeB?.fangate.stop();
    await nodeA?.close();
    await store?.drop();
  });

  it('a key revoked on node A fails on node B within 1 s, though B had it cached', async () => {
    const org = await newOrg(nodeA, 'two-nodes');
    // Node B verifies (and caches) the key, several times.
    for (let i = 0; i < 3; i++) expect((await nodeB.api('/api/whoami', { key: org.key })).status).toBe(200);
    expect((await nodeA.api(`/api/api-keys/${org.keyId}`, { method: 'DELETE', key: org.key })).status).toBe(204);
    const took = await within(1000, async () => (await nodeB.api('/api/whoami', { key: org.key })).status === 401);
    expect(took).toBeLessThan(1000);
    // And it stays revoked there.
    expect((await nodeB.api('/api/whoami', { key: org.key })).status).toBe(401);
  });

  it('polls on node B see changes made on node A within a moment, and long-polls on B wake', async () => {
    const start = await nodeA.api('/api/authenticate', { method: 'POST', body: { email: 'twonodes+sms@sandbox.test', password: 'password' } });
    const id = start.body.attempt_id;
    const parked = await nodeB.api(`/api/authenticate/${id}?wait=15&state=pending`);
    expect(parked.body.state).toBe('needs_otp');
    for (let i = 0; i < 3; i++) expect((await nodeB.api(`/api/authenticate/${id}`)).body.state).toBe('needs_otp'); // cached on B
    const waiting = nodeB.api(`/api/authenticate/${id}?wait=15&state=needs_otp`);
    expect((await nodeA.api(`/api/authenticate/${id}`, { method: 'PUT', body: { code: '123456' } })).status).toBe(202);
    const took = await within(1000, async () => (await nodeB.api(`/api/authenticate/${id}`)).body.state !== 'needs_otp');
    expect(took).toBeLessThan(1000);
    expect((await waiting).body.state).not.toBe('needs_otp');
    const done = await nodeB.api(`/api/authenticate/${id}?wait=15&state=pending`);
    expect((await nodeB.api(`/api/authenticate/${id}?wait=15&state=${done.body.state}`)).body.state).toBe('completed_success');
    expect((await nodeA.api(`/api/authenticate/${id}`)).body.state).toBe('completed_success');
  });

  it('an account changed on node A answers the change on node B within 1 s, though B had it cached', async () => {
    const { account } = await importAccount(nodeA, 'twonodes-access@sandbox.test');
    for (let i = 0; i < 2; i++) expect((await nodeB.api(`/api/${account.id}/proxy/users/me`)).status).toBe(200);
    expect((await nodeA.api(`/api/accounts/${account.id}/invalidate`, { method: 'POST' })).status).toBe(200);
    const took = await within(1000, async () => (await nodeB.api(`/api/${account.id}/proxy/users/me`)).status === 410);
    expect(took).toBeLessThan(1000);
  });

  it('counts one per-key limit across both nodes, within the documented overshoot', async () => {
    const org = await newOrg(nodeA, 'two-nodes-limit');
    const statuses = await burst([nodeA, nodeB], org.key, LIMIT + 50, 12);
    const admitted = statuses.filter((s) => s === 200).length;
    expect(admitted).toBeGreaterThanOrEqual(LIMIT);
    expect(admitted).toBeLessThanOrEqual(LIMIT + OVERSHOOT);
    expect(statuses.filter((s) => s !== 200 && s !== 429)).toEqual([]);
    // Both nodes now refuse the key.
    expect((await nodeA.api('/api/whoami', { key: org.key })).status).toBe(429);
    expect((await nodeB.api('/api/whoami', { key: org.key })).status).toBe(429);
  });
});
