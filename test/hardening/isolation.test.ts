import { afterAll, beforeAll, expect, it } from 'vitest';
import { connectAccount, connectFansly, importAccount } from '../accounts/helpers.js';
import { ADMIN_TOKEN, startTestApp, type TestApp } from '../support/app.js';
import { describeEachStore } from '../support/stores.js';
import { operationsOf, sample } from './openapi.js';

/**
 * Issue 11 / DESIGN 2: another organisation's id answers 404, never 403 and never 200. Generated
 * from the served OpenAPI document: every route with an id in its path, every method, called by
 * organisation B with each real object of organisation A; A's objects are intact afterwards.
 */

describeEachStore('hardening: organisation isolation from the OpenAPI document', (kind) => {
  let app: TestApp;
  let keyB: string;
  const idsOfA: Record<string, string> = {};

  beforeAll(async () => {
    app = await startTestApp(kind);
    idsOfA.importedAccount = (await importAccount(app, 'iso-import@sandbox.test')).account.id;
    const connected = await connectAccount(app, 'iso-login@sandbox.test');
    idsOfA.account = connected.account.id;
    idsOfA.completedAttempt = connected.attemptId;
    const fansly = await connectFansly(app, 'isofansly');
    idsOfA.fanslyAccount = fansly.id;
    // An attempt parked on a challenge: still running, so every action on it would do something.
    const parked = await app.api('/api/authenticate', { method: 'POST', body: { email: 'iso-sms+sms@sandbox.test', password: 'password' } });
    expect(parked.status, parked.text).toBe(200);
    idsOfA.runningAttempt = parked.body.attempt_id;
    const fanslyAttempt = await app.api('/api/fansly/authenticate', { method: 'POST', body: { username: 'isofansly2', password: 'password' } });
    idsOfA.fanslyAttempt = fanslyAttempt.body.attempt_id;
    const key = await app.api('/api/api-keys', { method: 'POST', body: { name: 'org A key' } });
    idsOfA.apiKey = key.body.id;
    idsOfA.apiKeySecret = key.body.key;
    idsOfA.ownKey = (await app.api('/api/whoami')).body.api_key.id;

    const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
    const org = await app.api('/admin/orgs', { method: 'POST', body: { name: 'org-b' }, headers: admin, key: null });
    expect(org.status, org.text).toBe(201);
    const created = await app.api(`/admin/orgs/${org.body.id}/api-keys`, { method: 'POST', body: {}, headers: admin, key: null });
    expect(created.status, created.text).toBe(201);
    keyB = created.body.key;
  }, 180_000);
  afterAll(() => app?.close());

  it("every route with an id answers 404 to another organisation's key, for every object of A", async () => {
    const doc = await app.api('/openapi.json', { key: null });
    const operations = operationsOf(doc.body).filter((op) => !op.admin && !op.public && op.parameters.some((p) => p.in === 'path'));
    expect(operations.length).toBeGreaterThanOrEqual(12);
    const objects = Object.entries(idsOfA).filter(([name]) => name !== 'apiKeySecret');

    const failures: string[] = [];
    let checked = 0;
    for (const op of operations) {
      const pathParams = op.parameters.filter((p) => p.in === 'path');
      for (const [objectName, id] of objects) {
        const path = op.path.replace(/\{([^}]+)\}/g, () => id);
        const body = op.body ? sample(op.body) : undefined;
        const res = await app.api(path, { method: op.method, key: keyB, body });
        checked++;
        if (res.status !== 404 || res.body?.code !== 'not_found' || !res.headers.get('content-type')?.includes('application/problem+json')) {
          failures.push(`${op.method} ${op.path} with ${objectName} (${pathParams.map((p) => p.name).join(',')}) → ${res.status} ${res.text.slice(0, 160)}`);
        }
      }
    }
    expect(failures, failures.join('\n')).toEqual([]);
    expect(checked).toBeGreaterThanOrEqual(operations.length * objects.length);
  });

  it("lists of another organisation show none of A's objects", async () => {
    const accounts = await app.api('/api/accounts?limit=100', { key: keyB });
    expect(accounts.status).toBe(200);
    expect(accounts.body.data).toEqual([]);
    const keys = await app.api('/api/api-keys?limit=100', { key: keyB });
    expect(keys.status).toBe(200);
    expect(keys.text).not.toContain(idsOfA.apiKey);
    expect(keys.text).not.toContain(idsOfA.ownKey);
  });

  it("A's objects are untouched by all of it", async () => {
    for (const id of [idsOfA.account, idsOfA.importedAccount]) {
      const res = await app.api(`/api/accounts/${id}`);
      expect(res.status, res.text).toBe(200);
      expect(res.body.status).toBe('active');
    }
    expect((await app.api(`/api/fansly/authenticate/${idsOfA.fanslyAttempt}`)).status).toBe(200);
    const running = await app.api(`/api/authenticate/${idsOfA.runningAttempt}`);
    expect(running.status).toBe(200);
    expect(running.body.error?.code).not.toBe('cancelled');
    expect((await app.api('/api/whoami', { key: idsOfA.apiKeySecret })).status).toBe(200);
  });
});
