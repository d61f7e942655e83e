import { type Kysely, sql } from 'kysely';

/**
 * The audit log (DESIGN 11): who did what to which account, API key, webhook endpoint or the vault.
 * `org_id` is null for changes that concern every organisation (vault rotation). Listed per organisation
 * newest first with cursor pagination, filtered by action or target.
 * Beside it, the attempts' state history for the operator console (one row per state change).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('audit_events')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('org_id', 'text')
    .addColumn('actor_type', 'text', (c) => c.notNull())
    .addColumn('actor_id', 'text')
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('target_type', 'text', (c) => c.notNull())
    .addColumn('target_id', 'text')
    .addColumn('details', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('audit_events_org_created_idx').on('audit_events').columns(['org_id', 'created_at', 'id']).execute();
  await db.schema.createIndex('audit_events_target_idx').on('audit_events').columns(['target_id']).execute();

  await db.schema
    .createTable('attempt_transitions')
    .addColumn('seq', 'bigserial', (c) => c.primaryKey())
    .addColumn('attempt_id', 'text', (c) => c.notNull())
    .addColumn('org_id', 'text', (c) => c.notNull())
    .addColumn('from_state', 'text')
    .addColumn('to_state', 'text', (c) => c.notNull())
    .addColumn('error_code', 'text')
    .addColumn('at', 'timestamptz', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('attempt_transitions_attempt_idx').on('attempt_transitions').columns(['attempt_id', 'seq']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('attempt_transitions').execute();
  await db.schema.dropTable('audit_events').execute();
}
