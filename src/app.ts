import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { lockDataDir } from './db/data-dir-lock.js';
import { type Database, openDatabase } from './db/database.js';
import { migrateToLatest } from './db/migrate.js';
import { purgeExpiredIdempotencyKeys } from './http/plugins/idempotency.js';
import { buildHttpServer } from './http/server.js';
import { createJobQueue, type JobQueue } from './jobs/queue.js';
import { createLogger } from './logger.js';
import { createOrgService, type OrgService } from './orgs/service.js';
import { loadKeyring } from './vault/keyring.js';
import { createVault, type Vault } from './vault/vault.js';
import { createConnectService, type ConnectService } from './connect/service.js';
import { createStepRunner } from './connect/steps.js';
import { createAttemptStore, EMAIL_QUEUE, STEP_QUEUE, type StepJob } from './connect/store.js';
import { createAttemptWatcher } from './connect/watch.js';
import { type Clock, systemClock } from './lib/clock.js';
import { createMetricsRegistry, type Registry } from './lib/metrics.js';
import { createDispatcherCache } from './net/dispatcher.js';
import { createProxyPool } from './net/proxy-pool.js';
import { createPlatformAccess, type PlatformAccess } from './platforms/access.js';
import { createDrivers } from './platforms/index.js';
import { type AccountService, createAccountService } from './accounts/service.js';
import { createWebhookService, type WebhookService, type WebhookServiceOptions } from './webhooks/service.js';

export interface FanGateOptions {
  config: Config;
  logger?: Logger;
  /** Tests: keep PGlite in memory instead of under the data directory. */
  inMemory?: boolean;
  jobs?: { pollingIntervalSeconds?: number; maintenanceIntervalSeconds?: number; schema?: string };
  /** Tests: a clock they can move (attempt expiry). */
  clock?: Clock;
  /** How often a worker sweeps (expired attempts, expired idempotency keys), in ms. */
  sweepIntervalMs?: number;
  /** Tests and benchmarks: webhook retry schedule, timeout, resolver, … */
  webhooks?: WebhookServiceOptions;
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
  webhooks: WebhookService;
  platforms: PlatformAccess;
  clock: Clock;
  metrics: Registry;
  http: FastifyInstance;
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
      pgliteDir: embedded && !options.inMemory ? join(config.dataDir, 'pgdata') : undefined,
      logger,
      poolSize: config.dbPoolSize,
    });
    const applied = await migrateToLatest(database.db);
    if (applied.length > 0) logger.info({ migrations: applied }, 'applied database migrations');
  } catch (error) {
    await unlock();
    throw error;
  }

  const vault = createVault(keyring);
  const metrics = createMetricsRegistry();
  const orgs = createOrgService({ db: database.db, principalCacheMs: database.kind === 'pglite' ? 10_000 : 0 });
  if (config.bootstrapApiKey) {
    const { organization, created } = await orgs.ensureBootstrapKey(config.bootstrapApiKey);
    if (created) logger.info({ org: organization.id }, 'bootstrap API key registered for organisation "default"');
  }
  const jobs = createJobQueue({ database, logger, work: config.role !== 'api', ...options.jobs });
  const clock = options.clock ?? systemClock;

  const dispatchers = createDispatcherCache();
  const platforms = createPlatformAccess({
    drivers: createDrivers({ onlyfansUrl: config.platforms.onlyfansUrl, fanslyUrl: config.platforms.fanslyUrl }),
    dispatchers,
    pool: createProxyPool(config.proxyPoolEntries),
  });
  const store = createAttemptStore({ db: database.db, database, vault, jobs, clock, publicUrl: config.publicUrl, logger });
  const watcher = createAttemptWatcher(database);
  const connect = createConnectService({ db: database.db, vault, store, watcher, platforms, clock, publicUrl: config.publicUrl, logger });
  const accounts = createAccountService({ db: database.db, vault, platforms, store, clock, logger });
  const missingAccounts = async (orgId: string, ids: string[]) =>
    (await Promise.all(ids.map((id) => accounts.get(orgId, id).then(() => null, () => id)))).filter((id): id is string => id !== null);
  const webhooks = createWebhookService({ db: database.db, database, vault, clock, logger, metrics, allowPrivate: config.allowPrivateWebhooks, concurrency: config.webhookConcurrency, missingAccounts, options: options.webhooks });
  if (config.role !== 'api') await webhooks.registerWorkers(jobs);
  const steps = createStepRunner({ db: database.db, vault, store, platforms, clock, logger });
  await jobs.define<StepJob>({ name: STEP_QUEUE, handler: steps.runStep, expireInSeconds: 120, retryLimit: 3, retryDelay: 2, concurrency: 8 });
  await jobs.define<StepJob>({ name: EMAIL_QUEUE, handler: steps.requestEmail, expireInSeconds: 60, retryLimit: 2, concurrency: 2 });

  const http = await buildHttpServer({ config, logger, database, vault, orgs, connect, accounts, webhooks, metrics });
  let sweeper: NodeJS.Timeout | undefined;

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
    webhooks,
    platforms,
    clock,
    metrics,
    http,
    async start({ listen = true } = {}) {
      await jobs.start();
      if (config.role !== 'api') await webhooks.start(jobs);
      if (config.role !== 'api') {
        const sweep = () =>
          void Promise.all([connect.sweep(), purgeExpiredIdempotencyKeys(database.db, clock.now())]).catch((error) =>
            logger.error({ err: error }, 'sweep failed'),
          );
        sweeper = setInterval(sweep, options.sweepIntervalMs ?? 10_000);
        sweeper.unref();
      }
      if (listen) await http.listen({ port: config.port, host: config.host });
      else await http.ready();
    },
    stop() {
      stopping ??= (async () => {
        clearInterval(sweeper);
        await http.close();
        await watcher.close();
        await webhooks.stop();
        await jobs.stop();
        await dispatchers.close();
        await database.close();
        await unlock();
      })();
      return stopping;
    },
  };
}
