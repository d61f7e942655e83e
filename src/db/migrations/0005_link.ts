import { type Kysely, sql } from 'kysely';

/** Link sessions: the hosted connect page (DESIGN 6). The page's token is stored only as its SHA-256. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('link_sessions')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('org_id', 'text', (c) => c.notNull().references('organizations.id').onDelete('cascade'))
    .addColumn('token_hash', 'text', (c) => c.notNull().unique())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('platform', 'text', (c) => c.notNull())
    .addColumn('redirect_url', 'text', (c) => c.notNull())
    .addColumn('client_reference_id', 'text')
    // Reconnect: the account the link re-authenticates (no foreign key: link/ owns no account rows).
    .addColumn('reconnect_account_id', 'text')
    .addColumn('connection_id', 'text')
    .addColumn('proxy_country', 'text')
    .addColumn('theme', 'text', (c) => c.notNull())
    // The attempt the page follows now, and its last state the link has taken over (guards against double events).
    .addColumn('attempt_id', 'text')
    .addColumn('attempt_state', 'text')
    .addColumn('attempts_started', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('error_code', 'text')
    .addColumn('error_message', 'text')
    // Where the creator was when they cancelled (the redirect's `step`).
    .addColumn('cancel_step', 'text')
    // The page ended (redirected): it accepts nothing from now on.
    .addColumn('finished_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('completed_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('link_sessions_attempt_idx').on('link_sessions').column('attempt_id').execute();
  await db.schema.createIndex('link_sessions_org_created_idx').on('link_sessions').columns(['org_id', 'created_at']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('link_sessions').ifExists().execute();
}
