import { type Kysely, sql } from 'kysely';

/**
 * A delivery is waiting (`next_attempt_at` null) behind its group's head, or is a head (due, leased or
 * retrying). The due index held the waiting ones too, and a planner without fresh statistics (PGlite never
 * analyses on its own; a backlog outruns autoanalyze) used it to find a group's next waiting delivery,
 * reading every waiting delivery of the table per finished head: a backlog of 30,000 events drained at
 * ≈ 400/s instead of ≈ 1,700/s, and a single account's backlog would have been quadratic. Heads now have
 * their own indexes (by due time for the claim, by group for "is this group busy"), which cannot answer for
 * waiting rows; those are found through the (endpoint, order_key, seq) index, one step past the head.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`drop index if exists webhook_deliveries_due_idx`.execute(db);
  await sql`create index webhook_deliveries_due_idx on webhook_deliveries (next_attempt_at) where status = 'pending' and next_attempt_at is not null`.execute(db);
  await sql`create index webhook_deliveries_head_idx on webhook_deliveries (endpoint_id, order_key) where status = 'pending' and next_attempt_at is not null`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop index if exists webhook_deliveries_head_idx`.execute(db);
  await sql`drop index if exists webhook_deliveries_due_idx`.execute(db);
  await sql`create index webhook_deliveries_due_idx on webhook_deliveries (next_attempt_at) where status = 'pending'`.execute(db);
}
