import { type Kysely, Migrator, sql } from 'kysely';
import { migrations } from './migrations/index.js';

const provider = { getMigrations: async () => migrations };
// Domains add their migrations independently; each one stands alone (its own tables, columns and indexes),
// so one that arrives with a lower number than an applied one still runs instead of refusing to start.
const options = { provider, allowUnorderedMigrations: true };

/** Applies every pending migration; the same list runs on PGlite and PostgreSQL. */
export async function migrateToLatest(db: Kysely<any>): Promise<string[]> {
  if ((await pendingMigrations(db)).length === 0) return [];
  const migrator = new Migrator({ db, ...options });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
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
