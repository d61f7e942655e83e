import { type Kysely, sql } from 'kysely';
import type { DB } from '../db/schema.js';

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
 * `burst`; each request takes one. On PostgreSQL the bucket is one row per account updated in a single
 * statement on the database's clock, so every node counts against the same bucket; embedded mode is one
 * process and keeps it in memory.
 */
export function createAccessBucket(deps: { db: Kysely<DB>; shared: boolean } & BucketOptions): AccessBucket {
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
    };
  }
  return {
    async take(accountId) {
      const refilled = sql<number>`least(${options.burst}::double precision, b.tokens + extract(epoch from (clock_timestamp() - b.updated_at)) * ${perSec}::double precision)`;
      const { rows } = await sql<{ tokens: number; allowed: boolean }>`
        insert into access_buckets as b (account_id, tokens, allowed, updated_at)
        values (${accountId}, ${options.burst - 1}::double precision, true, clock_timestamp())
        on conflict (account_id) do update set
          tokens = case when ${refilled} >= 1 then ${refilled} - 1 else ${refilled} end,
          allowed = ${refilled} >= 1,
          updated_at = clock_timestamp()
        returning tokens, allowed`.execute(deps.db);
      const row = rows[0]!;
      return decide(Number(row.tokens), row.allowed, options);
    },
  };
}
