import type pg from 'pg';

/** Statement texts given a name at most, per process (each pool connection prepares those it runs). */
const MAX_NAMED = 256;
/** Texts seen once, remembered to name them on their second use; forgotten all at once past this many. */
const MAX_SEEN_ONCE = 5_000;

/** The plan of a prepared statement no longer fits its table (a column added), or the name is unknown. */
const isStalePlan = (error: unknown) => {
  const e = error as { code?: string; routine?: string };
  return e?.routine === 'RevalidateCachedQuery' || e?.code === '26000';
};

const TRANSACTION_START = /^\s*(begin|start\s+transaction)\b/i;
const TRANSACTION_END = /^\s*(commit|rollback|end|abort)\b/i;

type Query = (config: unknown, values?: unknown, callback?: unknown) => unknown;

export interface PreparedStatements {
  /** Every statement is prepared afresh from now on (under a new name). */
  forget(): void;
  /** A SCHEMA_CHANNEL announcement. */
  announced(payload: string): void;
}

/**
 * The migrating node's announcements: `migrating` before it changes a schema other nodes use, `migrated <name>`
 * after. Between the two, every node runs its statements unprepared; after, it prepares them afresh.
 */
export const SCHEMA_CHANNEL = 'fangate_schema';
/** How long a node runs unprepared after `migrating` if `migrated` never comes (the migrating node died). */
const MIGRATION_PAUSE_MS = 5 * 60_000;

/**
 * Runs the statements a pool's connections repeat as named (prepared) statements: PostgreSQL parses and plans
 * them once per connection instead of at every execution. A connect's two dozen statements cost PostgreSQL
 * ≈ 25 % less CPU this way (docs/performance.md). Only statements with parameters (Kysely's; no transaction
 * control, no multi-statement text) from their second use, and at most MAX_NAMED texts per process.
 *
 * A migration that adds a column to a table read with `select *` makes PostgreSQL refuse the statement
 * prepared before it ("cached plan must not change result type"), on every node still running: the text is
 * then given a new name (prepared afresh at its next use) and, outside a transaction, run again at once;
 * inside one the error ends the transaction, as any error does, and the caller's retry runs it anew. So that
 * no transaction meets one in a rolling upgrade, the node that migrates announces it first (SCHEMA_CHANNEL)
 * and gives the others a moment to hear it: they run unprepared until it announces the end, then prepare
 * afresh (`announced`). A node whose LISTEN connection was down forgets its statements when it is back.
 */
export function usePreparedStatements(pool: pg.Pool): PreparedStatements {
  const names = new Map<string, string>();
  const seenOnce = new Set<string>();
  let counter = 0;
  /** Until then (epoch ms) nothing is named: a migration is under way. */
  let pausedUntil = 0;

  const nameFor = (text: string): string | undefined => {
    if (pausedUntil > 0 && Date.now() < pausedUntil) return undefined;
    const known = names.get(text);
    if (known || names.size >= MAX_NAMED) return known;
    if (!seenOnce.has(text)) {
      if (seenOnce.size >= MAX_SEEN_ONCE) seenOnce.clear();
      seenOnce.add(text);
      return undefined;
    }
    seenOnce.delete(text);
    const name = `fangate_${++counter}`;
    names.set(text, name);
    return name;
  };

  pool.on('connect', (client) => {
    const query = client.query.bind(client) as Query;
    let inTransaction = false;
    (client as unknown as { query: Query }).query = (config, values, callback) => {
      if (typeof config !== 'string' || callback !== undefined) return query(config, values, callback);
      if (TRANSACTION_START.test(config)) inTransaction = true;
      else if (TRANSACTION_END.test(config)) inTransaction = false;
      const name = Array.isArray(values) && values.length > 0 ? nameFor(config) : undefined;
      if (!name) return query(config, values);
      const retryable = !inTransaction;
      return (query({ name, text: config, values }) as Promise<unknown>).catch((error: unknown) => {
        if (!isStalePlan(error)) throw error;
        if (names.get(config) === name) names.delete(config);
        if (!retryable) throw error;
        return query(config, values);
      });
    };
  });

  const forget = () => {
    names.clear();
    seenOnce.clear();
  };
  return {
    forget,
    announced(payload) {
      forget();
      pausedUntil = payload === 'migrating' ? Date.now() + MIGRATION_PAUSE_MS : 0;
    },
  };
}
