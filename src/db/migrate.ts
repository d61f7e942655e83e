import { type Kysely, Migrator, sql } from 'kysely';
import { migrations } from './migrations/index.js';
import type { Database } from './database.js';
import { SCHEMA_CHANNEL } from './prepared.js';

const provider = { getMigrations: async () => migrations };
// Domains add their migrations independently; each one stands alone (its own tables, columns and indexes),
// so one that arrives with a lower number than an applied one still runs instead of refusing to start.
const options = { provider, allowUnorderedMigrations: true };

/** How long the nodes running get to hear that a migration begins (PostgreSQL, an existing schema). */
const MIGRATION_NOTICE_MS = 1000;

/** Brings `database` to the latest schema: with notice on PostgreSQL, where other nodes may be running. */
export const migrateDatabase = (database: Pick<Database, 'db' | 'kind'>) =>
  migrateToLatest(database.db, { noticeMs: database.kind === 'postgres' ? MIGRATION_NOTICE_MS : 0 });

/**
 * Applies every pending migration; the same list runs on PGlite and PostgreSQL. On a schema other nodes may
 * be using (an upgrade, not a fresh database), `noticeMs` > 0 announces the migration and waits that long
 * first, so that they stop using prepared statements whose plans it would make stale (src/db/prepared.ts).
 */
export async function migrateToLatest(db: Kysely<any>, { noticeMs = 0 }: { noticeMs?: number } = {}): Promise<string[]> {
  const pending = await pendingMigrations(db);
  if (pending.length === 0) return [];
  const announce = (payload: string) => sql`select pg_notify(${SCHEMA_CHANNEL}, ${payload})`.execute(db);
  const upgrade = noticeMs > 0 && pending.length < Object.keys(migrations).length;
  if (upgrade) {
    await announce('migrating');
    await new Promise((resolve) => setTimeout(resolve, noticeMs));
  }
  let applied: string[] = [];
  try {
    const { error, results } = await new Migrator({ db, ...options }).migrateToLatest();
    applied = (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
    if (error) throw error instanceof Error ? error : new Error(String(error));
    return applied;
  } finally {
    // Also after a failure: the others go back to prepared statements, afresh.
    if (upgrade || applied.length > 0) await announce(`migrated ${applied.at(-1) ?? ''}`.trim()).catch(() => undefined);
  }
}

/**
 * Names of migrations not yet applied (for /readyz, and the start's check before the migrator). Two plain
 * queries: Kysely's Migrator first introspects every table and column of the database to find its own two
 * tables, ≈ 50–100 ms on PGlite, which every /readyz paid.
 */
export async function pendingMigrations(db: Kysely<any>): Promise<string[]> {
  const known = Object.keys(migrations).sort();
  const { rows } = await sql<{ present: boolean }>`select to_regclass('kysely_migration') is not null as present`.execute(db);
  if (!rows[0]?.present) return known;
  const applied = new Set((await sql<{ name: string }>`select name from kysely_migration`.execute(db)).rows.map((r) => r.name));
  return known.filter((name) => !applied.has(name));
}
