import { type Kysely, type RawBuilder, sql, type Transaction } from 'kysely';
import type { Logger } from 'pino';
import { Counter, Histogram, type Registry } from 'prom-client';
import type { Database } from '../db/database.js';
import type { DB, WebhookDeliveryStatus } from '../db/schema.js';
import type { Clock } from '../lib/clock.js';
import { newId } from '../lib/ids.js';
import type { Vault } from '../vault/vault.js';
import type { Sender } from './sender.js';
import { signHeaders } from './signing.js';

/**
 * Delivery from the outbox, in two steps that each survive a crash at any point:
 *
 * 1. Fan-out: a dispatcher claims undispatched events (`FOR UPDATE SKIP LOCKED`), inserts one delivery
 *    per matching endpoint and marks the events dispatched, in one transaction. Woken by the NOTIFY the
 *    `events` trigger sends on commit, and by a periodic catch-up.
 * 2. Delivery: a worker claims batches of due deliveries by moving `next_attempt_at` to the end of a
 *    lease (timeout + margin), sends them with bounded concurrency (per worker and per endpoint), and
 *    writes outcomes in batches. A worker that dies mid-try leaves the delivery due again when its lease
 *    ends: at least once.
 *
 * Order: deliveries of one endpoint for one account form a group (`order_key`); only the group's head
 * has a `next_attempt_at`, the others wait (null) and the next is promoted in the transaction that
 * records the head's final outcome. Claiming is then a plain index scan on `next_attempt_at`, whatever
 * the backlog.
 */

export const EVENTS_CHANNEL = 'fangate_webhook_events';
export const DELIVERIES_CHANNEL = 'fangate_webhook_deliveries';

/** DESIGN 9: retries after the first try. */
export const DEFAULT_RETRY_SCHEDULE_MS = [5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000];
const FIVE_DAYS_MS = 5 * 24 * 3600 * 1000;
const MAX_RETRY_AFTER_SEC = 24 * 3600;

export interface DeliveryTuning {
  /** Deliveries in flight per worker (FANGATE_WEBHOOK_CONCURRENCY). */
  concurrency: number;
  /** Deliveries in flight per endpoint per worker (half the slots by default). */
  perEndpointConcurrency: number;
  /** The same for an endpoint whose last try here failed or timed out: a slow or dead endpoint holds few slots. */
  failingEndpointConcurrency: number;
  timeoutMs: number;
  retryScheduleMs: number[];
  /** ± this fraction of each retry delay, so retries of many deliveries spread out. */
  jitter: number;
  /** Catch-up poll: events missed by NOTIFY, retries that became due. */
  pollMs: number;
  /** How long a failing endpoint is kept before it is disabled. */
  disableAfterFailingMs: number;
  /**
   * Outcome writes in flight per worker; by default 3 on PostgreSQL (a write mostly waits for round
   * trips, and writes of distinct groups do not wait for each other), 1 on PGlite (one connection).
   */
  outcomeWriters?: number;
}

export const defaultTuning = (concurrency = 32): DeliveryTuning => ({
  concurrency,
  perEndpointConcurrency: Math.max(1, Math.ceil(concurrency / 2)),
  failingEndpointConcurrency: Math.max(1, Math.ceil(concurrency / 8)),
  timeoutMs: 15_000,
  retryScheduleMs: DEFAULT_RETRY_SCHEDULE_MS,
  jitter: 0.1,
  pollMs: 1_000,
  disableAfterFailingMs: FIVE_DAYS_MS,
});

export interface Claimed {
  id: string;
  org_id: string;
  endpoint_id: string;
  event_id: string;
  event: string;
  order_key: string;
  attempts: number;
  manual_retry: boolean;
  endpoint_url: string;
  secret_enc: string;
  previous_secret_enc: string | null;
  previous_secret_expires_at: Date | null;
  /** The endpoint's `failing_since` when claimed: health is written only when an outcome changes it. */
  failing_since: Date | null;
  account_id: string | null;
  attempt_id: string | null;
  client_reference_id: string | null;
  payload: unknown;
  event_created_at: Date;
}

export interface Outcome {
  id: string;
  endpointId: string;
  orderKey: string;
  status: WebhookDeliveryStatus;
  attempts: number;
  responseStatus: number | null;
  nextAttemptAt: Date | null;
  deliveredAt: Date | null;
  tryAt: Date;
  durationMs: number;
  error: string | null;
  responseBody: string | null;
  effect: 'success' | 'failure' | 'gone';
  /** The endpoint was failing when the delivery was claimed. */
  wasFailing: boolean;
}

export interface DeliveryWorkerDeps {
  db: Kysely<DB>;
  database: Pick<Database, 'listen' | 'notify' | 'kind'>;
  vault: Vault;
  sender: Sender;
  clock: Clock;
  logger: Logger;
  metrics: Registry;
  tuning: DeliveryTuning;
}

/** The body of an event, as every endpoint receives it (DESIGN 9). */
export function eventBody(row: Pick<Claimed, 'event_id' | 'event' | 'event_created_at' | 'account_id' | 'attempt_id' | 'client_reference_id' | 'payload'>): string {
  return JSON.stringify({
    id: row.event_id,
    event: row.event,
    created_at: new Date(row.event_created_at).toISOString(),
    account_id: row.account_id,
    attempt_id: row.attempt_id,
    client_reference_id: row.client_reference_id,
    payload: row.payload,
  });
}

/**
 * Serialises the decisions about a group's head between fan-out (which adds waiting deliveries) and
 * outcomes / manual retries (which promote the next): per endpoint, in id order (no deadlocks).
 */
export async function lockEndpoints(trx: Kysely<DB> | Transaction<DB>, endpointIds: string[]): Promise<void> {
  const ids = [...new Set(endpointIds)].sort();
  if (ids.length === 0) return;
  await sql`select pg_advisory_xact_lock(7245017, hashtext(id)) from (select unnest(${ids}::text[]) as id order by 1) s`.execute(trx);
}

/**
 * Runs `body` in a transaction that begins with synchronous_commit off and shared endpoint locks, sent in
 * one round trip (parameterless SQL may hold several statements; ids are ours, quoted as literals).
 * Shared: outcome writes of one endpoint touch distinct groups (a group has one head at a time, and only
 * its outcome promotes the next), so they need not wait for each other, only for fan-out and manual
 * retries, which take the lock exclusively (same order: no deadlock).
 */
async function inOutcomeTransaction<T>(db: Kysely<DB>, endpointIds: string[], body: (trx: Kysely<DB>) => Promise<T>, oneAtATime = false): Promise<T> {
  // PGlite runs one transaction at a time (one connection): no lock can be waited for, and no commit waits for a
  // disk flush of its own. The preamble cost ≈ 0.1 ms of PGlite's CPU per delivery.
  if (oneAtATime) return db.transaction().execute(body);
  const ids = [...new Set(endpointIds)].sort();
  const plain = ids.every((id) => /^[A-Za-z0-9_-]+$/.test(id));
  const locks = plain && ids.length > 0
    ? `; select pg_advisory_xact_lock_shared(7245017, hashtext(id)) from (select unnest(array[${ids.map((id) => `'${id}'`).join(',')}]::text[]) as id order by 1) s`
    : '';
  // A lost outcome means one more try (at least once), so the commit need not wait for the disk.
  return inTransactionAfter(db, `select set_config('synchronous_commit', 'off', true)${locks}`, async (conn) => {
    if (!plain) await sql`select pg_advisory_xact_lock_shared(7245017, hashtext(id)) from (select unnest(${ids}::text[]) as id order by 1) s`.execute(conn);
    return body(conn);
  });
}

/** Runs `body` in a transaction whose `begin` goes in one round trip with `preamble` (constant SQL: settings, locks). */
async function inTransactionAfter<T>(db: Kysely<DB>, preamble: string, body: (trx: Kysely<DB>) => Promise<T>): Promise<T> {
  return db.connection().execute(async (conn) => {
    await sql.raw(`begin; ${preamble}`).execute(conn);
    try {
      const result = await body(conn);
      await sql`commit`.execute(conn);
      return result;
    } catch (error) {
      await sql`rollback`.execute(conn).catch(() => undefined);
      throw error;
    }
  });
}

/** Groups with waiting deliveries and no head (a safety net; the locks above should leave none). */
async function repairHeads(db: Kysely<DB>, now: Date): Promise<number> {
  const result = await sql`
    update webhook_deliveries d set next_attempt_at = ${now}, updated_at = ${now}
    from (
      select distinct on (w.endpoint_id, w.order_key) w.id
      from webhook_deliveries w
      where w.status = 'pending' and w.next_attempt_at is null
        and not exists (
          select 1 from webhook_deliveries h
          where h.endpoint_id = w.endpoint_id and h.order_key = w.order_key and h.status = 'pending' and h.next_attempt_at is not null)
      order by w.endpoint_id, w.order_key, w.seq
    ) nxt
    where d.id = nxt.id`.execute(db);
  return Number(result.numAffectedRows ?? 0);
}

/** The columns a worker needs to send a delivery, on `d` (delivery), `w` (endpoint) and `e` (event). */
const CLAIMED_COLUMNS = sql`d.id, d.org_id, d.endpoint_id, d.event_id, d.event, d.order_key, d.attempts, d.manual_retry,
  w.endpoint_url, w.secret_enc, w.previous_secret_enc, w.previous_secret_expires_at, w.failing_since,
  e.account_id, e.attempt_id, e.client_reference_id, e.payload, e.created_at as event_created_at`;

/**
 * The oldest waiting delivery of each group of `groups` (a relation with `endpoint_id`, `order_key`) whose
 * group has no due or in-flight head, not counting `finishing` (heads whose final outcome the same
 * statement records). Per group two probes, both LATERAL … LIMIT 1 so that the planner keeps them per group
 * (with stale statistics, and PGlite never auto-analyzes, it turned a NOT EXISTS into a hash anti-join over
 * every pending delivery): the (endpoint_id, order_key, seq) index for the next waiting one, the heads' own
 * index for a busy head (migration 0034: the due index may not answer for waiting rows).
 */
function nextHeads(groups: RawBuilder<unknown>, finishing: string[]): RawBuilder<{ id: string }> {
  return sql`
    select nxt.id from ${groups} g
    cross join lateral (
      select q.id from webhook_deliveries q
      where q.endpoint_id = g.endpoint_id and q.order_key = g.order_key and q.status = 'pending' and q.next_attempt_at is null
      order by q.seq limit 1
    ) nxt
    left join lateral (
      select true as busy from webhook_deliveries h
      where h.endpoint_id = g.endpoint_id and h.order_key = g.order_key and h.status = 'pending' and h.next_attempt_at is not null
        and h.id <> all(${finishing}::text[])
      limit 1
    ) head on true
    where head.busy is null`;
}

/**
 * Makes the oldest waiting delivery of each group due now, in groups with no due (or in-flight)
 * delivery: after deliveries are queued again by hand. (A worker's outcomes do the same in their own
 * statement, see `writeOutcomes`.)
 */
export async function promoteHeads(db: Kysely<DB> | Transaction<DB>, groups: Array<{ endpointId: string; orderKey: string }>, now: Date): Promise<void> {
  if (groups.length === 0) return;
  const values = sql.join(groups.map((g) => sql`(${g.endpointId}::text, ${g.orderKey}::text)`));
  await sql`
    update webhook_deliveries d set next_attempt_at = ${now}, updated_at = ${now}
    from (${nextHeads(sql`(select distinct * from (values ${values}) as v(endpoint_id, order_key))`, [])}) nxt
    where d.id = nxt.id`.execute(db);
}

export function createDeliveryWorker(deps: DeliveryWorkerDeps) {
  const { db, database, vault, sender, clock, logger, tuning } = deps;
  const leaseMs = tuning.timeoutMs + 30_000;
  /**
   * The line per outcome carries only the fields named where it is written (ids, counts, status, timing,
   * the sender's error text): none is a secret, so it skips the redaction pass, which checks every secret
   * path (wildcards too) on each line and cost about a tenth of a delivery's CPU.
   */
  const outcomeLog = logger.child({}, { redact: [] });
  const refillAt = Math.max(1, Math.floor(tuning.concurrency / 4));
  /** Claimed rows kept ready beside the slots, so that one claim feeds many tries. */
  const maxQueued = tuning.concurrency * 2;

  const deliveries = new Counter({
    name: 'fangate_webhook_deliveries_total',
    help: 'Webhook delivery tries by outcome: succeeded, retrying (failed, another try is scheduled), failed (no more tries).',
    labelNames: ['outcome'] as const,
    registers: [deps.metrics],
  });
  const lag = new Histogram({
    name: 'fangate_webhook_delivery_lag_seconds',
    help: 'Time from an event being written to the outbox to its successful delivery.',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600],
    registers: [deps.metrics],
  });

  let stopped = true;
  let inflight = 0;
  const perEndpoint = new Map<string, number>();
  // Endpoints whose last try in this worker failed; bounded like the in-flight map (cleared on success).
  const failing = new Set<string>();
  const capOf = (endpointId: string) =>
    failing.has(endpointId) ? Math.min(tuning.failingEndpointConcurrency, tuning.perEndpointConcurrency) : tuning.perEndpointConcurrency;
  /**
   * Claimed, leased and not started yet. An endpoint holds (in flight + queued) at most four times its
   * slots when healthy, twice when failing: a slow endpoint's rows wait here without blocking others,
   * whose rows are started first whenever the slow one has no free slot.
   */
  let queue: Array<{ row: Claimed; leaseUntil: Date }> = [];
  const queuedPerEndpoint = new Map<string, number>();
  const holdOf = (endpointId: string) => capOf(endpointId) * (failing.has(endpointId) ? 2 : 4);
  /** Answered, outcome not written yet: its write may lease the group's next delivery to us. */
  const writingPerEndpoint = new Map<string, number>();
  const heldBy = (endpointId: string) => (perEndpoint.get(endpointId) ?? 0) + (queuedPerEndpoint.get(endpointId) ?? 0) + (writingPerEndpoint.get(endpointId) ?? 0);
  const bump = (map: Map<string, number>, key: string, by: number) => {
    const n = (map.get(key) ?? 0) + by;
    if (n <= 0) map.delete(key);
    else map.set(key, n);
  };
  /** Outcomes tried but not yet written; bounds memory when writing falls behind sending. */
  let unwritten = 0;
  /** The last claim found less than it asked for: claim again only when something may have become due. */
  let starved = false;
  /**
   * The last claim found nothing but skipped these endpoints (they held all they may): claim again when
   * one of them has room, not at every answer.
   */
  let blockedOn: string[] = [];
  const running = new Set<Promise<void>>();
  /**
   * Runs `body` one run at a time; a trigger while it runs asks for one more run after it, so no wake-up
   * is lost and none piles up. Stops re-running once the worker stops.
   */
  function coalesced(body: () => Promise<void>, onError: (error: unknown) => void) {
    let active: Promise<void> | undefined;
    let again = false;
    return {
      trigger(): void {
        if (stopped) return;
        if (active) {
          again = true;
          return;
        }
        active = (async () => {
          try {
            do {
              again = false;
              await body();
            } while (again && !stopped);
          } catch (error) {
            onError(error);
          } finally {
            active = undefined;
          }
        })();
      },
      /** The run in progress, if any (for a graceful stop). */
      get running(): Promise<void> | undefined {
        return active;
      },
    };
  }
  let timer: NodeJS.Timeout | undefined;
  const unlisteners: Array<() => Promise<void>> = [];
  let pendingOutcomes: Array<{ outcome: Outcome; done: () => void }> = [];
  const writers = new Set<Promise<void>>();
  const maxWriters = Math.max(1, tuning.outcomeWriters ?? (database.kind === 'postgres' ? 3 : 1));
  /**
   * Outcomes waiting that justify a write beside the running one: half the slots' worth. Fewer wait for
   * the running write, in a bigger batch (with a quarter, batches halved and PostgreSQL spent a third
   * more CPU per delivery planning and committing them).
   */
  const extraWriterAt = Math.max(1, Math.floor(tuning.concurrency / 2));

  // ---- fan-out ------------------------------------------------------------------------------

  /** Events one fan-out transaction takes at most. */
  const FANOUT_BATCH = 500;
  /** Fans out up to `limit` undispatched events; answers how many it took. */
  async function dispatchBatch(limit = FANOUT_BATCH): Promise<number> {
    const now = clock.now();
    const leaseUntil = new Date(now.getTime() + leaseMs);
    const leased: Claimed[] = [];
    let leftDue = false;
    // Losing this commit in a database crash only means fanning out again: no need to wait for the disk.
    // No bitmap scan: every event fanned out leaves a dead entry in the undispatched index until a vacuum,
    // and only a plain index scan marks them dead for the next scans (a bitmap scan visited all of them
    // each time, 20 ms after 12,000 connects). Both settings travel with the `begin`.
    const taken = await inTransactionAfter(db, `select set_config('synchronous_commit', 'off', true), set_config('enable_bitmapscan', 'off', true)`, async (trx) => {
      // Taken and marked dispatched in one statement, before the endpoint locks: every statement after the
      // locks holds up the outcome writes of those endpoints. (`= any(array(…))` runs the queue read once, first,
      // and finds the rows by primary key whatever the statistics say.)
      const events = (
        await sql<{ id: string; org_id: string; event: string; account_id: string | null; attempt_id: string | null; client_reference_id: string | null; payload: unknown; created_at: Date; seq: string }>`
          update events set dispatched_at = ${now}
          where id = any(array(select id from events where dispatched_at is null order by seq limit ${limit} for update skip locked))
          returning id, org_id, event, account_id, attempt_id, client_reference_id, payload, created_at, seq`.execute(trx)
      ).rows.sort((a, b) => Number(a.seq) - Number(b.seq));
      if (events.length === 0) return 0;
      const orgIds = [...new Set(events.map((e) => e.org_id))];
      const endpoints = await trx
        .selectFrom('webhook_endpoints')
        .select(['id', 'org_id', 'events', 'account_scope', 'account_ids', 'endpoint_url', 'secret_enc', 'previous_secret_enc', 'previous_secret_expires_at', 'failing_since'])
        .where('org_id', 'in', orgIds)
        .where('enabled', '=', true)
        .execute();
      // A group is an endpoint's deliveries for one account (an event without one is a group of its own).
      const rows: Array<{ id: string; orderKey: string; e: (typeof events)[number]; w: (typeof endpoints)[number] }> = [];
      for (const e of events) {
        for (const w of endpoints) {
          if (w.org_id !== e.org_id) continue;
          if (w.events.length > 0 && !w.events.includes(e.event)) continue;
          if (w.account_scope === 'accounts' && (!e.account_id || !w.account_ids.includes(e.account_id))) continue;
          rows.push({ id: newId('whd'), orderKey: e.account_id ?? e.id, e, w });
        }
      }
      if (rows.length === 0) return events.length;
      // What each endpoint may still take here: a running worker leases that many new heads to itself, as a
      // claim would (the common delivery, the only pending one of its account, then needs no claim).
      const roomOf = [...new Set(rows.map((r) => r.w.id))].map((id) => ({ id, room: stopped ? 0 : Math.max(0, holdOf(id) - heldBy(id)) }));
      await lockEndpoints(trx, endpoints.map((w) => w.id));
      // One statement under the locks, one array per column: the first new delivery of a group is its head
      // unless the group has pending ones already (a LATERAL … LIMIT 1 probe per group, whatever the
      // statistics say); each endpoint's oldest heads up to its room are leased, the other heads due now.
      const col = <T,>(f: (r: (typeof rows)[number]) => T) => rows.map(f);
      const inserted = await sql<{ id: string; leased: boolean | null; due: boolean | null }>`
        with v as (
          select * from unnest(${col((r) => r.id)}::text[], ${col((r) => r.e.org_id)}::text[], ${col((r) => r.w.id)}::text[], ${col((r) => r.e.id)}::text[],
            ${col((r) => r.e.event)}::text[], ${col((r) => r.orderKey)}::text[], ${col((r) => r.e.seq)}::bigint[])
            as v(id, org_id, endpoint_id, event_id, event, order_key, seq)
        ),
        firsts as (select distinct on (endpoint_id, order_key) id, endpoint_id, order_key, seq from v order by endpoint_id, order_key, seq),
        heads as (
          select f.id, row_number() over (partition by f.endpoint_id order by f.seq) as n, coalesce(r.room, 0) as room
          from firsts f
          left join lateral (
            select true as busy from webhook_deliveries d
            where d.endpoint_id = f.endpoint_id and d.order_key = f.order_key and d.status = 'pending' limit 1
          ) p on true
          left join unnest(${roomOf.map((r) => r.id)}::text[], ${roomOf.map((r) => r.room)}::int[]) as r(endpoint_id, room) on r.endpoint_id = f.endpoint_id
          where p.busy is null
        )
        insert into webhook_deliveries (id, org_id, endpoint_id, event_id, event, order_key, seq, status, next_attempt_at, created_at, updated_at)
        select v.id, v.org_id, v.endpoint_id, v.event_id, v.event, v.order_key, v.seq, 'pending',
          case when h.id is null then null when h.n <= h.room then ${leaseUntil}::timestamptz else ${now}::timestamptz end, ${now}, ${now}
        from v left join heads h on h.id = v.id
        returning id, next_attempt_at = ${leaseUntil}::timestamptz as leased, next_attempt_at = ${now}::timestamptz as due`.execute(trx);
      const byId = new Map(rows.map((r) => [r.id, r]));
      for (const row of inserted.rows) {
        if (row.due) leftDue = true;
        if (!row.leased) continue;
        const { id, orderKey, e, w } = byId.get(row.id)!;
        leased.push({
          id, org_id: e.org_id, endpoint_id: w.id, event_id: e.id, event: e.event, order_key: orderKey, attempts: 0, manual_retry: false,
          endpoint_url: w.endpoint_url, secret_enc: w.secret_enc, previous_secret_enc: w.previous_secret_enc, previous_secret_expires_at: w.previous_secret_expires_at, failing_since: w.failing_since,
          account_id: e.account_id, attempt_id: e.attempt_id, client_reference_id: e.client_reference_id, payload: e.payload, event_created_at: e.created_at,
        });
      }
      return events.length;
    });
    await enqueue(leased, leaseUntil);
    if (leftDue) {
      await database.notify(DELIVERIES_CHANNEL, '').catch(() => undefined);
      wakePump();
    }
    return taken;
  }

  /** Drains the outbox; one run at a time per worker, re-run when woken meanwhile. */
  const dispatcher = coalesced(
    async () => {
      // Until a batch takes all there is: events committed after its read NOTIFY and run this again, so a
      // further read that would find nothing (a transaction of four statements per wake-up) is left out.
      while (!stopped && (await dispatchBatch()) >= FANOUT_BATCH);
    },
    (error) => logger.error({ err: error }, 'webhook fan-out failed; the catch-up retries it'),
  );
  const dispatch = dispatcher.trigger;

  // ---- delivery -----------------------------------------------------------------------------

  async function claim(limit: number): Promise<{ rows: Claimed[]; leaseUntil: Date; full: boolean }> {
    const now = clock.now();
    const leaseUntil = new Date(now.getTime() + leaseMs);
    const held = new Set([...perEndpoint.keys(), ...queuedPerEndpoint.keys()]);
    const saturated = [...held].filter((id) => heldBy(id) >= holdOf(id));
    // What each endpoint held here may still take; others up to a healthy endpoint's hold.
    const partly = [...held].filter((id) => heldBy(id) < holdOf(id));
    const partlyRoom = partly.map((id) => holdOf(id) - heldBy(id));
    const rows = await sql<Claimed>`
      with cand as (
        select d.id, d.endpoint_id, d.next_attempt_at, d.seq
        from webhook_deliveries d
        join webhook_endpoints w on w.id = d.endpoint_id
        where d.status = 'pending' and d.next_attempt_at <= ${now} and w.enabled
          and not (d.endpoint_id = any(${saturated}::text[]))
        order by d.next_attempt_at
        limit ${limit * 4}
        for update of d skip locked
      ), ranked as (
        select id, endpoint_id, next_attempt_at, seq, row_number() over (partition by endpoint_id order by next_attempt_at, seq) as rn from cand
      ), picked as (
        select r.id from ranked r
        left join unnest(${partly}::text[], ${partlyRoom}::int[]) as h(endpoint_id, room) on h.endpoint_id = r.endpoint_id
        where r.rn <= coalesce(h.room, ${tuning.perEndpointConcurrency * 4})
        order by r.next_attempt_at, r.seq limit ${limit}
      )
      update webhook_deliveries d set next_attempt_at = ${leaseUntil}, updated_at = ${now}
      from picked, events e, webhook_endpoints w
      where d.id = picked.id and e.id = d.event_id and w.id = d.endpoint_id
      returning ${CLAIMED_COLUMNS}`.execute(db);
    // Over the per-endpoint bound (deliveries of this endpoint were already held here): hand back.
    const keep: Claimed[] = [];
    const giveBack: string[] = [];
    const counts = new Map<string, number>();
    for (const row of rows.rows) {
      const n = counts.get(row.endpoint_id) ?? heldBy(row.endpoint_id);
      if (n >= holdOf(row.endpoint_id)) giveBack.push(row.id);
      else {
        counts.set(row.endpoint_id, n + 1);
        keep.push(row);
      }
    }
    if (giveBack.length > 0) await db.updateTable('webhook_deliveries').set({ next_attempt_at: now }).where('id', 'in', giveBack).execute();
    blockedOn = keep.length === 0 && giveBack.length === 0 ? saturated : [];
    return { rows: keep, leaseUntil, full: rows.rows.length >= limit || saturated.length > 0 || giveBack.length > 0 };
  }

  /**
   * Endpoint secrets decrypted once per worker rather than once per delivery (the signer kept them in
   * memory already). Keyed by where the ciphertext sits too, so the vault's binding of a ciphertext to its
   * record still holds; a rotated secret is a new ciphertext, hence a new entry.
   */
  const secretCache = new Map<string, string>();
  function secretOf(row: Claimed, field: 'secret_enc' | 'previous_secret_enc', ciphertext: string): string {
    const key = `${row.org_id}\u0000${row.endpoint_id}\u0000${field}\u0000${ciphertext}`;
    let secret = secretCache.get(key);
    if (secret === undefined) {
      secret = vault.decrypt(ciphertext, { orgId: row.org_id, table: 'webhook_endpoints', recordId: row.endpoint_id, field });
      if (secretCache.size >= 1000) secretCache.clear();
      secretCache.set(key, secret);
    }
    return secret;
  }

  /** Sends one claimed delivery and decides what comes next; writes nothing. */
  async function attempt(row: Claimed): Promise<Outcome> {
    const secrets = [secretOf(row, 'secret_enc', row.secret_enc)];
    const now = clock.now();
    if (row.previous_secret_enc && row.previous_secret_expires_at && new Date(row.previous_secret_expires_at) > now) {
      secrets.push(secretOf(row, 'previous_secret_enc', row.previous_secret_enc));
    }
    const body = eventBody(row);
    // Real time, not the injectable clock: receivers compare it with their own clock.
    const headers = signHeaders(secrets, row.event_id, new Date(), body);
    const tryAt = clock.now();
    const result = await sender.send(row.endpoint_url, headers, body);
    const attempts = row.attempts + 1;
    const base = { id: row.id, endpointId: row.endpoint_id, orderKey: row.order_key, wasFailing: row.failing_since !== null, attempts, responseStatus: result.status, tryAt, durationMs: result.durationMs, error: result.error, responseBody: result.body };
    const ok = result.status !== null && result.status >= 200 && result.status < 300;
    if (ok) {
      lag.observe(Math.max(0, (Date.now() - new Date(row.event_created_at).getTime()) / 1000));
      return { ...base, status: 'succeeded', nextAttemptAt: null, deliveredAt: clock.now(), effect: 'success' };
    }
    if (result.status === 410) return { ...base, status: 'failed', nextAttemptAt: null, deliveredAt: null, effect: 'gone' };
    const delay = tuning.retryScheduleMs[attempts - 1];
    if (delay === undefined || row.manual_retry) return { ...base, status: 'failed', nextAttemptAt: null, deliveredAt: null, effect: 'failure' };
    const jittered = delay * (1 + (Math.random() * 2 - 1) * tuning.jitter);
    const asked = result.retryAfterSec === null ? 0 : Math.min(result.retryAfterSec, MAX_RETRY_AFTER_SEC) * 1000;
    return { ...base, status: 'pending', nextAttemptAt: new Date(clock.now().getTime() + Math.max(jittered, asked)), deliveredAt: null, effect: 'failure' };
  }

  /** Writes outcomes (deliveries, tries, endpoint health) in one transaction. */
  async function writeOutcomes(all: Outcome[]): Promise<void> {
    if (all.length === 0) return;
    const now = clock.now();
    let outcomes = all;
    const leaseUntil = new Date(now.getTime() + leaseMs);
    const finals = outcomes.filter((o) => o.status !== 'pending');
    // Heads of endpoints that this batch may disable are made due, not leased: the claim checks them again.
    const noLease = [...new Set(outcomes.filter((o) => o.effect === 'gone' || (o.effect === 'failure' && o.wasFailing)).map((o) => o.endpointId))];
    const lease = stopped ? null : leaseUntil;
    // The endpoint locks serialise head decisions with fan-out and manual retries.
    const { changed: disabled, leased } = await inOutcomeTransaction(db, finals.map((o) => o.endpointId), async (trx) => {
      // One array per column: the statement's text and its 10 parameters are the same whatever the batch
      // size (a row of parameters per outcome cost compiling, sending and parsing).
      const col = <T,>(f: (o: Outcome) => T) => outcomes.map(f);
      const v = sql`select * from unnest(${col((o) => o.id)}::text[], ${col((o) => o.status)}::text[], ${col((o) => o.attempts)}::int[],
        ${col((o) => o.responseStatus)}::int[], ${col((o) => o.nextAttemptAt)}::timestamptz[], ${col((o) => o.deliveredAt)}::timestamptz[],
        ${col((o) => o.tryAt)}::timestamptz[], ${col((o) => o.durationMs)}::int[], ${col((o) => o.error)}::text[], ${col((o) => o.responseBody)}::text[])`;
      // One statement records the outcomes and their tries, and hands each finished group over to its next
      // waiting delivery, leased to this worker (a running one) as a claim would. Deliveries deleted
      // meanwhile (with their endpoint) match nothing and have nothing to record.
      const result = await sql<Claimed & { alive: string[] | null; leased: boolean | null }>`
        with v(id, status, attempts, rs, nat, da, tried_at, duration_ms, error, body) as (${v}),
        upd as (
          update webhook_deliveries d set status = v.status, attempts = v.attempts, last_response_status = v.rs,
            next_attempt_at = v.nat, delivered_at = v.da, manual_retry = false, updated_at = ${now}
          from v where d.id = v.id
          returning d.id, d.endpoint_id, d.order_key, d.status
        ),
        tries as (
          insert into webhook_delivery_tries (delivery_id, attempted_at, response_status, duration_ms, error, response_body)
          select v.id, v.tried_at, v.rs, v.duration_ms, v.error, v.body from v join upd on upd.id = v.id
        ),
        nxt as (${nextHeads(sql`(select distinct endpoint_id, order_key from upd where status <> 'pending')`, finals.map((o) => o.id))}),
        promoted as (
          update webhook_deliveries d
          set next_attempt_at = case when ${lease}::timestamptz is not null and w.enabled and not (w.id = any(${noLease}::text[])) then ${lease}::timestamptz else ${now}::timestamptz end,
            updated_at = ${now}
          from nxt, events e, webhook_endpoints w
          where d.id = nxt.id and e.id = d.event_id and w.id = d.endpoint_id
          returning ${CLAIMED_COLUMNS}, d.next_attempt_at > ${now}::timestamptz as leased
        )
        select case when row_number() over () = 1 then a.alive end as alive, p.* from (select array_agg(id) as alive from upd) a left join promoted p on true`.execute(trx);
      // The recorded ids come once, on one row (not repeated on every promoted row).
      const ids = new Set(result.rows.find((r) => r.alive)?.alive ?? []);
      outcomes = outcomes.filter((o) => ids.has(o.id));
      const leased: Claimed[] = result.rows.filter((r) => r.leased);
      if (outcomes.length === 0) return { changed: [], leased };
      const succeeded = [...new Set(outcomes.filter((o) => o.effect === 'success').map((o) => o.endpointId))];
      const failing = [...new Set(outcomes.filter((o) => o.effect === 'failure').map((o) => o.endpointId))].filter((id) => !succeeded.includes(id));
      const gone = [...new Set(outcomes.filter((o) => o.effect === 'gone').map((o) => o.endpointId))];
      const changed: Array<{ id: string; org_id: string; disabled_reason: string | null }> = [];
      // Endpoint health is written only when it changes: a success clears a failing endpoint, a failure
      // marks a healthy one; the claim told us which they were. (An endpoint marked by another worker
      // after our claim is cleared by our next claim's success.)
      const wasFailing = new Set(outcomes.filter((o) => o.wasFailing).map((o) => o.endpointId));
      const toClear = succeeded.filter((id) => wasFailing.has(id));
      const toMark = failing.filter((id) => !wasFailing.has(id));
      const toCheck = failing.filter((id) => wasFailing.has(id));
      const touched = [...new Set([...toClear, ...toMark, ...toCheck, ...gone])];
      if (touched.length > 1) {
        // Writes running side by side lock the endpoint rows they change in one order: no deadlock.
        await sql`select 1 from webhook_endpoints where id = any(${touched}::text[]) order by id for no key update`.execute(trx);
      }
      if (toClear.length > 0) {
        await trx.updateTable('webhook_endpoints').set({ failing_since: null }).where('id', 'in', toClear).where('failing_since', 'is not', null).execute();
      }
      if (toMark.length > 0) {
        await trx.updateTable('webhook_endpoints').set({ failing_since: now }).where('id', 'in', toMark).where('failing_since', 'is', null).execute();
      }
      if (toCheck.length > 0) {
        const cutoff = new Date(now.getTime() - tuning.disableAfterFailingMs);
        changed.push(
          ...(await trx
            .updateTable('webhook_endpoints')
            .set({ enabled: false, disabled_reason: 'failing_for_5_days', updated_at: now })
            .where('id', 'in', toCheck)
            .where('enabled', '=', true)
            .where('failing_since', '<=', cutoff)
            .returning(['id', 'org_id', 'disabled_reason'])
            .execute()),
        );
      }
      if (gone.length > 0) {
        changed.push(
          ...(await trx
            .updateTable('webhook_endpoints')
            .set({ enabled: false, disabled_reason: 'endpoint_gone', updated_at: now })
            .where('id', 'in', gone)
            .where('enabled', '=', true)
            .returning(['id', 'org_id', 'disabled_reason'])
            .execute()),
        );
      }
      return { changed, leased };
    }, database.kind === 'pglite');
    await enqueue(leased, leaseUntil);
    for (const o of outcomes) {
      if (o.effect === 'success') failing.delete(o.endpointId);
      else if (failing.size < 10_000) failing.add(o.endpointId);
      const outcome = o.status === 'succeeded' ? 'succeeded' : o.status === 'pending' ? 'retrying' : 'failed';
      deliveries.inc({ outcome });
      const fields = { delivery: o.id, endpoint: o.endpointId, attempt: o.attempts, status: o.responseStatus, durationMs: o.durationMs, error: o.error ?? undefined, nextAttemptAt: o.nextAttemptAt ?? undefined };
      if (outcome === 'succeeded') outcomeLog.info(fields, 'webhook delivered');
      else if (outcome === 'retrying') outcomeLog.warn(fields, 'webhook delivery try failed; will retry');
      else outcomeLog.warn(fields, 'webhook delivery failed; no more tries');
    }
    for (const e of disabled) logger.warn({ endpoint: e.id, org: e.org_id, reason: e.disabled_reason }, 'webhook endpoint disabled');
  }

  /**
   * Writes pending outcomes in batches. One writer gathers what finishes close together (each write is a
   * transaction); while it runs, more writers start (up to maxWriters) once enough outcomes wait. A
   * writer goes on with what is left only if it is the last one or a batch is worth it, so batches stay big.
   */
  function flushSoon(): void {
    if (pendingOutcomes.length === 0 || writers.size >= maxWriters) return;
    if (writers.size > 0 && pendingOutcomes.length < extraWriterAt) return;
    const first = writers.size === 0;
    // Runs after it is counted among the writers (the loop below asks whether it is the last one).
    const writer = Promise.resolve().then(async () => {
      if (first) await new Promise((resolve) => setTimeout(resolve, inflight > pendingOutcomes.length ? 2 : 0));
      while (pendingOutcomes.length > 0 && (writers.size === 1 || pendingOutcomes.length >= extraWriterAt)) {
        const batch = pendingOutcomes;
        pendingOutcomes = [];
        try {
          await writeOutcomes(batch.map((b) => b.outcome));
        } catch (error) {
          // One bad outcome must not lose the others: write them one by one. What still fails is sent
          // again when its lease runs out (at least once).
          logger.error({ err: error, deliveries: batch.length }, 'writing webhook delivery outcomes failed');
          if (batch.length > 1) {
            for (const b of batch) await writeOutcomes([b.outcome]).catch((e) => logger.error({ err: e, delivery: b.outcome.id }, 'writing a webhook delivery outcome failed'));
          }
        }
        for (const b of batch) b.done();
      }
    }).finally(() => {
      writers.delete(writer);
      flushSoon();
      // The next deliveries of finished groups came back leased with the write: a claim is needed only
      // when the queue runs low (and the last claim found more), or for retries (the poll wakes those).
      pumpSoon();
    });
    writers.add(writer);
  }

  /**
   * Sends one claimed delivery. Its slot is free once the receiver answered; the outcome is written
   * in the next batch (the lease covers a crash before that: sent again, at least once).
   */
  function start(row: Claimed): void {
    inflight++;
    perEndpoint.set(row.endpoint_id, (perEndpoint.get(row.endpoint_id) ?? 0) + 1);
    const task = (async () => {
      let outcome: Outcome | undefined;
      try {
        outcome = await attempt(row);
      } catch (error) {
        logger.error({ err: error, delivery: row.id }, 'webhook delivery crashed; the lease makes it due again');
      }
      inflight--;
      const n = (perEndpoint.get(row.endpoint_id) ?? 1) - 1;
      if (n <= 0) perEndpoint.delete(row.endpoint_id);
      else perEndpoint.set(row.endpoint_id, n);
      if (outcome) {
        const o = outcome;
        unwritten++;
        bump(writingPerEndpoint, o.endpointId, 1);
        // The failing set decides the endpoint's slots before the write lands.
        if (o.effect === 'success') failing.delete(o.endpointId);
        else if (failing.size < 10_000) failing.add(o.endpointId);
        startQueued();
        pumpSoon();
        await new Promise<void>((resolve) => {
          pendingOutcomes.push({ outcome: o, done: resolve });
          flushSoon();
        });
        unwritten--;
        bump(writingPerEndpoint, o.endpointId, -1);
      }
    })().finally(() => {
      running.delete(task);
      startQueued();
      pumpSoon();
    });
    running.add(task);
  }

  /** Starts queued rows that have a free slot (theirs and the worker's); drops rows whose lease is nearly over. */
  function startQueued(): void {
    if (stopped || queue.length === 0) return;
    const latest = clock.now().getTime() + tuning.timeoutMs + 5_000;
    const left: typeof queue = [];
    for (const item of queue) {
      const id = item.row.endpoint_id;
      const expiring = item.leaseUntil.getTime() < latest;
      const startable = !expiring && inflight < tuning.concurrency && unwritten < maxQueued * 2 && (perEndpoint.get(id) ?? 0) < capOf(id);
      if (startable || expiring) {
        const q = (queuedPerEndpoint.get(id) ?? 1) - 1;
        if (q <= 0) queuedPerEndpoint.delete(id);
        else queuedPerEndpoint.set(id, q);
        // An expiring row is left to its lease: due again soon, here or on another worker.
        if (startable) start(item.row);
      } else left.push(item);
    }
    queue = left;
  }

  /** Queues rows leased to this worker and starts what has a slot; after a stop, hands them back instead. */
  async function enqueue(rows: Claimed[], leaseUntil: Date): Promise<void> {
    if (rows.length === 0) return;
    if (stopped) {
      await handBack(rows.map((r) => r.id), leaseUntil);
      return;
    }
    for (const row of rows) {
      queue.push({ row, leaseUntil });
      queuedPerEndpoint.set(row.endpoint_id, (queuedPerEndpoint.get(row.endpoint_id) ?? 0) + 1);
    }
    startQueued();
  }

  /** Makes leased rows due again at once, unless their lease passed to someone else meanwhile. */
  async function handBack(ids: string[], leaseUntil: Date): Promise<void> {
    await db
      .updateTable('webhook_deliveries')
      .set({ next_attempt_at: clock.now() })
      .where('id', 'in', ids)
      .where('status', '=', 'pending')
      .where('next_attempt_at', '=', leaseUntil)
      .execute()
      .catch((error) => logger.warn({ err: error }, 'handing back unstarted webhook deliveries failed; their lease makes them due'));
  }

  /** Claims again when the queue runs low, unless the last claim found nothing more to do. */
  function pumpSoon(): void {
    const blocked = blockedOn.length > 0 && blockedOn.every((id) => heldBy(id) >= holdOf(id));
    if (!starved && !blocked && queue.length <= refillAt) pump();
    else if (inflight === 0 && queue.length === 0 && unwritten === 0) pump();
  }

  /** Fills the queue and the free slots with due deliveries; one run at a time, re-run when woken meanwhile. */
  const pumper = coalesced(
    async () => {
      while (!stopped) {
        startQueued();
        // Free slots that no queued row can take (their endpoints are busy) are always fed.
        const room = Math.max(maxQueued - queue.length - inflight, queue.length > 0 ? tuning.concurrency - inflight : 0, 0);
        if (room === 0 || queue.length >= maxQueued * 2 || unwritten >= maxQueued * 2) break;
        const claimed = await claim(room);
        await enqueue(claimed.rows, claimed.leaseUntil);
        starved = !claimed.full;
        if (!claimed.full || claimed.rows.length === 0) break;
      }
    },
    (error) => logger.error({ err: error }, 'claiming webhook deliveries failed; the next poll retries'),
  );
  const wakePump = () => {
    starved = false;
    blockedOn = [];
    pumper.trigger();
  };
  const pump = pumper.trigger;

  let lastRepair = 0;
  function tick(): void {
    dispatch();
    wakePump();
    if (Date.now() - lastRepair > 30_000) {
      lastRepair = Date.now();
      void repairHeads(db, clock.now())
        .then((n) => n > 0 && logger.warn({ groups: n }, 'webhook deliveries were waiting behind no one; sent now'))
        .catch((error) => logger.error({ err: error }, 'webhook head repair failed'));
    }
    timer = setTimeout(tick, tuning.pollMs);
    timer.unref();
  }

  return {
    /** Sends one delivery now (the `test` route), outside the worker's slots; answers its outcome. */
    async deliverNow(deliveryId: string): Promise<Outcome | undefined> {
      const now = clock.now();
      const rows = await sql<Claimed>`
        update webhook_deliveries d set next_attempt_at = ${new Date(now.getTime() + leaseMs)}, updated_at = ${now}
        from events e, webhook_endpoints w
        where d.id = ${deliveryId} and e.id = d.event_id and w.id = d.endpoint_id and d.status = 'pending'
        returning ${CLAIMED_COLUMNS}`.execute(db);
      const row = rows.rows[0];
      if (!row) return undefined;
      const outcome = await attempt(row);
      await writeOutcomes([outcome]);
      return outcome;
    },

    /** Wakes this worker (and, through NOTIFY, every other) for deliveries due now. */
    async wake(): Promise<void> {
      await database.notify(DELIVERIES_CHANNEL, '').catch(() => undefined);
      wakePump();
    },

    async start(): Promise<void> {
      if (!stopped) return;
      stopped = false;
      unlisteners.push(await database.listen(EVENTS_CHANNEL, () => dispatch()));
      unlisteners.push(await database.listen(DELIVERIES_CHANNEL, () => wakePump()));
      tick();
    },

    /** Stops claiming; lets tries in flight finish and records them. */
    async stop(): Promise<void> {
      if (stopped) return;
      stopped = true;
      clearTimeout(timer);
      for (const unlisten of unlisteners.splice(0)) await unlisten().catch(() => undefined);
      await Promise.allSettled([dispatcher.running, pumper.running]);
      // Rows claimed but not started are due again at once (unless their lease passed to someone else).
      const unstarted = queue.splice(0);
      queuedPerEndpoint.clear();
      const byLease = new Map<number, string[]>();
      for (const item of unstarted) byLease.set(item.leaseUntil.getTime(), [...(byLease.get(item.leaseUntil.getTime()) ?? []), item.row.id]);
      for (const [lease, ids] of byLease) await handBack(ids, new Date(lease));
      await Promise.allSettled([...running]);
      while (writers.size > 0) await Promise.all([...writers]);
    },
  };
}

export type DeliveryWorker = ReturnType<typeof createDeliveryWorker>;
