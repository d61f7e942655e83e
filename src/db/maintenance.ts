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

/** Whether this PostgreSQL server runs autovacuum (a server configured with `autovacuum = off` does not). */
export async function autovacuumRuns(db: Kysely<DB>): Promise<boolean> {
  const { rows } = await sql<{ on: string }>`select current_setting('autovacuum') as on`.execute(db);
  return rows[0]?.on !== 'off';
}

/**
 * The same for a PostgreSQL server whose autovacuum is off, limited to FanGate's own tables (its schema and the
 * job queue's; the database may hold other applications' tables, which are theirs to look after). Attempts,
 * events, jobs and deliveries change all the time: with autovacuum off, every scan of them walked more dead
 * rows each hour (the test database of a CI machine ran at a third of its speed after 30,000 connects).
 */
export async function vacuumOwnTables(db: Kysely<DB>, jobSchema: string): Promise<void> {
  const { rows } = await sql<{ name: string }>`
    select format('%I.%I', n.nspname, c.relname) as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where c.relkind in ('r', 'p') and not c.relispartition and pg_has_role(c.relowner, 'USAGE')
      and (n.nspname = current_schema() or n.nspname = ${jobSchema})`.execute(db);
  // One table at a time (VACUUM cannot run in a transaction block, and a list would hold every lock at once).
  for (const { name } of rows) await sql.raw(`vacuum (analyze) ${name}`).execute(db);
}
