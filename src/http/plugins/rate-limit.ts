import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply } from 'fastify';
import fp from 'fastify-plugin';
import { type Kysely, sql } from 'kysely';
import type { DB } from '../../db/schema.js';
import { ApiError } from '../../lib/errors.js';

type Callback = (error: Error | null, result?: { current: number; ttl: number }) => void;

/**
 * Fixed-window counters in the shared database, so every API node counts against the same
 * limit. (Embedded mode is one process, where the plugin's in-memory store is exact.)
 */
export function sqlRateLimitStore(db: Kysely<DB>) {
  return class SqlStore {
    constructor(
      _options: unknown,
      private readonly prefix = '',
    ) {}

    incr(key: string, callback: Callback, timeWindow: number): void {
      const name = `${this.prefix}${key}`;
      sql<{ count: number; ttl_ms: number }>`
        insert into rate_limit_counters as c (key, count, window_ends_at)
        values (${name}, 1, now() + ${timeWindow} * interval '1 millisecond')
        on conflict (key) do update set
          count = case when c.window_ends_at <= now() then 1 else c.count + 1 end,
          window_ends_at = case when c.window_ends_at <= now() then excluded.window_ends_at else c.window_ends_at end
        returning count, (extract(epoch from (window_ends_at - now())) * 1000)::integer as ttl_ms`
        .execute(db)
        .then(({ rows: [row] }) => callback(null, { current: row!.count, ttl: Math.max(0, row!.ttl_ms) }))
        .catch((error: Error) => callback(error));
    }

    child(routeOptions: { routeInfo?: { method?: string; url?: string } }) {
      return new SqlStore(undefined, `${routeOptions.routeInfo?.method ?? ''}${routeOptions.routeInfo?.url ?? ''}:`);
    }
  };
}

export interface WindowCount {
  count: number;
  /** Milliseconds until the window ends. */
  ttlMs: number;
}

/** Counts hits of a key in a fixed window: `hit` adds one and answers the count so far. */
export interface WindowCounter {
  hit(key: string, windowMs: number): Promise<WindowCount>;
}

/**
 * Fixed-window counters for limits the per-route plugin cannot express (one budget across several
 * routes, failed authentications): in the shared database on PostgreSQL, in memory when embedded.
 */
export function createWindowCounter(db: Kysely<DB>, shared: boolean): WindowCounter {
  if (shared) {
    return {
      async hit(key, windowMs) {
        const { rows } = await sql<{ count: number; ttl_ms: number }>`
          insert into rate_limit_counters as c (key, count, window_ends_at)
          values (${key}, 1, now() + ${windowMs} * interval '1 millisecond')
          on conflict (key) do update set
            count = case when c.window_ends_at <= now() then 1 else c.count + 1 end,
            window_ends_at = case when c.window_ends_at <= now() then excluded.window_ends_at else c.window_ends_at end
          returning count, (extract(epoch from (window_ends_at - now())) * 1000)::integer as ttl_ms`.execute(db);
        return { count: rows[0]!.count, ttlMs: Math.max(0, rows[0]!.ttl_ms) };
      },
    };
  }
  const windows = new Map<string, { count: number; endsAt: number }>();
  return {
    async hit(key, windowMs) {
      const now = Date.now();
      if (windows.size > 50_000) for (const [k, w] of windows) if (w.endsAt <= now) windows.delete(k);
      let window = windows.get(key);
      if (!window || window.endsAt <= now) {
        window = { count: 0, endsAt: now + windowMs };
        windows.set(key, window);
      }
      window.count += 1;
      return { count: window.count, ttlMs: window.endsAt - now };
    },
  };
}

const retryAfter = (ttlMs: number) => Math.max(1, Math.ceil(ttlMs / 1000));

/**
 * DESIGN 2: connect attempts per organisation per hour, OnlyFans and Fansly together. Throws the
 * 429 problem; the detail names the real window and retryAfterSec is what is left of it.
 */
export function connectLimiter(counter: WindowCounter, perHour: number) {
  return async (orgId: string, reply?: FastifyReply): Promise<void> => {
    const { count, ttlMs } = await counter.hit(`connect:${orgId}`, 3_600_000);
    // On a connect, the tighter budget is the one worth showing: it replaces the API key's headers.
    reply?.header('ratelimit-limit', String(perHour)).header('ratelimit-remaining', String(Math.max(0, perHour - count))).header('ratelimit-reset', String(retryAfter(ttlMs)));
    if (count > perHour) {
      throw new ApiError(429, 'rate_limited', `Rate limit of ${perHour} connect attempts per hour (all platforms together) exceeded; try again in ${retryAfter(ttlMs)} s.`, {
        retryAfterSec: retryAfter(ttlMs),
      });
    }
  };
}

/**
 * Failed API-key checks per client IP: past the limit, every key check from that address is
 * answered 429 until the window ends, the right key included, so guessing gains nothing. Nodes
 * sharing PostgreSQL count together; each remembers the block it saw, so blocked addresses cost
 * no query.
 */
export function authFailureLimiter(counter: WindowCounter, perMinute: number) {
  const blockedUntil = new Map<string, number>();
  const tooMany = (ms: number) =>
    new ApiError(429, 'rate_limited', `Too many failed API-key checks from your address: limit of ${perMinute} per minute; try again in ${retryAfter(ms)} s.`, {
      retryAfterSec: retryAfter(ms),
    });
  return {
    /** Throws while the address is blocked. */
    check(ip: string): void {
      const until = blockedUntil.get(ip);
      if (until === undefined) return;
      const left = until - Date.now();
      if (left > 0) throw tooMany(left);
      blockedUntil.delete(ip);
    },
    /** Counts a failure; answers the 429 to throw instead of the 401 once over the limit. */
    async failed(ip: string): Promise<ApiError | undefined> {
      const { count, ttlMs } = await counter.hit(`authfail:${ip}`, 60_000);
      if (count <= perMinute) return undefined;
      if (blockedUntil.size > 10_000) blockedUntil.clear();
      blockedUntil.set(ip, Date.now() + ttlMs);
      return tooMany(ttlMs);
    },
  };
}
export type AuthFailureLimiter = ReturnType<typeof authFailureLimiter>;

export interface RateLimitOptions {
  perKeyPerMinute: number;
  db: Kysely<DB>;
  shared: boolean;
}

/** Per-API-key limit with RateLimit-* headers and a 429 problem (runs after authentication). */
async function rateLimitPlugin(app: FastifyInstance, options: RateLimitOptions) {
  await app.register(rateLimit, {
    global: true,
    hook: 'preValidation',
    max: options.perKeyPerMinute,
    timeWindow: 60_000,
    enableDraftSpec: true,
    keyGenerator: (request) => request.principal?.apiKey.id ?? `ip:${request.ip}`,
    ...(options.shared ? { store: sqlRateLimitStore(options.db) as never } : {}),
    errorResponseBuilder: (_request, context) =>
      new ApiError(429, 'rate_limited', `Rate limit of ${context.max} requests per minute exceeded.`, {
        retryAfterSec: Math.max(1, Math.ceil(context.ttl / 1000)),
      }),
  });
}

export default fp(rateLimitPlugin, { name: 'fangate-rate-limit' });
