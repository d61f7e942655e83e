import { Mutex, parse, type PGlite, protocol, type Results } from '@electric-sql/pglite';
import { isStalePlan, LONG_LIST, MAX_NAMED, MAX_SEEN_ONCE } from './prepared.js';

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

/** A statement prepared under its name: the parameter types PGlite described for it. */
interface Prepared {
  name: string;
  types: number[];
}

/** A statement that changes the schema (they take no parameters, so they arrive as parameterless SQL). */
const SCHEMA_CHANGE = /\b(create|alter|drop)\s+(or\s+replace\s+|unique\s+)?(table|index|type|function|trigger|schema|view|materialized|sequence|extension)\b/i;

export function createPGlitePool(pglite: PGlite) {
  const mutex = new Mutex();
  /** By text, least recently run first (a Map keeps insertion order; a run moves its text to the end). */
  const prepared = new Map<string, Prepared>();
  const seenOnce = new Set<string>();
  let counter = 0;
  /** Names to close in the session, sent before the next Parse (a Close works in any transaction state). */
  let toClose: string[] = [];

  /**
   * A statement FanGate repeats (with parameters, from its second use) runs as a named statement: PostgreSQL inside
   * PGlite parses and plans it once, not at every run (PGlite's `query` parses, describes and plans an unnamed
   * statement each time: ≈ 2.5 ms of a webhook outcome batch's 8 ms). One message buffer per run (bind, describe,
   * execute, sync) instead of PGlite's five calls into its WebAssembly. A text with a long list is never named (its
   * text changes with the list's length: LONG_LIST); shorter lists still take a name per length, so names are kept
   * least recently used first, and a new one closes the oldest past MAX_NAMED.
   * PGlite is this process's own, so only this process changes its schema: a schema change forgets every
   * statement first (SCHEMA_CHANGE), and should a plan still turn out stale (a column added to a table read with
   * `select *`), every statement is prepared afresh and, outside a transaction, this one runs again at once, as on
   * PostgreSQL (src/db/prepared.ts).
   */
  async function runPrepared(sql: string, params: readonly unknown[]): Promise<Results | undefined> {
    // Closed: the unnamed path answers with PGlite's own error.
    if (pglite.closed) return undefined;
    let statement = prepared.get(sql);
    if (statement) {
      prepared.delete(sql);
      prepared.set(sql, statement);
    } else {
      if (LONG_LIST.test(sql)) return undefined;
      if (!seenOnce.has(sql)) {
        if (seenOnce.size >= MAX_SEEN_ONCE) seenOnce.clear();
        seenOnce.add(sql);
        return undefined;
      }
      seenOnce.delete(sql);
      for (const [text, oldest] of prepared) {
        if (prepared.size < MAX_NAMED) break;
        prepared.delete(text);
        toClose.push(oldest.name);
      }
      const name = `fangate_${++counter}`;
      const closing = toClose.map((old) => protocol.serialize.close({ type: 'S', name: old }));
      toClose = [];
      const described = await pglite.execProtocolStream(concat([...closing, protocol.serialize.parse({ name, text: sql }), protocol.serialize.describe({ type: 'S', name }), protocol.serialize.sync()]), { syncToFs: false });
      statement = { name, types: parse.parseDescribeStatementResults(described) };
      prepared.set(sql, statement);
    }
    const values = params.map((value, i) => {
      if (value === null || value === undefined) return null;
      const serializer = pglite.serializers[statement.types[i]!];
      return serializer ? serializer(value) : String(value);
    });
    const messages = await pglite.execProtocolStream(
      concat([protocol.serialize.bind({ statement: statement.name, values }), protocol.serialize.describe({ type: 'P' }), protocol.serialize.execute({}), protocol.serialize.sync()]),
      { syncToFs: false },
    );
    await pglite.syncToFs();
    return parse.parseResults(messages, pglite.parsers)[0];
  }

  /** Every statement is prepared afresh from now on (under a new name; the old ones close with the next Parse). */
  function forgetPrepared(): void {
    for (const statement of prepared.values()) toClose.push(statement.name);
    prepared.clear();
    seenOnce.clear();
  }

  async function runQuery(sql: string, params?: readonly unknown[]): Promise<QueryResultLike> {
    if (params && params.length > 0) {
      try {
        const result = await runPrepared(sql, params);
        if (result) return toResult(sql, result);
      } catch (error) {
        if (!isStalePlan(error)) throw error;
        forgetPrepared();
        if (pglite.isInTransaction()) throw error;
      }
      return toResult(sql, await pglite.query(sql, params as unknown[]));
    }
    // A schema change (migrations, pg-boss's own) may leave what was prepared on a table unfit for it, even inside
    // the transaction that changes it: statements are prepared afresh after it.
    if (prepared.size > 0 && SCHEMA_CHANGE.test(sql)) forgetPrepared();
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

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

export type PGlitePool = ReturnType<typeof createPGlitePool>;
