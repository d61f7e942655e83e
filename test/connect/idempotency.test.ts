import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { startSandbox } from '../../src/sandbox/index.js';
import { startTestApp, type StartOptions, type TestApp } from '../support/app.js';
import { createTestStore, describeEachStore } from '../support/stores.js';
import { expectSettled } from './login-helpers.js';

/**
 * Issue 11 item 1: an Idempotency-Key of a connect is written in the attempt's own transaction, with its first
 * job. No claim is held while the request runs (so none outlives a dead request), concurrent duplicates
 * answer the one attempt, and a retry after a restart answers the first outcome, never a second attempt.
 */

let cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  const pending = cleanups.reverse();
  cleanups = [];
  for (const cleanup of pending) await Promise.resolve(cleanup()).catch(() => undefined);
});

async function attemptsOf(app: TestApp, clientReferenceId: string) {
  return app.fangate.database.db.selectFrom('auth_attempts').select(['id', 'state']).where('client_reference_id', '=', clientReferenceId).execute();
}

describeEachStore('connect Idempotency-Key', (kind) => {
  it('concurrent requests with one key and body start one attempt and all answer it', async () => {
    const app = await startTestApp(kind);
    cleanups.push(() => app.close());
    const body = { email: `idem-race-${kind}@sandbox.test`, password: 'password', client_reference_id: `race-${kind}` };
    const headers = { 'idempotency-key': `race-${kind}` };
    const answers = await Promise.all(Array.from({ length: 12 }, () => app.api('/api/authenticate', { method: 'POST', body, headers })));
    for (const answer of answers) expect(answer.status, answer.text).toBe(200);
    const ids = new Set(answers.map((a) => a.body.attempt_id));
    expect(ids.size).toBe(1);
    expect(answers.filter((a) => a.headers.get('idempotent-replayed') === 'true').length).toBeGreaterThan(0);
    expect(await attemptsOf(app, `race-${kind}`)).toHaveLength(1);
    // Its first job was committed with it: the login runs.
    await expectSettled(app, [...ids][0]!, 'completed_success');
  }, 60_000);

  it('a refusal before anything started is the answer to every retry with the key', async () => {
    const app = await startTestApp(kind);
    cleanups.push(() => app.close());
    const body = { email: 'idem-refused@sandbox.test', password: 'password', proxyCountry: 'zz' };
    const headers = { 'idempotency-key': `refused-${kind}` };
    const first = await app.api('/api/authenticate', { method: 'POST', body, headers });
    expect(first.status).toBe(422);
    const again = await app.api('/api/authenticate', { method: 'POST', body, headers });
    expect(again.status).toBe(422);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body.code).toBe(first.body.code);
    const other = await app.api('/api/authenticate', { method: 'POST', body: { ...body, proxyCountry: undefined }, headers });
    expect(other.status).toBe(422);
    expect(other.body.code).toBe('idempotency_key_reused');
  }, 60_000);

  it('a retry after a restart answers the first attempt and starts no second login', async () => {
    const sandbox = await startSandbox({ port: 0, logger: false });
    cleanups.push(() => sandbox.close());
    const dataDir = await mkdtemp(join(tmpdir(), 'fangate-idem-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const store = await createTestStore(kind);
    cleanups.push(() => store.drop());
    const reuse: StartOptions = kind === 'pglite' ? { persistent: true, dataDir, sandbox } : { store, dataDir, sandbox };

    const first = await startTestApp(kind, reuse);
    let running = true;
    cleanups.push(() => running && first.fangate.stop());
    const body = { email: `idem-restart-${kind}+sms@sandbox.test`, password: 'password', client_reference_id: `restart-${kind}` };
    const headers = { 'idempotency-key': `restart-${kind}` };
    const answer = await first.api('/api/authenticate', { method: 'POST', body, headers });
    expect(answer.status).toBe(200);
    await first.fangate.stop();
    running = false;

    const second = await startTestApp(kind, reuse);
    cleanups.push(() => second.fangate.stop());
    const retried = await second.api('/api/authenticate', { method: 'POST', body, headers });
    expect(retried.status).toBe(200);
    expect(retried.headers.get('idempotent-replayed')).toBe('true');
    expect(retried.body.attempt_id).toBe(answer.body.attempt_id);
    await expectSettled(second, answer.body.attempt_id, 'needs_otp');
    expect(await attemptsOf(second, `restart-${kind}`)).toHaveLength(1);
  }, 90_000);

  it('on other creating routes, the claim of a request whose process died is taken over at once; a live one is in use', async () => {
    const app = await startTestApp(kind);
    cleanups.push(() => app.close());
    const orgId = (await app.api('/api/whoami')).body.organization.id;
    const claim = (key: string, owner: string, body: unknown) =>
      app.fangate.database.db
        .insertInto('idempotency_keys')
        .values({ org_id: orgId, key, request_hash: createHash('sha256').update(`POST /api/api-keys\n${JSON.stringify(body)}`).digest('hex'), owner })
        .execute();
    // A process that died mid-request: nothing holds its liveness lock any more.
    await claim(`dead-${kind}`, '4611686018427387901', { name: 'after a crash' });
    const taken = await app.api('/api/api-keys', { method: 'POST', body: { name: 'after a crash' }, headers: { 'idempotency-key': `dead-${kind}` } });
    expect(taken.status, taken.text).toBe(201);
    const replayed = await app.api('/api/api-keys', { method: 'POST', body: { name: 'after a crash' }, headers: { 'idempotency-key': `dead-${kind}` } });
    expect(replayed.headers.get('idempotent-replayed')).toBe('true');
    expect(replayed.body.id).toBe(taken.body.id);
    // This very process, still running that request.
    await claim(`live-${kind}`, app.fangate.database.nodeKey, { name: 'concurrent' });
    const busy = await app.api('/api/api-keys', { method: 'POST', body: { name: 'concurrent' }, headers: { 'idempotency-key': `live-${kind}` } });
    expect(busy.status).toBe(409);
    expect(busy.body.code).toBe('idempotency_key_in_use');
  }, 120_000);
});
