import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) console.warn(`Browser tests SKIPPED: ${CHROMIUM} is missing (apt-get install chromium; .ci/run installs it).`);

/** A creator completing the selfie check in a real browser, the way the hosted flow sends them there. */
describe.skipIf(!hasChromium)('selfie check in a browser', () => {
  let app: TestApp;
  let browser: Browser;
  beforeAll(async () => {
    app = await startTestApp('pglite');
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
  });
  afterAll(async () => {
    await browser?.close();
    await app?.close();
  });

  it('connects a +face account after the creator confirms on the face verification page', async () => {
    const start = await app.api('/api/authenticate', { method: 'POST', body: { email: 'selfie+face@sandbox.test', password: 'password' } });
    expect(start.status).toBe(200);
    const parked = await app.api(`/api/authenticate/${start.body.attempt_id}?wait=10&state=pending`);
    expect(parked.body.state).toBe('needs_face_otp');
    expect(parked.body.next_actions).toEqual(['open_face_verification', 'confirm_selfie']);

    // Confirming before the selfie is done is a clear 409 and keeps the attempt on the face check.
    const tooEarly = await app.api(`/api/authenticate/${start.body.attempt_id}`, { method: 'PUT', body: { selfie_verification_completed: true } });
    expect(tooEarly.status).toBe(409);
    expect(tooEarly.body).toMatchObject({ code: 'selfie_not_completed', state: 'needs_face_otp' });
    const early = await app.api(`/api/authenticate/${start.body.attempt_id}?wait=10&state=pending`);
    expect(early.body.state).toBe('needs_face_otp');

    const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
    await page.goto(parked.body.face_verification_url);
    await page.getByRole('button', { name: 'Confirm selfie' }).click();
    await expect.poll(() => page.locator('#status').textContent()).toContain('Selfie confirmed');
    await page.close();

    const submitted = await app.api(`/api/authenticate/${start.body.attempt_id}`, { method: 'PUT', body: { selfie_verification_completed: true } });
    expect(submitted.status).toBe(202);
    const done = await app.api(`/api/authenticate/${start.body.attempt_id}?wait=10&state=pending`);
    expect(done.body.state).toBe('completed_success');
    expect(done.body.account.platform_user.username).toBe('selfie');
  });
});
