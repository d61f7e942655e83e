import { afterAll, beforeAll, expect, it } from 'vitest';
import { SANDBOX_PASSWORD } from '../../src/sandbox/index.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { describeEachStore } from '../support/stores.js';
import { expectSettled, startAttempt } from './login-helpers.js';

/** `GET /api/authenticate` (DESIGN 3.2): the organisation's attempts, newest first, filtered and paged. */
describeEachStore('listing attempts', (kind) => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp(kind);
  });
  afterAll(async () => {
    await app?.close();
  });

  it('lists newest first, filters by account, state and reference, pages with a cursor, and hides other organisations', async () => {
    const parked = await startAttempt(app, { email: 'list1+sms@sandbox.test', password: SANDBOX_PASSWORD, client_reference_id: 'crm-list-1' });
    await expectSettled(app, parked, 'needs_otp');
    const done = await startAttempt(app, { email: 'list2@sandbox.test', password: SANDBOX_PASSWORD, client_reference_id: 'crm-list-2' });
    const connected = await expectSettled(app, done, 'completed_success');
    const fansly = await startAttempt(app, { username: 'listfansly', password: SANDBOX_PASSWORD }, 'fansly');
    await expectSettled(app, fansly, 'completed_success', { platform: 'fansly' });

    const all = await app.api('/api/authenticate?limit=100');
    expect(all.status, all.text).toBe(200);
    const ids = all.body.data.map((a: { attempt_id: string }) => a.attempt_id);
    expect(ids.indexOf(fansly)).toBeLessThan(ids.indexOf(done));
    expect(ids.indexOf(done)).toBeLessThan(ids.indexOf(parked));

    expect((await app.api('/api/authenticate?state=needs_otp')).body.data.map((a: any) => a.attempt_id)).toEqual([parked]);
    expect((await app.api(`/api/authenticate?account_id=${connected.account_id}`)).body.data.map((a: any) => a.attempt_id)).toEqual([done]);
    const byRef = await app.api('/api/authenticate?client_reference_id=crm-list-2');
    expect(byRef.body.data).toHaveLength(1);
    expect(byRef.body.data[0]).toMatchObject({ attempt_id: done, state: 'completed_success', account_id: connected.account_id });
    expect((await app.api('/api/fansly/authenticate')).body.data.map((a: any) => a.attempt_id)).toEqual([fansly]);

    const first = await app.api('/api/authenticate?limit=1');
    expect(first.body).toMatchObject({ has_more: true });
    const second = await app.api(`/api/authenticate?limit=1&cursor=${first.body.next_cursor}`);
    expect(second.body.data[0].attempt_id).toBe(ids[1]);

    expect((await app.api('/api/authenticate?state=sleeping')).status).toBe(422);

    const org = await app.api('/admin/orgs', { method: 'POST', body: { name: `list-other-${kind}` }, key: null, headers: { authorization: 'Bearer admin-token-for-tests-0123456789' } });
    const key = await app.api(`/admin/orgs/${org.body.id}/api-keys`, { method: 'POST', body: {}, key: null, headers: { authorization: 'Bearer admin-token-for-tests-0123456789' } });
    expect((await app.api('/api/authenticate', { key: key.body.key })).body).toEqual({ data: [], has_more: false, next_cursor: null });
  });
});
