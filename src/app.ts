import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { lockDataDir, removeLocalAdmin, writeLocalAdmin } from './db/data-dir-lock.js';
import { randomBase62 } from './lib/ids.js';
import { type Database, openDatabase } from './db/database.js';
import { autovacuumRuns, vacuumEmbedded, vacuumOwnTables } from './db/maintenance.js';
import { migrateDatabase } from './db/migrate.js';
import { embeddedDatabaseDir } from './db/template-dir.js';
import { purgeExpiredIdempotencyKeys } from './http/plugins/idempotency.js';
import { buildHttpServer } from './http/server.js';
import { createJobQueue, type JobQueue } from './jobs/queue.js';
import { createLogger } from './logger.js';
import { createOrgService, type OrgService } from './orgs/service.js';
import { loadKeyring } from './vault/keyring.js';
import { createVault, type Vault } from './vault/vault.js';
import { type AttemptChangeHook, type ConnectService, createAttemptHistory, createConnectDomain } from './connect/index.js';
import { createAuditLog } from './audit/service.js';
import { createConsoleSessions } from './console/sessions.js';
import { rotateSecrets } from './vault/rotate.js';
import { type Clock, systemClock } from './lib/clock.js';
import { createMetricsRegistry, type Registry } from './lib/metrics.js';
import { createDispatcherCache } from './net/dispatcher.js';
import type { Resolver } from './net/address-guard.js';
import { createProxyPool } from './net/proxy-pool.js';
import { createPlatformGateway, type PlatformGateway } from './platforms/gateway.js';
import { createDrivers } from './platforms/index.js';
import { registerAccountMetrics } from './accounts/metrics.js';
import { createAccountCache } from './accounts/cache.js';
import { createAccountHealthPort, createAccountsPort } from './accounts/port.js';
import { type AccountService, createAccountService } from './accounts/service.js';
import { createLinkService, type LinkService } from './link/service.js';
import { createWebhookService, type WebhookService, type WebhookServiceOptions } from './webhooks/service.js';
import { createAccessBucket } from './access/bucket.js';
import { createAccessService } from './access/service.js';
import { createMonitor, type Monitor } from './monitor/service.js';
import { loadUndici } from './net/undici.js';
import type { Actor } from './lib/audit.js';

/** How long a stop waits for requests in flight before cutting their connections. */
const HTTP_CLOSE_GRACE_MS = 10_000;
export interface FanGateOptions {
  config: Config;
  logger?: Logger;
  /** Tests: keep PGlite in memory instead of under the data directory. */
  inMemory?: boolean;
  jobs?: { pollingIntervalSeconds?: number; maintenanceIntervalSeconds?: number; schema?: string };
  /** Tests: how host names resolve for the SSRF guard of custom proxies. */
  resolver?: Resolver;
  /** Tests: a clock they can move (attempt expiry). */
  clock?: Clock;
  /** How often a worker sweeps (expired attempts, expired idempotency keys), in ms. */
  sweepIntervalMs?: number;
  /** Tests and benchmarks: webhook retry schedule, timeout, resolver, … */
  webhooks?: WebhookServiceOptions;
  /** Tests: Access API upstream time limit (DESIGN 10: 30 s). */
  access?: { timeoutMs?: number };
  /** Tests: how long a stop waits for requests in flight before cutting their connections (default 10 s). */
  closeGraceMs?: number;
  /** Health monitor tuning (default: looks for due accounts every 5 s, or every sweep when sweeps are faster). */
  monitor?: { tickMs?: number; batchSize?: number; concurrency?: number };
}

export interface FanGate {
  config: Config;
  logger: Logger;
  database: Database;
  vault: Vault;
  orgs: OrgService;
  jobs: JobQueue;
  connect: ConnectService;
  accounts: AccountService;
  link: LinkService;
  webhooks: WebhookService;
  platforms: PlatformGateway;
  monitor: Monitor;
  clock: Clock;
  metrics: Registry;
  http: FastifyInstance;
  /** The API key of a first start on an empty database (organisation `default`), to show once. */
  firstRunKey: string | undefined;
  /** Starts the workers and, unless `listen` is false, the HTTP server. */
  start(options?: { listen?: boolean }): Promise<void>;
  /** Graceful: stops taking requests and jobs, lets running jobs finish, closes the database. */
  stop(): Promise<void>;
}

/** The composition root: builds every domain service and hands each its dependencies. */
export async function createFanGate(options: FanGateOptions): Promise<FanGate> {
  const { config } = options;
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const embedded = !config.databaseUrl;

  // Refuse early and clearly (e.g. PostgreSQL without FANGATE_MASTER_KEY) before touching anything.
  const keyring = await loadKeyring({ masterKey: config.masterKey, databaseUrl: config.databaseUrl, dataDir: config.dataDir, logger });
  const unlock = embedded && !options.inMemory ? await lockDataDir(config.dataDir, `fangate ${config.role}`) : async () => undefined;

  let database: Database;
  try {
    database = await openDatabase({
      databaseUrl: config.databaseUrl,
      pgliteDir: embedded && !options.inMemory ? embeddedDatabaseDir(config.dataDir) : undefined,
      logger,
      poolSize: config.dbPoolSize,
      preparedStatements: config.dbPreparedStatements,
    });
    const applied = await migrateDatabase(database);
    if (applied.length > 0) logger.info({ migrations: applied }, 'applied database migrations');
  } catch (error) {
    await unlock();
    throw error;
  }

  const vault = createVault(keyring);
  const metrics = createMetricsRegistry();
  // The audit log: every domain that changes something audited gets this port and writes with the change.
  const audit = createAuditLog({ db: database.db });
  // Verified API keys stay in memory on every node; a revocation evicts them everywhere through NOTIFY.
  const orgs = createOrgService({ db: database.db, notifications: database, audit: audit.record });
  let firstRunKey: string | undefined;
  if (config.bootstrapApiKey) {
    const { organization, created } = await orgs.ensureBootstrapKey(config.bootstrapApiKey);
    if (created) logger.info({ org: organization.id }, 'bootstrap API key registered for organisation "default"');
  } else if (config.role !== 'worker') {
    firstRunKey = (await orgs.firstRunKey())?.key.key;
  }
  // Embedded mode: `fangate keys create` asks the running server, with a token only this data dir holds.
  const localAdminToken = embedded && !options.inMemory ? randomBase62(43) : undefined;
  const jobs = createJobQueue({ database, logger, work: config.role !== 'api', ...options.jobs });
  const clock = options.clock ?? systemClock;

  const dispatchers = createDispatcherCache();
  const platforms = createPlatformGateway({
    drivers: createDrivers({ onlyfansUrl: config.platforms.onlyfansUrl, fanslyUrl: config.platforms.fanslyUrl }),
    dispatchers,
    pool: createProxyPool(config.proxyPoolEntries),
    proxyGuard: { allowPrivate: config.allowPrivateProxies, ...(options.resolver ? { resolver: options.resolver } : {}) },
  });

  // Domains, each with what it needs of the others as a narrow interface (DESIGN 1).
  const sweepIntervalMs = options.sweepIntervalMs ?? 10_000;
  const accountsPort = createAccountsPort({ db: database.db, vault, clock, logger, audit: audit.record });
  const sealed = await accountsPort.sealLegacyProxyUsernames();
  if (sealed > 0) logger.info({ accounts: sealed }, 'moved plain-text proxy usernames into the vault');
  // Account status and Link follow attempts inside their transactions (the Link hook runs only once `link` exists below).
  const attemptHooks: AttemptChangeHook[] = [(trx, change) => accountsPort.followAttempt(trx, change), (trx, change) => link.onAttemptChange(trx, change)];
  const connectDomain = createConnectDomain({
    db: database.db, database, vault, jobs, platforms, accounts: accountsPort, hooks: attemptHooks, clock, publicUrl: config.publicUrl, logger, sweepIntervalMs,
    loginsPerHour: config.rateLimit.accountLoginsPerHour,
    metrics,
    audit: audit.record,
  });
  // The attempts' state history (the console shows it), written with each change.
  const attemptHistory = createAttemptHistory({ db: database.db, clock });
  attemptHooks.push((trx, change) => attemptHistory.onAttemptChange(trx, change));
  registerAccountMetrics(metrics, database.db);
  jobs.registerMetrics(metrics);
  const connect = connectDomain.service;
  const accounts = createAccountService({ db: database.db, vault, platforms, clock, logger, cancelAttempts: connectDomain.cancelAccountAttempts, audit: audit.record });
  const link = createLinkService({
    db: database.db, connect, clock, publicUrl: config.publicUrl, logger,
    findAccount: (orgId, id) => accountsPort.find(database.db, orgId, id).then((a) => (a ? { id: a.id, platform: a.platform } : undefined)),
    hasProxyCountry: (country) => platforms.pool.has(country),
  });

  const missingAccounts = async (orgId: string, ids: string[]) =>
    (await Promise.all(ids.map(async (id) => ((await accountsPort.find(database.db, orgId, id)) ? null : id)))).filter((id): id is string => id !== null);
  const webhooks = createWebhookService({ db: database.db, database, vault, clock, logger, metrics, allowPrivate: config.allowPrivateWebhooks, concurrency: config.webhookConcurrency, missingAccounts, options: options.webhooks, audit: audit.record });
  if (config.role !== 'api') await webhooks.registerWorkers(jobs);

  const accountCache = createAccountCache(database);
  const health = createAccountHealthPort({ db: database.db, vault, clock, cache: accountCache });
  const moveProxy = accountsPort.moveProxy;
  const monitor = createMonitor({
    accounts: health, platforms, moveProxy, metrics, logger,
    reauthenticate: (orgId, platform, accountId) => connect.reauthenticate(orgId, platform, accountId, true),
    tickMs: Math.min(5_000, sweepIntervalMs), ...options.monitor,
  });
  attemptHooks.push((trx, change) => monitor.onAttemptChange(trx, change));
  const accessBucket = createAccessBucket({
    db: database.db, shared: database.kind === 'postgres', ...config.access,
    onError: (error) => logger.warn({ err: error }, 'could not share Access API bucket levels; retrying with the next flush'),
  });
  const access = createAccessService({
    accounts: health, platforms, moveProxy, metrics, logger, ratePerMin: config.access.ratePerMin,
    checkNow: (account) => monitor.check(account),
    ...(options.access?.timeoutMs ? { timeoutMs: options.access.timeoutMs } : {}),
    bucket: accessBucket,
  });

  await connectDomain.registerWorkers(jobs);
  await monitor.registerWorkers(jobs);
  await jobs.every({ name: 'idempotency-purge', intervalMs: sweepIntervalMs, handler: async () => void (await purgeExpiredIdempotencyKeys(database.db, clock.now())) });
  // PGlite has no autovacuum; a PostgreSQL server may have it turned off. Either way FanGate's hot tables would
  // only grow dead rows, so FanGate vacuums them itself on FANGATE_EMBEDDED_VACUUM_INTERVAL_SEC.
  const selfVacuum = database.kind === 'pglite' || !(await autovacuumRuns(database.db));
  if (database.kind === 'postgres' && selfVacuum) {
    logger.warn({ intervalSec: config.embeddedVacuumIntervalMs / 1000 }, 'PostgreSQL runs without autovacuum: FanGate vacuums and analyses its own tables on FANGATE_EMBEDDED_VACUUM_INTERVAL_SEC (turn autovacuum on for a server that also holds other data)');
  }
  if (selfVacuum) {
    await jobs.every({
      name: 'embedded-vacuum',
      intervalMs: config.embeddedVacuumIntervalMs,
      expireInSeconds: 900,
      handler: async () => {
        const started = performance.now();
        if (database.kind === 'pglite') await vacuumEmbedded(database.db);
        else await vacuumOwnTables(database.db, jobs.schema);
        logger.debug({ ms: Math.round(performance.now() - started) }, 'database vacuumed and analysed');
      },
    });
  }

  // Vault rotation concerns every organisation: one audit row without one (the admin or system rotated).
  const rotateVault = async (actor: Actor) => {
    const report = await rotateSecrets(database.db, vault);
    await audit.record(database.db, { orgId: null, action: 'vault.rotated', targetType: 'vault', targetId: vault.currentKid, details: { key_id: vault.currentKid, rotated: report.rotated }, actor });
    return report;
  };
  const http = await buildHttpServer({ config, logger, database, vault, orgs, connect, accounts, link, webhooks, metrics, localAdminToken, access, monitor, audit, attemptHistory, rotateVault, consoleSessions: createConsoleSessions({ db: database.db, clock }) });

  let stopping: Promise<void> | undefined;
  return {
    config,
    logger,
    database,
    vault,
    orgs,
    jobs,
    connect,
    accounts,
    link,
    webhooks,
    platforms,
    monitor,
    clock,
    metrics,
    http,
    firstRunKey,
    async start({ listen = true } = {}) {
      await jobs.start();
      if (config.role !== 'api') await webhooks.start();
      if (listen) {
        await http.listen({ port: config.port, host: config.host });
        if (localAdminToken) await writeLocalAdmin(config.dataDir, { url: `http://127.0.0.1:${(http.server.address() as AddressInfo).port}`, token: localAdminToken, pid: process.pid });
      } else await http.ready();
      // Outbound HTTP loads on first use (not on the way to ready); load it now, so the first call does not wait.
      void loadUndici().catch((error: unknown) => logger.error({ err: error }, 'loading the HTTP client failed'));
    },
    stop() {
      stopping ??= (async () => {
        if (localAdminToken) await removeLocalAdmin(config.dataDir);
        // Requests in flight get a grace period; then whatever connection is still open is cut (a client that
        // stops reading, or never finishes sending its request, would otherwise hold the close forever).
        const graceMs = options.closeGraceMs ?? HTTP_CLOSE_GRACE_MS;
        const cut = setTimeout(() => {
          logger.warn({ graceMs }, 'stop: cutting the HTTP connections still open after the grace period');
          http.server.closeAllConnections();
        }, graceMs);
        await http.close();
        clearTimeout(cut);
        await accessBucket.close();
        await accountCache.close();
        await connectDomain.close();
        await webhooks.stop();
        await jobs.stop();
        await orgs.close();
        await dispatchers.close();
        await database.close();
        await unlock();
      })();
      return stopping;
    },
  };
}
