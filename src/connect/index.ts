import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { AccountsPort } from '../accounts/port.js';
import type { Database } from '../db/database.js';
import type { DB } from '../db/schema.js';
import type { JobQueue } from '../jobs/queue.js';
import type { Clock } from '../lib/clock.js';
import type { PlatformGateway } from '../platforms/gateway.js';
import type { Vault } from '../vault/vault.js';
import { createConnectService } from './service.js';
import { createStepRunner } from './steps.js';
import { type AttemptChangeHook, createAttemptStore, DEADLINE_QUEUE, type DeadlineJob, EMAIL_QUEUE, STEP_QUEUE, type StepJob } from './store.js';
import { createAttemptWatcher } from './watch.js';

export type { AttemptChange, AttemptChangeHook } from './store.js';
export type { ConnectService } from './service.js';

export interface ConnectDomainDeps {
  db: Kysely<DB>;
  database: Database;
  vault: Vault;
  jobs: JobQueue;
  platforms: PlatformGateway;
  accounts: Pick<AccountsPort, 'find' | 'findByPlatformUser' | 'view' | 'secrets' | 'identity' | 'insert' | 'renewSession' | 'moveProxy'>;
  /** Other domains' in-transaction hooks on every attempt change (account status, Link). */
  hooks: AttemptChangeHook[];
  clock: Clock;
  publicUrl: string;
  logger: Logger;
  /** How often a worker sweeps attempts (expiry, lost steps), in ms. */
  sweepIntervalMs: number;
  /** Upstream logins per account and hour. */
  loginsPerHour: number;
}

/** Connect (DESIGN 3, 4): the attempt store, the API service, the step workers and their schedules. */
export function createConnectDomain(deps: ConnectDomainDeps) {
  const store = createAttemptStore({ ...deps });
  const watcher = createAttemptWatcher(deps.database);
  const service = createConnectService({ ...deps, store, watcher });
  const steps = createStepRunner({ ...deps, store });

  return {
    service,
    /** For other domains, through the composition root: cancel what runs on an account. */
    cancelAccountAttempts: (accountId: string) => store.cancelAccountAttempts(accountId),

    async registerWorkers(jobs: JobQueue): Promise<void> {
      await jobs.define<StepJob>({ name: STEP_QUEUE, handler: steps.runStep, expireInSeconds: 120, retryLimit: 3, retryDelay: 2, concurrency: 8 });
      await jobs.define<StepJob>({ name: EMAIL_QUEUE, handler: steps.requestEmail, expireInSeconds: 60, retryLimit: 2, concurrency: 2 });
      await jobs.define<DeadlineJob>({ name: DEADLINE_QUEUE, handler: (job) => store.expireAt(job), expireInSeconds: 60, retryLimit: 3, concurrency: 2 });
      await jobs.every({ name: 'connect-sweep', intervalMs: deps.sweepIntervalMs, handler: service.sweep });
    },

    close: () => watcher.close(),
  };
}

export type ConnectDomain = ReturnType<typeof createConnectDomain>;
