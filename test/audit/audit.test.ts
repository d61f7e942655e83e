import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, BOOTSTRAP_KEY, startTestApp, type TestApp } from '../support/app.js';
import { describeEachStore } from '../support/stores.js';
import { connectAccount, follow, importAccount, mintSession, otherOrgKey, UA } from '../accounts/helpers.js';
import { createEndpoint, startReceiver, type Receiver } from '../webhooks/helpers.js';

/** The audit log (DESIGN 11): every audited action leaves one event, per organisation, never a secret. */
describeEachStore('audit log: GET /api/audit-events', (kind) => {
  let app: TestApp;
  let receiver: Receiver;
  let otherKey: string;
  let keyId: string;
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
  /** Every secret value this suite sends or receives: none may show up in an audit event. */
  const secrets: string[] = [BOOTSTRAP_KEY, ADMIN_TOKEN];

  beforeAll(async () => {
    app = await startTestApp(kind, { env: { FANGATE_ALLOW_PRIVATE_WEBHOOKS: 'true' } });
    receiver = await startReceiver();
    otherKey = await otherOrgKey(app, 'audit-other');
    const who = await app.api('/api/whoami');
    keyId = who.body.api_key.id;
  });
  afterAll(async () => {
    await receiver?.close();
    await app?.close();
  });

  const events = async (query = '', key?: string) => {
    const res = await app.api(`/api/audit-events${query}`, key ? { key } : {});
    expect(res.status, res.text).toBe(200);
    return res.body as { data: any[]; has_more: boolean; next_cursor: string | null };
  };
  const only = async (action: string, targetId: string) => {
    const page = await events(`?action=${action}&target_id=${targetId}`);
    expect(page.data, JSON.stringify(page.data)).toHaveLength(1);
    const [event] = page.data;
    expect(event).toMatchObject({ action, target_id: targetId });
    expect(event.id).toMatch(/^aud_[A-Za-z0-9]{22}$/);
    expect(new Date(event.created_at).toISOString()).toBe(event.created_at);
    for (const secret of secrets) expect(JSON.stringify(event)).not.toContain(secret);
    return event;
  };

  it('is closed without a key and needs the audit:read scope', async () => {
    expect((await app.api('/api/audit-events', { key: null })).status).toBe(401);
    const narrow = await app.api('/api/api-keys', { method: 'POST', body: { scopes: ['accounts:read'] } });
    expect(narrow.status, narrow.text).toBe(201);
    const res = await app.api('/api/audit-events', { key: narrow.body.key });
    expect(res.status).toBe(403);
    expect(res.body.code).toBe('forbidden');
  });

  it('records an account connected by login (system: the login created it) and imported (the API key)', async () => {
    const { account, attemptId } = await connectAccount(app, 'audit-login@sandbox.test');
    const created = await only('account.created', account.id);
    expect(created).toMatchObject({ actor: { type: 'system', id: null }, target_type: 'account', details: { via: 'connect', attempt_id: attemptId, auth_type: 'email_password' } });

    const { account: imported, session } = await importAccount(app, 'audit-import@sandbox.test');
    secrets.push(session.cookies, session.xbc);
    const event = await only('account.created', imported.id);
    expect(event).toMatchObject({ actor: { type: 'api_key', id: keyId }, details: { via: 'import' } });

    // A fresh session rotated in place is a credentials update too.
    const fresh = await mintSession(app, 'audit-import@sandbox.test');
    secrets.push(fresh.cookies, fresh.xbc);
    const rotated = await app.api(`/api/accounts/import/${imported.id}`, { method: 'PATCH', body: { cookie: fresh.cookies, userAgent: UA, xbc: fresh.xbc } });
    expect(rotated.status, rotated.text).toBe(200);
    expect(await only('account.credentials_updated', imported.id)).toMatchObject({ actor: { type: 'api_key', id: keyId }, details: { via: 'import_rotation' } });
  });

  it('records credentials updates, invalidations and deletions by the API key', async () => {
    const { account } = await connectAccount(app, 'audit-cred@sandbox.test');
    const put = await app.api(`/api/authenticate/${account.id}/credentials`, { method: 'PUT', body: { email: 'audit-cred@sandbox.test', password: 'password' } });
    expect(put.status, put.text).toBe(200);
    const cred = await only('account.credentials_updated', account.id);
    expect(cred).toMatchObject({ actor: { type: 'api_key', id: keyId }, target_type: 'account', details: { via: 'credentials', auth_type: 'email_password', attempt_id: put.body.attempt_id } });
    await follow(app, put.body.attempt_id);

    const inv = await app.api(`/api/accounts/${account.id}/invalidate`, { method: 'POST' });
    expect(inv.status, inv.text).toBe(200);
    expect(await only('account.invalidated', account.id)).toMatchObject({ actor: { type: 'api_key', id: keyId }, details: { from: 'active' } });

    const del = await app.api(`/api/accounts/${account.id}`, { method: 'DELETE' });
    expect(del.status, del.text).toBe(204);
    expect(await only('account.deleted', account.id)).toMatchObject({ actor: { type: 'api_key', id: keyId }, details: { username: 'audit-cred' } });
  });

  it('records API key creation and revocation, by an API key and by the admin', async () => {
    const created = await app.api('/api/api-keys', { method: 'POST', body: { name: 'audited', scopes: ['accounts:read'] } });
    expect(created.status, created.text).toBe(201);
    secrets.push(created.body.key);
    expect(await only('api_key.created', created.body.id)).toMatchObject({ actor: { type: 'api_key', id: keyId }, target_type: 'api_key', details: { name: 'audited', scopes: ['accounts:read'] } });
    const revoked = await app.api(`/api/api-keys/${created.body.id}`, { method: 'DELETE' });
    expect(revoked.status).toBe(204);
    expect(await only('api_key.revoked', created.body.id)).toMatchObject({ actor: { type: 'api_key', id: keyId } });

    const org = (await app.api('/api/whoami')).body.organization.id;
    const byAdmin = await app.api(`/admin/orgs/${org}/api-keys`, { method: 'POST', body: { name: 'from admin' }, headers: admin, key: null });
    expect(byAdmin.status, byAdmin.text).toBe(201);
    secrets.push(byAdmin.body.key);
    expect(await only('api_key.created', byAdmin.body.id)).toMatchObject({ actor: { type: 'admin', id: 'admin_token' } });
  });

  it('records webhook endpoint create, update, secret rotation and delete, without the secret or the URL path', async () => {
    const url = `${receiver.url}/hooks/s3cr3t-path-token`;
    const endpoint = await createEndpoint(app, { endpoint_url: url, events: ['accounts.connected'] });
    secrets.push(endpoint.signing_secret, 's3cr3t-path-token');
    const created = await only('webhook_endpoint.created', endpoint.id);
    expect(created).toMatchObject({ actor: { type: 'api_key', id: keyId }, target_type: 'webhook_endpoint', details: { host: new URL(url).host, enabled: true } });

    const put = await app.api(`/api/webhooks/${endpoint.id}`, { method: 'PUT', body: { description: 'CRM', enabled: false } });
    expect(put.status, put.text).toBe(200);
    expect((await only('webhook_endpoint.updated', endpoint.id)).details).toMatchObject({ fields: ['description', 'enabled'], enabled: false });

    const rotated = await app.api(`/api/webhooks/${endpoint.id}/rotate-secret`, { method: 'POST' });
    expect(rotated.status, rotated.text).toBe(200);
    secrets.push(rotated.body.signing_secret);
    expect((await only('webhook_endpoint.secret_rotated', endpoint.id)).details.old_secret_valid_until).toBe(rotated.body.previous_secret_expires_at);

    const del = await app.api(`/api/webhooks/${endpoint.id}`, { method: 'DELETE' });
    expect(del.status).toBe(204);
    await only('webhook_endpoint.deleted', endpoint.id);
  });

  it('records a vault rotation by the admin, seen by every organisation', async () => {
    const res = await app.api('/admin/vault/rotate', { method: 'POST', headers: admin, key: null });
    expect(res.status, res.text).toBe(200);
    const page = await events('?action=vault.rotated');
    expect(page.data).toHaveLength(1);
    expect(page.data[0]).toMatchObject({ actor: { type: 'admin', id: 'admin_token' }, target_type: 'vault', details: { rotated: res.body.rotated } });
    expect((await events('?action=vault.rotated', otherKey)).data).toHaveLength(1);
  });

  it("keeps each organisation's events to itself", async () => {
    const mine = await events('?limit=100');
    const theirs = await events('?limit=100', otherKey);
    const theirIds = new Set(theirs.data.map((e) => e.id));
    // The other organisation sees its own key's creation (by the admin) and the vault rotation only.
    expect(theirs.data.map((e) => e.action).sort()).toEqual(['api_key.created', 'vault.rotated']);
    expect(mine.data.filter((e) => theirIds.has(e.id)).map((e) => e.action)).toEqual(['vault.rotated']);
    // Another organisation's target id finds nothing.
    const account = mine.data.find((e) => e.action === 'account.deleted');
    expect((await events(`?target_id=${account.target_id}`, otherKey)).data).toEqual([]);
  });

  it('pages newest first with a cursor, and refuses bad filters with 422 naming the field', async () => {
    const all = (await events('?limit=100')).data;
    expect(all.length).toBeGreaterThan(5);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { data: any[]; next_cursor: string | null } = await events(`?limit=3${cursor ? `&cursor=${cursor}` : ''}`);
      seen.push(...page.data.map((e) => e.id));
      cursor = page.next_cursor;
    } while (cursor);
    expect(seen).toEqual(all.map((e) => e.id));
    const times = all.map((e) => e.created_at);
    expect([...times].sort().reverse()).toEqual(times);

    const bad = await app.api('/api/audit-events?action=account.exploded');
    expect(bad.status).toBe(422);
    expect(bad.body.errors[0].field).toBe('action');
    const badCursor = await app.api('/api/audit-events?cursor=nope');
    expect(badCursor.status).toBe(422);
  });

  it('holds no secret anywhere', async () => {
    const all = JSON.stringify((await events('?limit=100')).data);
    for (const secret of secrets) expect(all).not.toContain(secret);
  });
});
