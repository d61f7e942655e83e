import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { SANDBOX_SMS_CODE, startSandbox } from '../../src/sandbox/index.js';
import { startTestApp, type StartOptions } from '../support/app.js';
import { createTestStore, describeEachStore } from '../support/stores.js';
import { completeFace, confirmSelfie, expectConnected, expectSettled, getAttempt, startAttempt, submitCode } from './login-helpers.js';

/** Attempts are rows and steps are jobs (issue 4): a restart while the creator reads a code loses nothing. */

let cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  const pending = cleanups.reverse();
  cleanups = [];
  for (const cleanup of pending) await Promise.resolve(cleanup()).catch(() => undefined);
});

describeEachStore('connect across a restart', (kind) => {
  it('attempts waiting for a code or a selfie carry on in a new process on the same database', async () => {
    // The platform stays up (it keeps its logins); FanGate restarts.
    const sandbox = await startSandbox({ port: 0, logger: false });
    cleanups.push(() => sandbox.close());
    const dataDir = await mkdtemp(join(tmpdir(), 'fangate-restart-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const store = await createTestStore(kind);
    cleanups.push(() => store.drop());
    const reuse: StartOptions = kind === 'pglite' ? { persistent: true, dataDir, sandbox } : { store, dataDir, sandbox };

    const first = await startTestApp(kind, reuse);
    let firstRunning = true;
    cleanups.push(() => firstRunning && first.fangate.stop());
    const sms = await startAttempt(first, { email: 'restart1+sms@sandbox.test', password: 'password', client_reference_id: 'r-1' });
    const face = await startAttempt(first, { email: 'restart2+face@sandbox.test', password: 'password' });
    const parkedSms = await expectSettled(first, sms, 'needs_otp');
    const parkedFace = await expectSettled(first, face, 'needs_face_otp');

    await first.fangate.stop();
    firstRunning = false;
    await expect(fetch(`${first.url}/healthz`)).rejects.toThrow();

    const second = await startTestApp(kind, reuse);
    cleanups.push(() => second.fangate.stop());
    // The new process shows the attempts exactly where they were (only the public base URL is its own).
    const { polling_url: _a, ...smsBefore } = parkedSms;
    const { polling_url: _b, ...faceBefore } = parkedFace;
    expect(await getAttempt(second, sms)).toMatchObject(smsBefore);
    expect(await getAttempt(second, face)).toMatchObject(faceBefore);

    const done = await submitCode(second, sms, SANDBOX_SMS_CODE);
    expectConnected(second, done, { email: 'restart1+sms@sandbox.test', username: 'restart1', name: 'Restart1', can_reauth: false, client_reference_id: 'r-1' });

    await completeFace(second, parkedFace.face_verification_url);
    expectConnected(second, await confirmSelfie(second, face), { email: 'restart2+face@sandbox.test', username: 'restart2', name: 'Restart2', can_reauth: false });
  }, 90_000);
});
