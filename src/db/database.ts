import { randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { Logger } from 'pino';
import { createWriteWatch, type WriteWatch } from './write-watch.js';
import { createPGlitePool } from './pglite-adapter.js';
import { compilePGliteWasm } from './pglite-wasm.js';
import type { DB } from './schema.js';
import { PGLITE_TEMPLATE_DIR, PGLITE_TEMPLATE_TAR, seedFromTemplate } from './template-dir.js';
import { SCHEMA_CHANNEL, usePreparedStatements } from './prepared.js';

export { PGLITE_TEMPLATE_DIR, PGLITE_TEMPLATE_TAR };

export type StoreKind = 'pglite' | 'postgres';

/** How pg-boss reaches the database: its own pool on PostgreSQL, our executor on PGlite. */
export type JobStoreConnection =
  | { connectionString: string }
  | { db: { executeSql(text: string, values?: unknown[]): Promise<{ rows: unknown[] }> } };

export interface Database {
  kind: StoreKind;
  db: Kysely<DB>;
  jobStore: JobStoreConnection;
  /**
   * This process's liveness: a random bigint whose session advisory lock the process holds while it lives
   * (on its own connection on PostgreSQL). The database drops the lock when the process dies, so
   * `isLiveNode(owner)` tells any node whether the process that wrote a claim still runs.
   */
  nodeKey: string;
  /** Subscribes to a NOTIFY channel; resolves to an unsubscribe function. */
  listen(channel: string, handler: (payload: string) => void): Promise<() => Promise<void>>;
  notify(channel: string, payload: string): Promise<void>;
  /**
   * Whether NOTIFYs reach this process right now. Per-node caches invalidated by NOTIFY serve from
   * memory only while this is true; while the LISTEN connection is down they read the database.
   */
  listenLive(): boolean;
  /**
   * Calls `handler` whenever NOTIFYs may have been missed (the LISTEN connection failed, and again once it
   * is back): caches drop everything they hold. Answers an unsubscribe function.
   */
  onListenGap(handler: () => void): () => void;
  /** This process's own UPDATEs and DELETEs of a table, as each statement returns (see WriteWatch). */
  watchWrites: WriteWatch['watch'];
  /** PGlite only: the whole database as a tar file (`fangate prepare` keeps one as the in-memory template). */
  dumpDataDir?(): Promise<Blob>;
  ping(): Promise<void>;
  close(): Promise<void>;
}


export interface DatabaseOptions {
  /** postgres://… selects PostgreSQL; otherwise PGlite. */
  databaseUrl?: string;
  /** PGlite directory; undefined keeps PGlite in memory (tests). */
  pgliteDir?: string;
  /** PGlite: start from the install's template when there is one (default); `fangate prepare`, which makes it, does not. */
  fromTemplate?: boolean;
  logger: Logger;
  poolSize?: number;
  /** PostgreSQL: repeated statements run prepared (src/db/prepared.ts); on unless false. */
  preparedStatements?: boolean;
}

/** SQL that is true when the process with this node key (a bigint column or value) still holds its liveness lock. */
export const LIVE_NODE_SQL = (ownerColumn: string) =>
  `exists (select 1 from pg_locks where locktype = 'advisory' and granted and objsubid = 1 and ((classid::bigint << 32) | objid::bigint) = ${ownerColumn})`;

/** A random positive 62-bit key, as text (bigint). */
const newNodeKey = () => ((BigInt(randomInt(1, 2 ** 30)) << 32n) | BigInt(randomInt(0, 2 ** 31))).toString();

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  return options.databaseUrl ? openPostgres(options.databaseUrl, options) : openPGlite(options);
}

/**
 * PostgreSQL's default shared_buffers (128 MB) is sized for a server on a machine of its own; PGlite clears all of
 * it at start, inside this process, so it is resident from the first second (idle RSS ≈ +120 MB). FanGate's hot rows
 * fit in far less, and the data files stay in the OS page cache (docs/performance.md; bench/poll.ts and
 * bench/scale.ts show the effect on reads).
 */
const PGLITE_START_PARAMS = [...PGlite.defaultStartParams, '-c', 'shared_buffers=16MB'];

async function openPGlite(options: DatabaseOptions): Promise<Database> {
  const wasm = await compilePGliteWasm();
  const wasmOption = wasm ? { pgliteWasmModule: wasm } : {};
  const dir = options.pgliteDir;
  const fromTemplate = options.fromTemplate !== false;
  if (dir && fromTemplate) await seedFromTemplate(dir);
  if (dir && !existsSync(join(dir, 'PG_VERSION'))) {
    // No template: initdb, twice as fast without waiting on every flush; close() flushes it all, and the
    // database is then reopened with full durability for real work.
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await (await PGlite.create(dir, { relaxedDurability: true, startParams: PGLITE_START_PARAMS, ...wasmOption })).close();
  }
  // In memory (tests, benchmarks): from the template's tar when there is one, instead of initdb and the migrations.
  const template = !dir && fromTemplate && existsSync(PGLITE_TEMPLATE_TAR) ? { loadDataDir: new Blob([await readFile(PGLITE_TEMPLATE_TAR)]) } : {};
  const pglite = await PGlite.create(dir, { startParams: PGLITE_START_PARAMS, ...wasmOption, ...template });
  const pool = createPGlitePool(pglite);
  const writes = createWriteWatch();
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool: pool as never }), plugins: [writes.plugin] });
  // One process, one connection: the session lock lives exactly as long as this process has the database open.
  const nodeKey = newNodeKey();
  await sql`select pg_advisory_lock(${nodeKey}::bigint)`.execute(db);
  return {
    kind: 'pglite',
    db,
    nodeKey,
    jobStore: { db: { executeSql: (text, values) => pool.query(text, values) } },
    async listen(channel, handler) {
      const unlisten = await pool.run(() => pglite.listen(channel, handler));
      return () => pool.run(() => unlisten());
    },
    async notify(channel, payload) {
      await sql`select pg_notify(${channel}, ${payload})`.execute(db);
    },
    // One process owns the embedded database: every NOTIFY is delivered in-process, none is ever missed.
    listenLive: () => true,
    onListenGap: () => () => undefined,
    watchWrites: writes.watch,
    async dumpDataDir() {
      // Written to the data files first, so loading it replays no WAL.
      await sql`checkpoint`.execute(db);
      return pool.run(() => pglite.dumpDataDir('none'));
    },
    async ping() {
      await sql`select 1`.execute(db);
    },
    async close() {
      await db.destroy();
    },
  };
}

async function openPostgres(url: string, options: DatabaseOptions): Promise<Database> {
  const pool = new pg.Pool({ connectionString: url, max: options.poolSize ?? 10, application_name: 'fangate' });
  pool.on('error', (error) => options.logger.error({ err: error }, 'idle PostgreSQL client failed'));
  const statements = options.preparedStatements === false ? undefined : usePreparedStatements(pool);
  const writes = createWriteWatch();
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }), plugins: [writes.plugin] });
  const listener = createPostgresListener(url, options.logger);
  if (statements) {
    // A node migrates (or announcements may have been missed): no statement prepared before may be used after.
    await listener.listen(SCHEMA_CHANNEL, (payload) => statements.announced(payload));
    listener.onGap(() => statements.forget());
  }
  const nodeKey = newNodeKey();
  const liveness = await holdLivenessLock(url, nodeKey, options.logger);
  return {
    kind: 'postgres',
    db,
    nodeKey,
    jobStore: { connectionString: url },
    listen: listener.listen,
    listenLive: listener.live,
    onListenGap: listener.onGap,
    watchWrites: writes.watch,
    async notify(channel, payload) {
      await sql`select pg_notify(${channel}, ${payload})`.execute(db);
    },
    async ping() {
      await sql`select 1`.execute(db);
    },
    async close() {
      await listener.close();
      await liveness.close();
      await db.destroy();
    },
  };
}

/** A dedicated connection holding the process's liveness lock; taken again after a reconnect. */
async function holdLivenessLock(url: string, nodeKey: string, logger: Logger) {
  let client: pg.Client | undefined;
  let closed = false;
  async function connect(): Promise<void> {
    const next = new pg.Client({ connectionString: url, application_name: 'fangate-liveness' });
    next.on('error', (error) => {
      logger.warn({ err: error }, 'liveness connection lost; reconnecting');
      if (client === next) client = undefined;
      next.end().catch(() => undefined);
      if (!closed) setTimeout(() => void connect().catch(() => undefined), 1000);
    });
    await next.connect();
    await next.query('select pg_advisory_lock($1::bigint)', [nodeKey]);
    client = next;
  }
  await connect();
  return {
    async close() {
      closed = true;
      await client?.end().catch(() => undefined);
      client = undefined;
    },
  };
}

/**
 * One dedicated connection carries every LISTEN of this process. It reconnects after a
 * failure and subscribes again, so push keeps working across a database restart.
 */
function createPostgresListener(url: string, logger: Logger) {
  const handlers = new Map<string, Set<(payload: string) => void>>();
  let client: pg.Client | undefined;
  let connecting: Promise<pg.Client> | undefined;
  let closed = false;
  const gapHandlers = new Set<() => void>();
  const gap = () => {
    for (const handler of gapHandlers) {
      try {
        handler();
      } catch (error) {
        logger.warn({ err: error }, 'a LISTEN gap handler failed');
      }
    }
  };

  const quote = (channel: string) => `"${channel.replaceAll('"', '""')}"`;

  async function connect(): Promise<pg.Client> {
    const next = new pg.Client({ connectionString: url, application_name: 'fangate-listener' });
    next.on('notification', (message) => {
      for (const handler of handlers.get(message.channel) ?? []) handler(message.payload ?? '');
    });
    next.on('error', (error) => {
      logger.warn({ err: error }, 'LISTEN connection lost; reconnecting');
      if (client === next) {
        client = undefined;
        gap();
      }
      next.end().catch(() => undefined);
      if (!closed && handlers.size > 0) setTimeout(() => void ensureClient().catch(() => undefined), 1000);
    });
    await next.connect();
    for (const channel of handlers.keys()) await next.query(`LISTEN ${quote(channel)}`);
    client = next;
    // Subscribed again: whatever was NOTIFYed while nobody listened is lost, so caches start over.
    gap();
    return next;
  }

  function ensureClient(): Promise<pg.Client> {
    if (client) return Promise.resolve(client);
    connecting ??= connect().finally(() => {
      connecting = undefined;
    });
    return connecting;
  }

  return {
    live: () => client !== undefined && !closed,
    onGap(handler: () => void) {
      gapHandlers.add(handler);
      return () => void gapHandlers.delete(handler);
    },
    async listen(channel: string, handler: (payload: string) => void) {
      let set = handlers.get(channel);
      const isNew = !set;
      if (!set) handlers.set(channel, (set = new Set()));
      set.add(handler);
      const active = await ensureClient();
      if (isNew) await active.query(`LISTEN ${quote(channel)}`);
      return async () => {
        set.delete(handler);
        if (set.size === 0 && handlers.get(channel) === set) {
          handlers.delete(channel);
          await client?.query(`UNLISTEN ${quote(channel)}`).catch(() => undefined);
        }
      };
    },
    async close() {
      closed = true;
      await client?.end().catch(() => undefined);
      client = undefined;
      gap();
    },
  };
}
