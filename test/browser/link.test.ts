import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_EMAIL_CODE, sandboxTotp } from '../../src/sandbox/index.js';
import { connectAccount, mintSession } from '../accounts/helpers.js';
import { startTestApp, type TestApp } from '../support/app.js';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) console.warn(`Browser tests SKIPPED: ${CHROMIUM} is missing (apt-get install chromium; .ci/run installs it).`);

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
/** Screenshots of the run (phone and desktop) land here. */
const ARTIFACTS = process.env.FANGATE_ARTIFACTS_DIR ?? join(tmpdir(), 'fangate-artifacts', 'link');
const PASSWORD = 'password';

/** The integrator: a second origin serving examples/integrator.html and the redirect target. */
async function startIntegrator(): Promise<{ server: Server; origin: string }> {
  const example = readFileSync(new URL('../../examples/integrator.html', import.meta.url), 'utf8');
  const server = createServer((req, res) => {
    if (req.url?.startsWith('/integrator.html')) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(example);
    } else {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<!doctype html><html lang="en"><title>Back at the app</title><h1>Back at the app</h1></html>');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return { server, origin: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}` };
}

/** Every WCAG 2.1 A/AA violation axe-core finds on the page as it is now. */
async function axeViolations(page: Page): Promise<string[]> {
  // Evaluated through DevTools, so the page's strict CSP (no inline script) stays on.
  await page.evaluate(`${AXE_SOURCE}\n;0`);
  const results = (await page.evaluate(
    `axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })`,
  )) as { passes: unknown[]; violations: Array<{ id: string; nodes: Array<{ target: unknown }> }> };
  expect(results.passes.length, 'axe ran its checks').toBeGreaterThan(10);
  return results.violations.map((v) => `${v.id}: ${JSON.stringify(v.nodes.map((n) => n.target))}`);
}

describe.skipIf(!hasChromium)('Link page in a browser', () => {
  let app: TestApp;
  let browser: Browser;
  let desktop: BrowserContext;
  let phone: BrowserContext;
  let page: Page;
  let integrator: { server: Server; origin: string };
  /** Every request URL and response body (except event streams) of the run, for the secrets check. */
  const network: string[] = [];
  // The sandbox's password is the word "password", which any login page shows as a label: it is checked by shape below.
  const secrets = new Set<string>([SANDBOX_EMAIL_CODE, '123456']);
  const steps = new Set<string>();

  const init = async (body: Record<string, unknown> = {}) => {
    const res = await app.api('/api/link/init', { method: 'POST', body: { redirectUrl: `${integrator.origin}/done`, ...body } });
    expect(res.status, res.text).toBe(201);
    return res.body as { id: string; url: string };
  };

  /** Checks the step shown now for WCAG 2.1 AA (once per step and viewport). */
  const checkA11y = async (p: Page, name: string) => {
    const key = `${p.viewportSize()?.width}:${name}`;
    if (steps.has(key)) return;
    steps.add(key);
    expect(await axeViolations(p), `axe on ${name}`).toEqual([]);
  };

  const heading = (p: Page) => p.locator('section.step:not([hidden]) h1');
  const redirected = async (p: Page) => {
    await p.waitForURL((url) => url.origin === integrator.origin, { timeout: 15_000 });
    return new URL(p.url());
  };

  const watch = (p: Page) => {
    p.on('request', (request) => network.push(request.url()));
    p.on('response', async (response) => {
      if ((response.headers()['content-type'] ?? '').includes('event-stream')) return;
      network.push(JSON.stringify(response.headers()));
      network.push(await response.text().catch(() => ''));
    });
  };

  beforeAll(async () => {
    await mkdir(ARTIFACTS, { recursive: true });
    [app, integrator] = await Promise.all([startTestApp('pglite'), startIntegrator()]);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
    desktop = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    phone = await browser.newContext({ viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    page = await desktop.newPage();
    watch(page);
  });
  afterAll(async () => {
    await browser?.close();
    await app?.close();
    integrator?.server.close();
  });

  it('email + password with an SMS code: wrong password, then wrong code, then the right one, to the redirect', async () => {
    const link = await init({ clientReferenceId: 'crm-sms' });
    await page.goto(link.url);
    await expect.poll(() => heading(page).textContent()).toBe('Connect your OnlyFans account');
    await checkA11y(page, 'method');
    await page.screenshot({ path: join(ARTIFACTS, 'desktop-method.png') });

    await page.getByRole('button', { name: /Email and password/ }).click();
    await expect.poll(() => heading(page).textContent()).toBe('Sign in to OnlyFans');
    expect(await page.evaluate('document.activeElement && document.activeElement.id')).toBe('h-email_password');
    await checkA11y(page, 'email_password');
    await page.getByLabel('Email', { exact: true }).fill('lina+sms@sandbox.test');
    await page.getByLabel('Password', { exact: true }).fill('not-the-password');
    secrets.add('not-the-password');
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    await expect.poll(() => heading(page).textContent()).toBe("We couldn't connect your account");
    expect(await page.locator('#failed-message').textContent()).toContain('email or password is not correct');
    await checkA11y(page, 'failed');

    await page.getByRole('button', { name: 'Try again' }).click();
    await expect.poll(() => heading(page).textContent()).toBe('Sign in to OnlyFans');
    expect(await page.getByLabel('Password', { exact: true }).inputValue()).toBe('');
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    await expect.poll(() => heading(page).textContent(), { timeout: 15_000 }).toBe('Enter your code');
    expect(await page.locator('#code-help').textContent()).toContain('ending in 4242');
    expect(await page.evaluate('document.activeElement && document.activeElement.id')).toBe('h-code');
    await checkA11y(page, 'code');
    await page.screenshot({ path: join(ARTIFACTS, 'desktop-code.png') });

    await page.locator('#code-input').fill('908172');
    secrets.add('908172');
    await page.getByRole('button', { name: 'Verify' }).first().click();
    await expect.poll(() => page.locator('#alert').textContent(), { timeout: 15_000 }).toContain('You have 4 tries left.');
    await checkA11y(page, 'code-wrong');

    await page.locator('#code-input').fill('123456');
    await page.getByRole('button', { name: 'Verify' }).first().click();
    const back = await redirected(page);
    const got = (await app.api(`/api/link/${link.id}`)).body;
    expect(got.status).toBe('completed');
    expect(Object.fromEntries(back.searchParams)).toEqual({ status: 'success', connection_id: got.connection_id, client_reference_id: 'crm-sms' });
    // The wrong password failed one attempt, the next connected: one event each, in order.
    const events = await app.fangate.database.db.selectFrom('events').select(['event', 'attempt_id']).where('client_reference_id', '=', 'crm-sms').where('event', 'like', 'link.%').orderBy('created_at').execute();
    expect(events.map((e) => e.event)).toEqual(['link.failed', 'link.completed']);
    expect(events[1]!.attempt_id).toBe(got.attempt_id);

    // Reused: the page says so and accepts nothing.
    await page.goto(link.url);
    await expect.poll(() => heading(page).textContent()).toBe('This link has already been used');
    await checkA11y(page, 'closed');
  });

  it('authenticator app on a 360 px phone: screenshots and axe on each step', async () => {
    const link = await init({ clientReferenceId: 'crm-app' });
    const mobile = await phone.newPage();
    watch(mobile);
    await mobile.goto(link.url);
    await expect.poll(() => heading(mobile).textContent()).toBe('Connect your OnlyFans account');
    expect(await mobile.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(360);
    await checkA11y(mobile, 'method');
    await mobile.screenshot({ path: join(ARTIFACTS, 'phone-method.png'), fullPage: true });
    await mobile.getByRole('button', { name: /Email and password/ }).click();
    await mobile.getByLabel('Email', { exact: true }).fill('appy+app@sandbox.test');
    await mobile.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await checkA11y(mobile, 'email_password');
    await mobile.screenshot({ path: join(ARTIFACTS, 'phone-credentials.png'), fullPage: true });
    await mobile.getByRole('button', { name: 'Connect', exact: true }).click();
    await expect.poll(() => heading(mobile).textContent(), { timeout: 15_000 }).toBe('Enter your code');
    expect(await mobile.locator('#code-help').textContent()).toContain('authenticator app');
    await checkA11y(mobile, 'code');
    await mobile.screenshot({ path: join(ARTIFACTS, 'phone-code.png'), fullPage: true });
    const code = sandboxTotp();
    secrets.add(code);
    await mobile.locator('#code-input').fill(code);
    await mobile.getByRole('button', { name: 'Verify' }).first().click();
    const back = await redirected(mobile);
    expect(back.searchParams.get('status')).toBe('success');
    expect(back.searchParams.get('client_reference_id')).toBe('crm-app');
    await mobile.close();
  });

  it('email device check: "send me the email", then the code (followed by long-poll when event streams fail)', async () => {
    const link = await init({ clientReferenceId: 'crm-email' });
    let streams = 0;
    let polls = 0;
    await page.route('**/events', (route) => {
      streams++;
      return route.abort();
    });
    page.on('request', (request) => {
      if (request.url().includes('/state?wait=')) polls++;
    });
    await page.goto(link.url);
    await page.getByRole('button', { name: /Email and password/ }).click();
    await page.getByLabel('Email', { exact: true }).fill('mail+email@sandbox.test');
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    await expect.poll(() => heading(page).textContent(), { timeout: 15_000 }).toBe("Confirm it's you by email");
    expect(await page.locator('#email-help').textContent()).toContain('m***@sandbox.test');
    await checkA11y(page, 'email');
    await page.getByRole('button', { name: 'Send me the email' }).click();
    await expect.poll(() => page.locator('#email-sent').isVisible()).toBe(true);
    await page.locator('#email-input').fill(SANDBOX_EMAIL_CODE);
    await page.locator('#form-email').getByRole('button', { name: 'Verify' }).click();
    const back = await redirected(page);
    expect(back.searchParams.get('status')).toBe('success');
    expect(streams).toBeGreaterThan(0);
    expect(polls).toBeGreaterThan(0);
    await page.unroute('**/events');
  });

  it('works with the keyboard alone', async () => {
    const link = await init({ clientReferenceId: 'crm-keys' });
    await page.goto(link.url);
    await expect.poll(() => heading(page).textContent()).toBe('Connect your OnlyFans account');
    for (let i = 0; i < 5 && (await page.evaluate('document.activeElement && document.activeElement.dataset.go')) !== 'email_password'; i++) await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.evaluate('document.activeElement && document.activeElement.id')).toBe('h-email_password');
    await page.keyboard.press('Tab');
    await page.keyboard.type('keys@sandbox.test');
    await page.keyboard.press('Tab');
    await page.keyboard.type(PASSWORD);
    await page.keyboard.press('Enter');
    const back = await redirected(page);
    expect(back.searchParams.get('client_reference_id')).toBe('crm-keys');
  });

  it('selfie check in the dark theme: open the check, confirm it, "I\'ve done it"', async () => {
    const link = await init({ clientReferenceId: 'crm-face', theme: 'dark' });
    await page.goto(link.url);
    expect(await page.locator('html').getAttribute('data-theme')).toBe('dark');
    await checkA11y(page, 'method-dark');
    await page.getByRole('button', { name: /Email and password/ }).click();
    await page.getByLabel('Email', { exact: true }).fill('selfie+face@sandbox.test');
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    await expect.poll(() => heading(page).textContent(), { timeout: 15_000 }).toBe('Take a quick selfie');
    await checkA11y(page, 'face');
    await page.screenshot({ path: join(ARTIFACTS, 'desktop-face-dark.png') });
    const faceUrl = await page.getByRole('link', { name: /Open the selfie check/ }).getAttribute('href');
    expect(faceUrl).toMatch(new RegExp(`^${app.sandbox.url}/face/`));
    // Too early: the page says so and stays on the step.
    await page.getByRole('button', { name: "I've done it" }).click();
    await expect.poll(() => page.locator('#alert').textContent(), { timeout: 15_000 }).toContain('not finished yet');
    expect(await heading(page).textContent()).toBe('Take a quick selfie');
    const done = await fetch(`${app.sandbox.url}/__sandbox/face/${faceUrl!.split('/').pop()}/complete`, { method: 'POST' });
    expect(done.status).toBe(200);
    await page.getByRole('button', { name: "I've done it" }).click();
    const back = await redirected(page);
    expect(back.searchParams.get('status')).toBe('success');
  });

  it('paste cookies with the how-to', async () => {
    const link = await init({ clientReferenceId: 'crm-cookies' });
    await page.goto(link.url);
    await page.getByRole('button', { name: /Paste cookies/ }).click();
    await expect.poll(() => heading(page).textContent()).toBe('Paste your OnlyFans session');
    await page.getByText('How do I find these?').click();
    await checkA11y(page, 'raw_data');
    const ua = (await page.evaluate('navigator.userAgent')) as string;
    expect(await page.getByLabel('User agent of that browser').inputValue()).toBe(ua);
    const session = await mintSession(app, 'paste@sandbox.test', ua);
    for (const part of session.cookies.split(';')) secrets.add(part.trim().split('=')[1]!);
    secrets.add(session.xbc);
    await page.getByLabel('Cookie header').fill(session.cookies);
    await page.getByLabel('x-bc header').fill(session.xbc);
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    const back = await redirected(page);
    expect(back.searchParams.get('status')).toBe('success');
  });

  it('phone hand-off: a QR code, completed from the phone', async () => {
    const link = await init({ clientReferenceId: 'crm-phone' });
    await page.goto(link.url);
    await page.getByRole('button', { name: /Use your phone/ }).click();
    await expect.poll(() => heading(page).textContent(), { timeout: 15_000 }).toBe('Continue on your phone');
    await expect.poll(() => page.locator('#qr').evaluate((img: any) => img.naturalWidth)).toBeGreaterThan(0);
    await checkA11y(page, 'mobile_app');
    await page.screenshot({ path: join(ARTIFACTS, 'desktop-qr.png') });
    const attemptId = (await app.api(`/api/link/${link.id}`)).body.attempt_id;
    const attempt = (await app.api(`/api/authenticate/${attemptId}`)).body;
    const code = String(attempt.mobile_auth_session_deeplink).replace('fangate://auth/', '');
    secrets.add(code);
    const session = await mintSession(app, 'phone@sandbox.test', 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X)');
    const completed = await fetch(`${app.url}/api/mobile-auth/${code}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ auth_id: session.auth_id, cookies: session.cookies, xbc: session.xbc, user_agent: session.user_agent }),
    });
    expect(completed.status).toBe(200);
    const back = await redirected(page);
    expect(back.searchParams.get('status')).toBe('success');
  });

  it('phone hand-off: the QR code is replaced by a new one when it runs out', async () => {
    const link = await init();
    await page.goto(link.url);
    await page.getByRole('button', { name: /Use your phone/ }).click();
    await expect.poll(() => heading(page).textContent(), { timeout: 15_000 }).toBe('Continue on your phone');
    const first = await page.locator('#qr').getAttribute('src');
    app.clock.advance(11 * 60_000);
    try {
      await expect.poll(() => page.locator('#qr').getAttribute('src'), { timeout: 15_000 }).not.toBe(first);
      expect(await heading(page).textContent()).toBe('Continue on your phone');
      await expect.poll(() => page.locator('#qr').evaluate((img: any) => img.complete && img.naturalWidth)).toBeGreaterThan(0);
      expect((await app.api(`/api/link/${link.id}`)).body.status).toBe('pending');
    } finally {
      app.clock.reset();
    }
  });

  it('cancel on the method step redirects with status=cancelled&step=method', async () => {
    const link = await init({ clientReferenceId: 'crm-cancel' });
    await page.goto(link.url);
    await page.getByRole('button', { name: 'Cancel' }).click();
    const back = await redirected(page);
    expect(Object.fromEntries(back.searchParams)).toEqual({ status: 'cancelled', step: 'method', client_reference_id: 'crm-cancel' });
    expect((await app.api(`/api/link/${link.id}`)).body.status).toBe('cancelled');
  });

  it('back from a code step to the method choice, then cancel from the code step', async () => {
    const link = await init();
    await page.goto(link.url);
    await page.getByRole('button', { name: /Email and password/ }).click();
    await page.getByLabel('Email', { exact: true }).fill('backy+sms@sandbox.test');
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    await expect.poll(() => heading(page).textContent(), { timeout: 15_000 }).toBe('Enter your code');
    await page.getByRole('button', { name: 'Back' }).click();
    await expect.poll(() => heading(page).textContent()).toBe('Connect your OnlyFans account');
    expect((await app.api(`/api/link/${link.id}`)).body.status).toBe('initialized');
    await page.getByRole('button', { name: /Email and password/ }).click();
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    await expect.poll(() => heading(page).textContent(), { timeout: 15_000 }).toBe('Enter your code');
    await page.getByRole('button', { name: 'Cancel' }).click();
    const back = await redirected(page);
    expect(Object.fromEntries(back.searchParams)).toEqual({ status: 'cancelled', step: 'needs_otp' });
  });

  it('a locked account shows why and returns with status=error&error_code=account_locked', async () => {
    const link = await init({ clientReferenceId: 'crm-locked' });
    await page.goto(link.url);
    await page.getByRole('button', { name: /Email and password/ }).click();
    await page.getByLabel('Email', { exact: true }).fill('stuck+locked@sandbox.test');
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    await expect.poll(() => heading(page).textContent(), { timeout: 15_000 }).toBe("We couldn't connect your account");
    expect(await page.locator('#failed-message').textContent()).toContain('locked');
    expect(await page.getByRole('button', { name: 'Try again' }).isVisible()).toBe(false);
    await page.getByRole('button', { name: 'Return to the app' }).click();
    const back = await redirected(page);
    expect(Object.fromEntries(back.searchParams)).toEqual({ status: 'error', error_code: 'account_locked', client_reference_id: 'crm-locked' });
  });

  it('reconnects an account by connectionId, and tells clearly when another user signs in', async () => {
    const { account } = await connectAccount(app, 'renew@sandbox.test');
    const link = await init({ connectionId: account.id });
    await page.goto(link.url);
    await expect.poll(() => heading(page).textContent()).toBe('Reconnect your OnlyFans account');
    await page.getByRole('button', { name: /Email and password/ }).click();
    await page.getByLabel('Email', { exact: true }).fill('someone-else@sandbox.test');
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Reconnect', exact: true }).click();
    await expect.poll(() => heading(page).textContent(), { timeout: 15_000 }).toBe("We couldn't connect your account");
    expect(await page.locator('#failed-message').textContent()).toContain('different account');
    await page.getByRole('button', { name: 'Try again' }).click();
    await page.getByLabel('Email', { exact: true }).fill('renew@sandbox.test');
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Reconnect', exact: true }).click();
    const back = await redirected(page);
    expect(Object.fromEntries(back.searchParams)).toEqual({ status: 'success', connection_id: account.id });
  });

  it('Fansly: username + password and the email code sent at login', async () => {
    const link = await init({ platform: 'fansly', clientReferenceId: 'crm-fansly' });
    await page.goto(link.url);
    await expect.poll(() => heading(page).textContent()).toBe('Connect your Fansly account');
    await checkA11y(page, 'fansly');
    await page.getByLabel('Email or username').fill('fanlink+email');
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    await expect.poll(() => heading(page).textContent(), { timeout: 15_000 }).toBe('Enter your code');
    expect(await page.locator('#code-help').textContent()).toContain('f***@sandbox.test');
    await page.locator('#code-input').fill(SANDBOX_EMAIL_CODE);
    await page.getByRole('button', { name: 'Verify' }).first().click();
    const back = await redirected(page);
    expect(back.searchParams.get('status')).toBe('success');
    expect((await app.api(`/api/accounts/${back.searchParams.get('connection_id')}`)).body.platform).toBe('fansly');
  });

  it('an expired link says so', async () => {
    const link = await init();
    app.clock.advance(61 * 60_000);
    try {
      await page.goto(link.url);
      await expect.poll(() => heading(page).textContent()).toBe('This link has expired');
      await checkA11y(page, 'expired');
    } finally {
      app.clock.reset();
    }
  });

  it('embedded by link.js on another origin: the integrator receives fangate.link.success; Escape closes', async () => {
    const link = await init({ clientReferenceId: 'crm-embed' });
    const host = await desktop.newPage();
    watch(host);
    await host.goto(`${integrator.origin}/integrator.html?fangate=${encodeURIComponent(app.url)}&link=${encodeURIComponent(link.url)}`);
    await host.waitForFunction("'FanGateLink' in window");

    // Escape closes the modal and tells the integrator.
    await host.getByRole('button', { name: 'Connect OnlyFans' }).click();
    await host.locator('iframe').waitFor();
    await host.frameLocator('iframe').getByRole('heading', { name: 'Connect your OnlyFans account' }).waitFor();
    await host.keyboard.press('Escape');
    await expect.poll(() => host.locator('#result').textContent()).toBe('Exited: cancelled at closed');
    expect(await host.locator('iframe').count()).toBe(0);

    await host.getByRole('button', { name: 'Connect OnlyFans' }).click();
    const frame = host.frameLocator('iframe');
    await frame.getByRole('button', { name: /Email and password/ }).click();
    await frame.getByLabel('Email', { exact: true }).fill('embedded@sandbox.test');
    await frame.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await frame.getByRole('button', { name: 'Connect', exact: true }).click();
    const connection = (await expect.poll(() => host.locator('#result').textContent(), { timeout: 15_000 }).toMatch(/^Connected: acct_/), await host.locator('#result').textContent())!;
    const got = (await app.api(`/api/link/${link.id}`)).body;
    expect(connection).toBe(`Connected: ${got.connection_id} (crm-embed)`);
    expect(await host.locator('#log').textContent()).toContain('event step.method');
    expect(await host.locator('iframe').count()).toBe(0);
    await host.close();
  });

  it('sends a strict CSP with frame-ancestors of the redirect origin, and no password, code or cookie in any page or response', async () => {
    const link = await init();
    const res = await fetch(link.url);
    const csp = res.headers.get('content-security-policy')!;
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).toContain(`frame-ancestors ${integrator.origin}`);
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    const html = await res.text();
    expect(html).not.toMatch(/<script>|<script (?!src=|type="application\/json")/);

    // No third-party request: the page talks to FanGate only (and ends on the integrator's redirect).
    const foreign = network.filter((line) => /^https?:\/\//.test(line) && !line.startsWith(app.url) && !line.startsWith(integrator.origin));
    expect(foreign).toEqual([]);
    const everything = network.join('\n');
    expect(network.length).toBeGreaterThan(50);
    for (const secret of secrets) if (secret.length >= 6) expect(everything.includes(secret), `"${secret}" seen on the wire`).toBe(false);
    expect(everything).not.toMatch(/"password"\s*:|value="password"|password=password/);
    // The request bodies carry what the creator typed; their URLs never do.
    expect(app.logs.join('\n')).not.toContain('not-the-password');
  });
});
