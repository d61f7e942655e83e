import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../support/app.js';
import { FANGATE_CLI } from '../support/cli.js';

/** The operator's first hour (DESIGN 11): a first start hands out a working key once; keys can be made while it runs. */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
let cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  const pending = cleanups.reverse();
  cleanups = [];
  for (const cleanup of pending) await Promise.resolve(cleanup()).catch(() => undefined);
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A fresh shell's environment: nothing FanGate-related leaks in from the test runner. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('FANGATE_') && name !== 'DATABASE_URL') env[name] = value;
  return { ...env, ...extra };
}

type Child = ChildProcessWithoutNullStreams & { output: { stdout: string; stderr: string }; exited: Promise<{ code: number | null }> };

function fangate(args: string[], env: Record<string, string>): Child {
  const child = spawn(process.execPath, [...FANGATE_CLI, ...args], { cwd: ROOT, env: cleanEnv(env) });
  const output = { stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8').on('data', (c: string) => (output.stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (output.stderr += c));
  const exited = new Promise<{ code: number | null }>((resolve) => child.once('exit', (code) => resolve({ code })));
  cleanups.push(() => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL'));
  return Object.assign(child, { output, exited });
}

async function serve(env: Record<string, string>, base: string): Promise<Child> {
  const server = fangate(['serve'], env);
  const startedAt = Date.now();
  // Ready means the welcome text is out too (it follows the listen).
  while (Date.now() - startedAt < 60_000 && server.exitCode === null && !server.output.stderr.includes('FanGate is running at')) await sleep(100);
  expect(server.output.stderr, `not ready within 60 s:\n${server.output.stdout}${server.output.stderr}`).toContain('FanGate is running at');
  expect((await fetch(`${base}/readyz`)).status).toBe(200);
  return server;
}

async function stop(server: Child) {
  server.kill('SIGTERM');
  expect(await server.exited).toEqual({ code: 0 });
}

describe('first run (embedded)', () => {
  it('prints a working API key once with next steps, not again on the next start; keys create works while the server runs', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'fangate-first-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const env = { FANGATE_DATA_DIR: dataDir, FANGATE_PORT: String(port), FANGATE_HOST: '127.0.0.1', FANGATE_SANDBOX: 'off', FANGATE_PUBLIC_URL: base };

    const first = await serve(env, base);
    const printed = first.output.stderr;
    const key = /^\s+(fg_[A-Za-z0-9_]+)\s*$/m.exec(printed)?.[1];
    expect(key, printed).toBeDefined();
    expect(printed).toContain(`${base}/docs`);
    expect(printed).toContain('curl');
    expect(printed).toContain('@sandbox.test');
    const whoami = await fetch(`${base}/api/whoami`, { headers: { authorization: `Bearer ${key}` } });
    expect(whoami.status).toBe(200);
    expect(await whoami.json()).toMatchObject({ organization: { name: 'default' } });

    // While it runs, the CLI asks it (the embedded database is locked by the server).
    const admin = await stat(join(dataDir, 'local-admin.json'));
    expect(admin.mode & 0o777).toBe(0o600);
    const created = fangate(['keys', 'create', '--org', 'acme', '--scopes', 'accounts:read'], { FANGATE_DATA_DIR: dataDir });
    expect(await created.exited, created.output.stderr).toEqual({ code: 0 });
    const newKey = created.output.stdout.trim();
    expect(newKey).toMatch(/^fg_[A-Za-z0-9_]{16,}$/);
    const acme = await fetch(`${base}/api/whoami`, { headers: { authorization: `Bearer ${newKey}` } });
    expect(await acme.json()).toMatchObject({ organization: { name: 'acme' }, api_key: { scopes: ['accounts:read'] } });
    // The local admin token is no remote credential: without it the admin API stays closed.
    expect((await fetch(`${base}/admin/orgs?name=acme`)).status).toBe(401);
    await stop(first);

    const second = await serve(env, base);
    expect(second.output.stderr).not.toMatch(/fg_[A-Za-z0-9_]{16,}/);
    expect(second.output.stderr).toContain('keys create');
    expect(second.output.stdout).not.toContain(key!);
    await stop(second);
  }, 180_000);

  it('names the variable to change when the port is taken', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'fangate-first-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const { createServer } = await import('node:net');
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => blocker.close(resolve)));
    const port = (blocker.address() as { port: number }).port;
    const server = fangate(['serve'], { FANGATE_DATA_DIR: dataDir, FANGATE_PORT: String(port), FANGATE_HOST: '127.0.0.1', FANGATE_SANDBOX: 'off' });
    const exit = await server.exited;
    expect(exit.code).toBe(1);
    expect(server.output.stderr).toMatch(/FANGATE_PORT/);
  }, 90_000);
});
