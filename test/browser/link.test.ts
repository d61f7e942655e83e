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
  const results = await page.evaluate(() =>
    (window as unknown as { axe: { run(ctx: unknown, opts: unknown): Promise<{ violations: Array<{ id: string; nodes: Array<{ target: unknown }> }> }> } }).axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
    }),
  );
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
  const secrets = new Set<string>([PASSWORD, SANDBOX_EMAIL_CODE, '123456']);
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
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('h-method');
    await checkA11y(page, 'method');
    await page.screenshot({ path: join(ARTIFACTS, 'desktop-method.png') });

    await page.getByRole('button', { name: /Email and password/ }).click();
    await expect.poll(() => heading(page).textContent()).toBe('Sign in to OnlyFans');
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
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('h-code');
    await checkA11y(page, 'code');
    await page.screenshot({ path: join(ARTIFACTS, 'desktop-code.png') });

    await page.locator('#code-input').fill('000000');
    secrets.add('000000');
    await page.getByRole('button', { name: 'Verify' }).first().click();
    await expect.poll(() => page.locator('#alert').textContent(), { timeout: 15_000 }).toContain('You have 4 tries left.');
    await checkA11y(page, 'code-wrong');

    await page.locator('#code-input').fill('123456');
    await page.getByRole('button', { name: 'Verify' }).first().click();
    const back = await redirected(page);
    const got = (await app.api(`/api/link/${link.id}`)).body;
    expect(got.status).toBe('completed');
    expect(Object.fromEntries(back.searchParams)).toEqual({ status: 'success', connection_id: got.connection_id, client_reference_id: 'crm-sms' });

    // Reused: the page says so and accepts nothing.
    await page.goto(link.url);
    await expect.poll(() => heading(page).textContent()).toBe('This link has already been used');
    await checkA11y(page, 'closed');
  });
});
