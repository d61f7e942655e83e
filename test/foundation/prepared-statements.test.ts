import { sql } from 'kysely';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Database, openDatabase } from '../../src/db/database.js';
import { SCHEMA_CHANNEL } from '../../src/db/prepared.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import { createTestStore, type TestStore } from '../support/stores.js';

const postgresUrl = process.env.FANGATE_TEST_DATABASE_URL;

/**
 * PostgreSQL runs the statements FanGate repeats as prepared statements (src/db/prepared.ts). One pool
 * connection, so what it prepared is what `pg_prepared_statements` lists.
 */
(postgresUrl ? describe : describe.skip)(`prepared statements [postgres]${postgresUrl ? '' : ' (skipped: FANGATE_TEST_DATABASE_URL not set)'}`, () => {
  let store: TestStore;
  let database: Database;
  /** Another connection, as another node running a migration would be. */
  let other: pg.Client;
  const logger = pino({ level: 'silent' });

  const prepared = async (db = database) =>
    (await sql<{ statement: string }>`select statement from pg_prepared_statements`.execute(db.db)).rows.map((r) => r.statement);

  beforeAll(async () => {
    store = await createTestStore('postgres');
    database = await openDatabase({ databaseUrl: store.databaseUrl, logger, poolSize: 1 });
    other = new pg.Client({ connectionString: store.databaseUrl });
    await other.connect();
    await other.query('create table things (id int primary key, a text)');
    await other.query("insert into things values (1, 'one'), (2, 'two')");
  });

  afterAll(async () => {
    await other?.end();
    await database?.close();
    await store?.drop();
  });

  it('prepares a statement with parameters from its second use on, with the same answers', async () => {
    const once = await sql<{ n: number }>`select ${41}::int + 1 as n`.execute(database.db);
    expect(once.rows).toEqual([{ n: 42 }]);
    expect(await prepared()).not.toContain('select $1::int + 1 as n');
    const twice = await sql<{ n: number }>`select ${1}::int + 1 as n`.execute(database.db);
    const thrice = await sql<{ n: number }>`select ${2}::int + 1 as n`.execute(database.db);
    expect([twice.rows, thrice.rows]).toEqual([[{ n: 2 }], [{ n: 3 }]]);
    expect(await prepared()).toContain('select $1::int + 1 as n');
    // Transaction control and statements without parameters are never named.
    await database.db.transaction().execute(async (trx) => sql`select 1`.execute(trx));
    expect((await prepared()).filter((s) => /^(begin|commit|select 1$)/i.test(s))).toEqual([]);
  });

  it('runs a prepared `select *` again after another node added a column to its table (outside a transaction)', async () => {
    const read = (id: number) => database.db.selectFrom('things' as never).selectAll().where('id' as never, '=', id as never).execute();
    await read(1);
    await read(2);
    expect((await prepared()).some((s) => s.includes('from "things"'))).toBe(true);
    await other.query('alter table things add column b text');
    expect(await read(1)).toEqual([{ id: 1, a: 'one', b: null }]);
    expect(await read(2)).toEqual([{ id: 2, a: 'two', b: null }]);
  });

  it('inside a transaction the stale statement ends that transaction, and the next one runs it afresh', async () => {
    const read = (db: Database['db'], id: number) => db.selectFrom('things' as never).select(['id' as never, 'a' as never]).where('id' as never, '>=', id as never).execute();
    await read(database.db, 1);
    await read(database.db, 1);
    await other.query('alter table things alter column a type varchar(20)');
    await expect(database.db.transaction().execute((trx) => read(trx, 1))).rejects.toThrow(/cached plan must not change result type/);
    const again = await database.db.transaction().execute((trx) => read(trx, 2));
    expect(again).toEqual([{ id: 2, a: 'two' }]);
  });

  /** Resolves with the next announcement this node hears (its own handlers run first: they listened first). */
  async function nextAnnouncement(): Promise<string> {
    let hear!: (payload: string) => void;
    const heard = new Promise<string>((resolve) => (hear = resolve));
    const unlisten = await database.listen(SCHEMA_CHANNEL, (payload) => hear(payload));
    return heard.finally(unlisten);
  }

  it('between `migrating` and `migrated` nothing is prepared, so even a transaction meets no stale plan', async () => {
    const read = (db: Database['db']) => db.selectFrom('things' as never).selectAll().where('id' as never, '<', 3 as never).orderBy('id' as never).execute();
    await read(database.db);
    await read(database.db);
    const migrating = nextAnnouncement();
    await other.query(`select pg_notify('${SCHEMA_CHANNEL}', 'migrating')`);
    expect(await migrating).toBe('migrating');
    await other.query('alter table things add column c int');
    const rows = await database.db.transaction().execute((trx) => read(trx));
    expect(rows).toEqual([
      { id: 1, a: 'one', b: null, c: null },
      { id: 2, a: 'two', b: null, c: null },
    ]);
    for (let i = 0; i < 3; i++) await sql`select ${i}::int * 2 as paused`.execute(database.db);
    expect(await prepared()).not.toContain('select $1::int * 2 as paused');
    const migrated = nextAnnouncement();
    await other.query(`select pg_notify('${SCHEMA_CHANNEL}', 'migrated 0099_test')`);
    await migrated;
    for (let i = 0; i < 2; i++) await sql`select ${i}::int * 2 as paused`.execute(database.db);
    // What the connection prepared before the migration is gone from the server, not only unused.
    expect(await prepared()).toEqual(['select $1::int * 2 as paused']);
  });

  it('a list of 8 or more parameters is never named, so lists of every length leave room for what runs often', async () => {
    for (let n = 1; n <= 300; n++) {
      const ids = Array.from({ length: n }, (_, i) => i);
      for (let run = 0; run < 2; run++) await database.db.selectFrom('things' as never).select('id' as never).where('id' as never, 'in', ids as never).execute();
    }
    const lists = (await prepared()).filter((s) => s.includes('"id" in ('));
    expect(lists).toHaveLength(7);
    const hot = () => sql<{ n: number }>`select count(*)::int as n from things where id > ${0}`.execute(database.db);
    await hot();
    await hot();
    expect(await prepared()).toContain('select count(*)::int as n from things where id > $1');
  });

  it('a value the client cannot send leaves no statement behind that a later transaction would trip over', async () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const asJson = (db: Database['db'], value: unknown) => sql<{ j: unknown }>`select ${value}::jsonb as j`.execute(db);
    await asJson(database.db, { a: 1 });
    await asJson(database.db, { a: 2 });
    expect(await prepared()).toContain('select $1::jsonb as j');
    await expect(asJson(database.db, cyclic)).rejects.toThrow(/circular/i);
    const inTransaction = await database.db.transaction().execute((trx) => asJson(trx, { a: 3 }));
    expect(inTransaction.rows).toEqual([{ j: { a: 3 } }]);
  });

  it('a fresh database is migrated without notice; an upgrade is announced before and after', async () => {
    const heard: string[] = [];
    other.on('notification', (n) => void heard.push(n.payload ?? ''));
    await other.query(`listen ${SCHEMA_CHANNEL}`);
    const fresh = await migrateToLatest(database.db, { noticeMs: 100 });
    expect(fresh.length).toBeGreaterThan(0);
    await expect.poll(() => heard).toEqual([`migrated ${fresh.at(-1)}`]);

    // An upgrade: the last migration not yet applied, and this node's statements on its table prepared.
    const last = fresh.at(-1)!;
    const { migrations } = await import('../../src/db/migrations/index.js');
    await migrations[last]!.down!(database.db);
    await sql`delete from kysely_migration where name = ${last}`.execute(database.db);
    const readAttempt = (db: Database['db']) => db.selectFrom('auth_attempts').selectAll().where('id', '=', 'att_none').execute();
    await readAttempt(database.db);
    await readAttempt(database.db);
    heard.length = 0;
    const started = Date.now();
    expect(await migrateToLatest(database.db, { noticeMs: 300 })).toEqual([last]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    await expect.poll(() => heard).toEqual(['migrating', `migrated ${last}`]);
    expect(await database.db.transaction().execute((trx) => readAttempt(trx))).toEqual([]);
  });

  it('prepares nothing when turned off (FANGATE_DB_PREPARED_STATEMENTS=false)', async () => {
    const plain = await openDatabase({ databaseUrl: store.databaseUrl, logger, poolSize: 1, preparedStatements: false });
    try {
      for (let i = 0; i < 3; i++) await sql`select ${i}::int as n`.execute(plain.db);
      expect(await prepared(plain)).toEqual([]);
    } finally {
      await plain.close();
    }
  });
});

/**
 * PGlite runs the statements FanGate repeats as named statements too (src/db/pglite-adapter.ts): PostgreSQL inside
 * it lists them in `pg_prepared_statements`, like a server's connection.
 */
describe('prepared statements [pglite]', () => {
  let database: Database;
  const logger = pino({ level: 'silent' });
  const prepared = async () => (await sql<{ statement: string }>`select statement from pg_prepared_statements`.execute(database.db)).rows.map((r) => r.statement);

  beforeAll(async () => {
    database = await openDatabase({ logger });
    await sql`create table things (id int primary key, a text, at timestamptz, j jsonb, n bigint, tags text[])`.execute(database.db);
  });

  afterAll(async () => {
    await database?.close();
  });

  it('prepares a statement with parameters from its second use on, with the same answers and types', async () => {
    const insert = (id: number, a: string | null) =>
      sql<{ id: number; a: string | null; at: Date; j: unknown; n: bigint; tags: string[] }>`
        insert into things values (${id}, ${a}, ${new Date('2026-12-02T10:00:00.000Z')}, ${JSON.stringify({ id, nested: [a] })}, ${'9007199254740993'}, ${['x', `y${id}`]})
        returning *`.execute(database.db);
    const first = await insert(1, 'one');
    expect(await prepared()).toEqual([]);
    const second = await insert(2, null);
    const third = await insert(3, 'three');
    expect((await prepared()).filter((s) => s.includes('insert into things'))).toHaveLength(1);
    // Named or not, the rows come back alike: dates as Date, jsonb parsed, bigint as BigInt (PGlite's parser), arrays as arrays.
    expect(first.rows).toEqual([{ id: 1, a: 'one', at: new Date('2026-12-02T10:00:00.000Z'), j: { id: 1, nested: ['one'] }, n: 9007199254740993n, tags: ['x', 'y1'] }]);
    expect(second.rows).toEqual([{ id: 2, a: null, at: new Date('2026-12-02T10:00:00.000Z'), j: { id: 2, nested: [null] }, n: 9007199254740993n, tags: ['x', 'y2'] }]);
    expect(third.rows[0]).toMatchObject({ id: 3, a: 'three', j: { id: 3, nested: ['three'] } });
    // What a write reports (Kysely's numUpdatedRows) is the statement's count.
    const update = () => database.db.updateTable('things' as never).set({ a: 'same' } as never).where('id' as never, '<', 3 as never).executeTakeFirst();
    await update();
    expect(Number((await update()).numUpdatedRows)).toBe(2);
    // Transaction control and statements without parameters are never named.
    await database.db.transaction().execute(async (trx) => sql`select 1`.execute(trx));
    expect((await prepared()).filter((s) => /^(begin|commit|select 1$)/i.test(s))).toEqual([]);
  });

  it('an error of a prepared statement is the database error, and the next statement runs', async () => {
    const insert = (id: number) => sql`insert into things (id, a) values (${id}, 'x')`.execute(database.db);
    await insert(10);
    await insert(11);
    await expect(insert(10)).rejects.toMatchObject({ code: '23505', constraint: 'things_pkey' });
    await expect(database.db.transaction().execute(async (trx) => sql`insert into things (id, a) values (${11}, 'x')`.execute(trx))).rejects.toMatchObject({ code: '23505' });
    await insert(12);
    expect((await sql<{ n: number }>`select count(*)::int as n from things where id >= ${10}`.execute(database.db)).rows).toEqual([{ n: 3 }]);
  });

  it('more texts than names: the least recently run ones are closed, never a statement run now', async () => {
    for (let n = 1; n <= 300; n++) {
      for (let run = 0; run < 2; run++) await sql`select ${sql.raw(String(n))} + ${run}::int as n`.execute(database.db);
    }
    const hot = () => sql<{ n: number }>`select count(*)::int as n from things where a = ${'three'}`.execute(database.db);
    await hot();
    await hot();
    const statements = await prepared();
    expect(statements.length).toBeLessThanOrEqual(256);
    expect(statements).toContain('select count(*)::int as n from things where a = $1');
    expect((await hot()).rows).toEqual([{ n: 1 }]);
  });

  it('a statement after the database closed fails as PGlite says, not inside the adapter', async () => {
    const other = await openDatabase({ logger });
    // pg-boss's way in, which may still run a statement while the process stops.
    const { executeSql } = (other.jobStore as { db: { executeSql(text: string, values?: unknown[]): Promise<unknown> } }).db;
    await executeSql('select $1::int as n', [1]);
    await executeSql('select $1::int as n', [2]);
    await other.close();
    await expect(executeSql('select $1::int as n', [3])).rejects.toThrow(/PGlite is closed/);
  });

  it('a schema change inside a transaction (a migration) reads the table as changed, in that transaction and after', async () => {
    const read = (db: Database['db'], id: number) => db.selectFrom('things' as never).selectAll().where('id' as never, '=', id as never).execute();
    await read(database.db, 1);
    await read(database.db, 1);
    const inside = await database.db.transaction().execute(async (trx) => {
      await read(trx, 1);
      await sql`alter table things add column b text default 'bee'`.execute(trx);
      return read(trx, 2);
    });
    expect(inside).toEqual([expect.objectContaining({ id: 2, b: 'bee' })]);
    expect(await read(database.db, 3)).toEqual([expect.objectContaining({ id: 3, b: 'bee' })]);
    expect(await read(database.db, 3)).toEqual([expect.objectContaining({ id: 3, b: 'bee' })]);
    // What was prepared before the change is gone from the session once a statement is prepared outside a transaction.
    expect((await prepared()).filter((s) => s.includes('insert into things'))).toEqual([]);
  });
});
