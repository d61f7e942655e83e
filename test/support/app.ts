import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createFanGate, type FanGate, type FanGateOptions } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { generateKeySpec } from '../../src/vault/keyring.js';
import { createTestClock } from './clock.js';
import { startSandbox } from '../../src/sandbox/index.js';
import { createTestStore, type TestStore } from './stores.js';
import { freePort } from './ports.js';

export { freePort };

type Sandbox = Awaited<ReturnType<typeof startSandbox>>;

export const BOOTSTRAP_KEY = 'fg_test_bootstrap_key_0123456789';
export const ADMIN_TOKEN = 'admin-token-for-tests-0123456789';

export interface TestApp {
  fangate: FanGate;
  /** The sandbox platform this app talks to. */
  sandbox: Sandbox;
  clock: ReturnType<typeof createTestClock>;
  store: TestStore;
  /** Base URL of the running HTTP server. */
  url: string;
  /** Every log line written so far (JSON strings), for secret canaries. */
  logs: string[];
  dataDir: string;
  /** fetch against the app with the bootstrap key unless headers say otherwise. */
  api(path: string, init?: { method?: string; body?: unknown; headers?: Record<string, string>; key?: string | null }): Promise<{ status: number; headers: Headers; body: any; text: string }>;
  close(): Promise<void>;
}

export interface StartOptions {
  env?: Record<string, string>;
  /** Reuse a store/data dir (restart tests). */
  store?: TestStore;
  dataDir?: string;
  /** Persist PGlite in dataDir instead of memory. */
  persistent?: boolean;
  /** Listen on this port (restart tests keep URLs); a free one otherwise. */
  port?: number;
  /** Reuse a running sandbox (restart tests); otherwise one is started and closed with the app. */
  sandbox?: Sandbox;
  /** Webhook delivery tuning (short retries and timeouts, a resolver stub). */
  webhooks?: FanGateOptions['webhooks'];
  /** How host names resolve for the custom-proxy SSRF guard. */
  resolver?: FanGateOptions['resolver'];
  /** Access API tuning (a short upstream time limit). */
  access?: FanGateOptions['access'];
  /** How long a stop waits for requests in flight before cutting connections. */
  closeGraceMs?: number;
}

export async function startTestApp(kind: 'pglite' | 'postgres', options: StartOptions = {}): Promise<TestApp> {
  const store = options.store ?? (await createTestStore(kind));
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'fangate-test-')));
  const logs: string[] = [];
  const sandbox = options.sandbox ?? (await startSandbox({ port: 0, logger: false }));
  const clock = createTestClock();
  const destination = new Writable({
    write(chunk, _enc, done) {
      logs.push(String(chunk));
      done();
    },
  });
  const port = options.port ?? (await freePort());
  const config = loadConfig({
    FANGATE_PORT: String(port),
    FANGATE_PUBLIC_URL: `http://127.0.0.1:${port}`,
    FANGATE_HOST: '127.0.0.1',
    FANGATE_DATA_DIR: dataDir,
    FANGATE_BOOTSTRAP_API_KEY: BOOTSTRAP_KEY,
    FANGATE_ADMIN_TOKEN: ADMIN_TOKEN,
    FANGATE_MASTER_KEY: TEST_MASTER_KEY,
    FANGATE_LOG_LEVEL: 'debug',
    FANGATE_ONLYFANS_URL: sandbox.url,
    FANGATE_FANSLY_URL: sandbox.url,
    FANGATE_CONNECT_RATE_LIMIT_PER_HOUR: '100000',
    FANGATE_ACCOUNT_LOGINS_PER_HOUR: '100000',
    // The tests' proxies listen on loopback; test/net/custom-proxy-guard.test.ts turns the guard back on.
    FANGATE_ALLOW_PRIVATE_PROXIES: 'true',
    ...(store.databaseUrl ? { DATABASE_URL: store.databaseUrl } : {}),
    ...options.env,
  });
  const fangate = await createFanGate({
    config,
    logger: createLogger({ level: config.logLevel, destination }),
    inMemory: !options.persistent,
    jobs: { pollingIntervalSeconds: 0.5, maintenanceIntervalSeconds: 1 },
    clock,
    sweepIntervalMs: 500,
    webhooks: options.webhooks,
    ...(options.access ? { access: options.access } : {}),
    ...(options.closeGraceMs === undefined ? {} : { closeGraceMs: options.closeGraceMs }),
    ...(options.resolver ? { resolver: options.resolver } : {}),
  });
  await fangate.start();
  const url = `http://127.0.0.1:${port}`;

  return {
    fangate,
    sandbox,
    clock,
    store,
    url,
    logs,
    dataDir,
    async api(path, init = {}) {
      const headers: Record<string, string> = { ...init.headers };
      const key = init.key === undefined ? BOOTSTRAP_KEY : init.key;
      if (key) headers.authorization ??= `Bearer ${key}`;
      if (init.body !== undefined) headers['content-type'] ??= 'application/json';
      const response = await fetch(`${url}${path}`, {
        method: init.method ?? 'GET',
        headers,
        body: init.body === undefined ? undefined : typeof init.body === 'string' ? init.body : JSON.stringify(init.body),
      });
      const text = await response.text();
      let body: unknown = text;
      try {
        body = text ? JSON.parse(text) : undefined;
      } catch {
        /* not JSON */
      }
      return { status: response.status, headers: response.headers, body, text };
    },
    async close() {
      await fangate.stop();
      if (!options.sandbox) await sandbox.close();
      if (!options.store) await store.drop();
      if (!options.dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** A fixed keyring so tests can decrypt and inspect; a second key for rotation tests. */
export const TEST_MASTER_KEY = `test1:${Buffer.alloc(32, 7).toString('base64')}`;
export const newTestKey = (kid: string) => generateKeySpec(kid);

