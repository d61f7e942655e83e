import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { startTestApp, type TestApp } from '../support/app.js';
import { createTestStore, type TestStore } from '../support/stores.js';

/** PGlite runs no autovacuum: FanGate vacuums and analyses the embedded database itself. */
describe('embedded database maintenance [pglite]', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp('pglite', { env: { FANGATE_EMBEDDED_VACUUM_INTERVAL_SEC: '1' } });
  });
  afterAll(async () => {
    await app?.close();
  });

  it('vacuums and analyses the tables on its interval, so dead rows are reclaimed and statistics are current', async () => {
    // Some updated rows: an attempt that moved through a few states.
    const start = await app.api('/api/authenticate', { method: 'POST', body: { email: 'vacuum-me+sms@sandbox.test', password: 'password' } });
    expect(start.status).toBe(200);
    const db = app.fangate.database.db;
    const stats = async () =>
      (
        await sql<{ last_vacuum: Date | null; last_analyze: Date | null; n_dead_tup: string }>`
          select last_vacuum, last_analyze, n_dead_tup from pg_stat_user_tables where relname = 'auth_attempts'`.execute(db)
      ).rows[0];
    const deadline = Date.now() + 20_000;
    let seen = await stats();
    while ((!seen?.last_vacuum || !seen.last_analyze) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      seen = await stats();
    }
    expect(seen?.last_vacuum).toBeInstanceOf(Date);
    expect(seen?.last_analyze).toBeInstanceOf(Date);
  });
});

/**
 * A PostgreSQL server may run without autovacuum (this machine's does): FanGate then vacuums its own tables on the
 * same interval and says so at start, and leaves other applications' tables in the database alone. With autovacuum
 * on, it leaves the work to the server.
 */
const postgresUrl = process.env.FANGATE_TEST_DATABASE_URL;
(postgresUrl ? describe : describe.skip)(`database maintenance [postgres]${postgresUrl ? '' : ' (skipped: FANGATE_TEST_DATABASE_URL not set)'}`, () => {
  let app: TestApp;
  let store: TestStore;
  beforeAll(async () => {
    store = await createTestStore('postgres');
    const client = new pg.Client({ connectionString: store.databaseUrl });
    await client.connect();
    // Another application's table in the same database, with dead rows of its own.
    await client.query('create schema other_app; create table other_app.t (n int); insert into other_app.t select generate_series(1, 100); delete from other_app.t');
    await client.end();
    app = await startTestApp('postgres', { store, env: { FANGATE_EMBEDDED_VACUUM_INTERVAL_SEC: '1' } });
  });
  afterAll(async () => {
    await app?.close();
    await store?.drop();
  });

  it('vacuums and analyses its own tables (and the job queue’s) when the server’s autovacuum is off, and no other table', async () => {
    const db = app.fangate.database.db;
    const autovacuum = (await sql<{ on: string }>`select current_setting('autovacuum') as on`.execute(db)).rows[0]!.on;
    const stats = async (schema: string, table: string) =>
      (
        await sql<{ last_vacuum: Date | null; last_analyze: Date | null }>`
          select last_vacuum, last_analyze from pg_stat_all_tables where schemaname = ${schema} and relname = ${table}`.execute(db)
      ).rows[0];
    const warned = () => app.logs.some((line) => line.includes('PostgreSQL runs without autovacuum'));
    if (autovacuum === 'on') {
      // The server looks after it: no job, no warning, nothing vacuumed by FanGate within a few intervals.
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      expect(warned()).toBe(false);
      expect((await stats('public', 'auth_attempts'))?.last_vacuum ?? null).toBeNull();
      return;
    }
    expect(warned()).toBe(true);
    const deadline = Date.now() + 20_000;
    let attempts = await stats('public', 'auth_attempts');
    let jobs = await stats('pgboss', 'job');
    while ((!attempts?.last_vacuum || !attempts.last_analyze || !jobs?.last_analyze) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      attempts = await stats('public', 'auth_attempts');
      jobs = await stats('pgboss', 'job');
    }
    expect(attempts?.last_vacuum).toBeInstanceOf(Date);
    expect(attempts?.last_analyze).toBeInstanceOf(Date);
    expect(jobs?.last_analyze).toBeInstanceOf(Date);
    const other = await stats('other_app', 't');
    expect(other?.last_vacuum ?? null).toBeNull();
    expect(other?.last_analyze ?? null).toBeNull();
  });
});
