import type { Actor } from './lib/audit.js';
import { rename, rm, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import v8 from 'node:v8';
import { ConfigError, loadConfig } from './config.js';
import { lockDataDir } from './db/data-dir-lock.js';
import { embeddedDatabaseDir, seedFromTemplate } from './db/template-dir.js';
import type { Database } from './db/database.js';
import { createLogger } from './logger.js';
import { ALL_SCOPES, type Scope } from './orgs/scopes.js';
import { generateKeySpec, loadKeyring } from './vault/keyring.js';

/** The CLI works on the database directly: the operator, audited as the admin. */
const CLI_ACTOR: Actor = { type: 'admin', id: 'cli' };

// The database, jobs and HTTP stacks load only in the commands that use them (dynamic imports
// below), so quick commands such as `vault new-key` or `help` start at once.

const HELP = `fangate — account connection gateway for creator platforms

Usage:
  fangate serve                              API + worker (+ sandbox unless FANGATE_SANDBOX=off)
  fangate migrate                            apply database migrations and exit
  fangate keys create --org <name> [--name <label>] [--scopes a,b]
                                             create an API key (creates the organisation if needed); prints it once
  fangate vault new-key [--kid <id>]         print a new key entry for FANGATE_MASTER_KEY
  fangate vault rotate                       re-encrypt every secret under the first key of FANGATE_MASTER_KEY
  fangate sandbox                            run the sandbox platform alone (FANGATE_SANDBOX_PORT, default 8081)
  fangate prepare                            build the embedded database template (npm install runs it)

Configuration is read from the environment; see README.md.`;

/** Opens the database for a one-shot command (taking the embedded lock like the server does). */
async function withDatabase<T>(fn: (ctx: { db: Database; config: ReturnType<typeof loadConfig>; logger: ReturnType<typeof createLogger> }) => Promise<T>): Promise<T> {
  const { openDatabase } = await import('./db/database.js');
  const { migrateDatabase } = await import('./db/migrate.js');
  const config = loadConfig();
  const logger = createLogger({ level: config.logLevel === 'info' ? 'warn' : config.logLevel });
  const unlock = config.databaseUrl ? async () => undefined : await lockDataDir(config.dataDir, 'fangate cli');
  try {
    const db = await openDatabase({
      databaseUrl: config.databaseUrl,
      pgliteDir: config.databaseUrl ? undefined : embeddedDatabaseDir(config.dataDir),
      logger,
      preparedStatements: config.dbPreparedStatements,
    });
    try {
      await migrateDatabase(db);
      return await fn({ db, config, logger });
    } finally {
      await db.close();
    }
  } finally {
    await unlock();
  }
}

/** The embedded server that holds this data dir, if one runs (PostgreSQL needs none: any process may write). */
async function runningEmbeddedServer() {
  const config = loadConfig();
  if (config.databaseUrl) return undefined;
  const { readLocalAdmin } = await import('./db/data-dir-lock.js');
  return readLocalAdmin(config.dataDir);
}

/** `keys create` while an embedded server runs: it owns the database, so it is asked (admin API, local token). */
async function createKeyThroughServer(server: { url: string; token: string }, org: string, name: string, scopes: string[] | undefined) {
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${server.token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const json = (await res.json()) as any;
    if (!res.ok) throw new Error(`the running server answered ${res.status}: ${json?.detail ?? 'no detail'}`);
    return json;
  };
  const found = (await call('GET', `/admin/orgs?name=${encodeURIComponent(org)}`)) as { data: { id: string }[] };
  const orgId = found.data[0]?.id ?? ((await call('POST', '/admin/orgs', { name: org })) as { id: string }).id;
  return (await call('POST', `/admin/orgs/${orgId}/api-keys`, { name, ...(scopes ? { scopes } : {}) })) as { id: string; key: string; scopes: string[] };
}

/** What a person needs after a start: where things are, and on the very first start, the key (once). */
function printWelcome(config: ReturnType<typeof loadConfig>, firstRunKey: string | undefined, sandboxUrl: string | undefined): void {
  const out = (line = '') => process.stderr.write(`${line}\n`);
  out();
  out(`FanGate is running at ${config.publicUrl}`);
  out(`  API reference: ${config.publicUrl}/docs      OpenAPI: ${config.publicUrl}/openapi.json`);
  out(`  Operator console: ${config.publicUrl}/console  (sign in with the admin token or an API key with the "console" scope)`);
  if (sandboxUrl) out(`  Sandbox platform: ${sandboxUrl} (test identities: any address @sandbox.test, password "password"; see docs/sandbox.md)`);
  if (firstRunKey) {
    out();
    out('First start: created organisation "default" with this API key (all scopes). It is shown only now; keep it safe:');
    out();
    out(`  ${firstRunKey}`);
    out();
    out('Try it:');
    out(`  curl -H "Authorization: Bearer ${firstRunKey}" ${config.publicUrl}/api/whoami`);
    out(`  curl -H "Authorization: Bearer ${firstRunKey}" -H "content-type: application/json" \\`);
    out(`       -d '{"email":"jane+sms@sandbox.test","password":"password"}' ${config.publicUrl}/api/authenticate`);
    out('  (the SMS code of the sandbox is 123456)');
  } else {
    out('  More API keys: fangate keys create --org <name>   (works while this server runs)');
  }
  out();
}

async function serve(): Promise<void> {
  const config = loadConfig();
  // PGlite's WebAssembly compiles on background threads while the rest of FanGate loads.
  if (!config.databaseUrl) {
    void (await import('./db/pglite-wasm.js')).compilePGliteWasm();
    // A first start's copy of the database template runs on the thread pool meanwhile too; opening awaits it.
    seedFromTemplate(embeddedDatabaseDir(config.dataDir)).catch(() => undefined);
  }
  const { createFanGate } = await import('./app.js');
  const fangate = await createFanGate({ config });
  const { logger } = fangate;
  let sandbox: { url: string; close(): Promise<void> } | undefined;
  // Signals are handled from here on: /readyz may answer before start() returns, and a SIGTERM in between
  // must still stop gracefully (after the start finishes) instead of killing the process.
  let started: Promise<unknown> = Promise.resolve();
  let signals = 0;
  const shutdown = (signal: string) => {
    if (++signals > 1) process.exit(1);
    logger.info({ signal }, 'shutting down: finishing running jobs');
    // Out at once rather than with the next buffered batch: whoever stops the process watches for it.
    logger.flush();
    void started
      .catch(() => undefined)
      .then(() => Promise.all([fangate.stop(), sandbox?.close()]))
      .then(() => process.exit(0))
      .catch((error) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      });
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
  if (config.sandbox.enabled && config.role !== 'worker') {
    const { startSandbox } = await import('./sandbox/index.js');
    sandbox = await startSandbox({ port: config.sandbox.port, host: '127.0.0.1', logger: logger.child({ component: 'sandbox' }) });
    logger.info({ url: sandbox.url }, 'sandbox platform listening');
  }
  started = fangate.start();
  await started;
  logger.info({ url: config.publicUrl, role: config.role, database: fangate.database.kind }, 'FanGate is ready');
  if (config.role !== 'worker') printWelcome(config, fangate.firstRunKey, sandbox?.url);
  boundHeapGrowth();
}

/**
 * V8 lets its heap grow to up to four times what survived the last full collection before it collects again, and
 * the resident memory it reaches stays with the process: under load the heap reached ≈ 200 MB around ≈ 60 MB of
 * live data. Growing by a fifth keeps 10,000 parked attempts within ≈ 40 MB of growth instead of ≈ 150 MB, for a few
 * more (concurrent) collections (docs/performance.md). Set once started: the start grows its heap from nothing,
 * and with the flag set at the first line starts took ≈ 60 ms longer (within the noise); V8 reads the flag at
 * each collection, so the running process is bounded all the same. A --heap-growing-percent on node's
 * command line wins (NODE_OPTIONS does not accept V8 flags of this kind).
 */
function boundHeapGrowth(): void {
  if (process.execArgv.some((flag) => flag.startsWith('--heap-growing-percent'))) return;
  v8.setFlagsFromString('--heap-growing-percent=20');
}

/**
 * Builds the embedded database a first start copies (see PGLITE_TEMPLATE_DIR): initdb, the
 * migrations and the job schema, done once at install time instead of at every first start.
 */
async function prepareEmbeddedTemplate(): Promise<void> {
  const { openDatabase, PGLITE_TEMPLATE_DIR, PGLITE_TEMPLATE_TAR } = await import('./db/database.js');
  const { migrateToLatest } = await import('./db/migrate.js');
  const { createJobQueue } = await import('./jobs/queue.js');
  const logger = createLogger({ level: 'warn' });
  const building = `${PGLITE_TEMPLATE_DIR}.${process.pid}`;
  await rm(building, { recursive: true, force: true });
  await rm(`${building}.tar`, { force: true });
  // From scratch: seeded from the template it replaces, it would keep whatever an older version left in it.
  const database = await openDatabase({ pgliteDir: building, logger, fromTemplate: false });
  try {
    await migrateToLatest(database.db);
    const jobs = createJobQueue({ database, logger, work: false });
    await jobs.start();
    await jobs.stop();
    // The same database as a tar, for databases kept in memory (PGLITE_TEMPLATE_TAR).
    const tar = await database.dumpDataDir!();
    await writeFile(`${building}.tar`, Buffer.from(await tar.arrayBuffer()));
  } finally {
    await database.close();
  }
  await rm(PGLITE_TEMPLATE_DIR, { recursive: true, force: true });
  await rename(building, PGLITE_TEMPLATE_DIR);
  await rename(`${building}.tar`, PGLITE_TEMPLATE_TAR);
  console.error(`embedded database template ready in ${PGLITE_TEMPLATE_DIR}`);
}

export async function main(argv: string[]): Promise<void> {
  const [command, sub] = argv;
  try {
    switch (command) {
      case 'serve':
        return await serve();
      case 'migrate':
        await withDatabase(async ({ db }) => {
          console.log('migrations up to date (%s)', db.kind);
        });
        return;
      case 'keys': {
        if (sub !== 'create') break;
        const { values } = parseArgs({ args: argv.slice(2), options: { org: { type: 'string' }, name: { type: 'string' }, scopes: { type: 'string' } } });
        if (!values.org) throw new UsageError('keys create needs --org <name>');
        const scopes = values.scopes?.split(',').map((s) => s.trim()).filter(Boolean);
        const unknown = scopes?.filter((s) => !(ALL_SCOPES as readonly string[]).includes(s)) ?? [];
        if (unknown.length > 0) throw new UsageError(`unknown scopes: ${unknown.join(', ')} (known: ${ALL_SCOPES.join(', ')})`);
        const { createOrgService } = await import('./orgs/service.js');
        const running = await runningEmbeddedServer();
        if (running) {
          const key = await createKeyThroughServer(running, values.org, values.name ?? 'cli', scopes);
          console.error(`Created API key ${key.id} for organisation "${values.org}" through the running server (${running.url}) with scopes ${key.scopes.join(', ')}.`);
          console.error('This is the only time the key is shown:');
          console.log(key.key);
          return;
        }
        const { createAuditLog } = await import('./audit/service.js');
        await withDatabase(async ({ db }) => {
          const orgs = createOrgService({ db: db.db, audit: createAuditLog({ db: db.db }).record });
          const org = await orgs.ensureOrganization(values.org!);
          // The operator at the database (not through a server): audited as the admin, id "cli".
          const key = await orgs.createApiKey(org.id, { name: values.name ?? 'cli', scopes: scopes as Scope[] | undefined }, CLI_ACTOR);
          console.error(`Created API key ${key.id} for organisation "${org.name}" (${org.id}) with scopes ${key.scopes.join(', ')}.`);
          console.error('This is the only time the key is shown:');
          console.log(key.key);
        });
        return;
      }
      case 'vault': {
        if (sub === 'new-key') {
          const { values } = parseArgs({ args: argv.slice(2), options: { kid: { type: 'string' } } });
          console.log(generateKeySpec(values.kid));
          return;
        }
        if (sub !== 'rotate') break;
        const { rotateSecrets } = await import('./vault/rotate.js');
        const { createVault } = await import('./vault/vault.js');
        await withDatabase(async ({ db, config, logger }) => {
          const keyring = await loadKeyring({ masterKey: config.masterKey, databaseUrl: config.databaseUrl, dataDir: config.dataDir, logger });
          const report = await rotateSecrets(db.db, createVault(keyring));
          const { createAuditLog } = await import('./audit/service.js');
          await createAuditLog({ db: db.db }).record(db.db, { orgId: null, action: 'vault.rotated', targetType: 'vault', targetId: keyring.currentKid, details: { key_id: keyring.currentKid, rotated: report.rotated }, actor: CLI_ACTOR });
          console.log(`re-encrypted ${report.rotated} secrets under key "${keyring.currentKid}"`);
          for (const [column, n] of Object.entries(report.perColumn)) console.log(`  ${column}: ${n}`);
        });
        return;
      }
      case 'sandbox': {
        const config = loadConfig();
        const { startSandbox } = await import('./sandbox/index.js');
        const sandbox = await startSandbox({ port: config.sandbox.port, host: '127.0.0.1', logger: createLogger({ level: config.logLevel }) });
        console.error(`sandbox platform listening on ${sandbox.url}`);
        const stop = () => void sandbox.close().then(() => process.exit(0));
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
        return;
      }
      case 'prepare':
        await prepareEmbeddedTemplate();
        return;
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        console.log(HELP);
        return;
    }
    throw new UsageError(`unknown command: ${argv.join(' ')}`);
  } catch (error) {
    if (error instanceof UsageError || error instanceof ConfigError) {
      console.error(`fangate: ${error.message}`);
      if (error instanceof UsageError) console.error(`\n${HELP}`);
      process.exit(2);
    }
    console.error(`fangate: ${startErrorMessage(error as NodeJS.ErrnoException)}`);
    process.exit(1);
  }
}

/** Start errors a person can act on say which setting to change. */
function startErrorMessage(error: NodeJS.ErrnoException & { port?: number }): string {
  if (error.code === 'EADDRINUSE') {
    const config = loadConfig();
    const variable = error.port === config.sandbox.port ? 'FANGATE_SANDBOX_PORT (or FANGATE_SANDBOX=off)' : 'FANGATE_PORT';
    return `port ${error.port ?? ''} is already in use: stop what uses it, or choose another port with ${variable}.`;
  }
  if (error.code === 'EACCES' && error.port !== undefined) return `no permission to listen on port ${error.port}: choose a port above 1023 with FANGATE_PORT.`;
  return error.message;
}

class UsageError extends Error {}
