import { type Kysely, sql } from 'kysely';

/** Connected platform accounts and the login attempts that create and renew them. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('accounts')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('org_id', 'text', (c) => c.notNull().references('organizations.id').onDelete('cascade'))
    .addColumn('platform', 'text', (c) => c.notNull())
    .addColumn('display_name', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('auth_type', 'text', (c) => c.notNull())
    .addColumn('imported', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('remember_credentials', 'boolean', (c) => c.notNull().defaultTo(true))
    .addColumn('client_reference_id', 'text')
    .addColumn('platform_user_id', 'text', (c) => c.notNull())
    .addColumn('platform_username', 'text', (c) => c.notNull())
    .addColumn('platform_name', 'text', (c) => c.notNull())
    .addColumn('platform_avatar', 'text')
    // Proxy without its password (which lives in proxy_password_enc).
    .addColumn('proxy', 'jsonb', (c) => c.notNull())
    .addColumn('proxy_password_enc', 'text')
    .addColumn('user_agent', 'text', (c) => c.notNull())
    .addColumn('device_id', 'text', (c) => c.notNull())
    .addColumn('credentials_enc', 'text')
    .addColumn('totp_secret_enc', 'text')
    .addColumn('session_enc', 'text')
    .addColumn('last_challenges', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
    .addColumn('health_check_interval_sec', 'integer', (c) => c.notNull().defaultTo(900))
    .addColumn('last_checked_at', 'timestamptz')
    .addColumn('next_check_at', 'timestamptz')
    .addColumn('expired_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('accounts_platform_user_uq').on('accounts').columns(['org_id', 'platform', 'platform_user_id']).unique().execute();
  await db.schema.createIndex('accounts_org_created_idx').on('accounts').columns(['org_id', 'created_at', 'id']).execute();

  await db.schema
    .createTable('auth_attempts')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('org_id', 'text', (c) => c.notNull().references('organizations.id').onDelete('cascade'))
    .addColumn('platform', 'text', (c) => c.notNull())
    .addColumn('auth_type', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('progress', 'text', (c) => c.notNull())
    .addColumn('account_id', 'text', (c) => c.references('accounts.id').onDelete('set null'))
    .addColumn('client_reference_id', 'text')
    .addColumn('display_name', 'text')
    .addColumn('force_connect', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('remember_credentials', 'boolean', (c) => c.notNull().defaultTo(true))
    .addColumn('otp_channel', 'text')
    .addColumn('phone_last4', 'text')
    .addColumn('email_mask', 'text')
    .addColumn('face_verification_url', 'text')
    .addColumn('attempts_remaining', 'integer')
    .addColumn('wrong_codes', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('challenges', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
    .addColumn('error_code', 'text')
    .addColumn('error_message', 'text')
    .addColumn('existing_account_id', 'text')
    // Secrets of this attempt (credentials, session, TOTP secret, proxy password), encrypted.
    .addColumn('input_enc', 'text')
    // The driver's state between steps, and a submitted code waiting for a worker; encrypted.
    .addColumn('resume_enc', 'text')
    .addColumn('pending_code_enc', 'text')
    // What the worker does next, and a counter that makes stale step jobs harmless.
    .addColumn('step', 'text')
    .addColumn('step_seq', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('proxy', 'jsonb', (c) => c.notNull())
    .addColumn('user_agent', 'text', (c) => c.notNull())
    .addColumn('device_id', 'text', (c) => c.notNull())
    .addColumn('mobile_code_hash', 'text', (c) => c.unique())
    .addColumn('input_deadline', 'timestamptz')
    .addColumn('overall_deadline', 'timestamptz', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    // Re-authentications: the account's status before, restored when the attempt fails harmlessly.
    .addColumn('prior_account_status', 'text')
    .addColumn('version', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('completed_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('auth_attempts_account_idx').on('auth_attempts').columns(['account_id', 'state']).execute();
  // The expiry sweep looks only at attempts still running.
  await db.schema
    .createIndex('auth_attempts_open_idx')
    .on('auth_attempts')
    .column('overall_deadline')
    .where(sql.ref('completed_at'), 'is', null)
    .execute();

  // Transactional outbox of account events (webhook deliveries read from it).
  await db.schema
    .createTable('events')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('org_id', 'text', (c) => c.notNull().references('organizations.id').onDelete('cascade'))
    .addColumn('event', 'text', (c) => c.notNull())
    .addColumn('account_id', 'text')
    .addColumn('attempt_id', 'text')
    .addColumn('client_reference_id', 'text')
    .addColumn('payload', 'jsonb', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('events_org_created_idx').on('events').columns(['org_id', 'created_at']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('events').ifExists().execute();
  await db.schema.dropTable('auth_attempts').ifExists().execute();
  await db.schema.dropTable('accounts').ifExists().execute();
}
