import { Webhook as StandardWebhook } from 'standardwebhooks';
import { Webhook as SvixWebhook } from 'svix';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { connectAccount } from '../accounts/helpers.js';
import { ADMIN_TOKEN, startTestApp, type TestApp } from '../support/app.js';
import { describeEachStore } from '../support/stores.js';
import { createEndpoint, type Receiver, startReceiver, waitForDeliveries } from './helpers.js';

/** The endpoints API (DESIGN 9): CRUD, catalog, test, rotation, deliveries, retry, recover, tenancy, scopes. */

const EVENTS = [
  'accounts.connected',
  'accounts.reconnected',
  'accounts.session_expired',
  'accounts.authentication_failed',
  'accounts.otp_code_required',
  'accounts.email_code_required',
  'accounts.face_otp_required',
  'accounts.disconnected',
  'accounts.updated',
  'link.completed',
  'link.failed',
  'webhooks.test',
];

describeEachStore('webhooks: endpoints API', (kind) => {
  let app: TestApp;
  let otherKey: string;
  let readOnlyKey: string;
  const secrets: string[] = [];
  const receivers: Receiver[] = [];
  const receiver = async (...args: Parameters<typeof startReceiver>) => {
    const r = await startReceiver(...args);
    receivers.push(r);
    return r;
  };
  const create = async (body: Record<string, unknown>, key?: string) => {
    const e = await createEndpoint(app, body, key);
    secrets.push(e.signing_secret);
    return e;
  };

  beforeAll(async () => {
    app = await startTestApp(kind, {
      env: { FANGATE_ALLOW_PRIVATE_WEBHOOKS: 'true' },
      webhooks: { retryScheduleMs: [300, 300], jitter: 0, timeoutMs: 1_500, pollMs: 100 },
    });
    const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
    const org = await app.api('/admin/orgs', { method: 'POST', key: null, headers: admin, body: { name: `wh-other-${kind}` } });
    const key = await app.api(`/admin/orgs/${org.body.id}/api-keys`, { method: 'POST', key: null, headers: admin, body: { name: 'other' } });
    expect(key.status, key.text).toBe(201);
    otherKey = key.body.key;
    const ro = await app.api('/api/api-keys', { method: 'POST', body: { name: 'wh-read', scopes: ['webhooks:read'] } });
    expect(ro.status, ro.text).toBe(201);
    readOnlyKey = ro.body.key;
  });
  afterAll(async () => {
    await app?.close();
    for (const r of receivers) await r.close();
  });

  it('creates, reads, lists, changes and deletes endpoints; the secret is shown on create only', async () => {
    const r = await receiver();
    const created = await create({ endpoint_url: r.url, events: ['accounts.connected', 'accounts.connected'], description: 'CRM' });
    expect(created).toEqual({
      id: expect.stringMatching(/^wh_/),
      endpoint_url: r.url,
      events: ['accounts.connected'],
      account_scope: 'global',
      account_ids: [],
      enabled: true,
      disabled_reason: null,
      description: 'CRM',
      created_at: expect.any(String),
      updated_at: expect.any(String),
      signing_secret: expect.stringMatching(/^whsec_/),
    });
    const { signing_secret: _s, ...shown } = created;
    const got = await app.api(`/api/webhooks/${created.id}`);
    expect(got.status).toBe(200);
    expect(got.body).toEqual(shown);
    expect(got.text).not.toContain('whsec_');

    const second = await create({ endpoint_url: `${r.url}?b=1` });
    const page1 = await app.api('/api/webhooks?limit=1');
    expect(page1.body).toMatchObject({ data: [{ id: second.id }], has_more: true });
    const page2 = await app.api(`/api/webhooks?limit=1&cursor=${page1.body.next_cursor}`);
    expect(page2.body.data[0].id).toBe(created.id);
    expect(JSON.stringify([page1.body, page2.body])).not.toContain('whsec_');

    const put = await app.api(`/api/webhooks/${created.id}`, { method: 'PUT', body: { events: [], enabled: false, description: null } });
    expect(put.status, put.text).toBe(200);
    expect(put.body).toMatchObject({ events: [], enabled: false, description: null, endpoint_url: r.url });

    expect((await app.api(`/api/webhooks/${second.id}`, { method: 'DELETE' })).status).toBe(204);
    expect((await app.api(`/api/webhooks/${second.id}`)).status).toBe(404);
    expect((await app.api(`/api/webhooks/${second.id}`, { method: 'DELETE' })).status).toBe(404);
  });

  it('validates every field at once, with messages naming them', async () => {
    const res = await app.api('/api/webhooks', { method: 'POST', body: { endpoint_url: 'https://x.test/', events: ['accounts.connected', 'nope.event'], account_scope: 'accounts', signing_secret: 'short' } });
    expect(res.status).toBe(422);
    expect(res.body.code).toBe('validation_failed');
    const typed = await app.api('/api/webhooks', { method: 'POST', body: { endpoint_url: 42 } });
    expect(typed.status).toBe(422);
    expect(typed.body.errors.map((e: { field: string }) => e.field)).toContain('endpoint_url');
    const scoped = await app.api('/api/webhooks', { method: 'POST', body: { endpoint_url: 'http://127.0.0.1:9/', account_scope: 'accounts', account_ids: [] } });
    expect(scoped.status).toBe(422);
    expect(scoped.body.errors).toEqual([{ field: 'account_ids', message: expect.stringContaining('required') }]);
    const foreign = await app.api('/api/webhooks', { method: 'POST', body: { endpoint_url: 'http://127.0.0.1:9/', account_scope: 'accounts', account_ids: ['acct_doesnotexist'] } });
    expect(foreign.status).toBe(422);
    expect(foreign.body.errors).toEqual([{ field: 'account_ids/0', message: expect.stringContaining('not an account') }]);
    const secret = await app.api('/api/webhooks', { method: 'POST', body: { endpoint_url: 'http://127.0.0.1:9/', signing_secret: 'whsec_abc' } });
    expect(secret.status).toBe(422);
    expect(secret.body.errors).toEqual([{ field: 'signing_secret', message: expect.any(String) }]);
  });

  it('replays a create with the same Idempotency-Key', async () => {
    const headers = { 'idempotency-key': `wh-${kind}-1` };
    const body = { endpoint_url: 'http://127.0.0.1:9/idem' };
    const first = await app.api('/api/webhooks', { method: 'POST', body, headers });
    const again = await app.api('/api/webhooks', { method: 'POST', body, headers });
    expect(first.status).toBe(201);
    expect(again.status).toBe(201);
    expect(again.body).toEqual(first.body);
    secrets.push(first.body.signing_secret);
    const reused = await app.api('/api/webhooks', { method: 'POST', body: { endpoint_url: 'http://127.0.0.1:9/other' }, headers });
    expect(reused.status).toBe(422);
    expect(reused.body.code).toBe('idempotency_key_reused');
    await app.api(`/api/webhooks/${first.body.id}`, { method: 'DELETE' });
  });

  it('lists the event catalog with descriptions and examples, and an example payload per event', async () => {
    const res = await app.api('/api/webhooks/events');
    expect(res.status).toBe(200);
    expect(res.body.data.map((e: { name: string }) => e.name)).toEqual(EVENTS);
    for (const entry of res.body.data) {
      expect(entry.description.length).toBeGreaterThan(10);
      expect(entry.example).toMatchObject({ id: expect.stringMatching(/^evt_/), event: entry.name, payload: expect.any(Object) });
      const example = await app.api(`/api/webhooks/${entry.name}/example-payload`);
      expect(example.status).toBe(200);
      expect(example.body).toEqual(entry.example);
    }
    expect((await app.api('/api/webhooks/nope.event/example-payload')).status).toBe(404);
  });

  it('sends a test event now and answers the delivery; only that endpoint gets it', async () => {
    const r = await receiver();
    const other = await receiver();
    const endpoint = await create({ endpoint_url: r.url });
    await create({ endpoint_url: other.url, events: [] });
    const res = await app.api(`/api/webhooks/${endpoint.id}/test`, { method: 'POST' });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ id: expect.stringMatching(/^whd_/), event: 'webhooks.test', status: 'succeeded', attempts: 1, last_response_status: 200 });
    expect(r.received).toHaveLength(1);
    const got = r.received[0]!;
    expect(new StandardWebhook(endpoint.signing_secret).verify(got.body, got.headers as Record<string, string>)).toMatchObject({
      id: res.body.event_id,
      event: 'webhooks.test',
      account_id: null,
      attempt_id: null,
      client_reference_id: null,
      payload: { account: null, attempt: null },
    });
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(other.received.filter((x) => x.json.event === 'webhooks.test')).toHaveLength(0);
  });

  it('rotates the secret: for 24 h both secrets sign, then only the new one', async () => {
    const r = await receiver();
    const endpoint = await create({ endpoint_url: r.url, events: ['webhooks.test'] });
    const rotated = await app.api(`/api/webhooks/${endpoint.id}/rotate-secret`, { method: 'POST' });
    expect(rotated.status, rotated.text).toBe(200);
    const fresh = rotated.body.signing_secret as string;
    secrets.push(fresh);
    expect(fresh).toMatch(/^whsec_/);
    expect(fresh).not.toBe(endpoint.signing_secret);
    expect((await app.api(`/api/webhooks/${endpoint.id}/test`, { method: 'POST' })).body.status).toBe('succeeded');
    const during = r.received[0]!;
    expect(String(during.headers['webhook-signature']).split(' ')).toHaveLength(2);
    for (const secret of [endpoint.signing_secret, fresh]) {
      expect(new StandardWebhook(secret).verify(during.body, during.headers as Record<string, string>)).toBeTruthy();
      expect(
        new SvixWebhook(secret).verify(during.body, {
          'svix-id': String(during.headers['webhook-id']),
          'svix-timestamp': String(during.headers['webhook-timestamp']),
          'svix-signature': String(during.headers['webhook-signature']),
        }),
      ).toBeTruthy();
    }
    app.clock.advance(25 * 3600 * 1000);
    try {
      expect((await app.api(`/api/webhooks/${endpoint.id}/test`, { method: 'POST' })).body.status).toBe('succeeded');
    } finally {
      app.clock.advance(-25 * 3600 * 1000);
    }
    const after = r.received[1]!;
    expect(String(after.headers['webhook-signature']).split(' ')).toHaveLength(1);
    expect(new StandardWebhook(fresh).verify(after.body, after.headers as Record<string, string>)).toBeTruthy();
    expect(() => new StandardWebhook(endpoint.signing_secret).verify(after.body, after.headers as Record<string, string>)).toThrow();
  });

  it('filters deliveries, retries one by hand and recovers failed ones since a time', async () => {
    let answer = 500;
    const r = await receiver(() => ({ status: answer }));
    const endpoint = await create({ endpoint_url: r.url, events: ['accounts.connected', 'accounts.updated'] });
    const since = new Date().toISOString();
    const { account } = await connectAccount(app, 'wh-recover@sandbox.test');
    await app.api(`/api/accounts/${account.id}`, { method: 'PATCH', body: { display_name: 'Recover me' } });
    // Three tries each (schedule: two retries), then failed.
    const failed = await waitForDeliveries(app, endpoint.id, (d) => d.length === 2 && d.every((x) => x.status === 'failed'));
    expect(failed.every((d) => d.attempts === 3 && d.last_response_status === 500 && d.next_attempt_at === null)).toBe(true);
    const onlyUpdated = await app.api(`/api/webhooks/${endpoint.id}/deliveries?event=accounts.updated&status=failed`);
    expect(onlyUpdated.body.data.map((d: { event: string }) => d.event)).toEqual(['accounts.updated']);
    expect((await app.api(`/api/webhooks/${endpoint.id}/deliveries?status=succeeded`)).body.data).toEqual([]);
    expect((await app.api(`/api/webhooks/${endpoint.id}/deliveries?status=nope`)).status).toBe(422);

    answer = 200;
    const recovered = await app.api(`/api/webhooks/${endpoint.id}/recover`, { method: 'POST', body: { since } });
    expect(recovered.status, recovered.text).toBe(202);
    expect(recovered.body).toEqual({ recovered: 2 });
    const done = await waitForDeliveries(app, endpoint.id, (d) => d.every((x) => x.status === 'succeeded'));
    expect(done.every((d) => d.attempts === 4)).toBe(true);

    const one = done[0];
    const before = r.received.length;
    const retried = await app.api(`/api/webhooks/${endpoint.id}/deliveries/${one.id}/retry`, { method: 'POST' });
    expect(retried.status, retried.text).toBe(202);
    expect(retried.body).toMatchObject({ id: one.id, status: 'pending' });
    await r.waitFor(before + 1);
    expect(r.received.at(-1)!.headers['webhook-id']).toBe(one.event_id);
    const detail = await waitForDeliveries(app, endpoint.id, (d) => d.find((x) => x.id === one.id)?.status === 'succeeded');
    expect(detail.find((x) => x.id === one.id).attempts).toBe(5);
    expect((await app.api(`/api/webhooks/${endpoint.id}/deliveries/whd_nope/retry`, { method: 'POST' })).status).toBe(404);
  });

  it("scopes an endpoint to some accounts: others' events do not reach it", async () => {
    const r = await receiver();
    const mine = (await connectAccount(app, 'wh-scope-a@sandbox.test')).account;
    const notMine = (await connectAccount(app, 'wh-scope-b@sandbox.test')).account;
    await create({ endpoint_url: r.url, events: ['accounts.updated'], account_scope: 'accounts', account_ids: [mine.id] });
    await app.api(`/api/accounts/${notMine.id}`, { method: 'PATCH', body: { display_name: 'Not mine' } });
    await app.api(`/api/accounts/${mine.id}`, { method: 'PATCH', body: { display_name: 'Mine' } });
    const [got] = await r.waitFor(1);
    expect(got!.json).toMatchObject({ event: 'accounts.updated', account_id: mine.id });
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(r.received).toHaveLength(1);
  });

  it("answers 404 for another organisation's endpoints and deliveries on every route, and checks scopes", async () => {
    const r = await receiver();
    const endpoint = await create({ endpoint_url: r.url });
    const delivery = (await app.api(`/api/webhooks/${endpoint.id}/test`, { method: 'POST' })).body;
    const base = `/api/webhooks/${endpoint.id}`;
    const routes: Array<[string, string, unknown?]> = [
      ['GET', base],
      ['PUT', base, { enabled: false }],
      ['DELETE', base],
      ['POST', `${base}/test`],
      ['POST', `${base}/rotate-secret`],
      ['GET', `${base}/deliveries`],
      ['GET', `${base}/deliveries/${delivery.id}`],
      ['POST', `${base}/deliveries/${delivery.id}/retry`],
      ['POST', `${base}/recover`, { since: '2020-01-01T00:00:00Z' }],
    ];
    for (const [method, path, body] of routes) {
      const res = await app.api(path, { method, body, key: otherKey });
      expect([method, path, res.status]).toEqual([method, path, 404]);
      expect(res.body.code).toBe('not_found');
    }
    // A delivery id under another endpoint of the same organisation is not found either.
    const sibling = await create({ endpoint_url: r.url, enabled: false });
    expect((await app.api(`/api/webhooks/${sibling.id}/deliveries/${delivery.id}`)).status).toBe(404);
    expect((await app.api('/api/webhooks', { key: otherKey })).body.data).toEqual([]);
    // Nothing changed for the owner.
    expect((await app.api(base)).body).toMatchObject({ enabled: true });
    expect(r.received).toHaveLength(1);

    expect((await app.api(base, { key: readOnlyKey })).status).toBe(200);
    expect((await app.api('/api/webhooks/events', { key: readOnlyKey })).status).toBe(200);
    for (const [method, path, body] of [['POST', '/api/webhooks', { endpoint_url: r.url }], ['PUT', base, { enabled: false }], ['POST', `${base}/test`], ['DELETE', base]] as const) {
      const res = await app.api(path, { method, body, key: readOnlyKey });
      expect([method, path, res.status, res.body.code]).toEqual([method, path, 403, 'forbidden']);
    }
  });

  it('disables an endpoint whose every try failed for 5 days', async () => {
    const r = await receiver(() => ({ status: 500 }));
    const endpoint = await create({ endpoint_url: r.url, events: ['webhooks.test'] });
    expect((await app.api(`/api/webhooks/${endpoint.id}/test`, { method: 'POST' })).body.status).toBe('pending');
    expect((await app.api(`/api/webhooks/${endpoint.id}`)).body.enabled).toBe(true);
    app.clock.advance(5 * 24 * 3600 * 1000 + 60_000);
    try {
      await r.waitFor(2);
      const deadline = Date.now() + 5_000;
      let current = (await app.api(`/api/webhooks/${endpoint.id}`)).body;
      while (current.enabled && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        current = (await app.api(`/api/webhooks/${endpoint.id}`)).body;
      }
      expect(current).toMatchObject({ enabled: false, disabled_reason: 'failing_for_5_days' });
      // Enabled again by hand: the reason clears.
      const enabled = await app.api(`/api/webhooks/${endpoint.id}`, { method: 'PUT', body: { enabled: true } });
      expect(enabled.body).toMatchObject({ enabled: true, disabled_reason: null });
      await app.api(`/api/webhooks/${endpoint.id}`, { method: 'DELETE' });
    } finally {
      app.clock.advance(-(5 * 24 * 3600 * 1000 + 60_000));
    }
  });

  it('puts no secret in any webhook body, delivery log or log line', async () => {
    const everything = [...receivers.flatMap((r) => r.received.map((x) => x.body)), app.logs.join('\n')].join('\n');
    expect(secrets.length).toBeGreaterThan(5);
    for (const secret of secrets) {
      expect(everything).not.toContain(secret);
      expect(everything).not.toContain(secret.slice(6));
    }
    expect(everything).not.toContain('whsec_');
    const list = await app.api('/api/webhooks?limit=100');
    for (const e of list.body.data) {
      const deliveries = await app.api(`/api/webhooks/${e.id}/deliveries?limit=100`);
      for (const d of deliveries.body.data) {
        const detail = await app.api(`/api/webhooks/${e.id}/deliveries/${d.id}`);
        expect(detail.text).not.toContain('whsec_');
      }
    }
    // The delivery outcome lines carry ids, not bodies.
    const lines = app.logs.filter((l) => /"msg":"webhook (delivered|delivery try failed|delivery failed)/.test(l));
    expect(lines.length).toBeGreaterThan(5);
    for (const line of lines) {
      expect(line).not.toContain('"payload"');
      expect(line).toMatch(/"delivery":"whd_/);
    }
  });
});
