import type { Kysely } from 'kysely';

/**
 * An unfinished Idempotency-Key claim records the process that holds it (its liveness lock, see
 * `Database.nodeKey`), so the claim of a request whose process died is taken over at once instead of
 * answering `idempotency_key_in_use` until a lease runs out (issue 11).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('idempotency_keys').addColumn('owner', 'bigint').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('idempotency_keys').dropColumn('owner').execute();
}
