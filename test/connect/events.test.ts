import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { describeEachStore } from '../support/stores.js';

/** The outbox the webhooks read: one event row per announced change, written with the change. */
describeEachStore('connect events (outbox)', (kind) => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp(kind);
  });
  afterAll(() => app?.close());

  const eventsOf = (attemptId: string) =>
    app.fangate.database.db.selectFrom('events').selectAll().where('attempt_id', '=', attemptId).orderBy('created_at').orderBy('id').execute();

  it('records otp_code_required then connected, with the attempt and account as the API shows them', async () => {
    const start = await app.api('/api/authenticate', { method: 'POST', body: { email: 'ev1+sms@sandbox.test', password: 'password', client_reference_id: 'crm-ev1' } });
    const parked = await app.api(`/api/authenticate/${start.body.attempt_id}?wait=10&state=pending`);
    expect(parked.body.state).toBe('needs_otp');
    await app.api(`/api/authenticate/${start.body.attempt_id}`, { method: 'PUT', body: { code: '123456' } });
    const done = await app.api(`/api/authenticate/${start.body.attempt_id}?wait=10&state=pending`);
    expect(done.body.state).toBe('completed_success');

    const events = await eventsOf(start.body.attempt_id);
    expect(events.map((e) => e.event)).toEqual(['accounts.otp_code_required', 'accounts.connected']);
    for (const e of events) {
      expect(e.id).toMatch(/^evt_/);
      expect(e.client_reference_id).toBe('crm-ev1');
    }
    const [required, connected] = events as [(typeof events)[number], (typeof events)[number]];
    expect((required.payload as any).attempt).toMatchObject({ attempt_id: start.body.attempt_id, state: 'needs_otp', phone_last4: '4242' });
    expect(connected.account_id).toBe(done.body.account_id);
    expect((connected.payload as any).account).toEqual(done.body.account);
    expect((connected.payload as any).attempt).toMatchObject({ state: 'completed_success', account_id: done.body.account_id });
  });

  it('records authentication_failed once for a failed attempt, and reconnected for a re-authentication', async () => {
    const bad = await app.api('/api/authenticate', { method: 'POST', body: { email: 'ev2@sandbox.test', password: 'wrong' } });
    expect((await app.api(`/api/authenticate/${bad.body.attempt_id}?wait=10&state=pending`)).body.error.code).toBe('invalid_credentials');
    expect((await eventsOf(bad.body.attempt_id)).map((e) => e.event)).toEqual(['accounts.authentication_failed']);

    const good = await app.api('/api/authenticate', { method: 'POST', body: { email: 'ev3@sandbox.test', password: 'password' } });
    const connected = await app.api(`/api/authenticate/${good.body.attempt_id}?wait=10&state=pending`);
    const reauth = await app.api(`/api/authenticate/${connected.body.account_id}/reauthenticate?force=true`, { method: 'POST' });
    expect(reauth.status).toBe(200);
    expect((await app.api(`/api/authenticate/${reauth.body.attempt_id}?wait=10&state=pending`)).body.state).toBe('completed_success');
    const events = await eventsOf(reauth.body.attempt_id);
    expect(events.map((e) => e.event)).toEqual(['accounts.reconnected']);
    expect(events[0]!.account_id).toBe(connected.body.account_id);
  });
});
