import { type Kysely, sql } from 'kysely';

/**
 * The worker's sweep asks for open attempts whose time is up (`expires_at`) and pending ones that stopped
 * moving (`updated_at`) every few seconds: without an index each ask read every attempt ever made (29 ms at
 * 12,000, growing with the table). `auth_attempts_open_idx` (on `overall_deadline`) answered no query.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`create index auth_attempts_open_expiry_idx on auth_attempts (expires_at) where completed_at is null`.execute(db);
  await sql`create index auth_attempts_pending_idx on auth_attempts (updated_at) where state = 'pending'`.execute(db);
  await sql`drop index if exists auth_attempts_open_idx`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`create index if not exists auth_attempts_open_idx on auth_attempts (overall_deadline) where completed_at is null`.execute(db);
  await sql`drop index if exists auth_attempts_pending_idx`.execute(db);
  await sql`drop index if exists auth_attempts_open_expiry_idx`.execute(db);
}
