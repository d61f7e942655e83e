import { randomBytes } from 'node:crypto';
import type pg from 'pg';

/** Statement texts given a name at most, per process (each pool connection prepares those it runs). */
export const MAX_NAMED = 256;
/** Texts seen once, remembered to name them on their second use; forgotten all at once past this many. */
export const MAX_SEEN_ONCE = 5_000;
/**
 * A list of 8 or more parameters (Kysely's `in ($1, $2, …)`): its text changes with the list's length, and each
 * length named would take one of the MAX_NAMED names for good, crowding out statements run far more often.
 */
export const LONG_LIST = /\bin \(\$\d+(?:, \$\d+){7,}\)/i;

/** The plan of a prepared statement no longer fits its table (a column added), or the name is unknown. */
export const isStalePlan = (error: unknown) => {
  const e = error as { code?: string; routine?: string };
  return e?.routine === 'RevalidateCachedQuery' || e?.code === '26000';
};

/** An error PostgreSQL answered with (node-postgres's DatabaseError), not one of the client or the network. */
const isServerError = (error: unknown) => typeof (error as { severity?: unknown })?.severity === 'string';

const TRANSACTION_START = /^\s*(begin|start\s+transaction)\b/i;
// `rollback to <savepoint>` leaves the transaction open.
const TRANSACTION_END = /^\s*(commit|end|abort|rollback(?!\s+to\b))\b/i;

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
 * control, no multi-statement text) from their second use, none with a long list (LONG_LIST), and at most MAX_NAMED
 * texts per process.
 *
 * A migration that adds a column to a table read with `select *` makes PostgreSQL refuse the statement
 * prepared before it ("cached plan must not change result type"), on every node still running: the node then
 * prepares every statement afresh (`forget`), and runs this one again at once outside a transaction; inside
 * one the error ends the transaction, as any error does, and the caller's retry runs it anew. So that
 * no transaction meets one in a rolling upgrade, the node that migrates announces it first (SCHEMA_CHANNEL)
 * and gives the others a moment to hear it: they run unprepared until it announces the end, then prepare
 * afresh (`announced`). A node whose LISTEN connection was down forgets its statements when it is back.
 */
export function usePreparedStatements(pool: pg.Pool): PreparedStatements {
  // Per process: behind a pooler that mixes processes on one server connection, another process's statement
  // of the same name is never taken for this one (an unknown name fails and is prepared again instead).
  const prefix = `fangate_${randomBytes(4).toString('hex')}_`;
  const names = new Map<string, string>();
  const seenOnce = new Set<string>();
  let counter = 0;
  /** Bumped by `forget`: each connection drops what it prepared before its next named statement. */
  let generation = 0;
  /** Migrations announced and not yet ended; until `pausedUntil` (epoch ms) nothing is named. */
  let migrating = 0;
  let pausedUntil = 0;

  const nameFor = (text: string): string | undefined => {
    if (migrating > 0 && Date.now() < pausedUntil) return undefined;
    if (LONG_LIST.test(text)) return undefined;
    const known = names.get(text);
    if (known || names.size >= MAX_NAMED) return known;
    if (!seenOnce.has(text)) {
      if (seenOnce.size >= MAX_SEEN_ONCE) seenOnce.clear();
      seenOnce.add(text);
      return undefined;
    }
    seenOnce.delete(text);
    const name = `${prefix}${++counter}`;
    names.set(text, name);
    return name;
  };

  const forget = () => {
    names.clear();
    seenOnce.clear();
    generation++;
  };

  pool.on('connect', (client) => {
    const query = client.query.bind(client) as Query;
    // node-postgres's record of what this connection prepared (it sends a known name without its text).
    const prepared = (client as unknown as { connection: { parsedStatements: object; submittedNamedStatements: object } }).connection;
    let inTransaction = false;
    let clientGeneration = generation;

    async function named(name: string, text: string, values: unknown[]): Promise<unknown> {
      if (clientGeneration !== generation) {
        // Statements prepared under names nobody will use again would stay on the server until it closes.
        await query('deallocate all');
        prepared.parsedStatements = {};
        prepared.submittedNamedStatements = {};
        clientGeneration = generation;
      }
      return query({ name, text, values });
    }

    (client as unknown as { query: Query }).query = (config, values, callback) => {
      if (typeof config !== 'string' || callback !== undefined) return query(config, values, callback);
      if (TRANSACTION_START.test(config)) inTransaction = true;
      else if (TRANSACTION_END.test(config)) inTransaction = false;
      const name = Array.isArray(values) && values.length > 0 ? nameFor(config) : undefined;
      if (!name) return query(config, values);
      const retryable = !inTransaction;
      return named(name, config, values as unknown[]).catch((error: unknown) => {
        const stale = isStalePlan(error);
        // A stale plan, or a failure of the client's own (node-postgres then closes the statement on the
        // server but still counts it as prepared): start over with every statement.
        if (stale || !isServerError(error)) forget();
        // Both stale-plan errors come before the statement ran: running it again cannot run it twice.
        if (!stale || !retryable) throw error;
        return query(config, values);
      });
    };
  });

  return {
    forget,
    announced(payload) {
      forget();
      if (payload === 'migrating') {
        migrating++;
        pausedUntil = Date.now() + MIGRATION_PAUSE_MS;
      } else if (payload.startsWith('migrated')) migrating = Math.max(0, migrating - 1);
    },
  };
}
