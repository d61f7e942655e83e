import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');
const bin = (name: string) => join(ROOT, 'node_modules', '.bin', name);
const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);

/** The served OpenAPI document as its first consumers (linters, generators, the reference page) meet it. */
describe('the OpenAPI document', () => {
  let app: TestApp;
  let doc: any;
  let dir: string;
  let file: string;
  beforeAll(async () => {
    app = await startTestApp('pglite', { env: { FANGATE_PUBLIC_URL: 'https://fangate.example.net' } });
    doc = (await app.api('/openapi.json', { key: null })).body;
    dir = await mkdtemp(join(tmpdir(), 'fangate-openapi-lint-'));
    file = join(dir, 'openapi.json');
    await writeFile(file, JSON.stringify(doc, null, 2));
  });
  afterAll(async () => {
    await app?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('passes Redocly lint (recommended rules, redocly.yaml) without error or warning', async () => {
    const { stdout } = await run(bin('redocly'), ['lint', file, '--config', join(ROOT, 'redocly.yaml'), '--format', 'json'], {
      cwd: ROOT,
      env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
      maxBuffer: 64 * 1024 * 1024,
    }).catch((error: { stdout?: string }) => ({ stdout: error.stdout ?? '' }));
    const report = JSON.parse(stdout.slice(stdout.indexOf('{')));
    const problems = (report.problems ?? []).map((p: any) => `${p.severity} ${p.ruleId}: ${p.message} at ${p.location?.[0]?.pointer}`);
    expect(problems).toEqual([]);
    expect(report.totals).toMatchObject({ errors: 0, warnings: 0 });
  }, 120_000);

  it("passes Spectral's spectral:oas ruleset (.spectral.yaml) without error or warning", async () => {
    const { stdout } = await run(bin('spectral'), ['lint', file, '--ruleset', join(ROOT, '.spectral.yaml'), '--format', 'json', '--fail-severity', 'hint', '--quiet'], {
      cwd: ROOT,
      maxBuffer: 64 * 1024 * 1024,
    }).catch((error: { stdout?: string }) => ({ stdout: error.stdout ?? '' }));
    const results = JSON.parse(stdout.trim() || '[]') as any[];
    expect(results.map((r) => `${r.severity} ${r.code}: ${r.message} at ${r.path?.join('.')}`)).toEqual([]);
  }, 120_000);

  it('names operations, tags, component schemas, media types and headers as a client generator needs', () => {
    expect(doc.servers).toEqual([expect.objectContaining({ url: 'https://fangate.example.net' })]);
    expect(Object.keys(doc.components.schemas)).toEqual(
      expect.arrayContaining(['Attempt', 'Account', 'Problem', 'WebhookEndpoint', 'Delivery', 'LinkSession', 'AuthenticationRequest']),
    );
    expect(Object.keys(doc.components.securitySchemes)).toEqual(['apiKey', 'adminToken']);
    const paths = Object.keys(doc.paths);
    expect(paths.filter((p) => p.length > 1 && p.endsWith('/'))).toEqual([]);
    expect(doc.paths['/api/authenticate'].post.operationId).toBe('startAuthentication');
    expect(doc.paths['/api/authenticate/{attempt_id}'].get.operationId).toBe('getAttempt');
    expect(doc.paths['/api/authenticate/{attempt_id}'].put.operationId).toBe('submitAttemptCode');
    expect(doc.paths['/api/authenticate/{attempt_id}'].get.responses['200'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/Attempt' });

    const defined = new Set(doc.tags.map((t: any) => t.name));
    const ids = new Set<string>();
    const seen409 = new Set<string>();
    for (const [path, item] of Object.entries<any>(doc.paths)) {
      for (const [method, op] of Object.entries<any>(item)) {
        const where = `${method} ${path}`;
        expect(op.operationId, where).toMatch(/^[a-z][A-Za-z0-9]+$/);
        expect(ids.has(op.operationId), `${where}: unique operationId`).toBe(false);
        ids.add(op.operationId);
        expect(op.summary, where).toBeTruthy();
        for (const tag of op.tags) expect(defined.has(tag), `${where}: tag ${tag} defined`).toBe(true);
        const statuses = Object.keys(op.responses).map(Number);
        if (!['/healthz', '/readyz'].includes(path)) expect(statuses.some((s) => s >= 400 && s < 500), `${where}: a 4xx`).toBe(true);
        for (const [code, response] of Object.entries<any>(op.responses)) {
          expect(response.headers['x-request-id'], `${where} ${code}`).toEqual({ $ref: '#/components/headers/RequestId' });
          const status = Number(code);
          if (status >= 400) {
            expect(Object.keys(response.content), `${where} ${code}`).toEqual(['application/problem+json']);
            const media = response.content['application/problem+json'];
            expect(media.schema).toEqual({ $ref: '#/components/schemas/Problem' });
            const examples = Object.values<any>(media.examples);
            expect(examples).toHaveLength(1);
            // The example is of this status, with the seed's `message` beside `detail`.
            expect(examples[0].value).toMatchObject({ status, message: examples[0].value.detail });
            if (status === 409) seen409.add(examples[0].value.code);
          }
          if (status === 429) expect(response.headers['Retry-After']).toEqual({ $ref: '#/components/headers/RetryAfter' });
          if (path.startsWith('/api/') && status === 200 && op.security === undefined) expect(response.headers['RateLimit-Remaining'], `${where}`).toBeDefined();
        }
      }
    }
    // Conflicts say which conflict: not one example pasted everywhere.
    expect([...seen409]).toEqual(expect.arrayContaining(['account_already_connected', 'attempt_not_awaiting_input']));
    const examples = (op: any, status: string) => Object.values<any>(op.responses[status].content['application/problem+json'].examples)[0].value.code;
    const start = doc.paths['/api/authenticate'].post;
    expect(new Set(['401', '403', '409', '422', '429'].map((s) => examples(start, s))).size).toBe(5);

    const events = doc.paths['/api/authenticate/{attempt_id}/events'].get.responses['200'].content;
    expect(Object.keys(events)).toEqual(['text/event-stream']);
  });

  it('still answers the seed alias with a trailing slash, which the document does not list', async () => {
    const started = await app.api('/api/authenticate/', { method: 'POST', body: { email: 'alias@sandbox.test', password: 'password' } });
    expect(started.status).toBe(200);
    expect(started.body.attempt_id).toMatch(/^auth_/);
  });

  describe.skipIf(!hasChromium)('the reference page /docs', () => {
    let browser: Browser;
    beforeAll(async () => {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
    });
    afterAll(async () => {
      await browser?.close();
    });

    it('is titled FanGate, shows the problem examples, and logs no console error', async () => {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('console', (message) => {
        if (message.type() === 'error') errors.push(message.text());
      });
      page.on('pageerror', (error) => errors.push(String(error)));
      await page.goto(`${app.url}/docs/#/Connect%20(OnlyFans)/startAuthentication`);
      await page.getByText('Start connecting an OnlyFans account').first().waitFor({ timeout: 45_000 });
      expect(await page.title()).toContain('FanGate');
      await expect.poll(async () => page.locator('.swagger-ui .info .title').textContent(), { timeout: 10_000 }).toContain('FanGate');
      // The operation opened by the deep link shows its 409 with the example of that conflict.
      const body = page.locator('.opblock-body');
      await body.first().waitFor({ timeout: 10_000 });
      await expect.poll(async () => (await body.first().textContent()) ?? '', { timeout: 10_000 }).toContain('account_already_connected');
      expect(await body.first().textContent()).toContain('application/problem+json');
      expect(errors).toEqual([]);
    }, 120_000);
  });
});
