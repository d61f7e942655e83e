import { randomUUID } from 'node:crypto';
import PgBoss from 'pg-boss';
import type { Logger } from 'pino';
import { CompiledQuery, type Kysely, sql } from 'kysely';
import type { Database } from '../db/database.js';
import { Gauge, type Registry } from '../lib/metrics.js';

export interface JobOptions {
  /** The job's id (a UUID); random unless given (a sender may derive it, to find the job again). */
  id?: string;
  /** Seconds from now, or a date, before which the job does not run. */
  startAfter?: number | Date;
  /** Only one queued job with this key at a time (pg-boss singletonKey). */
  singletonKey?: string;
  retryLimit?: number;
  retryDelay?: number;
  retryBackoff?: boolean;
  /**
   * Insert the job inside this transaction: it exists exactly when the transaction commits (no job lost
   * between a commit and a send, none left behind by a rollback). The worker wake-up rides on the commit too.
   */
  trx?: Kysely<any>;
  /**
   * An inline slot this process holds (`reserveInline`): the job is written already claimed by this process
   * (active, expiring like a worker's fetch), and `runReserved` runs it right after the commit. It stays the
   * durable copy: should this process die, it expires and runs again elsewhere.
   */
  reservation?: InlineReservation;
}

/**
 * An inline slot held from before a transaction (so what it writes can say the job runs at once) until its
 * commit: `runReserved` after the commit, `release` when the transaction does not commit.
 */
export interface InlineReservation {
  readonly queue: string;
  /** Set by `send`: the job written in the transaction. */
  job?: { id: string; data: unknown };
  readonly heldSince: number;
  done: boolean;
}

/** pg-boss's executor on a Kysely transaction's connection (PGlite and PostgreSQL alike). */
function executorOn(trx: Kysely<any>) {
  return {
    async executeSql(text: string, values: unknown[] = []) {
      const result = await trx.executeQuery(CompiledQuery.raw(text, values));
      return { rows: result.rows as unknown[] };
    },
  };
}

/** Inline runs at once per process, over all queues; past it, jobs go through the queue as usual. */
const INLINE_SLOTS = 32;
/**
 * A reservation whose transaction neither ran nor released it (a rollback between) stops counting against the
 * slots after this long; a late commit still runs its job.
 */
const RESERVATION_COUNTS_MS = 30_000;

export interface QueueDefinition<T> {
  name: string;
  /** `local`: for a job run inline, what its sender handed to `runReserved` (e.g. the row it just wrote). */
  handler: (data: T, job: { id: string; retryCount: number; local?: unknown }) => Promise<void>;
  /** Seconds a job may run before it counts as crashed and runs again. */
  expireInSeconds?: number;
  retryLimit?: number;
  retryDelay?: number;
  retryBackoff?: boolean;
  /** Jobs of this queue run at most this many at a time per process. */
  concurrency?: number;
  /** `stately`: at most one job waiting and one running across all nodes (periodic work). */
  policy?: 'standard' | 'stately';
  /** Jobs of this queue may be run by their sender at once (`reserveInline` + `runReserved`). */
  inline?: boolean;
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

/** A queue's settings as pg-boss keeps them (its `queue` table). */
interface StoredQueue {
  name: string;
  policy: string;
  retry_limit: number;
  retry_delay: number;
  retry_backoff: boolean;
  expire_seconds: number;
}

/** The settings pg-boss stores for a definition, defaults applied. */
function queueSettings(def: QueueDefinition<any>) {
  return {
    name: def.name,
    policy: def.policy ?? 'standard',
    retryLimit: def.retryLimit ?? 5,
    retryDelay: def.retryDelay ?? 5,
    retryBackoff: def.retryBackoff ?? true,
    expireInSeconds: def.expireInSeconds ?? 300,
  };
}

function sameSettings(have: StoredQueue, want: ReturnType<typeof queueSettings>): boolean {
  return (
    have.policy === want.policy &&
    have.retry_limit === want.retryLimit &&
    have.retry_delay === want.retryDelay &&
    have.retry_backoff === want.retryBackoff &&
    have.expire_seconds === want.expireInSeconds
  );
}

/**
 * Background jobs on pg-boss, in the same database as everything else: a job survives a
 * restart, and a job whose worker died (crash, kill -9) expires and runs again elsewhere.
 * A NOTIFY after each send wakes idle workers on every node at once instead of at their
 * next poll, which keeps login steps snappy without hammering the database.
 */
export function createJobQueue(options: JobQueueOptions) {
  const { database, logger } = options;
  const schema = options.schema ?? 'pgboss';
  /** pg-boss's job table, for the queries it has no call for. */
  const jobTable = sql.table(`${schema}.job`);
  const queueTable = sql.table(`${schema}.queue`);
  const boss = new PgBoss({
    ...database.jobStore,
    schema,
    supervise: true,
    schedule: false,
    // Maintenance also expires the jobs of dead workers: every few seconds, so their work resumes soon
    // (a login step of a killed worker runs again within 30 s).
    maintenanceIntervalSeconds: options.maintenanceIntervalSeconds ?? 3,
    max: 4,
  } as PgBoss.ConstructorOptions);
  boss.on('error', (error) => logger.error({ err: error }, 'job queue error'));

  const definitions: QueueDefinition<any>[] = [];
  const workerIds = new Map<string, string[]>();
  const periodic: PeriodicDefinition[] = [];
  const timers: NodeJS.Timeout[] = [];
  let unlisten: (() => Promise<void>) | undefined;
  let started = false;
  /** Set once stop() has finished: a reserved job committed after that is left to its expiry. */
  let stopped = false;
  const inlineRuns = new Set<Promise<void>>();
  const reservations = new Set<InlineReservation>();

  /** Frees the slot of reservations whose transaction never came back (see RESERVATION_COUNTS_MS). */
  function forgetStaleReservations(now: number): void {
    for (const r of reservations) if (now - r.heldSince > RESERVATION_COUNTS_MS) reservations.delete(r);
  }

  /**
   * Runs a job claimed for this process (written active, expiring after the queue's `expireInSeconds`, as a
   * worker's fetch leaves it): a crash of this process is then retried by another node like any worker's, and a
   * failure goes through the queue's retries. `local`: what the sender knows beyond the job's data.
   */
  function runClaimed(def: QueueDefinition<any>, id: string, data: unknown, local?: unknown): void {
    const run = (async () => {
      try {
        await def.handler(data, { id, retryCount: 0, local });
      } catch (error) {
        logger.warn({ err: error, queue: def.name, jobId: id }, 'job failed; it will be retried if retries remain');
        await boss.fail(def.name, id, { message: (error as Error).message }).catch((e: unknown) => logger.warn({ err: e, queue: def.name, jobId: id }, 'could not mark a job failed; it will expire and run again'));
        return;
      }
      await boss.complete(def.name, id).catch((e: unknown) => logger.warn({ err: e, queue: def.name, jobId: id }, 'could not mark a job done; it will expire and find nothing to do'));
    })().finally(() => inlineRuns.delete(run));
    inlineRuns.add(run);
  }

  /**
   * Creates the queues that do not exist yet and brings the settings of the others up to their definitions:
   * pg-boss's createQueue leaves an existing queue as it is, so a retry or expiry changed in a new version
   * never reached a database made by an older one. One read for all queues: a createQueue per queue at each
   * start cost a round trip and a PL/pgSQL call each (≈ 70 ms on PGlite for eight).
   */
  async function ensureQueues(defs: QueueDefinition<any>[]): Promise<void> {
    if (defs.length === 0) return;
    const { rows } = await sql<StoredQueue>`
      select name, policy, retry_limit, retry_delay, retry_backoff, expire_seconds from ${queueTable}
      where name = any(${defs.map((d) => d.name)}::text[])`.execute(database.db);
    const stored = new Map(rows.map((row) => [row.name, row]));
    for (const def of defs) {
      const settings = queueSettings(def);
      const have = stored.get(def.name);
      if (!have) await boss.createQueue(def.name, settings as PgBoss.Queue);
      else if (!sameSettings(have, settings)) {
        await boss.updateQueue(def.name, settings as PgBoss.Queue);
        logger.info({ queue: def.name, settings }, 'job queue settings updated to this version');
      }
    }
  }

  async function register(def: QueueDefinition<any>): Promise<void> {
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
    /** The schema pg-boss keeps its tables in. */
    schema,

    /** `fangate_jobs_queued{queue}`: jobs waiting (new or to retry), read from the database at each scrape. */
    registerMetrics(metrics: Registry): void {
      new Gauge({
        name: 'fangate_jobs_queued',
        help: 'Background jobs waiting to run (created or due for retry), by queue; read from the database.',
        labelNames: ['queue'] as const,
        registers: [metrics],
        async collect() {
          const rows = await sql<{ name: string; n: string }>`select name, count(*) as n from ${jobTable} where state in ('created', 'retry') group by name`.execute(database.db);
          this.reset();
          for (const def of definitions) this.set({ queue: def.name }, 0);
          for (const row of rows.rows) this.set({ queue: row.name }, Number(row.n));
        },
      });
    },

    /** Declares a queue and its handler; call before or after start(). */
    async define<T>(def: QueueDefinition<T>): Promise<void> {
      definitions.push(def);
      if (!started) return;
      await ensureQueues([def]);
      await register(def);
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
      await ensureQueues(definitions);
      for (const def of definitions) await register(def);
      for (const def of periodic) schedule(def);
      if (options.work) {
        unlisten = await database.listen(WAKE_CHANNEL, (queue) => {
          for (const id of workerIds.get(queue) ?? []) boss.notifyWorker(id);
        });
      }
    },

    async send<T extends object>(name: string, data: T, opts: JobOptions = {}): Promise<string | null> {
      const { startAfter, trx, reservation, ...rest } = opts;
      if (reservation && trx && !reservation.done && !reservation.job) {
        if (startAfter !== undefined || rest.singletonKey !== undefined || rest.retryLimit !== undefined || rest.retryDelay !== undefined || rest.retryBackoff !== undefined) {
          throw new Error(`job options other than the id do not apply to a job run inline (${name})`);
        }
        // Claimed for this process from the start, with the queue's own settings (as pg-boss's insert takes
        // them): no worker is woken, and no claim statement is needed after the commit. Its expiry counts from
        // this statement, not from the transaction's start (lock waits before it would shorten the step's time).
        const id = rest.id ?? randomUUID();
        const { rows } = await sql<{ id: string }>`
          insert into ${jobTable} (id, name, data, state, started_on, retry_limit, retry_delay, retry_backoff, expire_in, keep_until, policy, dead_letter)
          select ${id}::uuid, q.name, ${JSON.stringify(data)}::jsonb, 'active', now(), q.retry_limit,
            case when q.retry_backoff then greatest(q.retry_delay, 1) else q.retry_delay end, q.retry_backoff,
            q.expire_seconds * interval '1 second' + (clock_timestamp() - now()),
            now() + coalesce(q.retention_minutes * interval '1 minute', interval '14 days'), q.policy, q.dead_letter
          from ${queueTable} q where q.name = ${name}
          returning id`.execute(trx);
        if (!rows[0]) throw new Error(`job queue ${name} does not exist`);
        reservation.job = { id, data };
        return id;
      }
      const id = await boss.send(name, data, {
        ...rest,
        id: rest.id ?? randomUUID(),
        ...(trx ? { db: executorOn(trx) } : {}),
        ...(startAfter === undefined ? {} : { startAfter: typeof startAfter === 'number' ? Math.max(0, Math.round(startAfter)) : startAfter }),
      } as PgBoss.SendOptions);
      if (id && startAfter === undefined) {
        // Inside a transaction, NOTIFY is delivered at its commit, when the job becomes visible.
        if (trx) await sql`select pg_notify(${WAKE_CHANNEL}, ${name})`.execute(trx);
        else await database.notify(WAKE_CHANNEL, name).catch(() => undefined);
      }
      return id;
    },

    /**
     * An inline slot for a job of `name` this process will send inside a transaction (`send(…, { reservation })`)
     * and run right after its commit (`runReserved`), or null when the queue is not inline, this node does not
     * work or every slot is taken (then the job goes to the workers as usual). Held from before the
     * transaction, so that what the transaction writes can already say the job runs.
     */
    reserveInline(name: string): InlineReservation | null {
      const def = definitions.find((d) => d.name === name);
      if (!def?.inline || !options.work || !started) return null;
      const now = Date.now();
      forgetStaleReservations(now);
      if (inlineRuns.size + reservations.size >= INLINE_SLOTS) return null;
      const reservation: InlineReservation = { queue: name, heldSince: now, done: false };
      reservations.add(reservation);
      return reservation;
    },

    /** The transaction of a reservation did not commit: its slot is free again (its job never existed). */
    release(reservation: InlineReservation | null | undefined): void {
      if (!reservation || reservation.done) return;
      reservation.done = true;
      reservations.delete(reservation);
    },

    /**
     * After the commit that sent a reserved job: runs it here now. The job is claimed already (active), so this
     * is the only run unless this process dies first; a stop in progress waits for it. false when the
     * reservation sent no job, or the queue has stopped already (the job then runs again once it expires).
     */
    runReserved(reservation: InlineReservation, local?: unknown): boolean {
      if (reservation.done) return false;
      const def = definitions.find((d) => d.name === reservation.queue);
      const job = reservation.job;
      queue.release(reservation);
      if (!def || !job || stopped) return false;
      runClaimed(def, job.id, job.data, local);
      return true;
    },

    /** Whether a job of `name` whose data contains `match` waits, is due for a retry or runs (on any node). */
    async hasLive(name: string, match: object): Promise<boolean> {
      const { rows } = await sql<{ n: number }>`select 1 as n from ${jobTable}
        where name = ${name} and state in ('created', 'retry', 'active') and data @> ${JSON.stringify(match)}::jsonb limit 1`.execute(database.db);
      return rows.length > 0;
    },

    /** Stops taking jobs, lets running ones finish (up to `timeoutMs`), then returns. */
    async stop(timeoutMs = 30_000): Promise<void> {
      if (!started) return;
      started = false;
      for (const timer of timers.splice(0)) clearInterval(timer);
      // Inline runs finish like the workers' jobs do, and so do the jobs of transactions that held a slot when the
      // stop began (their job is claimed for this process); expiry and retries cover whatever does not finish.
      const deadline = Date.now() + timeoutMs;
      while ((inlineRuns.size > 0 || reservations.size > 0) && Date.now() < deadline) {
        forgetStaleReservations(Date.now());
        // A timer either way: with no run in flight, allSettled([]) would spin without letting the commits come.
        const tick = new Promise((resolve) => setTimeout(resolve, 20));
        await (inlineRuns.size > 0 ? Promise.race([Promise.allSettled([...inlineRuns]), tick]) : tick);
      }
      stopped = true;
      await unlisten?.();
      await boss.stop({ graceful: true, wait: true, timeout: timeoutMs, close: true });
    },
  };
  return queue;
}

export type JobQueue = ReturnType<typeof createJobQueue>;
