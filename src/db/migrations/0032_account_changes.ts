import { type Kysely, sql } from 'kysely';

/**
 * Every change of an account that its users can see (status, session, proxy, identity, profile) NOTIFYs
 * `fangate_accounts` with its id, whichever code path wrote it: each node keeps the account rows the Access
 * API reads in memory and drops one when its NOTIFY arrives (issue 9/14). The health schedule's own columns
 * are left out: the monitor moves thousands of them a second and nothing cached depends on them.
 */
const SCHEDULE_COLUMNS = `'{last_checked_at,next_check_at,check_failures,updated_at}'::text[]`;

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create or replace function fangate_accounts_notify() returns trigger language plpgsql as $$
    begin
      perform pg_notify('fangate_accounts', old.id);
      return null;
    end $$`.execute(db);
  await sql
    .raw(
      `create trigger accounts_changed_notify after update on accounts for each row
       when ((to_jsonb(old) - ${SCHEDULE_COLUMNS}) is distinct from (to_jsonb(new) - ${SCHEDULE_COLUMNS}))
       execute function fangate_accounts_notify()`,
    )
    .execute(db);
  await sql`create trigger accounts_deleted_notify after delete on accounts for each row execute function fangate_accounts_notify()`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop trigger if exists accounts_deleted_notify on accounts`.execute(db);
  await sql`drop trigger if exists accounts_changed_notify on accounts`.execute(db);
  await sql`drop function if exists fangate_accounts_notify()`.execute(db);
}
