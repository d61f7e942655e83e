import { type Kysely, sql } from 'kysely';

/** The health monitor's schedule and backoff on accounts, and the Access API's shared token buckets. */
export async function up(db: Kysely<unknown>): Promise<void> {
  // Consecutive passing failures (checks or re-authentications): the backoff exponent; 0 after a success.
  await db.schema.alterTable('accounts').addColumn('check_failures', 'integer', (c) => c.notNull().defaultTo(0)).execute();
  // The monitor claims due accounts by next_check_at; only accounts it may check carry one.
  await sql`create index accounts_next_check_idx on accounts (next_check_at) where next_check_at is not null`.execute(db);
  await db.schema
    .createTable('access_buckets')
    .addColumn('account_id', 'text', (c) => c.primaryKey().references('accounts.id').onDelete('cascade'))
    .addColumn('tokens', 'double precision', (c) => c.notNull())
    .addColumn('allowed', 'boolean', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('access_buckets').ifExists().execute();
  await sql`drop index if exists accounts_next_check_idx`.execute(db);
  await db.schema.alterTable('accounts').dropColumn('check_failures').execute();
}
