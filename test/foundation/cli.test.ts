import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/database.js';
import { createLogger } from '../../src/logger.js';
import { freePort, startTestApp, TEST_MASTER_KEY } from '../support/app.js';
import { createTestStore, describeEachStore } from '../support/stores.js';
import { FANGATE_CLI } from '../support/cli.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BOOTSTRAP = 'fg_test_cli_serve_key_5f1c9a0e7b2d';

let cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  const pending = cleanups.reverse();
  cleanups = [];
  for (const cleanup of pending) await Promise.resolve(cleanup()).catch(() => undefined);
});

async function tempDataDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'fangate-cli-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** The environment of a fresh shell: nothing FanGate-related leaks in from the test runner. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('FANGATE_') && name !== 'DATABASE_URL') env[name] = value;
  }
  return { ...env, ...extra };
}

function start(args: string[], env: Record<string, string>): ChildProcessWithoutNullStreams & { output: { stdout: string; stderr: string }; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> } {
  const child = spawn(process.execPath, [...FANGATE_CLI, ...args], { cwd: ROOT, env: cleanEnv(env) });
  const output = { stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output.stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output.stderr += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  cleanups.push(() => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL'));
  return Object.assign(child, { output, exited });
}

/** Runs `fangate …` to completion. */
async function run(args: string[], env: Record<string, string>, timeoutMs = 30_000) {
  const child = start(args, env);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const { code, signal } = await child.exited;
  clearTimeout(timer);
  return { code, signal, ...child.output };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('fangate CLI', () => {
  it('keys create prints only the new key on stdout, and the key works on the server started on that data dir', async () => {
    const dataDir = await tempDataDir();
    const result = await run(['keys', 'create', '--org', 'acme', '--scopes', 'accounts:read'], { FANGATE_DATA_DIR: dataDir });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^fg_[A-Za-z0-9_]{16,}\n$/);
    const key = result.stdout.trim();
    expect(result.stderr).not.toContain(key);
    expect(result.stderr).toContain('acme');

    const app = await startTestApp('pglite', { persistent: true, dataDir });
    cleanups.push(() => app.close());
    const whoami = await app.api('/api/whoami', { key });
    expect(whoami.status).toBe(200);
    expect(whoami.body).toMatchObject({ organization: { name: 'acme' }, api_key: { scopes: ['accounts:read'] } });
    // A read-only key cannot manage keys.
    expect((await app.api('/api/api-keys', { key })).status).toBe(403);
  }, 60_000);

  it('keys create without --org is a usage error (exit 2) and leaves the data dir alone', async () => {
    const dataDir = await tempDataDir();
    const result = await run(['keys', 'create', '--scopes', 'accounts:read'], { FANGATE_DATA_DIR: dataDir });
    expect(result.code, result.stderr).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('--org');
    expect(result.stderr).toContain('Usage:');
    expect(existsSync(join(dataDir, 'pgdata'))).toBe(false);
  });

  it('keys create with an unknown scope is a usage error (exit 2) naming the scope', async () => {
    const dataDir = await tempDataDir();
    const result = await run(['keys', 'create', '--org', 'acme', '--scopes', 'accounts:read,accounts:everything'], { FANGATE_DATA_DIR: dataDir });
    expect(result.code, result.stderr).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('accounts:everything');
    expect(existsSync(join(dataDir, 'pgdata'))).toBe(false);
  });

  it('vault new-key prints a kid:base64 entry holding 32 random bytes', async () => {
    const [a, b, named] = await Promise.all([run(['vault', 'new-key'], {}), run(['vault', 'new-key'], {}), run(['vault', 'new-key', '--kid', 'prod2'], {})]);
    for (const result of [a, b, named]) {
      expect(result.code, result.stderr).toBe(0);
      const match = /^([A-Za-z0-9_-]{1,32}):([A-Za-z0-9+/]+={0,2})\n$/.exec(result.stdout);
      expect(match, result.stdout).not.toBeNull();
      expect(Buffer.from(match![2]!, 'base64')).toHaveLength(32);
    }
    expect(a.stdout).not.toBe(b.stdout);
    expect(named.stdout.startsWith('prod2:')).toBe(true);
  });

  it('serve on PostgreSQL without FANGATE_MASTER_KEY refuses to start and says why', async () => {
    const databaseUrl = process.env.FANGATE_TEST_DATABASE_URL ?? 'postgres://fangate@127.0.0.1:1/fangate';
    const port = await freePort();
    const result = await run(['serve'], { DATABASE_URL: databaseUrl, FANGATE_SANDBOX: 'off', FANGATE_PORT: String(port), FANGATE_HOST: '127.0.0.1' }, 20_000);
    expect(result.signal).toBeNull(); // it exited by itself, it was not still serving
    expect(result.code, result.stderr).not.toBe(0);
    expect(result.stderr).toContain('FANGATE_MASTER_KEY');
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
  }, 30_000);
});

describeEachStore('fangate migrate', (kind) => {
  it('applies the migrations and is idempotent', async () => {
    const store = await createTestStore(kind);
    cleanups.push(() => store.drop());
    const dataDir = await tempDataDir();
    const env: Record<string, string> = store.databaseUrl ? { DATABASE_URL: store.databaseUrl, FANGATE_DATA_DIR: dataDir } : { FANGATE_DATA_DIR: dataDir };
    for (let i = 0; i < 2; i++) {
      const result = await run(['migrate'], env);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toContain(kind);
    }
    const database = await openDatabase({
      databaseUrl: store.databaseUrl,
      pgliteDir: store.databaseUrl ? undefined : join(dataDir, 'pgdata'),
      logger: createLogger({ level: 'silent' }),
    });
    cleanups.push(() => database.close());
    const { rows } = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(database.db);
    expect(rows.map((r) => r.name)).toContain('0001_foundation');
    // The schema is really there, not just the bookkeeping.
    const tables = await sql<{ n: number }>`select count(*)::int as n from information_schema.tables where table_name in ('organizations', 'api_keys')`.execute(database.db);
    expect(tables.rows[0]?.n).toBe(2);
  }, 60_000);
});

describe('the embedded database template', () => {
  it('a new data dir starts as a copy of it, unless told not to, as `fangate prepare` does when it rebuilds it', async () => {
    const logger = createLogger({ level: 'silent' });
    const migrated = async (fromTemplate?: boolean) => {
      const database = await openDatabase({ pgliteDir: join(await tempDataDir(), 'pgdata'), logger, ...(fromTemplate === undefined ? {} : { fromTemplate }) });
      try {
        return (await sql<{ present: boolean }>`select to_regclass('kysely_migration') is not null as present`.execute(database.db)).rows[0]?.present;
      } finally {
        await database.close();
      }
    };
    // The install built the template (npm ci runs `fangate prepare`): its tables are there before any migration.
    expect(await migrated()).toBe(true);
    // Built from scratch, a template keeps nothing an older version left in the one it replaces.
    expect(await migrated(false)).toBe(false);
  }, 60_000);
});

describeEachStore('fangate serve', (kind) => {
  it('starts ready, authenticates the bootstrap key, stops cleanly on SIGTERM and never logs the key', async () => {
    const store = await createTestStore(kind);
    cleanups.push(() => store.drop());
    const dataDir = await tempDataDir();
    const port = await freePort();
    const env: Record<string, string> = {
      FANGATE_DATA_DIR: dataDir,
      FANGATE_PORT: String(port),
      FANGATE_HOST: '127.0.0.1',
      FANGATE_SANDBOX: 'off',
      FANGATE_BOOTSTRAP_API_KEY: BOOTSTRAP,
      FANGATE_LOG_LEVEL: 'debug',
      // PostgreSQL needs an explicit keyring; embedded mode makes its own.
      ...(store.databaseUrl ? { DATABASE_URL: store.databaseUrl, FANGATE_MASTER_KEY: TEST_MASTER_KEY } : {}),
    };
    const base = `http://127.0.0.1:${port}`;
    const startedAt = Date.now();
    const server = start(['serve'], env);

    let ready = false;
    // Generous on purpose: start-up time is measured by bench/startup.ts, not asserted on a busy CI machine.
    while (!ready && Date.now() - startedAt < 60_000 && server.exitCode === null) {
      ready = await fetch(`${base}/readyz`).then((r) => r.status === 200, () => false);
      if (!ready) await sleep(100);
    }
    expect(ready, `not ready within 60 s:\n${server.output.stdout}${server.output.stderr}`).toBe(true);

    const whoami = await fetch(`${base}/api/whoami`, { headers: { authorization: `Bearer ${BOOTSTRAP}` } });
    expect(whoami.status).toBe(200);
    expect(await whoami.json()).toMatchObject({ organization: { name: 'default' }, api_key: { name: 'bootstrap' } });

    const anonymous = await fetch(`${base}/api/whoami`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await anonymous.json()).toMatchObject({ status: 401, code: 'unauthorized' });

    const stopAt = Date.now();
    server.kill('SIGTERM');
    const exit = await Promise.race([server.exited, sleep(10_000).then(() => 'timeout' as const)]);
    expect(exit, 'did not exit within 10 s of SIGTERM').toEqual({ code: 0, signal: null });
    expect(Date.now() - stopAt).toBeLessThan(10_000);

    const logs = server.output.stdout + server.output.stderr;
    expect(logs).toContain('FanGate is ready');
    expect(logs).toContain('/api/whoami'); // the authenticated requests were logged…
    expect(logs).not.toContain(BOOTSTRAP); // …without the key
    expect(logs).not.toContain(BOOTSTRAP.slice(3)); // not even without its prefix
  }, 120_000);
});

describe('fangate sandbox', () => {
  it('runs the sandbox platform alone on FANGATE_SANDBOX_PORT and stops on SIGTERM', async () => {
    const port = await freePort();
    const sandbox = start(['sandbox'], { FANGATE_SANDBOX_PORT: String(port) });
    const base = `http://127.0.0.1:${port}`;
    let minted: Response | undefined;
    for (const startedAt = Date.now(); !minted && Date.now() - startedAt < 60_000 && sandbox.exitCode === null; ) {
      minted = await fetch(`${base}/__sandbox/sessions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ platform: 'onlyfans', email: 'cli@sandbox.test', user_agent: 'cli-test' }),
      }).catch(() => undefined);
      if (!minted) await sleep(100);
    }
    expect(minted?.status, sandbox.output.stderr).toBe(200);
    expect(await minted!.json()).toMatchObject({ user: { username: 'cli' }, user_agent: 'cli-test' });
    // The platform side answers too: a login with the wrong password is refused.
    const login = await fetch(`${base}/api2/v2/users/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'cli-test', 'x-bc': 'cli-test-device-0001' },
      body: JSON.stringify({ email: 'cli@sandbox.test', password: 'nope' }),
    });
    expect(login.status).toBe(401);
    sandbox.kill('SIGTERM');
    expect(await Promise.race([sandbox.exited, sleep(10_000).then(() => 'timeout' as const)])).toEqual({ code: 0, signal: null });
  }, 90_000);

  it('is embedded by serve unless FANGATE_SANDBOX=off', async () => {
    const [apiPort, sandboxPort] = [await freePort(), await freePort()];
    const server = start(['serve'], {
      FANGATE_DATA_DIR: await tempDataDir(),
      FANGATE_PORT: String(apiPort),
      FANGATE_HOST: '127.0.0.1',
      FANGATE_SANDBOX_PORT: String(sandboxPort),
    });
    let ready = false;
    for (const startedAt = Date.now(); !ready && Date.now() - startedAt < 60_000 && server.exitCode === null; ) {
      ready = await fetch(`http://127.0.0.1:${apiPort}/readyz`).then((r) => r.status === 200, () => false);
      if (!ready) await sleep(100);
    }
    expect(ready, server.output.stdout + server.output.stderr).toBe(true);
    const reset = await fetch(`http://127.0.0.1:${sandboxPort}/__sandbox/reset`, { method: 'POST' });
    expect(reset.status).toBe(200);
    server.kill('SIGTERM');
    expect(await Promise.race([server.exited, sleep(10_000).then(() => 'timeout' as const)])).toEqual({ code: 0, signal: null });
  }, 120_000);
});

/**
 * A copy of this checkout as a person gets it (no dist/, no data/), sharing the installed packages except the
 * TypeScript loader: each entry of node_modules is linked, but not `tsx` and not `.cache` (where the install
 * builds the embedded database template, so the copy builds its own and leaves the shared one alone).
 */
async function cleanCheckout(): Promise<string> {
  const dir = await tempDataDir();
  const skip = new Set(['node_modules', 'dist', 'data', '.git', 'coverage', '.scratch']);
  for (const entry of readdirSync(ROOT)) {
    if (!skip.has(entry)) cpSync(join(ROOT, entry), join(dir, entry), { recursive: true });
  }
  mkdirSync(join(dir, 'node_modules'));
  for (const entry of readdirSync(join(ROOT, 'node_modules'))) {
    if (entry !== 'tsx' && entry !== '.cache') symlinkSync(join(ROOT, 'node_modules', entry), join(dir, 'node_modules', entry));
  }
  return dir;
}

/** `npm <args>` in `cwd` as its own process group (npm starts node below it: a signal goes to both). */
function npm(cwd: string, args: string[], env: Record<string, string>) {
  const child = spawn('npm', args, { cwd, env: cleanEnv(env), detached: true });
  const output = { stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output.stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output.stderr += chunk));
  // 'close', not 'exit': the server below npm writes to the same pipes, and its last lines count.
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  const signal = (name: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, name);
    } catch {
      /* already gone */
    }
  };
  cleanups.push(() => signal('SIGKILL'));
  return { child, output, exited, signal };
}

describe('npm start (compiled)', () => {
  it('from a clean checkout, the install build makes `npm start` serve from dist/ with no TypeScript loader and no sources', async () => {
    const checkout = await cleanCheckout();
    const embedCss = readFileSync(join(ROOT, 'src/link/assets/page.css'), 'utf8');

    // What `npm ci` runs once node_modules is in place: the postinstall script (build:server, then prepare).
    const install = npm(checkout, ['run', 'postinstall'], {});
    const installed = await Promise.race([install.exited, sleep(240_000).then(() => 'timeout' as const)]);
    expect(installed, install.output.stdout + install.output.stderr).toEqual({ code: 0, signal: null });
    // What bin/fangate.js runs: the bundle of dist/ (scripts/build-server.mjs).
    expect(existsSync(join(checkout, 'dist/bundle/main.js'))).toBe(true);
    expect(existsSync(join(checkout, 'node_modules/.cache/fangate/pgdata-template'))).toBe(true);
    // The same database as a tar, which databases kept in memory load (tests, benchmarks).
    expect(statSync(join(checkout, 'node_modules/.cache/fangate/pgdata-template.tar')).size).toBeGreaterThan(1_000_000);

    // Nothing TypeScript is left to load: no sources, no tsx.
    await rm(join(checkout, 'src'), { recursive: true, force: true });
    expect(existsSync(join(checkout, 'node_modules/tsx'))).toBe(false);

    const [port, sandboxPort] = [await freePort(), await freePort()];
    const dataDir = await tempDataDir();
    const server = npm(checkout, ['start'], {
      FANGATE_DATA_DIR: dataDir,
      FANGATE_PORT: String(port),
      FANGATE_HOST: '127.0.0.1',
      FANGATE_SANDBOX_PORT: String(sandboxPort),
      FANGATE_BOOTSTRAP_API_KEY: BOOTSTRAP,
    });
    const base = `http://127.0.0.1:${port}`;
    let ready = false;
    for (const startedAt = Date.now(); !ready && Date.now() - startedAt < 60_000 && server.child.exitCode === null; ) {
      ready = await fetch(`${base}/readyz`).then((r) => r.status === 200, () => false);
      if (!ready) await sleep(100);
    }
    expect(ready, server.output.stdout + server.output.stderr).toBe(true);

    const whoami = await fetch(`${base}/api/whoami`, { headers: { authorization: `Bearer ${BOOTSTRAP}` } });
    expect(whoami.status).toBe(200);
    expect(await whoami.json()).toMatchObject({ organization: { name: 'default' } });
    // A connect runs the bundled job queue, vault and platform client end to end; the Access API then calls the
    // platform with the stored session.
    const headers = { authorization: `Bearer ${BOOTSTRAP}`, 'content-type': 'application/json' };
    const started = await fetch(`${base}/api/authenticate`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ auth_type: 'email_password', email: 'cli-start@sandbox.test', password: 'password' }),
    }).then((r) => r.json() as Promise<any>);
    let attempt = started;
    for (let polls = 0; attempt.state === 'pending' && polls < 5; polls++) {
      attempt = await fetch(`${base}/api/authenticate/${started.attempt_id}?wait=30&state=pending`, { headers }).then((r) => r.json() as Promise<any>);
    }
    expect(attempt).toMatchObject({ state: 'completed_success', account: { status: 'active' } });
    const me = await fetch(`${base}/api/${attempt.account_id}/me`, { headers });
    expect(me.status).toBe(200);
    expect(await me.json()).toMatchObject({ username: expect.any(String) });
    expect((await fetch(`${base}/api/${attempt.account_id}/proxy/users/me`, { headers })).status).toBe(200);
    // Files read from disk at run time come from dist/ too.
    const css = await fetch(`${base}/link/assets/page.css`);
    expect(css.status).toBe(200);
    expect(await css.text()).toBe(embedCss);
    expect((await fetch(`${base}/openapi.json`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${sandboxPort}/__sandbox/reset`, { method: 'POST' })).status).toBe(200);

    // npm and the server below it both get the signal; the server shuts down and stops listening.
    server.signal('SIGTERM');
    let listening = true;
    for (const stopAt = Date.now(); listening && Date.now() - stopAt < 15_000; ) {
      listening = await fetch(`${base}/healthz`).then(() => true, () => false);
      if (listening) await sleep(100);
    }
    expect(listening, 'still listening 15 s after SIGTERM').toBe(false);
    // It exits (having written its last lines) on its own.
    expect(await Promise.race([server.exited, sleep(15_000).then(() => 'still running' as const)])).not.toBe('still running');
    expect(server.output.stdout + server.output.stderr).toContain('shutting down');
  }, 360_000);
});
