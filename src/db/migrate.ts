import { type Kysely, Migrator } from 'kysely';
import { migrations } from './migrations/index.js';

const provider = { getMigrations: async () => migrations };
// Domains add their migrations independently; each one stands alone (its own tables, columns and indexes),
// so one that arrives with a lower number than an applied one still runs instead of refusing to start.
const options = { provider, allowUnorderedMigrations: true };

/** Applies every pending migration; the same list runs on PGlite and PostgreSQL. */
export async function migrateToLatest(db: Kysely<any>): Promise<string[]> {
  const migrator = new Migrator({ db, ...options });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

/** Names of migrations not yet applied (for /readyz). */
export async function pendingMigrations(db: Kysely<any>): Promise<string[]> {
  const migrator = new Migrator({ db, ...options });
  const all = await migrator.getMigrations();
  return all.filter((m) => !m.executedAt).map((m) => m.name);
}
