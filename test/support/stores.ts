import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { describe } from 'vitest';

/** A database for one test file: embedded PGlite in memory, or a fresh PostgreSQL database. */
export interface TestStore {
  kind: 'pglite' | 'postgres';
  /** DATABASE_URL for the app; undefined means PGlite. */
  databaseUrl: string | undefined;
  /** Drops the PostgreSQL database (no-op for PGlite). */
  drop(): Promise<void>;
}

const serverUrl = process.env.FANGATE_TEST_DATABASE_URL;

let warned = false;
function warnSkip() {
  if (warned) return;
  warned = true;
  console.warn('PostgreSQL tests SKIPPED: set FANGATE_TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test) to run them. `.ci/run` sets it.');
}

export async function createTestStore(kind: 'pglite' | 'postgres'): Promise<TestStore> {
  if (kind === 'pglite') return { kind, databaseUrl: undefined, drop: async () => undefined };
  if (!serverUrl) throw new Error('FANGATE_TEST_DATABASE_URL is not set');
  const name = `fangate_t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    kind,
    databaseUrl: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: serverUrl });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.end();
    },
  };
}

/**
 * Runs a suite once per store: always on PGlite, and on PostgreSQL when
 * FANGATE_TEST_DATABASE_URL is set — otherwise that half is reported as skipped, loudly.
 */
export function describeEachStore(name: string, suite: (kind: 'pglite' | 'postgres') => void): void {
  describe(`${name} [pglite]`, () => suite('pglite'));
  if (serverUrl) {
    describe(`${name} [postgres]`, () => suite('postgres'));
  } else {
    warnSkip();
    describe.skip(`${name} [postgres] (skipped: FANGATE_TEST_DATABASE_URL not set)`, () => suite('postgres'));
  }
}
