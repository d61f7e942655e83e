import { randomUUID } from 'node:crypto';
import PgBoss from 'pg-boss';
import type { Logger } from 'pino';
import { sql } from 'kysely';
import type { Database } from '../db/database.js';
import { Gauge, type Registry } from '../lib/metrics.js';

export interface JobOptions {
  /** Seconds from now, or a date, before which the job does not run. */
  startAfter?: number | Date;
  /** Only one queued job with this key at a time (pg-boss singletonKey). */
  singletonKey?: string;
  retryLimit?: number;
  retryDelay?: number;
  retryBackoff?: boolean;
  /**
   * Run it in this process right away (a worker node with a free inline slot), without waiting for a
   * worker to fetch it. The job is still queued, to start only after the queue's `inlineFallbackSeconds`:
   * it is the durable fallback should this process die meanwhile, and is deleted once the run succeeds
   * (a run that fails leaves it to retry then).
   */
  inline?: boolean;
}

/** Inline runs at once per process, over all queues; past it, jobs go through the queue as usual. */
const INLINE_SLOTS = 32;

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
  /** `stately`: at most one job waiting and one running across all nodes (periodic work). */
  policy?: 'standard' | 'stately';
  /**
   * Allows `inline` sends: how long the queued fallback of an inline run waits before a worker may take
   * it. Must be longer than a run can take, or the fallback would run alongside.
   */
  inlineFallbackSeconds?: number;
}

export interface PeriodicDefinition {
  name: string;
  /** How often a run is offered. */
  intervalMs: number;
  handler: () => Promise<void>;
  expireInSeconds?: number;
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
    // Maintenance also expires the jobs of dead workers: every few seconds, so their work resumes soon.
    maintenanceIntervalSeconds: options.maintenanceIntervalSeconds ?? 5,
    max: 4,
  } as PgBoss.ConstructorOptions);
  boss.on('error', (error) => logger.error({ err: error }, 'job queue error'));

  const definitions: QueueDefinition<any>[] = [];
  const workerIds = new Map<string, string[]>();
  const periodic: PeriodicDefinition[] = [];
  const timers: NodeJS.Timeout[] = [];
  let unlisten: (() => Promise<void>) | undefined;
  let started = false;
  const inlineRuns = new Set<Promise<void>>();

  /** Runs a job here and now; its queued fallback goes once it succeeded. */
  function runInline(def: QueueDefinition<any>, id: string, data: unknown): void {
    const run = (async () => {
      try {
        await def.handler(data, { id, retryCount: 0 });
      } catch (error) {
        logger.warn({ err: error, queue: def.name, jobId: id }, 'job run inline failed; its queued fallback retries it');
        return;
      }
      await boss.deleteJob(def.name, id).catch((error: unknown) => logger.warn({ err: error, queue: def.name, jobId: id }, 'could not delete the fallback of a job run inline; it will find nothing to do'));
    })().finally(() => inlineRuns.delete(run));
    inlineRuns.add(run);
  }

  async function register(def: QueueDefinition<any>): Promise<void> {
    await boss.createQueue(def.name, {
      name: def.name,
      expireInSeconds: def.expireInSeconds ?? 300,
      retryLimit: def.retryLimit ?? 5,
      retryDelay: def.retryDelay ?? 5,
      retryBackoff: def.retryBackoff ?? true,
      policy: def.policy ?? 'standard',
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

  function schedule(def: PeriodicDefinition) {
    if (!options.work) return;
    const offer = () => void queue.send(def.name, {}).catch((error) => logger.warn({ err: error, queue: def.name }, 'could not offer a periodic run'));
    const timer = setInterval(offer, def.intervalMs);
    timer.unref();
    timers.push(timer);
  }

  const queue = {
    boss,

    /** `fangate_jobs_queued{queue}`: jobs waiting (new or to retry), read from the database at each scrape. */
    registerMetrics(metrics: Registry): void {
      const schema = options.schema ?? 'pgboss';
      new Gauge({
        name: 'fangate_jobs_queued',
        help: 'Background jobs waiting to run (created or due for retry), by queue; read from the database.',
        labelNames: ['queue'] as const,
        registers: [metrics],
        async collect() {
          const rows = await sql<{ name: string; n: string }>`select name, count(*) as n from ${sql.table(`${schema}.job`)} where state in ('created', 'retry') group by name`.execute(database.db);
          this.reset();
          for (const def of definitions) this.set({ queue: def.name }, 0);
          for (const row of rows.rows) this.set({ queue: row.name }, Number(row.n));
        },
      });
    },

    /** Declares a queue and its handler; call before or after start(). */
    async define<T>(def: QueueDefinition<T>): Promise<void> {
      definitions.push(def);
      if (started) await register(def);
    },

    /**
     * Periodic work (sweeps, schedules) run by one worker at a time across all nodes: every worker node
     * offers a run each interval, and the stately queue keeps at most one waiting and one running.
     * Unlike pg-boss cron (whole minutes), intervals can be seconds.
     */
    async every(def: PeriodicDefinition): Promise<void> {
      periodic.push(def);
      await queue.define({ name: def.name, handler: def.handler, policy: 'stately', retryLimit: 0, concurrency: 1, expireInSeconds: def.expireInSeconds ?? 120 });
      if (started) schedule(def);
    },

    async start(): Promise<void> {
      await boss.start();
      started = true;
      for (const def of definitions) await register(def);
      for (const def of periodic) schedule(def);
      if (options.work) {
        unlisten = await database.listen(WAKE_CHANNEL, (queue) => {
          for (const id of workerIds.get(queue) ?? []) boss.notifyWorker(id);
        });
      }
    },

    async send<T extends object>(name: string, data: T, opts: JobOptions = {}): Promise<string | null> {
      const { startAfter, inline, ...rest } = opts;
      const def = inline && startAfter === undefined && options.work && started && inlineRuns.size < INLINE_SLOTS ? definitions.find((d) => d.name === name) : undefined;
      if (def?.inlineFallbackSeconds) {
        const id = await boss.send(name, data, { id: randomUUID(), ...rest, startAfter: def.inlineFallbackSeconds });
        if (id) runInline(def, id, data);
        return id;
      }
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
      for (const timer of timers.splice(0)) clearInterval(timer);
      // Inline runs finish like the workers' jobs do (their fallbacks cover whatever does not).
      await Promise.race([Promise.allSettled([...inlineRuns]), new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
      await unlisten?.();
      await boss.stop({ graceful: true, wait: true, timeout: timeoutMs, close: true });
    },
  };
  return queue;
}

export type JobQueue = ReturnType<typeof createJobQueue>;
