import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectAccount, otherOrgKey } from '../accounts/helpers.js';
import { ADMIN_TOKEN, startTestApp, type TestApp } from '../support/app.js';
import { createEndpoint, type Receiver, startReceiver, waitForDeliveries } from '../webhooks/helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) console.warn(`Browser tests SKIPPED: ${CHROMIUM} is missing (apt-get install chromium; .ci/run installs it).`);
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/** Every WCAG 2.1 A/AA violation axe-core finds on the page as it is now. */
async function axeViolations(page: Page): Promise<string[]> {
  // Evaluated through DevTools, so the page's CSP (no script at all) stays on.
  await page.evaluate(`${AXE_SOURCE}\n;0`);
  const results = (await page.evaluate(`axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })`)) as {
    passes: unknown[];
    violations: Array<{ id: string; nodes: Array<{ target: unknown }> }>;
  };
  expect(results.passes.length, 'axe ran its checks').toBeGreaterThan(5);
  return results.violations.map((v) => `${v.id}: ${JSON.stringify(v.nodes.map((n) => n.target))}`);
}

/** The operator console (DESIGN 11) in Chromium: behind a sign-in, every page opens and passes axe, a retry re-delivers. */
describe.skipIf(!hasChromium)('operator console in a browser', () => {
  let app: TestApp;
  let receiver: Receiver;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let orgId: string;
  let account: Record<string, any>;
  let attemptId: string;
  let endpointId: string;
  let linkId: string;
  const pagesSeen: string[] = [];

  beforeAll(async () => {
    app = await startTestApp('pglite', { env: { FANGATE_ALLOW_PRIVATE_WEBHOOKS: 'true' } });
    receiver = await startReceiver();
    orgId = (await app.api('/api/whoami')).body.organization.id;
    endpointId = (await createEndpoint(app, { endpoint_url: receiver.url, events: ['accounts.connected'], description: 'CRM <script>alert(1)</script>' })).id;
    ({ account, attemptId } = await connectAccount(app, 'console-a@sandbox.test', { client_reference_id: 'crm-console' }));
    await waitForDeliveries(app, endpointId, (data) => data.length === 1 && data[0].status === 'succeeded');
    const link = await app.api('/api/link/init', { method: 'POST', body: { redirectUrl: 'http://127.0.0.1/done', clientReferenceId: 'crm-link' } });
    expect(link.status, link.text).toBe(201);
    linkId = link.body.id;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
    context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    page = await context.newPage();
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await receiver?.close();
    await app?.close();
  });

  const h1 = () => page.locator('h1').textContent();
  /** Opens a console page by following a link, checks it answered 200 with the strict CSP, and runs axe. */
  const visit = async (linkName: string | RegExp, expectedHeading: string | RegExp) => {
    const [response] = await Promise.all([page.waitForResponse((r) => r.request().isNavigationRequest()), page.getByRole('link', { name: linkName }).first().click()]);
    await page.waitForLoadState();
    await expect.poll(h1).toMatch(expectedHeading);
    const final = await page.evaluate('location.pathname');
    const csp = (await (await page.request.get(page.url())).headersArray()).find((h) => h.name.toLowerCase() === 'content-security-policy')?.value ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toContain('script-src');
    expect(await page.locator('script').count()).toBe(0);
    expect(await axeViolations(page), `axe on ${final}`).toEqual([]);
    pagesSeen.push(String(final));
    return response;
  };

  it('is closed without a session: pages redirect to the sign-in, actions answer 401', async () => {
    for (const path of ['/console', '/console/orgs', `/console/orgs/${orgId}/accounts`, `/console/orgs/${orgId}/webhooks/${endpointId}`]) {
      const res = await fetch(`${app.url}${path}`, { redirect: 'manual' });
      expect(res.status, path).toBe(303);
      expect(res.headers.get('location')).toBe('/console/sign-in');
    }
    const retry = await fetch(`${app.url}/console/orgs/${orgId}/webhooks/${endpointId}/deliveries/whd_x/retry`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'csrf=x',
    });
    expect(retry.status).toBe(401);
    expect(retry.headers.get('content-type')).toContain('text/html');
    // Not open through the API either.
    expect((await fetch(`${app.url}/console/orgs`, { redirect: 'manual', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).status).toBe(303);
  });

  it('signs in with the admin token; a wrong token is refused on the page', async () => {
    await page.goto(`${app.url}/console`);
    await expect.poll(h1).toBe('Sign in to the FanGate console');
    expect(await axeViolations(page)).toEqual([]);
    await page.getByLabel('Admin token or API key').fill('not-a-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('not valid');
    expect(await axeViolations(page)).toEqual([]);

    await page.getByLabel('Admin token or API key').fill(ADMIN_TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(h1).toBe('Organisations');
    const [cookie] = await context.cookies();
    expect(cookie).toMatchObject({ name: 'fangate_console', httpOnly: true, sameSite: 'Strict', path: '/console' });
    expect(cookie!.value).not.toContain(ADMIN_TOKEN);
    expect(await axeViolations(page)).toEqual([]);
  });

  it('opens every page: accounts with health, an account, attempts with their state history, webhooks, links, audit', async () => {
    await visit('default', 'Accounts');
    const row = page.getByRole('row', { name: /console-a@sandbox\.test/ });
    await expect.poll(() => row.textContent()).toContain('active');
    expect(await row.textContent()).toContain('crm-console');
    // Health: the next check is scheduled (shown as a time), the account has had no check yet.
    expect(await row.locator('time').count()).toBeGreaterThanOrEqual(2);

    await visit('console-a@sandbox.test', 'Account console-a@sandbox.test');
    expect(await page.locator('dl').textContent()).toContain(account.id);
    expect(await page.locator('dl').textContent()).toContain('Next check');

    await visit(/^Attempts$/, 'Attempts');
    await visit(attemptId, `Attempt ${attemptId}`);
    const history = await page.getByRole('table').textContent();
    expect(history).toContain('(started)');
    expect(history).toContain('completed_success');
    const states = await page.locator('tbody tr td:nth-child(3)').allTextContents();
    expect(states[0]).toBe('pending');
    expect(states[states.length - 1]).toBe('completed_success');

    await visit('Webhooks', 'Webhook endpoints');
    // Escaped, not run: the description is text.
    expect(await page.locator('table').textContent()).toContain('CRM <script>alert(1)</script>');
    await visit(receiver.url, 'Webhook endpoint');

    await visit('Link sessions', 'Link sessions');
    expect(await page.getByRole('table').textContent()).toContain(linkId);
    await visit('Audit log', 'Audit log');
    const audit = await page.getByRole('table').textContent();
    expect(audit).toContain('webhook_endpoint.created');
    expect(audit).toContain('account.created');
    await visit('Organisations', 'Organisations');
    expect(pagesSeen.length).toBe(9);
  });

  it('retries a delivery from the console: the receiver gets the event again', async () => {
    const before = receiver.received.length;
    const [first] = receiver.received;
    await page.goto(`${app.url}/console/orgs/${orgId}/webhooks/${endpointId}`);
    const [delivery] = await waitForDeliveries(app, endpointId, (data) => data.length === 1);
    await page.getByRole('button', { name: `Retry delivery ${delivery.id}` }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain(`Delivery ${delivery.id} is queued`);
    expect(await axeViolations(page)).toEqual([]);
    const got = await receiver.waitFor(before + 1);
    // The same event (same webhook-id), sent again.
    expect(got[before]!.headers['webhook-id']).toBe(first!.headers['webhook-id']);
    const after = await waitForDeliveries(app, endpointId, (data) => data[0].status === 'succeeded' && data[0].attempts >= 2);
    expect(after[0].id).toBe(delivery.id);
  });

  it('refuses a form without the session CSRF token or from another origin', async () => {
    const cookies = (await context.cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
    const [delivery] = await waitForDeliveries(app, endpointId, (data) => data.length === 1);
    const url = `${app.url}/console/orgs/${orgId}/webhooks/${endpointId}/deliveries/${delivery.id}/retry`;
    const post = (body: string, headers: Record<string, string> = {}) =>
      fetch(url, { method: 'POST', redirect: 'manual', headers: { cookie: cookies, 'content-type': 'application/x-www-form-urlencoded', ...headers }, body });
    expect((await post('csrf=wrong')).status).toBe(403);
    expect((await post('')).status).toBe(422);
    const csrf = await page.locator('input[name="csrf"]').first().getAttribute('value');
    expect((await post(`csrf=${csrf}`, { origin: 'https://evil.example' })).status).toBe(403);
    const ok = await post(`csrf=${csrf}`, { origin: app.url });
    expect(ok.status).toBe(303);
  });

  it('an API key with scope console sees its own organisation only; one without the scope cannot sign in', async () => {
    const other = await browser.newContext();
    const p = await other.newPage();
    const otherKey = await otherOrgKey(app, 'console-other');
    const created = await app.api('/api/api-keys', { method: 'POST', body: { name: 'ops', scopes: ['console'] }, key: otherKey });
    expect(created.status, created.text).toBe(201);
    const noConsole = await app.api('/api/api-keys', { method: 'POST', body: { name: 'reader', scopes: ['accounts:read'] } });

    await p.goto(`${app.url}/console/sign-in`);
    await p.getByLabel('Admin token or API key').fill(noConsole.body.key);
    await p.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => p.getByRole('alert').textContent()).toContain('lacks the "console" scope');

    await p.getByLabel('Admin token or API key').fill(created.body.key);
    await p.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => p.locator('h1').textContent()).toBe('Accounts');
    expect(await p.getByRole('link', { name: 'Organisations' }).count()).toBe(0);
    expect(await p.locator('body').textContent()).not.toContain('console-a@sandbox.test');
    // Another organisation's pages are 404, as in the API.
    const foreign = await p.goto(`${app.url}/console/orgs/${orgId}/accounts`);
    expect(foreign?.status()).toBe(404);
    expect(await axeViolations(p)).toEqual([]);

    // Revoking the key ends its console session on the next page.
    expect((await app.api(`/api/api-keys/${created.body.id}`, { method: 'DELETE', key: otherKey })).status).toBe(204);
    await p.goto(`${app.url}/console`);
    await expect.poll(() => p.locator('h1').textContent()).toBe('Sign in to the FanGate console');
    await other.close();
  });

  it('signs out: the session no longer opens anything', async () => {
    const cookies = (await context.cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
    await page.goto(`${app.url}/console/orgs`);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain('signed out');
    const res = await fetch(`${app.url}/console/orgs`, { redirect: 'manual', headers: { cookie: cookies } });
    expect(res.status).toBe(303);
  });
});
