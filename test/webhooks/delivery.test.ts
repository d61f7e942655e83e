import { Webhook as StandardWebhook } from 'standardwebhooks';
import { Webhook as SvixWebhook } from 'svix';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { connectAccount } from '../accounts/helpers.js';
import { recordEvent } from '../../src/webhooks/outbox.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { describeEachStore } from '../support/stores.js';
import { createEndpoint, type Receiver, startReceiver, waitForDeliveries } from './helpers.js';

/** Delivery from the outbox to receivers this test starts on 127.0.0.1 (DESIGN 9). */

const svixHeaders = (h: Record<string, unknown>) => ({
  'svix-id': String(h['webhook-id']),
  'svix-timestamp': String(h['webhook-timestamp']),
  'svix-signature': String(h['webhook-signature']),
});

describeEachStore('webhooks: delivery', (kind) => {
  let app: TestApp;
  const receivers: Receiver[] = [];
  const receiver = async (...args: Parameters<typeof startReceiver>) => {
    const r = await startReceiver(...args);
    receivers.push(r);
    return r;
  };

  beforeAll(async () => {
    app = await startTestApp(kind, {
      env: { FANGATE_ALLOW_PRIVATE_WEBHOOKS: 'true' },
      // Few slots, so that a hanging endpoint could take them all if it were not bounded.
      webhooks: { retryScheduleMs: [400, 400, 400], jitter: 0, timeoutMs: 5_000, pollMs: 100, concurrency: 4, perEndpointConcurrency: 2 },
    });
  });
  afterAll(async () => {
    await app?.close();
    for (const r of receivers) await r.close();
  });

  it('signs every delivery per Standard Webhooks: both verifiers accept it, with the pinned body', async () => {
    const r = await receiver();
    const endpoint = await createEndpoint(app, { endpoint_url: r.url, events: ['accounts.connected'] });
    expect(endpoint.signing_secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
    expect(Buffer.from(endpoint.signing_secret.slice(6), 'base64').length).toBeGreaterThanOrEqual(24);
    const { account, attemptId } = await connectAccount(app, 'wh-sign@sandbox.test', { client_reference_id: 'crm-7' });

    const [got] = await r.waitFor(1);
    const headers = got!.headers as Record<string, string>;
    expect(headers['content-type']).toBe('application/json');
    expect(new StandardWebhook(endpoint.signing_secret).verify(got!.body, headers)).toEqual(got!.json);
    expect(new SvixWebhook(endpoint.signing_secret).verify(got!.body, svixHeaders(headers))).toEqual(got!.json);
    // A wrong secret or a changed body is refused.
    expect(() => new StandardWebhook(`whsec_${Buffer.alloc(32, 1).toString('base64')}`).verify(got!.body, headers)).toThrow();
    expect(() => new SvixWebhook(endpoint.signing_secret).verify(got!.body.replace('crm-7', 'crm-8'), svixHeaders(headers))).toThrow();

    expect(got!.json).toEqual({
      id: headers['webhook-id'],
      event: 'accounts.connected',
      created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      account_id: account.id,
      attempt_id: attemptId,
      client_reference_id: 'crm-7',
      payload: { account: expect.objectContaining({ id: account.id, status: 'active' }), attempt: expect.objectContaining({ attempt_id: attemptId }) },
    });
    expect(headers['webhook-id']).toMatch(/^evt_/);
    const [delivery] = await waitForDeliveries(app, endpoint.id, (d) => d.length === 1 && d[0].status === 'succeeded');
    expect(delivery).toMatchObject({ event_id: headers['webhook-id'], event: 'accounts.connected', status: 'succeeded', last_response_status: 200, next_attempt_at: null });
    // A loaded machine may need more than one try; every try the receiver saw was recorded.
    expect(delivery.attempts).toBeGreaterThanOrEqual(r.received.length);
    expect(delivery.delivered_at).not.toBeNull();
  });

  it('retries after a 500 with the same webhook-id and records every try', async () => {
    const r = await receiver((_req, n) => (n === 1 ? { status: 500, body: 'boom '.repeat(400) } : { status: 204 }));
    const endpoint = await createEndpoint(app, { endpoint_url: r.url, events: ['accounts.connected'] });
    await connectAccount(app, 'wh-retry@sandbox.test');
    const [first, second] = await r.waitFor(2);
    expect(second!.headers['webhook-id']).toBe(first!.headers['webhook-id']);
    expect(second!.body).toBe(first!.body);
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(350);
    expect(new StandardWebhook(endpoint.signing_secret).verify(second!.body, second!.headers as Record<string, string>)).toBeTruthy();

    const [delivery] = await waitForDeliveries(app, endpoint.id, (d) => d[0]?.status === 'succeeded');
    const detail = await app.api(`/api/webhooks/${endpoint.id}/deliveries/${delivery.id}`);
    expect(detail.status).toBe(200);
    expect(detail.body).toMatchObject({ status: 'succeeded', attempts: 2, last_response_status: 204 });
    expect(detail.body.tries).toHaveLength(2);
    expect(detail.body.tries[0]).toMatchObject({ response_status: 500, error: null });
    expect(detail.body.tries[0].response_body).toHaveLength(1024);
    expect(detail.body.tries[0].duration_ms).toBeGreaterThanOrEqual(0);
    expect(detail.body.tries[1]).toMatchObject({ response_status: 204, response_body: null });
  });

  it('honours Retry-After', async () => {
    const r = await receiver((_req, n) => (n === 1 ? { status: 503, headers: { 'retry-after': '2' } } : { status: 200 }));
    const endpoint = await createEndpoint(app, { endpoint_url: r.url, events: ['accounts.connected'] });
    await connectAccount(app, 'wh-retry-after@sandbox.test');
    const [first, second] = await r.waitFor(2, 20_000);
    // The schedule says 0.4 s; the receiver asked for 2 s.
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(1_900);
    await waitForDeliveries(app, endpoint.id, (d) => d[0]?.status === 'succeeded');
  });

  it('disables the endpoint at once on 410 Gone', async () => {
    const r = await receiver(() => ({ status: 410 }));
    const endpoint = await createEndpoint(app, { endpoint_url: r.url, events: ['accounts.connected'] });
    await connectAccount(app, 'wh-gone@sandbox.test');
    const [delivery] = await waitForDeliveries(app, endpoint.id, (d) => d[0]?.status === 'failed');
    expect(delivery).toMatchObject({ attempts: 1, last_response_status: 410, next_attempt_at: null });
    const after = await app.api(`/api/webhooks/${endpoint.id}`);
    expect(after.body).toMatchObject({ enabled: false, disabled_reason: 'endpoint_gone' });
    await new Promise((resolve) => setTimeout(resolve, 800));
    expect(r.received).toHaveLength(1);
  });

  it('a hanging receiver does not delay another endpoint; the hung try times out and is retried', async () => {
    const accounts = [];
    for (let i = 0; i < 4; i++) accounts.push((await connectAccount(app, `wh-hang${i}@sandbox.test`)).account);
    const slow = await receiver(() => 'hang');
    const fast = await receiver();
    const slowEndpoint = await createEndpoint(app, { endpoint_url: slow.url, events: ['accounts.updated'] });
    await createEndpoint(app, { endpoint_url: fast.url, events: ['accounts.updated'] });
    // Four accounts: four deliveries the slow endpoint could take at once, as many as the worker has slots.
    for (const [i, account] of accounts.entries()) {
      const res = await app.api(`/api/accounts/${account.id}`, { method: 'PATCH', body: { display_name: `Hang ${i}` } });
      expect(res.status, res.text).toBe(200);
    }
    const got = await fast.waitFor(4, 15_000);
    const [slowFirst] = await slow.waitFor(1);
    // All of them before the slow endpoint's first try even timed out (5 s): nobody waited on it.
    expect(Math.max(...got.map((g) => g.at))).toBeLessThan(slowFirst!.at + 5_000);
    expect(got.map((g) => g.json.payload.account.display_name).sort()).toEqual(['Hang 0', 'Hang 1', 'Hang 2', 'Hang 3']);
    // The slow endpoint holds at most its share of the slots.
    await slow.waitFor(2);
    expect(slow.received.length).toBe(2);
    // The hung try ends at the timeout and counts as a failed try, to be retried.
    const deliveries = await waitForDeliveries(app, slowEndpoint.id, (d) => d.some((x) => x.attempts >= 1), 20_000);
    const detail = await app.api(`/api/webhooks/${slowEndpoint.id}/deliveries/${deliveries.find((x) => x.attempts >= 1).id}`);
    expect(detail.body.tries[0]).toMatchObject({ response_status: null, error: expect.stringContaining('timed out') });
    expect(detail.body.status).toBe('pending');
    await app.api(`/api/webhooks/${slowEndpoint.id}`, { method: 'DELETE' });
  });

  it("delivers one endpoint's events for one account in order, while a failing account's events wait", async () => {
    let failing = true;
    const r = await receiver((req) => (failing && req.json.payload.account.display_name === 'A 0' ? { status: 500 } : { status: 200 }));
    await createEndpoint(app, { endpoint_url: r.url, events: ['accounts.updated'] });
    const a = (await connectAccount(app, 'wh-order-a@sandbox.test')).account;
    const b = (await connectAccount(app, 'wh-order-b@sandbox.test')).account;
    for (let i = 0; i < 5; i++) {
      await app.api(`/api/accounts/${a.id}`, { method: 'PATCH', body: { display_name: `A ${i}` } });
      await app.api(`/api/accounts/${b.id}`, { method: 'PATCH', body: { display_name: `B ${i}` } });
    }
    // B is not held up by A's failing first event.
    const bs = await r.waitFor(5, 20_000, (x) => x.json.account_id === b.id);
    expect(bs.map((x) => x.json.payload.account.display_name)).toEqual(['B 0', 'B 1', 'B 2', 'B 3', 'B 4']);
    failing = false;
    await r.waitFor(1, 20_000, (x) => x.json.payload.account.display_name === 'A 4');
    const as = r.received.filter((x) => x.json.account_id === a.id).map((x) => x.json.payload.account.display_name);
    // A 0 (failed, retried until it succeeded) before anything else of A: nothing overtook it.
    expect(as.filter((n) => n === 'A 0').length).toBeGreaterThanOrEqual(2);
    expect(as.filter((n, i) => n !== as[i - 1])).toEqual(['A 0', 'A 1', 'A 2', 'A 3', 'A 4']);
  });

  it('events written while earlier ones are being delivered all arrive, each account\'s in order, at every endpoint', async () => {
    // Fan-out of new events races the outcome writes that hand each account's queue to its next delivery
    // (several writes at once on PostgreSQL): none may be left waiting behind no one, none may overtake.
    const r1 = await receiver();
    const r2 = await receiver();
    const endpoint = await createEndpoint(app, { endpoint_url: r1.url, events: ['accounts.reconnected'] });
    await createEndpoint(app, { endpoint_url: r2.url, events: ['accounts.reconnected'] });
    const db = app.fangate.database.db;
    const { org_id: orgId } = await db.selectFrom('webhook_endpoints').select('org_id').where('id', '=', endpoint.id).executeTakeFirstOrThrow();
    const accounts = 12;
    const rounds = 8;
    for (let round = 0; round < rounds; round++) {
      await db.transaction().execute(async (trx) => {
        for (let a = 0; a < accounts; a++) {
          await recordEvent(trx, { orgId, event: 'accounts.reconnected', accountId: `acct_race_${a}`, attemptId: null, clientReferenceId: String(round), payload: { account: null, attempt: null } });
        }
      });
      await new Promise((resolve) => setTimeout(resolve, 15));
    }
    for (const r of [r1, r2]) {
      // Every event once (a repeat, allowed by at-least-once, is not counted twice).
      await r.waitFor(accounts * rounds, 20_000, (x) => r.received.find((y) => y.json.id === x.json.id) === x);
      for (let a = 0; a < accounts; a++) {
        const seen = r.received.filter((x) => x.json.account_id === `acct_race_${a}`).map((x) => Number(x.json.client_reference_id));
        expect(seen.filter((n, i) => n !== seen[i - 1])).toEqual([...Array(rounds).keys()]);
      }
    }
  });
});
