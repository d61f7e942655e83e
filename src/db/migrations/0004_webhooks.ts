import { type Kysely, sql } from 'kysely';

/**
 * Webhook endpoints, one delivery per (event × matching endpoint), and every try of a delivery.
 * The outbox (`events`, 0002) gains a sequence (per-account order), `dispatched_at` (fan-out done)
 * and a trigger that NOTIFYs workers when an event commits.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table events add column seq bigserial`.execute(db);
  await sql`alter table events add column dispatched_at timestamptz`.execute(db);
  // Events written before webhooks existed have nobody to go to.
  await sql`update events set dispatched_at = created_at`.execute(db);
  await sql`create index events_undispatched_idx on events (seq) where dispatched_at is null`.execute(db);
  await sql`create index events_created_idx on events (created_at)`.execute(db);
  // Fires at commit time only for committed rows: NOTIFY is transactional.
  await sql`
    create or replace function fangate_events_notify() returns trigger language plpgsql as $$
    begin
      perform pg_notify('fangate_webhook_events', '');
      return null;
    end $$`.execute(db);
  await sql`
    create trigger events_notify after insert on events
    for each statement execute function fangate_events_notify()`.execute(db);

  await db.schema
    .createTable('webhook_endpoints')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('org_id', 'text', (c) => c.notNull().references('organizations.id').onDelete('cascade'))
    .addColumn('endpoint_url', 'text', (c) => c.notNull())
    .addColumn('events', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
    .addColumn('account_scope', 'text', (c) => c.notNull())
    .addColumn('account_ids', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
    .addColumn('enabled', 'boolean', (c) => c.notNull().defaultTo(true))
    .addColumn('disabled_reason', 'text')
    .addColumn('description', 'text')
    .addColumn('secret_enc', 'text', (c) => c.notNull())
    // After a rotation the old secret signs beside the new one until it expires.
    .addColumn('previous_secret_enc', 'text')
    .addColumn('previous_secret_expires_at', 'timestamptz')
    // First failed try since the last success: 5 days of failures disable the endpoint.
    .addColumn('failing_since', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('webhook_endpoints_org_created_idx').on('webhook_endpoints').columns(['org_id', 'created_at', 'id']).execute();

  await db.schema
    .createTable('webhook_deliveries')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('org_id', 'text', (c) => c.notNull())
    .addColumn('endpoint_id', 'text', (c) => c.notNull().references('webhook_endpoints.id').onDelete('cascade'))
    .addColumn('event_id', 'text', (c) => c.notNull().references('events.id').onDelete('cascade'))
    .addColumn('event', 'text', (c) => c.notNull())
    // Deliveries of one endpoint with the same order key go out one at a time, in `seq` order.
    .addColumn('order_key', 'text', (c) => c.notNull())
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('last_response_status', 'integer')
    // Sent again by hand (retry, recover): one try, then failed again if it fails.
    .addColumn('manual_retry', 'boolean', (c) => c.notNull().defaultTo(false))
    // Pending: when the next try is due. A worker that takes a delivery moves it to the end of its
    // lease, so a worker that dies mid-try leaves it due again (at least once).
    .addColumn('next_attempt_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('delivered_at', 'timestamptz')
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
    .execute();
  await sql`create index webhook_deliveries_due_idx on webhook_deliveries (next_attempt_at) where status = 'pending'`.execute(db);
  await sql`create index webhook_deliveries_order_idx on webhook_deliveries (endpoint_id, order_key, seq) where status = 'pending'`.execute(db);
  await db.schema.createIndex('webhook_deliveries_endpoint_created_idx').on('webhook_deliveries').columns(['endpoint_id', 'created_at', 'id']).execute();
  await db.schema.createIndex('webhook_deliveries_event_idx').on('webhook_deliveries').column('event_id').execute();

  await db.schema
    .createTable('webhook_delivery_tries')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('delivery_id', 'text', (c) => c.notNull().references('webhook_deliveries.id').onDelete('cascade'))
    .addColumn('attempted_at', 'timestamptz', (c) => c.notNull())
    .addColumn('response_status', 'integer')
    .addColumn('duration_ms', 'integer', (c) => c.notNull())
    .addColumn('error', 'text')
    .addColumn('response_body', 'text')
    .execute();
  await db.schema.createIndex('webhook_delivery_tries_delivery_idx').on('webhook_delivery_tries').columns(['delivery_id', 'id']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('webhook_delivery_tries').ifExists().execute();
  await db.schema.dropTable('webhook_deliveries').ifExists().execute();
  await db.schema.dropTable('webhook_endpoints').ifExists().execute();
  await sql`drop trigger if exists events_notify on events`.execute(db);
  await sql`drop function if exists fangate_events_notify()`.execute(db);
  await sql`drop index if exists events_undispatched_idx`.execute(db);
  await sql`drop index if exists events_created_idx`.execute(db);
  await sql`alter table events drop column if exists dispatched_at`.execute(db);
  await sql`alter table events drop column if exists seq`.execute(db);
}
