import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance } from 'fastify';
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
