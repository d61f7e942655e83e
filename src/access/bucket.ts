import { type Kysely, sql } from 'kysely';
import type { DB } from '../db/schema.js';
import { createBatchedSync, localAllowance } from '../lib/batched-sync.js';

/** What one take from an account's bucket says: allowed or not, and the numbers for RateLimit headers. */
export interface BucketDecision {
  allowed: boolean;
  limit: number;
  /** Whole tokens left after this request. */
  remaining: number;
  /** Seconds until the bucket is full again. */
  resetSec: number;
  /** When refused: seconds until one token is back. */
  retryAfterSec: number;
}

export interface AccessBucket {
  take(accountId: string): Promise<BucketDecision>;
  close(): Promise<void>;
}

export interface BucketOptions {
  ratePerMin: number;
  burst: number;
}

function decide(tokens: number, allowed: boolean, options: BucketOptions): BucketDecision {
  const perSec = options.ratePerMin / 60;
  return {
    allowed,
    limit: options.burst,
    remaining: Math.max(0, Math.floor(tokens)),
    resetSec: Math.max(0, Math.ceil((options.burst - tokens) / perSec)),
    retryAfterSec: allowed ? 0 : Math.max(1, Math.ceil((1 - tokens) / perSec)),
  };
}

/**
 * Per-account token bucket (DESIGN 10: 60/min, burst 90): `ratePerMin` tokens flow in per minute up to
 * `burst`; each request takes one. Embedded mode is one process and keeps it in memory.
 *
 * On PostgreSQL the bucket is one row per account that all nodes share without a write per request
 * (src/lib/batched-sync.ts): a node takes tokens from the level it last learnt (refilled on its own clock)
 * and writes what it took, for every account at once, every 100 ms, or as soon as an account's unshared
 * takes reach its allowance (2% of the burst, at least 1). A single node is exact; N nodes together take at
 * most (N - 1) x allowance tokens too many, which the bucket then owes (its level may go below zero, down
 * to -burst). The first request for an account on a node waits for one round trip.
 */
export function createAccessBucket(deps: { db: Kysely<DB>; shared: boolean; onError?: (error: unknown) => void } & BucketOptions): AccessBucket {
  const options = { ratePerMin: deps.ratePerMin, burst: deps.burst };
  const perSec = options.ratePerMin / 60;
  if (!deps.shared) {
    const buckets = new Map<string, { tokens: number; at: number }>();
    return {
      async take(accountId) {
        const now = performance.now();
        const bucket = buckets.get(accountId) ?? { tokens: options.burst, at: now };
        const refilled = Math.min(options.burst, bucket.tokens + ((now - bucket.at) / 1000) * perSec);
        const allowed = refilled >= 1;
        const tokens = allowed ? refilled - 1 : refilled;
        buckets.set(accountId, { tokens, at: now });
        return decide(tokens, allowed, options);
      },
      close: async () => undefined,
    };
  }
  const allowance = localAllowance(options.burst);
  const levels = createBatchedSync<{ tokens: number; at: number }>({
    intervalMs: 100,
    // Refilled to the brim: the row says nothing the burst does not.
    isStale: (state, now) => state.tokens + ((now - state.at) / 1000) * perSec >= options.burst,
    onError: deps.onError ?? (() => undefined),
    async flush(batch) {
      batch.sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0)); // one lock order on every node
      const refilled = sql<number>`least(${options.burst}::double precision, b.tokens + extract(epoch from (clock_timestamp() - b.updated_at)) * ${perSec}::double precision)`;
      // Accounts deleted meanwhile drop out (the join), instead of failing everyone's flush.
      const { rows } = await sql<{ account_id: string; tokens: number }>`
        insert into access_buckets as b (account_id, tokens, allowed, updated_at)
        select t.id, ${options.burst}::double precision - t.taken, true, clock_timestamp()
        from unnest(${batch.map((e) => e.key)}::text[], ${batch.map((e) => e.delta)}::double precision[]) with ordinality as t(id, taken, n)
        join accounts a on a.id = t.id
        order by t.n
        on conflict (account_id) do update set
          tokens = greatest(${-options.burst}::double precision, ${refilled} - (${options.burst}::double precision - excluded.tokens)),
          allowed = true,
          updated_at = clock_timestamp()
        returning account_id, tokens`.execute(deps.db);
      const now = performance.now();
      return new Map(rows.map((row) => [row.account_id, { tokens: Number(row.tokens), at: now }]));
    },
  });
  const levelNow = (state: { tokens: number; at: number }, now: number) => Math.min(options.burst, state.tokens + ((now - state.at) / 1000) * perSec);
  return {
    async take(accountId) {
      for (;;) {
        const now = performance.now();
        const state = levels.state(accountId);
        if (!state) {
          // A first look: take one and learn the shared level in one round trip.
          levels.add(accountId, 1, 0);
          await levels.sync();
          const fresh = levels.state(accountId);
          if (!fresh) return decide(options.burst - 1, true, options); // the account is gone; the caller answers 404
          const tokens = levelNow(fresh, performance.now()) - levels.local(accountId);
          if (tokens >= 0) return decide(tokens, true, options);
          // The bucket had no whole token for it: refused, and the token goes back with the next flush.
          levels.add(accountId, -1, 0);
          return decide(tokens + 1, false, options);
        }
        const available = levelNow(state, now) - levels.local(accountId);
        if (available < 1) return decide(available, false, options);
        if (levels.local(accountId) < allowance) {
          levels.add(accountId, 1, 0);
          // Shared ahead of need (see the per-key rate limit): a busy account rarely waits for a flush.
          if (levels.local(accountId) * 2 >= allowance) levels.nudge();
          return decide(available - 1, true, options);
        }
        await levels.sync(); // this node's allowance is used up: share it first, then decide again
      }
    },
    close: () => levels.close(),
  };
}
