import { randomUUID } from 'node:crypto';
import PgBoss from 'pg-boss';
import type { Logger } from 'pino';
import type { Database } from '../db/database.js';

export interface JobOptions {
  /** Seconds from now, or a date, before which the job does not run. */
  startAfter?: number | Date;
  /** Only one queued job with this key at a time (pg-boss singletonKey). */
  singletonKey?: string;
  retryLimit?: number;
  retryDelay?: number;
  retryBackoff?: boolean;
}

export interface QueueDefinition<T> {
  name: string;
  handler: (data: T, job: { id: string; retryCount: number }) => Promise<void>;
  /** Seconds a job may run before it counts as crashed and runs again. */
  expireInSeconds?: number;
  retryLimit?: number;
  retryDelay?: number;
  retryBackoff?: boolean;
  /** Jobs of this queue run at most this many at a time per process. */
  concurrency?: number;
}

export interface JobQueueOptions {
  database: Database;
  logger: Logger;
  /** false on API-only nodes: they enqueue, other nodes work. */
  work: boolean;
  schema?: string;
  pollingIntervalSeconds?: number;
  maintenanceIntervalSeconds?: number;
}

const WAKE_CHANNEL = 'fangate_jobs';

/**
 * Background jobs on pg-boss, in the same database as everything else: a job survives a
 * restart, and a job whose worker died (crash, kill -9) expires and runs again elsewhere.
 * A NOTIFY after each send wakes idle workers on every node at once instead of at their
 * next poll, which keeps login steps snappy without hammering the database.
 */
export function createJobQueue(options: JobQueueOptions) {
  const { database, logger } = options;
  const boss = new PgBoss({
    ...database.jobStore,
    schema: options.schema ?? 'pgboss',
    supervise: true,
    schedule: false,
    maintenanceIntervalSeconds: options.maintenanceIntervalSeconds ?? 60,
    max: 4,
  } as PgBoss.ConstructorOptions);
  boss.on('error', (error) => logger.error({ err: error }, 'job queue error'));

  const definitions: QueueDefinition<any>[] = [];
  const workerIds = new Map<string, string[]>();
  let unlisten: (() => Promise<void>) | undefined;
  let started = false;

  async function register(def: QueueDefinition<any>): Promise<void> {
    await boss.createQueue(def.name, {
      name: def.name,
      expireInSeconds: def.expireInSeconds ?? 300,
      retryLimit: def.retryLimit ?? 5,
      retryDelay: def.retryDelay ?? 5,
      retryBackoff: def.retryBackoff ?? true,
    } as PgBoss.Queue);
    if (!options.work) return;
    const ids: string[] = [];
    for (let i = 0; i < (def.concurrency ?? 2); i++) {
      let workerId: string | undefined;
      workerId = await boss.work(
        def.name,
        // includeMetadata: without it pg-boss returns no retryCount and every run looks like the first.
        { batchSize: 1, includeMetadata: true, pollingIntervalSeconds: options.pollingIntervalSeconds ?? 2 },
        async ([job]: PgBoss.Job<unknown>[]) => {
          if (!job) return;
          const meta = job as unknown as { retryCount?: number; retrycount?: number };
          try {
            await def.handler(job.data, { id: job.id, retryCount: meta.retryCount ?? meta.retrycount ?? 0 });
          } catch (error) {
            logger.warn({ err: error, queue: def.name, jobId: job.id }, 'job failed; it will be retried if retries remain');
            throw error;
          } finally {
            // Fetch again at once instead of sleeping a polling interval: a backlog drains at full
            // speed, and an empty fetch sends the worker back to its normal polling.
            if (workerId) boss.notifyWorker(workerId);
          }
        },
      );
      ids.push(workerId);
    }
    workerIds.set(def.name, ids);
  }

  return {
    boss,

    /** Declares a queue and its handler; call before or after start(). */
    async define<T>(def: QueueDefinition<T>): Promise<void> {
      definitions.push(def);
      if (started) await register(def);
    },

    async start(): Promise<void> {
      await boss.start();
      started = true;
      for (const def of definitions) await register(def);
      if (options.work) {
        unlisten = await database.listen(WAKE_CHANNEL, (queue) => {
          for (const id of workerIds.get(queue) ?? []) boss.notifyWorker(id);
        });
      }
    },

    async send<T extends object>(name: string, data: T, opts: JobOptions = {}): Promise<string | null> {
      const { startAfter, ...rest } = opts;
      const id = await boss.send(name, data, {
        id: randomUUID(),
        ...rest,
        ...(startAfter === undefined ? {} : { startAfter: typeof startAfter === 'number' ? Math.max(0, Math.round(startAfter)) : startAfter }),
      });
      if (id && startAfter === undefined) await database.notify(WAKE_CHANNEL, name).catch(() => undefined);
      return id;
    },

    /** Stops taking jobs, lets running ones finish (up to `timeoutMs`), then returns. */
    async stop(timeoutMs = 30_000): Promise<void> {
      if (!started) return;
      started = false;
      await unlisten?.();
      await boss.stop({ graceful: true, wait: true, timeout: timeoutMs, close: true });
    },
  };
}

export type JobQueue = ReturnType<typeof createJobQueue>;
