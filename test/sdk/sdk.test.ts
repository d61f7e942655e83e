import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createFanGate, FanGateAttemptFailedError, FanGateProblemError, verifyWebhook, type Checkpoint } from '@fangate/sdk';
import { TOTP } from 'otpauth';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SANDBOX_EMAIL_CODE, SANDBOX_SMS_CODE, SANDBOX_TOTP_SECRET } from '../../src/sandbox/identities.js';
import { BOOTSTRAP_KEY, startTestApp, type TestApp } from '../support/app.js';
import { describeEachStore } from '../support/stores.js';
import { completeFace, mintSession } from '../connect/login-helpers.js';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');
const PASSWORD = 'password';

/** The SDK (sdk/, built by `npm run build:sdk`) against the real server: the project's connect flows as a developer writes them. */
describeEachStore('the SDK @fangate/sdk', (kind) => {
  let app: TestApp;
  let fangate: ReturnType<typeof createFanGate>;
  beforeAll(async () => {
    app = await startTestApp(kind);
    fangate = createFanGate({ baseUrl: app.url, apiKey: BOOTSTRAP_KEY });
  });
  afterAll(async () => {
    await app?.close();
  });

  /** Answers every checkpoint as the creator would, and records what the UI was shown. */
  const creator = (seen: Checkpoint[]) => async (checkpoint: Checkpoint) => {
    seen.push(checkpoint);
    if (checkpoint.nextActions[0] === 'send_email_to_creator') {
      const sent = await checkpoint.sendEmailToCreator();
      expect(sent.email_sent_at).toEqual(expect.any(String));
    } else if (checkpoint.state === 'needs_face_otp') {
      await completeFace(app, checkpoint.faceVerificationUrl!);
      await checkpoint.confirmSelfie();
    } else if (checkpoint.channel === 'app') {
      await checkpoint.submitCode(new TOTP({ secret: SANDBOX_TOTP_SECRET, digits: 6, period: 30 }).generate());
    } else {
      await checkpoint.submitCode(checkpoint.channel === 'email' ? SANDBOX_EMAIL_CODE : SANDBOX_SMS_CODE);
    }
  };

  it('connects without a checkpoint and resolves with the account', async () => {
    const account = await fangate.connect({ email: `sdk1-${kind}@sandbox.test`, password: PASSWORD, client_reference_id: 'sdk-1' });
    expect(account).toMatchObject({ platform: 'onlyfans', status: 'active', client_reference_id: 'sdk-1', platform_user: { username: `sdk1-${kind}` } });
    const fetched = await fangate.api.GET('/api/accounts/{id}', { params: { path: { id: account.id } } });
    expect(fetched.data?.id).toBe(account.id);
  });

  it('calls back on each checkpoint (SMS, email, app code, selfie) with the fields a UI shows', async () => {
    const seen: Checkpoint[] = [];
    const account = await fangate.connect({ email: `sdk2-${kind}+sms+email@sandbox.test`, password: PASSWORD }, { onCheckpoint: creator(seen) });
    expect(account.status).toBe('active');
    const states = seen.map((c) => c.state);
    expect(states).toEqual(expect.arrayContaining(['needs_email', 'needs_otp']));
    const sms = seen.find((c) => c.state === 'needs_otp')!;
    expect(sms).toMatchObject({ channel: 'sms', phoneLast4: '4242', attemptsRemaining: 5, nextActions: ['submit_code'] });
    const email = seen.find((c) => c.state === 'needs_email')!;
    expect(email.emailMask).toMatch(/\*\*\*@sandbox\.test$/);

    const faceSeen: Checkpoint[] = [];
    await fangate.connect({ email: `sdk3-${kind}+face@sandbox.test`, password: PASSWORD }, { onCheckpoint: creator(faceSeen) });
    expect(faceSeen[0]).toMatchObject({ state: 'needs_face_otp', nextActions: ['open_face_verification', 'confirm_selfie'] });
    expect(faceSeen[0]!.faceVerificationUrl).toMatch(/\/face\//);

    const appSeen: Checkpoint[] = [];
    await fangate.connect({ email: `sdk4-${kind}+app@sandbox.test`, password: PASSWORD }, { onCheckpoint: creator(appSeen) });
    expect(appSeen.map((c) => c.channel)).toContain('app');
  }, 90_000);

  it('connects Fansly and raw_data sessions', async () => {
    const fansly = await fangate.connect({ username: `sdkfansly${kind}`, password: PASSWORD }, { platform: 'fansly' });
    expect(fansly).toMatchObject({ platform: 'fansly', status: 'active' });
    const session = await mintSession(app, `sdk5-${kind}@sandbox.test`);
    const raw = await fangate.connect({ auth_type: 'raw_data', auth_id: session.auth_id, cookies: session.cookies, xbc: session.xbc, user_agent: session.user_agent });
    expect(raw).toMatchObject({ auth_type: 'raw_data', platform_user: { id: session.auth_id } });
  });

  it('throws the failure of an attempt and problem documents as typed errors', async () => {
    const failed = await fangate.connect({ email: `sdk6-${kind}@sandbox.test`, password: 'wrong' }).catch((error: unknown) => error);
    expect(failed).toBeInstanceOf(FanGateAttemptFailedError);
    expect(failed).toMatchObject({ code: 'invalid_credentials' });

    const invalid = await fangate.connect({ auth_type: 'raw_data', email: 'not-an-email', proxyCountry: 'us', customProxy: { host: 'proxy.example.net', port: 99999 } }).catch((e: unknown) => e);
    expect(invalid).toBeInstanceOf(FanGateProblemError);
    const problem = invalid as FanGateProblemError;
    expect(problem).toMatchObject({ status: 422, code: 'validation_failed' });
    // Every bad field in the one answer: schema rules and the combinations together.
    expect(problem.errors.map((e) => e.field)).toEqual(expect.arrayContaining(['email', 'customProxy.port', 'auth_id', 'cookies', 'xbc', 'user_agent']));
    expect(problem.problem.message).toBe(problem.problem.detail);

    const missing = await fangate.getAttempt('auth_doesnotexist000000000').catch((e: unknown) => e);
    expect(missing).toMatchObject({ status: 404, code: 'not_found' });
  });

  it('waitForChange answers on the next state', async () => {
    const started = await fangate.start({ email: `sdk7-${kind}+sms@sandbox.test`, password: PASSWORD });
    let attempt = await fangate.getAttempt(started.attempt_id);
    while (attempt.state === 'pending') attempt = await fangate.waitForChange(started.attempt_id, 'pending', { waitSec: 10 });
    expect(attempt.state).toBe('needs_otp');
    const submitted = await fangate.submitCode(started.attempt_id, SANDBOX_SMS_CODE);
    expect(submitted.state).toBe('pending');
    const done = await fangate.waitForChange(started.attempt_id, 'pending', { waitSec: 10 });
    expect(done.state).toBe('completed_success');
  });

  it('verifyWebhook accepts a Standard Webhooks signature and refuses a forged body', () => {
    const secret = `whsec_${Buffer.alloc(24, 9).toString('base64')}`;
    const body = JSON.stringify({ id: 'evt_1', event: 'webhooks.test', created_at: new Date().toISOString(), account_id: null, attempt_id: null, client_reference_id: null, payload: { account: null, attempt: null } });
    const now = new Date();
    const headers = { 'webhook-id': 'evt_1', 'webhook-timestamp': String(Math.floor(now.getTime() / 1000)), 'webhook-signature': new Webhook(secret).sign('evt_1', now, body) };
    expect(verifyWebhook(secret, body, headers)).toMatchObject({ id: 'evt_1', event: 'webhooks.test' });
    expect(() => verifyWebhook(secret, body.replace('evt_1', 'evt_2'), headers)).toThrow();
  });
});

describeEachStore('the SDK README example', (kind) => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp(kind);
  });
  afterAll(async () => {
    await app?.close();
  });

  it('compiles under strict with no cast', async () => {
    const source = await import('node:fs/promises').then((fs) => fs.readFile(join(ROOT, 'sdk', 'examples', 'connect.ts'), 'utf8'));
    expect(source).not.toMatch(/\bas\s+(unknown|any|never)\b|<any>|@ts-(ignore|expect-error)/);
    const result = await run(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'sdk', 'examples', 'tsconfig.json')], { cwd: ROOT }).catch(
      (error: { stdout?: string; code?: number }) => ({ stdout: error.stdout ?? String(error), failed: true }),
    );
    expect(result.stdout).toBe('');
  }, 120_000);

  it('runs against the server and connects through SMS and email checkpoints', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', join(ROOT, 'sdk', 'examples', 'connect.ts'), `readme-${kind}+sms+email@sandbox.test`], {
      cwd: ROOT,
      env: { ...process.env, FANGATE_URL: app.url, FANGATE_API_KEY: BOOTSTRAP_KEY },
    });
    expect(stdout).toContain('checkpoint needs_email');
    expect(stdout).toMatch(/email sent at \d{4}-/);
    expect(stdout).toContain('code by sms to •••4242 (5 tries left)');
    const id = /connected (acct_\w+)/.exec(stdout)?.[1];
    expect(id).toBeDefined();
    expect((await app.api(`/api/accounts/${id}`)).body).toMatchObject({ status: 'active', client_reference_id: 'example-creator' });
  }, 60_000);
});
