import { type Kysely, sql } from 'kysely';
import type { DB } from './schema.js';

/**
 * The embedded database's autovacuum. PGlite runs no autovacuum or autoanalyze: without this, rows that
 * were updated or deleted (webhook deliveries, jobs, attempts) stay as dead rows for ever and the planner
 * keeps the statistics of an empty database (it chose a full scan of pending deliveries on every promotion).
 * VACUUM skips the pages the visibility map marks all-visible, so a frequent run costs little.
 */
export async function vacuumEmbedded(db: Kysely<DB>): Promise<void> {
  await sql`vacuum (analyze)`.execute(db);
}
