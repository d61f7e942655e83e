import http from 'node:http';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { decryptSession } from '../../src/accounts/repository.js';
import { startSandbox } from '../../src/sandbox/index.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { describeEachStore } from '../support/stores.js';
import { accountRow, connectAccount, eventsOf, follow, importAccount, platformRequests, revokeSessions } from '../accounts/helpers.js';

const SEC = 1000;

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describeEachStore('health monitor', (kind) => {
  let app: TestApp;
  let sandbox: Awaited<ReturnType<typeof startSandbox>>;
  let sandboxOffset = 0;

  let relay: http.Server;
  /** When set, the platform answers every login 502 (a passing failure) or 401 invalid_credentials (final). */
  let failLogins: false | 'passing' | 'final' = false;

  beforeAll(async () => {
    sandbox = await startSandbox({ port: 0, logger: false, clock: () => Date.now() + sandboxOffset });
    // FanGate reaches the platform through this relay, which can make logins fail for a while.
    const target = new URL(sandbox.url);
    relay = http.createServer((request, response) => {
      if (failLogins && request.url?.startsWith('/api2/v2/users/login')) {
        request.resume();
        if (failLogins === 'passing') response.writeHead(502, { 'content-type': 'text/html' }).end('<html>Bad Gateway</html>');
        else response.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 401, reason: 'invalid_credentials', message: 'Wrong email or password' } }));
        return;
      }
      const upstream = http.request({ host: target.hostname, port: target.port, method: request.method, path: request.url, headers: request.headers }, (answer) => {
        response.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(response);
      });
      upstream.on('error', () => response.destroy());
      request.pipe(upstream);
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    const address = relay.address() as { port: number };
    app = await startTestApp(kind, { sandbox, env: { FANGATE_ONLYFANS_URL: `http://127.0.0.1:${address.port}` } });
  });
  afterAll(async () => {
    await app?.close();
    relay?.closeAllConnections();
    await new Promise((resolve) => relay?.close(resolve));
    await sandbox?.close();
  });

  const check = (id: string) => app.api(`/api/accounts/${id}/check`, { method: 'POST' });
  const events = async (id: string) => (await eventsOf(app, id)).map((e) => e.event);

  it('a valid session: stamps the check, schedules the next one an interval later, counts and logs it', async () => {
    const { account } = await importAccount(app, 'mon-valid@sandbox.test');
    // First checks are spread over the interval, never all at once.
    const first = new Date(account.next_check_at).getTime() - new Date(account.created_at).getTime();
    expect(first).toBeGreaterThanOrEqual(0.7 * 900 * SEC);
    expect(first).toBeLessThanOrEqual(900 * SEC);

    const res = await check(account.id);
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ session_valid: true, attempt_id: null, account: { id: account.id, status: 'active' } });
    const checkedAt = new Date(res.body.account.last_checked_at).getTime();
    expect(new Date(res.body.account.next_check_at).getTime()).toBe(checkedAt + 900 * SEC);

    const metrics = await fetch(`${app.url}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/fangate_health_checks_total\{result="valid"\} [1-9]/);
    expect(metrics).toMatch(/fangate_upstream_request_duration_seconds_count\{platform="onlyfans",outcome="2xx"\} [1-9]/);
    const line = app.logs.find((l) => l.includes('"health check"') && l.includes(account.id));
    expect(line).toBeDefined();
    expect(line).toContain('"result":"valid"');
    const session = decryptSession(app.fangate.vault, (await accountRow(app, account.id))!)!;
    expect(app.logs.join('\n')).not.toContain(session.cookies.split('sess=')[1]!.slice(0, 32));

    expect((await check('acct_nope')).status).toBe(404);
  });

  it('a revoked session: automatic re-authentication, accounts.reconnected, active again with a new session', async () => {
    const email = 'mon-revoked@sandbox.test';
    const { account } = await connectAccount(app, email);
    const before = decryptSession(app.fangate.vault, (await accountRow(app, account.id))!)!;
    await revokeSessions(app, email);

    const res = await check(account.id);
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ session_valid: false, attempt_id: expect.stringMatching(/^auth_/) });
    expect(['reauthenticating', 'active']).toContain(res.body.account.status);
    expect((await follow(app, res.body.attempt_id)).state).toBe('completed_success');

    const after = await app.api(`/api/accounts/${account.id}`);
    expect(after.body).toMatchObject({ status: 'active', expired_at: null, next_check_at: expect.any(String) });
    expect(decryptSession(app.fangate.vault, (await accountRow(app, account.id))!)!.cookies).not.toBe(before.cookies);
    expect(await events(account.id)).toContain('accounts.reconnected');
    expect((await app.api(`/api/${account.id}/proxy/users/me`)).status).toBe(200);
  });

  it('without stored credentials: expired + accounts.session_expired', async () => {
    const email = 'mon-imported@sandbox.test';
    const { account } = await importAccount(app, email);
    await revokeSessions(app, email);
    const res = await check(account.id);
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ session_valid: false, attempt_id: null, account: { status: 'expired', next_check_at: null, expired_at: expect.any(String) } });
    expect(await events(account.id)).toContain('accounts.session_expired');
    expect(app.logs.some((l) => l.includes('"health check"') && l.includes(account.id) && l.includes('"result":"expired"'))).toBe(true);
  });

  it('a re-authentication that needs the creator parks: needs_otp, account awaiting_2fa, challenge event emitted', async () => {
    const email = 'mon-parks+sms@sandbox.test';
    const { account } = await connectAccount(app, email);
    // As if the creator's last login had needed no code (FanGate may log in alone) and the platform asks
    // for one now (the creator turned SMS verification on since).
    await app.fangate.database.db.updateTable('accounts').set({ last_challenges: [] as never }).where('id', '=', account.id).execute();
    await revokeSessions(app, email);

    const res = await check(account.id);
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ session_valid: false, attempt_id: expect.stringMatching(/^auth_/) });
    const parked = await follow(app, res.body.attempt_id);
    expect(parked.state).toBe('needs_otp');
    expect((await app.api(`/api/accounts/${account.id}`)).body.status).toBe('awaiting_2fa');
    expect(await events(account.id)).toContain('accounts.otp_code_required');
    // Meanwhile the Access API says to wait, and touches no platform.
    const waiting = await app.api(`/api/${account.id}/proxy/users/me`);
    expect(waiting.status, waiting.text).toBe(503);
    expect(waiting.body.code).toBe('account_reauthenticating');

    // The creator answers: the account is back.
    const code = await app.api(`/api/authenticate/${parked.attempt_id}`, { method: 'PUT', body: { code: '123456' } });
    expect(code.status, code.text).toBe(202);
    expect((await follow(app, parked.attempt_id)).state).toBe('completed_success');
    expect((await app.api(`/api/accounts/${account.id}`)).body.status).toBe('active');
    expect(await events(account.id)).toContain('accounts.reconnected');
  });

  it('single-flight: two checks of the same account at once start one re-authentication', async () => {
    const email = 'mon-twice+slow@sandbox.test';
    const { account } = await connectAccount(app, email);
    await revokeSessions(app, email);
    const [a, b] = await Promise.all([check(account.id), check(account.id)]);
    expect(a.status, a.text).toBe(200);
    expect(b.status, b.text).toBe(200);
    const started = [a.body.attempt_id, b.body.attempt_id].filter(Boolean);
    expect(started.length).toBeGreaterThan(0);
    expect(new Set(started).size).toBe(1);
    const reauths = await app.fangate.database.db.selectFrom('auth_attempts').select('id').where('account_id', '=', account.id).where('kind', '=', 'reauthenticate').execute();
    expect(reauths).toHaveLength(1);
    expect((await follow(app, started[0])).state).toBe('completed_success');
  });

  it('passing failures back off: the next check comes sooner than the interval, and later each time', async () => {
    const { account } = await importAccount(app, 'mon-backoff@sandbox.test');
    expect((await app.api(`/api/accounts/${account.id}`, { method: 'PATCH', body: { customProxy: { host: '127.0.0.1', port: 9 } } })).status).toBe(200);
    const one = await check(account.id);
    expect(one.body).toMatchObject({ session_valid: false, attempt_id: null, account: { status: 'active' } });
    const delay1 = new Date(one.body.account.next_check_at).getTime() - app.clock.now().getTime();
    expect(delay1).toBeGreaterThan(20 * SEC);
    expect(delay1).toBeLessThanOrEqual(30 * SEC);
    const two = await check(account.id);
    const delay2 = new Date(two.body.account.next_check_at).getTime() - app.clock.now().getTime();
    expect(delay2).toBeGreaterThan(50 * SEC);
    expect(delay2).toBeLessThanOrEqual(60 * SEC);
    // A success resets it.
    expect((await app.api(`/api/accounts/${account.id}`, { method: 'PATCH', body: { customProxy: null } })).status).toBe(200);
    expect((await check(account.id)).body.session_valid).toBe(true);
    expect((await accountRow(app, account.id))!.check_failures).toBe(0);
  });

  it('a re-authentication that fails for a passing reason stays reauthenticating and is retried with backoff', async () => {
    const email = 'mon-retry@sandbox.test';
    const { account } = await connectAccount(app, email);
    await revokeSessions(app, email);
    failLogins = 'passing';
    let res;
    try {
      res = await check(account.id);
      expect(res.status, res.text).toBe(200);
      expect(res.body.attempt_id).toMatch(/^auth_/);
      const failed = await follow(app, res.body.attempt_id);
      expect(failed.state).toBe('completed_failed');
      expect(failed.error.code).toBe('upstream_unavailable');
    } finally {
      failLogins = false;
    }
    const waiting = await app.api(`/api/accounts/${account.id}`);
    expect(waiting.body).toMatchObject({ status: 'reauthenticating', expired_at: null });
    const retryIn = new Date(waiting.body.next_check_at).getTime() - app.clock.now().getTime();
    expect(retryIn).toBeGreaterThan(20 * SEC);
    expect(retryIn).toBeLessThanOrEqual(30 * SEC);
    expect(await events(account.id)).not.toContain('accounts.session_expired');
    expect((await app.api(`/api/${account.id}/proxy/posts`)).status).toBe(503);

    // The retry comes on the schedule and succeeds: active again, backoff reset.
    app.clock.advance(31 * SEC);
    await until('accounts.reconnected', async () => (await events(account.id)).includes('accounts.reconnected'));
    const row = await until('active', async () => {
      const r = await accountRow(app, account.id);
      return r?.status === 'active' ? r : undefined;
    });
    expect(row.check_failures).toBe(0);
    const reauths = await app.fangate.database.db.selectFrom('auth_attempts').select('id').where('account_id', '=', account.id).where('kind', '=', 'reauthenticate').execute();
    expect(reauths).toHaveLength(2);
  });

  it('a re-authentication refused for good (invalid_credentials) expires the account at once', async () => {
    const email = 'mon-final@sandbox.test';
    const { account } = await connectAccount(app, email);
    await revokeSessions(app, email);
    failLogins = 'final';
    try {
      const res = await check(account.id);
      expect(res.body.attempt_id).toMatch(/^auth_/);
      const failed = await follow(app, res.body.attempt_id);
      expect(failed.error.code).toBe('invalid_credentials');
    } finally {
      failLogins = false;
    }
    const after = await app.api(`/api/accounts/${account.id}`);
    expect(after.body).toMatchObject({ status: 'expired', expired_at: expect.any(String), next_check_at: null });
    expect((await events(account.id)).filter((e) => e === 'accounts.session_expired')).toHaveLength(1);
    expect((await app.api(`/api/${account.id}/proxy/posts`)).status).toBe(410);
  });

  it('the schedule checks a due account exactly once per interval', async () => {
    const email = 'mon-scheduled@sandbox.test';
    const { account } = await importAccount(app, email);
    const patched = await app.api(`/api/accounts/${account.id}`, { method: 'PATCH', body: { health_check_interval_sec: 60 } });
    expect(patched.status, patched.text).toBe(200);
    const meCalls = async () => (await platformRequests(app, email)).filter((r) => r.path === '/api2/v2/users/me').length;
    const before = await meCalls(); // the import's validation
    app.clock.advance(61 * SEC);
    const row = await until('the scheduled check', async () => {
      const r = await accountRow(app, account.id);
      return r!.last_checked_at!.getTime() > new Date(account.last_checked_at).getTime() + 60 * SEC ? r : undefined;
    });
    expect(row.next_check_at!.getTime() - row.last_checked_at!.getTime()).toBeGreaterThanOrEqual(59 * SEC);
    expect(row.next_check_at!.getTime() - row.last_checked_at!.getTime()).toBeLessThanOrEqual(61 * SEC);
    // Several more ticks of the schedule: not due again, so not checked again.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(await meCalls()).toBe(before + 1);
  });

  it('+expire sessions are recovered by the monitor alone, on the schedule', async () => {
    const email = 'mon-expire+expire@sandbox.test';
    const { account } = await connectAccount(app, email);
    expect((await app.api(`/api/accounts/${account.id}`, { method: 'PATCH', body: { health_check_interval_sec: 60 } })).status).toBe(200);
    // The platform's session dies 30 s after login; our clock reaches the next check.
    sandboxOffset += 31 * SEC;
    app.clock.advance(61 * SEC);
    await until('accounts.reconnected', async () => (await events(account.id)).includes('accounts.reconnected'));
    const after = await app.api(`/api/accounts/${account.id}`);
    expect(after.body.status).toBe('active');
    expect(new Date(after.body.next_check_at).getTime()).toBeGreaterThan(app.clock.now().getTime() + 50 * SEC);
    expect(app.logs.some((l) => l.includes('"health check"') && l.includes(account.id) && l.includes('"result":"reauth_started"'))).toBe(true);
  });
});
