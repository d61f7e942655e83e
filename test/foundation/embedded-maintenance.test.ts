import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';

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
