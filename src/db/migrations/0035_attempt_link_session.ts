import { type Kysely, sql } from 'kysely';

/**
 * An attempt started from a Link page names its link. The Link domain follows the state of its attempts
 * (an attempt hook, in the attempt's transaction); with the link on the attempt, the hook skips every other
 * attempt without a statement (it was an update of `link_sessions` matching nothing, twice per connect).
 * Attempts already started from a link get its id here; one that a node of the earlier version starts during a
 * rolling upgrade has none, and its page catches the link up (src/link/service.ts, pageState).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table auth_attempts add column link_session_id text`.execute(db);
  await sql`update auth_attempts a set link_session_id = l.id from link_sessions l where l.attempt_id = a.id`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table auth_attempts drop column if exists link_session_id`.execute(db);
}
