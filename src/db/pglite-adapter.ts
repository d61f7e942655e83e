import { Mutex, type PGlite, type Results } from '@electric-sql/pglite';

/**
 * PGlite is one in-process connection. Kysely and pg-boss both expect a pool of
 * `pg`-style clients, so this adapter hands out the single connection under a mutex:
 * a Kysely transaction holds it from BEGIN to COMMIT, and nothing else can interleave
 * a statement into that transaction.
 */
export interface QueryResultLike {
  rows: unknown[];
  rowCount: number;
  command?: string;
}

export interface PGliteConnection {
  query(sql: string, params?: readonly unknown[]): Promise<QueryResultLike>;
  release(): void;
}

const commandOf = (sql: string): string | undefined =>
  /^\s*(insert|update|delete|merge|select|with)\b/i.exec(sql)?.[1]?.toUpperCase();

function toResult(sql: string, result: Results): QueryResultLike {
  return { rows: result.rows, rowCount: result.affectedRows ?? result.rows.length, command: commandOf(sql) };
}

export function createPGlitePool(pglite: PGlite) {
  const mutex = new Mutex();

  async function runQuery(sql: string, params?: readonly unknown[]): Promise<QueryResultLike> {
    if (params && params.length > 0) return toResult(sql, await pglite.query(sql, params as unknown[]));
    // Parameterless SQL may hold several statements (pg-boss migrations and its locked
    // blocks): only the simple-query protocol (`exec`) accepts that.
    const results = await pglite.exec(sql);
    const last = results[results.length - 1];
    return last ? toResult(sql, last) : { rows: [], rowCount: 0 };
  }

  return {
    /** Kysely's PostgresDialect pool interface. */
    async connect(): Promise<PGliteConnection> {
      const release = await mutex.acquire();
      let released = false;
      return {
        query: runQuery,
        release() {
          if (!released) {
            released = true;
            release();
          }
        },
      };
    },
    /** A single statement outside any transaction (pg-boss's executor, LISTEN). */
    async run<T>(fn: () => Promise<T>): Promise<T> {
      return mutex.runExclusive(fn);
    },
    query(sql: string, params?: readonly unknown[]) {
      return mutex.runExclusive(() => runQuery(sql, params));
    },
    async end(): Promise<void> {
      await mutex.runExclusive(() => pglite.close());
    },
  };
}

export type PGlitePool = ReturnType<typeof createPGlitePool>;
