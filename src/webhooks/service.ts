import { type Actor, type AuditRecorder, noAudit } from '../lib/audit.js';
import { type Kysely, type Selectable, sql } from 'kysely';
import type { Logger } from 'pino';
import type { Database } from '../db/database.js';
import type { DB, WebhookAccountScope, WebhookDeliveriesTable, WebhookDeliveryStatus, WebhookEndpointsTable } from '../db/schema.js';
import type { Clock } from '../lib/clock.js';
import { ApiError, type FieldError, notFound, validationError } from '../lib/errors.js';
import { newId } from '../lib/ids.js';
import type { Registry } from '../lib/metrics.js';
import { decodeCursor, toPage } from '../lib/pagination.js';
import { AddressRefusedError, type Resolver, resolveAllowedAddress } from '../net/address-guard.js';
import type { Vault } from '../vault/vault.js';
import { catalog, isEventName } from './catalog.js';
import { createDeliveryWorker, type DeliveryTuning, defaultTuning, lockEndpoints, promoteHeads } from './delivery.js';
import { createSender } from './sender.js';
import { generateSecret, isValidSecret } from './signing.js';

type EndpointRow = Selectable<WebhookEndpointsTable>;
type DeliveryRow = Selectable<WebhookDeliveriesTable>;

export interface WebhookServiceOptions extends Partial<DeliveryTuning> {
  /** Resolves endpoint hosts (tests: a stub); `dns.lookup` by default. */
  resolver?: Resolver;
  /** Events and delivery logs older than this are pruned (default 30 days). */
  retentionMs?: number;
}

export interface WebhookServiceDeps {
  db: Kysely<DB>;
  database: Pick<Database, 'listen' | 'notify' | 'kind'>;
  vault: Vault;
  clock: Clock;
  logger: Logger;
  metrics: Registry;
  allowPrivate: boolean;
  concurrency: number;
  /** Ids among `ids` that are NOT accounts of the organisation. */
  missingAccounts(orgId: string, ids: string[]): Promise<string[]>;
  options?: WebhookServiceOptions;
  /** The audit log (written in the change's transaction). */
  audit?: AuditRecorder;
}

/** What the service needs of the job queue for its periodic prune. */
export interface WebhookJobs {
  every(def: { name: string; intervalMs: number; handler: () => Promise<void>; expireInSeconds?: number }): Promise<void>;
}

export interface EndpointInput {
  endpoint_url?: string;
  events?: string[];
  account_scope?: WebhookAccountScope;
  account_ids?: string[];
  signing_secret?: string;
  enabled?: boolean;
  description?: string | null;
}

const PRUNE_QUEUE = 'webhooks.prune';
const PRUNE_EVERY_SEC = 3600;
export const DEFAULT_RETENTION_MS = 30 * 24 * 3600 * 1000;
export const ROTATION_OVERLAP_MS = 24 * 3600 * 1000;

const iso = (d: Date | string | null): string | null => (d === null ? null : new Date(d).toISOString());

export function serializeEndpoint(row: EndpointRow) {
  return {
    id: row.id,
    endpoint_url: row.endpoint_url,
    events: row.events,
    account_scope: row.account_scope,
    account_ids: row.account_ids,
    enabled: row.enabled,
    disabled_reason: row.disabled_reason,
    description: row.description,
    created_at: iso(row.created_at)!,
    updated_at: iso(row.updated_at)!,
  };
}

export function serializeDelivery(row: DeliveryRow) {
  return {
    id: row.id,
    event_id: row.event_id,
    event: row.event,
    status: row.status,
    attempts: row.attempts,
    last_response_status: row.last_response_status,
    next_attempt_at: row.status === 'pending' ? iso(row.next_attempt_at) : null,
    created_at: iso(row.created_at)!,
    delivered_at: iso(row.delivered_at),
  };
}

/** What the audit log keeps of an endpoint: never its URL's path or query (they may carry a token), never the secret. */
function endpointFacts(row: { endpoint_url: string; enabled: boolean; events: string[] }) {
  let host: string | null = null;
  try {
    host = new URL(row.endpoint_url).host;
  } catch {
    host = null;
  }
  return { host, enabled: row.enabled, events: row.events };
}

export function createWebhookService(deps: WebhookServiceDeps) {
  const { db, vault, clock, logger } = deps;
  const audit = deps.audit ?? noAudit;
  const options = deps.options ?? {};
  const tuning: DeliveryTuning = { ...defaultTuning(deps.concurrency), ...stripUndefined(options) };
  const retentionMs = options.retentionMs ?? DEFAULT_RETENTION_MS;
  const sender = createSender({ allowPrivate: deps.allowPrivate, resolver: options.resolver, timeoutMs: tuning.timeoutMs, connectionsPerOrigin: tuning.perEndpointConcurrency });
  const worker = createDeliveryWorker({ db, database: deps.database, vault, sender, clock, logger, metrics: deps.metrics, tuning });
  let workerStarted = false;

  const place = (row: { org_id: string; id: string }, field: string) => ({ orgId: row.org_id, table: 'webhook_endpoints', field, recordId: row.id });

  async function loadEndpoint(orgId: string, id: string): Promise<EndpointRow> {
    const row = await db.selectFrom('webhook_endpoints').selectAll().where('org_id', '=', orgId).where('id', '=', id).executeTakeFirst();
    if (!row) throw notFound('Webhook endpoint');
    return row;
  }

  async function loadDelivery(orgId: string, endpointId: string, id: string): Promise<DeliveryRow> {
    const row = await db
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('org_id', '=', orgId)
      .where('endpoint_id', '=', endpointId)
      .where('id', '=', id)
      .executeTakeFirst();
    if (!row) throw notFound('Delivery');
    return row;
  }

  /** Every rule of an endpoint's fields, all problems in one answer. */
  async function check(orgId: string, input: EndpointInput, current?: EndpointRow): Promise<void> {
    const errors: FieldError[] = [];
    if (input.endpoint_url !== undefined) {
      const problem = await checkUrl(input.endpoint_url);
      if (problem) errors.push({ field: 'endpoint_url', message: problem });
    }
    for (const [i, name] of (input.events ?? []).entries()) {
      if (!isEventName(name)) errors.push({ field: `events/${i}`, message: `"${name}" is not an event; GET /api/webhooks/events lists them` });
    }
    const scope = input.account_scope ?? current?.account_scope ?? 'global';
    const ids = input.account_ids ?? (input.account_scope === undefined ? current?.account_ids : undefined) ?? [];
    if (scope === 'accounts' && ids.length === 0) errors.push({ field: 'account_ids', message: 'account_ids is required (1 or more accounts) when account_scope is "accounts"' });
    if (scope === 'global' && input.account_ids !== undefined && input.account_ids.length > 0) {
      errors.push({ field: 'account_ids', message: 'account_ids is only allowed with account_scope "accounts"' });
    }
    if (scope === 'accounts' && input.account_ids !== undefined && input.account_ids.length > 0) {
      const missing = await deps.missingAccounts(orgId, [...new Set(input.account_ids)]);
      for (const id of missing) errors.push({ field: `account_ids/${input.account_ids.indexOf(id)}`, message: `${id} is not an account of this organisation` });
    }
    if (input.signing_secret !== undefined && !isValidSecret(input.signing_secret)) {
      errors.push({ field: 'signing_secret', message: 'signing_secret must be "whsec_" followed by base64 of 24 to 64 random bytes' });
    }
    if (errors.length > 0) throw validationError(errors);
  }

  async function checkUrl(raw: string): Promise<string | undefined> {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      return 'endpoint_url must be an absolute http(s) URL';
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'endpoint_url must be an http:// or https:// URL';
    if (url.username || url.password) return 'endpoint_url must not carry a user name or password';
    try {
      await resolveAllowedAddress(url.hostname, { allowPrivate: deps.allowPrivate, resolver: options.resolver });
    } catch (error) {
      if (error instanceof AddressRefusedError) {
        return error.address
          ? `endpoint_url must reach a public address: ${error.message} (FANGATE_ALLOW_PRIVATE_WEBHOOKS=true allows it)`
          : `endpoint_url: ${error.message}`;
      }
      throw error;
    }
    return undefined;
  }

  const normaliseEvents = (events: string[] | undefined) => (events === undefined ? undefined : [...new Set(events)]);

  async function sendTest(orgId: string, id: string) {
    const endpoint = await loadEndpoint(orgId, id);
    const now = clock.now();
    const eventId = newId('evt');
    const deliveryId = newId('whd');
    await db.transaction().execute(async (trx) => {
      // Only for this endpoint: the event is born dispatched, with its one delivery.
      const { seq } = await trx
        .insertInto('events')
        .values({
          id: eventId,
          org_id: orgId,
          event: 'webhooks.test',
          account_id: null,
          attempt_id: null,
          client_reference_id: null,
          payload: JSON.stringify({ account: null, attempt: null }),
          created_at: now,
          dispatched_at: now,
        })
        .returning('seq')
        .executeTakeFirstOrThrow();
      await trx
        .insertInto('webhook_deliveries')
        // Leased to this request from the start, so that no worker sends it at the same time.
        .values({ id: deliveryId, org_id: orgId, endpoint_id: endpoint.id, event_id: eventId, event: 'webhooks.test', order_key: eventId, seq, status: 'pending', next_attempt_at: new Date(now.getTime() + tuning.timeoutMs + 30_000), created_at: now, updated_at: now })
        .execute();
    });
    await worker.deliverNow(deliveryId);
    return serializeDelivery(await loadDelivery(orgId, endpoint.id, deliveryId));
  }

  async function prune(): Promise<number> {
    const cutoff = new Date(clock.now().getTime() - retentionMs);
    let total = 0;
    for (;;) {
      // Deliveries and tries go with their event (ON DELETE CASCADE); pending work is never pruned.
      const result = await sql`
        delete from events where id in (
          select e.id from events e
          where e.created_at < ${cutoff} and e.dispatched_at is not null
            and not exists (select 1 from webhook_deliveries d where d.event_id = e.id and d.status = 'pending')
          limit 1000)`.execute(db);
      const n = Number(result.numAffectedRows ?? 0);
      total += n;
      if (n < 1000) break;
    }
    if (total > 0) logger.info({ events: total, before: cutoff.toISOString() }, 'pruned old webhook events and delivery logs');
    return total;
  }

  return {
    catalog,

    async create(orgId: string, input: EndpointInput & { endpoint_url: string }, actor: Actor) {
      await check(orgId, input);
      const now = clock.now();
      const id = newId('wh');
      const secret = input.signing_secret ?? generateSecret();
      const row = await db.transaction().execute(async (trx) => {
        const created = await trx
          .insertInto('webhook_endpoints')
          .values({
            id,
            org_id: orgId,
            endpoint_url: input.endpoint_url,
            events: normaliseEvents(input.events) ?? [],
            account_scope: input.account_scope ?? 'global',
            account_ids: [...new Set(input.account_ids ?? [])],
            enabled: input.enabled ?? true,
            disabled_reason: null,
            description: input.description ?? null,
            secret_enc: vault.encrypt(secret, place({ org_id: orgId, id }, 'secret_enc')),
            created_at: now,
            updated_at: now,
          })
          .returningAll()
          .executeTakeFirstOrThrow();
        await audit(trx, { orgId, action: 'webhook_endpoint.created', targetType: 'webhook_endpoint', targetId: id, details: endpointFacts(created), actor });
        return created;
      });
      logger.info({ org: orgId, endpoint: id }, 'webhook endpoint created');
      return { ...serializeEndpoint(row), signing_secret: secret };
    },

    async list(orgId: string, query: { limit: number; cursor?: string }) {
      const cursor = decodeCursor(query.cursor);
      let q = db.selectFrom('webhook_endpoints').selectAll().where('org_id', '=', orgId);
      if (cursor) q = q.where((eb) => eb.or([eb('created_at', '<', cursor.createdAt), eb.and([eb('created_at', '=', cursor.createdAt), eb('id', '<', cursor.id)])]));
      const rows = await q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(query.limit + 1).execute();
      return toPage(rows, query.limit, serializeEndpoint);
    },

    async get(orgId: string, id: string) {
      return serializeEndpoint(await loadEndpoint(orgId, id));
    },

    async update(orgId: string, id: string, input: EndpointInput, actor: Actor) {
      const current = await loadEndpoint(orgId, id);
      if (input.signing_secret !== undefined) {
        throw validationError([{ field: 'signing_secret', message: 'the signing secret changes only through POST /api/webhooks/{id}/rotate-secret' }]);
      }
      await check(orgId, input, current);
      const scope = input.account_scope ?? current.account_scope;
      const enabling = input.enabled === true && !current.enabled;
      const row = await db.transaction().execute(async (trx) => {
        const updated = await trx
          .updateTable('webhook_endpoints')
          .set({
            ...(input.endpoint_url !== undefined ? { endpoint_url: input.endpoint_url } : {}),
            ...(input.events !== undefined ? { events: normaliseEvents(input.events) } : {}),
            account_scope: scope,
            account_ids: scope === 'global' ? [] : [...new Set(input.account_ids ?? current.account_ids)],
            ...(input.enabled !== undefined ? { enabled: input.enabled } : {}),
            // Enabled again by hand: a fresh start, failures counted from now.
            ...(enabling ? { disabled_reason: null, failing_since: null } : {}),
            ...(input.description !== undefined ? { description: input.description } : {}),
            updated_at: clock.now(),
          })
          .where('org_id', '=', orgId)
          .where('id', '=', id)
          .returningAll()
          .executeTakeFirst();
        if (!updated) throw notFound('Webhook endpoint');
        const fields = Object.keys(input).filter((k) => (input as Record<string, unknown>)[k] !== undefined).sort();
        await audit(trx, { orgId, action: 'webhook_endpoint.updated', targetType: 'webhook_endpoint', targetId: id, details: { fields, ...endpointFacts(updated) }, actor });
        return updated;
      });
      if (enabling) await worker.wake();
      return serializeEndpoint(row);
    },

    async remove(orgId: string, id: string, actor: Actor): Promise<void> {
      await db.transaction().execute(async (trx) => {
        const deleted = await trx.deleteFrom('webhook_endpoints').where('org_id', '=', orgId).where('id', '=', id).returningAll().executeTakeFirst();
        if (!deleted) throw notFound('Webhook endpoint');
        await audit(trx, { orgId, action: 'webhook_endpoint.deleted', targetType: 'webhook_endpoint', targetId: id, details: endpointFacts(deleted), actor });
      });
      logger.info({ org: orgId, endpoint: id }, 'webhook endpoint deleted');
    },

    async rotateSecret(orgId: string, id: string, actor: Actor) {
      const current = await loadEndpoint(orgId, id);
      const secret = generateSecret();
      const now = clock.now();
      // The old secret keeps signing beside the new one for 24 h.
      const previous = vault.decrypt(current.secret_enc, place(current, 'secret_enc'));
      const row = await db.transaction().execute(async (trx) => {
        const rotated = await trx
          .updateTable('webhook_endpoints')
          .set({
            secret_enc: vault.encrypt(secret, place(current, 'secret_enc')),
            previous_secret_enc: vault.encrypt(previous, place(current, 'previous_secret_enc')),
            previous_secret_expires_at: new Date(now.getTime() + ROTATION_OVERLAP_MS),
            updated_at: now,
          })
          .where('org_id', '=', orgId)
          .where('id', '=', id)
          .returningAll()
          .executeTakeFirstOrThrow();
        await audit(trx, { orgId, action: 'webhook_endpoint.secret_rotated', targetType: 'webhook_endpoint', targetId: id, details: { old_secret_valid_until: rotated.previous_secret_expires_at?.toISOString() ?? null }, actor });
        return rotated;
      });
      logger.info({ org: orgId, endpoint: id }, 'webhook signing secret rotated');
      return { ...serializeEndpoint(row), signing_secret: secret, previous_secret_expires_at: iso(row.previous_secret_expires_at)! };
    },

    test: sendTest,

    async listDeliveries(orgId: string, endpointId: string, query: { limit: number; cursor?: string; status?: WebhookDeliveryStatus; event?: string }) {
      await loadEndpoint(orgId, endpointId);
      const cursor = decodeCursor(query.cursor);
      let q = db.selectFrom('webhook_deliveries').selectAll().where('org_id', '=', orgId).where('endpoint_id', '=', endpointId);
      if (query.status) q = q.where('status', '=', query.status);
      if (query.event) q = q.where('event', '=', query.event);
      if (cursor) q = q.where((eb) => eb.or([eb('created_at', '<', cursor.createdAt), eb.and([eb('created_at', '=', cursor.createdAt), eb('id', '<', cursor.id)])]));
      const rows = await q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(query.limit + 1).execute();
      return toPage(rows, query.limit, serializeDelivery);
    },

    async getDelivery(orgId: string, endpointId: string, id: string) {
      const row = await loadDelivery(orgId, endpointId, id);
      const tries = await db.selectFrom('webhook_delivery_tries').selectAll().where('delivery_id', '=', id).orderBy('id', 'asc').execute();
      return {
        ...serializeDelivery(row),
        tries: tries.map((t) => ({
          attempted_at: iso(t.attempted_at)!,
          response_status: t.response_status,
          duration_ms: t.duration_ms,
          error: t.error,
          response_body: t.response_body,
        })),
      };
    },

    async retryDelivery(orgId: string, endpointId: string, id: string) {
      const current = await loadDelivery(orgId, endpointId, id);
      if (current.status === 'pending') {
        throw new ApiError(409, 'delivery_pending', 'This delivery is still pending: it is tried again on its own schedule.', {
          extra: { next_attempt_at: iso(current.next_attempt_at) },
        });
      }
      const now = clock.now();
      // Back in its account's queue: sent at once unless older deliveries of that account are pending.
      const row = await db.transaction().execute(async (trx) => {
        await lockEndpoints(trx, [endpointId]);
        const queued = await trx
          .updateTable('webhook_deliveries')
          .set({ status: 'pending', manual_retry: true, next_attempt_at: null, updated_at: now })
          .where('id', '=', id)
          .where('status', '!=', 'pending')
          .returningAll()
          .executeTakeFirst();
        if (queued) await promoteHeads(trx, [{ endpointId, orderKey: queued.order_key }], now);
        return trx.selectFrom('webhook_deliveries').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
      });
      await worker.wake();
      logger.info({ org: orgId, endpoint: endpointId, delivery: id }, 'webhook delivery queued again by hand');
      return serializeDelivery(row);
    },

    async recover(orgId: string, endpointId: string, since: Date) {
      await loadEndpoint(orgId, endpointId);
      const now = clock.now();
      // In each account's order: the oldest becomes due, the others wait their turn.
      const recovered = await db.transaction().execute(async (trx) => {
        await lockEndpoints(trx, [endpointId]);
        const rows = await trx
          .updateTable('webhook_deliveries')
          .set({ status: 'pending', manual_retry: true, next_attempt_at: null, updated_at: now })
          .where('org_id', '=', orgId)
          .where('endpoint_id', '=', endpointId)
          .where('status', '=', 'failed')
          .where('created_at', '>=', since)
          .returning(['order_key'])
          .execute();
        await promoteHeads(trx, [...new Set(rows.map((r) => r.order_key))].map((orderKey) => ({ endpointId, orderKey })), now);
        return rows.length;
      });
      await worker.wake();
      logger.info({ org: orgId, endpoint: endpointId, recovered, since: since.toISOString() }, 'failed webhook deliveries queued again');
      return { recovered };
    },

    prune,

    /** The hourly prune, one run at a time across all nodes; call on worker nodes. */
    async registerWorkers(jobs: WebhookJobs): Promise<void> {
      await jobs.every({ name: PRUNE_QUEUE, intervalMs: PRUNE_EVERY_SEC * 1000, expireInSeconds: 600, handler: async () => void (await prune()) });
    },

    /** After the job queue started: the delivery worker. */
    async start(): Promise<void> {
      await worker.start();
      workerStarted = true;
    },

    async stop(): Promise<void> {
      if (workerStarted) await worker.stop();
      await sender.close();
    },
  };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export type WebhookService = ReturnType<typeof createWebhookService>;
