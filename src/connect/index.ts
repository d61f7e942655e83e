import type { AuditRecorder } from '../lib/audit.js';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { AccountsPort } from '../accounts/port.js';
import type { Database } from '../db/database.js';
import type { DB } from '../db/schema.js';
import type { JobQueue } from '../jobs/queue.js';
import type { Clock } from '../lib/clock.js';
import { Gauge, type Registry } from '../lib/metrics.js';
import type { PlatformGateway } from '../platforms/gateway.js';
import type { Vault } from '../vault/vault.js';
import type { AttemptRow } from './attempts.js';
import { createConnectService } from './service.js';
import { createStepRunner } from './steps.js';
import { type AttemptChangeHook, createAttemptStore, DEADLINE_QUEUE, type DeadlineJob, EMAIL_QUEUE, STEP_QUEUE, type StepJob } from './store.js';
import { createAttemptWatcher } from './watch.js';

export type { AttemptChange, AttemptChangeHook } from './store.js';
export type { ConnectService } from './service.js';
export { createAttemptHistory, type AttemptHistory, type AttemptTransition } from './history.js';

export interface ConnectDomainDeps {
  db: Kysely<DB>;
  database: Database;
  vault: Vault;
  jobs: JobQueue;
  platforms: PlatformGateway;
  accounts: Pick<AccountsPort, 'find' | 'findByPlatformUser' | 'view' | 'serialize' | 'secrets' | 'identity' | 'insertIfAbsent' | 'renewSession' | 'moveProxy'>;
  /** Other domains' in-transaction hooks on every attempt change (account status, Link). */
  hooks: AttemptChangeHook[];
  clock: Clock;
  publicUrl: string;
  logger: Logger;
  /** How often a worker sweeps attempts (expiry, lost steps), in ms. */
  sweepIntervalMs: number;
  /** Upstream logins per account and hour. */
  loginsPerHour: number;
  metrics: Registry;
  /** The audit log (credentials updates). */
  audit?: AuditRecorder;
}

const STEP_EXPIRY_SEC = 20;
const OPEN_STATES = ['pending', 'awaiting_mobile_session', 'needs_otp', 'needs_app_otp', 'needs_email', 'needs_face_otp', 'wrong_2fa_code_retry'] as const;
const STEP_RETRIES = 3;

/** Connect (DESIGN 3, 4): the attempt store, the API service, the step workers and their schedules. */
export function createConnectDomain(deps: ConnectDomainDeps) {
  const watcher = createAttemptWatcher(deps.database);
  const store = createAttemptStore({ ...deps, changed: watcher.changed, writing: watcher.writing });
  const service = createConnectService({ ...deps, store, watcher });
  const steps = createStepRunner({ ...deps, store });

  // Read from the database at each scrape, so every node reports the same, true number.
  new Gauge({
    name: 'fangate_attempts_in_state',
    help: 'Attempts not yet completed, by state (read from the database: the same on every node).',
    labelNames: ['state'] as const,
    registers: [deps.metrics],
    async collect() {
      const rows = await deps.db.selectFrom('auth_attempts').select(['state', (eb) => eb.fn.countAll<string>().as('n')]).where('completed_at', 'is', null).groupBy('state').execute();
      this.reset();
      for (const state of OPEN_STATES) this.set({ state }, 0);
      for (const row of rows) this.set({ state: row.state }, Number(row.n));
    },
  });

  return {
    service,
    /** For other domains, through the composition root: cancel what runs on an account. */
    cancelAccountAttempts: (accountId: string) => store.cancelAccountAttempts(accountId),

    async registerWorkers(jobs: JobQueue): Promise<void> {
      // A step whose worker died (kill -9) expires after STEP_EXPIRY_SEC and runs again on another worker within
      // 30 s of the death (expiry, the next maintenance run within 3 s, a 1-2 s retry delay, a 2 s poll); the
      // per-try upstream timeout keeps a live step well inside it, so a slow step is not run twice.
      await jobs.define<StepJob>({
        name: STEP_QUEUE,
        expireInSeconds: STEP_EXPIRY_SEC,
        retryLimit: STEP_RETRIES,
        retryDelay: 1,
        concurrency: 8,
        // The process whose commit queued a step runs it at once (the job is written claimed for it, as a
        // worker's fetch leaves it, so the expiry above covers its death too) instead of waiting for a worker.
        inline: true,
        // A step that keeps failing ends its attempt with a clear error instead of leaving it pending.
        handler: async (job, meta) => {
          try {
            await steps.runStep(job, meta.local as AttemptRow | undefined);
          } catch (error) {
            if (meta.retryCount < STEP_RETRIES) throw error;
            await steps.giveUp(job, error);
          }
        },
      });
      await jobs.define<StepJob>({ name: EMAIL_QUEUE, handler: steps.requestEmail, expireInSeconds: STEP_EXPIRY_SEC, retryLimit: 2, concurrency: 2 });
      await jobs.define<DeadlineJob>({ name: DEADLINE_QUEUE, handler: (job) => store.expireAt(job), expireInSeconds: 60, retryLimit: 3, concurrency: 2 });
      await jobs.every({ name: 'connect-sweep', intervalMs: deps.sweepIntervalMs, handler: service.sweep });
    },

    close: () => watcher.close(),
  };
}

export type ConnectDomain = ReturnType<typeof createConnectDomain>;
