import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply } from 'fastify';
import fp from 'fastify-plugin';
import { type Kysely, sql } from 'kysely';
import type { DB } from '../../db/schema.js';
import { createBatchedSync, localAllowance } from '../../lib/batched-sync.js';
import { ApiError } from '../../lib/errors.js';

export interface WindowCount {
  count: number;
  /** Milliseconds until the window ends. */
  ttlMs: number;
}

/**
 * Counts hits of a key in a fixed window: `hit` adds one and answers the count so far. Past `limit`
 * a hit is answered (count over the limit) without being counted.
 */
export interface WindowCounter {
  hit(key: string, windowMs: number, limit: number): Promise<WindowCount>;
  close(): Promise<void>;
}

/** How often a node shares its counts with the others (PostgreSQL). */
export const RATE_LIMIT_FLUSH_MS = 100;

/**
 * Fixed-window counters for every limit of the API (per API key, connects per organisation, failed key
 * checks per address, the mobile hand-off per address).
 *
 * Embedded mode is one process: exact counts in memory. On PostgreSQL every node counts in memory and
 * shares its counts with the others through the `rate_limit_counters` table (src/lib/batched-sync.ts):
 * one upsert for all keys every RATE_LIMIT_FLUSH_MS, and sooner when a key's unshared count reaches its
 * allowance (2% of the limit, at least 1). A request is decided from the last shared count
 * plus this node's own, so a single node counts exactly and N nodes together admit at most
 * (N - 1) x allowance requests over a limit in a window. The first request of a key in a window waits for
 * one round trip (to learn the shared count); the others cost no query.
 */
export function createWindowCounter(db: Kysely<DB>, shared: boolean, onError: (error: unknown) => void = () => undefined): WindowCounter {
  if (shared) {
    const counts = createBatchedSync<{ count: number; endsAt: number }>({
      intervalMs: RATE_LIMIT_FLUSH_MS,
      isStale: (state, now) => state.endsAt <= now,
      onError,
      async flush(batch) {
        // One lock order on every node (sorted keys): concurrent flushes of two nodes cannot deadlock.
        batch.sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
        const { rows } = await sql<{ key: string; count: number; ttl_ms: number }>`
          insert into rate_limit_counters as c (key, count, window_ends_at)
          select t.key, t.delta, now() + t.window_ms * interval '1 millisecond'
          from unnest(${batch.map((e) => e.key)}::text[], ${batch.map((e) => e.delta)}::integer[], ${batch.map((e) => e.param)}::integer[]) with ordinality as t(key, delta, window_ms, n)
          order by t.n
          on conflict (key) do update set
            count = case when c.window_ends_at <= now() then excluded.count else c.count + excluded.count end,
            window_ends_at = case when c.window_ends_at <= now() then excluded.window_ends_at else c.window_ends_at end
          returning key, count, (extract(epoch from (window_ends_at - now())) * 1000)::integer as ttl_ms`.execute(db);
        const now = Date.now();
        return new Map(rows.map((row) => [row.key, { count: row.count, endsAt: now + Math.max(0, row.ttl_ms) }]));
      },
    });
    return {
      async hit(key, windowMs, limit) {
        const allowance = localAllowance(limit);
        for (;;) {
          const now = Date.now();
          const state = counts.state(key);
          if (!state || state.endsAt <= now) {
            // A new window (or a first look): count it and learn the shared count in one round trip.
            counts.add(key, 1, windowMs);
            await counts.sync();
            const fresh = counts.state(key)!;
            return { count: fresh.count + counts.local(key), ttlMs: Math.max(0, fresh.endsAt - Date.now()) };
          }
          const known = state.count + counts.local(key);
          const ttlMs = state.endsAt - now;
          if (known >= limit) return { count: known + 1, ttlMs };
          if (counts.local(key) < allowance) {
            counts.add(key, 1, windowMs);
            // Shared ahead of need: from half the allowance on, a flush runs in the background, so a busy key
            // rarely waits for one below (the wait stalled every request of the key once per allowance).
            if (counts.local(key) * 2 >= allowance) counts.nudge();
            return { count: known + 1, ttlMs };
          }
          await counts.sync(); // this node's allowance is used up: share it first, then decide again
        }
      },
      close: () => counts.close(),
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
    close: async () => undefined,
  };
}

/** The per-route limits of @fastify/rate-limit counted by a WindowCounter (one prefix per route). */
function windowCounterStore(counter: WindowCounter) {
  return class WindowCounterStore {
    constructor(
      _options: unknown,
      private readonly prefix = '',
    ) {}

    incr(key: string, callback: (error: Error | null, result?: { current: number; ttl: number }) => void, timeWindow: number, max: number): void {
      counter.hit(`${this.prefix}${key}`, timeWindow, max).then(
        ({ count, ttlMs }) => callback(null, { current: count, ttl: ttlMs }),
        (error: Error) => callback(error),
      );
    }

    child(routeOptions: { routeInfo?: { method?: string; url?: string } }) {
      return new WindowCounterStore(undefined, `${routeOptions.routeInfo?.method ?? ''}${routeOptions.routeInfo?.url ?? ''}:`);
    }
  };
}

const retryAfter = (ttlMs: number) => Math.max(1, Math.ceil(ttlMs / 1000));

/**
 * DESIGN 2: connect attempts per organisation per hour, OnlyFans and Fansly together. Throws the
 * 429 problem; the detail names the real window and retryAfterSec is what is left of it.
 */
export function connectLimiter(counter: WindowCounter, perHour: number) {
  return async (orgId: string, reply?: FastifyReply): Promise<void> => {
    const { count, ttlMs } = await counter.hit(`connect:${orgId}`, 3_600_000, perHour);
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
      const { count, ttlMs } = await counter.hit(`authfail:${ip}`, 60_000, perMinute);
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
  /** On PostgreSQL the shared counter; embedded, the plugin's own in-memory store is exact. */
  counter?: WindowCounter;
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
    ...(options.counter ? { store: windowCounterStore(options.counter) as never } : {}),
    errorResponseBuilder: (_request, context) =>
      new ApiError(429, 'rate_limited', `Rate limit of ${context.max} requests per minute exceeded.`, {
        retryAfterSec: Math.max(1, Math.ceil(context.ttl / 1000)),
      }),
  });
}

export default fp(rateLimitPlugin, { name: 'fangate-rate-limit' });
