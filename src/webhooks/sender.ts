import type { Pool } from 'undici';
import { AddressRefusedError, pinnedLookup, type Resolver, resolveAllowedAddress } from '../net/address-guard.js';
import { loadUndici, undici } from '../net/undici.js';

/** One HTTP POST to a receiver: the address checked, the socket pinned to it, no redirects, a hard timeout. */

export interface SendResult {
  /** HTTP status, when the receiver answered. */
  status: number | null;
  /** The first 1 KB of the answer. */
  body: string | null;
  /** Seconds the receiver asked us to wait (Retry-After), when it did. */
  retryAfterSec: number | null;
  error: string | null;
  durationMs: number;
}

export interface SenderOptions {
  allowPrivate: boolean;
  resolver?: Resolver;
  timeoutMs: number;
  /** Connections per (receiver origin, address). */
  connectionsPerOrigin: number;
}

const MAX_KEPT_BODY = 1024;
const MAX_READ_BODY = 64 * 1024;
const MAX_POOLS = 512;

export function parseRetryAfter(value: string | string[] | undefined, now: number): number | null {
  const raw = Array.isArray(value) ? value[0] : value;
  if (!raw) return null;
  if (/^\d+$/.test(raw.trim())) return Number(raw.trim());
  const at = Date.parse(raw);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - now) / 1000));
}

export function createSender(options: SenderOptions) {
  // Keep-alive pools per (origin, checked address): a pinned connection never follows a new DNS answer.
  const pools = new Map<string, Pool>();

  function poolFor(origin: string, address: { address: string; family: 4 | 6 }): Pool {
    const key = `${origin}|${address.address}`;
    let pool = pools.get(key);
    if (pool) {
      // Most recently used last: eviction takes the oldest.
      pools.delete(key);
      pools.set(key, pool);
      return pool;
    }
    if (pools.size >= MAX_POOLS) {
      const [oldestKey, oldest] = pools.entries().next().value as [string, Pool];
      pools.delete(oldestKey);
      void oldest.close().catch(() => undefined);
    }
    pool = new (undici().Pool)(origin, {
      connections: options.connectionsPerOrigin,
      connect: { lookup: pinnedLookup(address) as never, timeout: options.timeoutMs },
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
      keepAliveTimeout: 4_000,
    });
    pools.set(key, pool);
    return pool;
  }

  return {
    async send(url: string, headers: Record<string, string>, body: string): Promise<SendResult> {
      const started = performance.now();
      const done = (r: Omit<SendResult, 'durationMs'>): SendResult => ({ ...r, durationMs: Math.round(performance.now() - started) });
      let target: URL;
      try {
        target = new URL(url);
      } catch {
        return done({ status: null, body: null, retryAfterSec: null, error: 'invalid endpoint URL' });
      }
      let address;
      try {
        address = await resolveAllowedAddress(target.hostname, { allowPrivate: options.allowPrivate, resolver: options.resolver });
      } catch (error) {
        return done({ status: null, body: null, retryAfterSec: null, error: error instanceof AddressRefusedError ? error.message : 'address check failed' });
      }
      await loadUndici();
      const signal = AbortSignal.timeout(options.timeoutMs);
      try {
        // undici's request never follows redirects: a 3xx is an answer like any other non-2xx.
        const response = await poolFor(target.origin, address).request({
          method: 'POST',
          path: `${target.pathname}${target.search}`,
          headers: { 'content-type': 'application/json', 'user-agent': 'FanGate-Webhooks/0.1', ...headers },
          body,
          signal,
        });
        const kept: Buffer[] = [];
        let keptBytes = 0;
        let read = 0;
        for await (const chunk of response.body as AsyncIterable<Buffer>) {
          read += chunk.length;
          if (keptBytes < MAX_KEPT_BODY) {
            kept.push(chunk.subarray(0, MAX_KEPT_BODY - keptBytes));
            keptBytes += Math.min(chunk.length, MAX_KEPT_BODY - keptBytes);
          }
          if (read > MAX_READ_BODY) {
            response.body.destroy();
            break;
          }
        }
        return done({
          status: response.statusCode,
          body: keptBytes > 0 ? Buffer.concat(kept).toString('utf8') : null,
          retryAfterSec: parseRetryAfter(response.headers['retry-after'], Date.now()),
          error: null,
        });
      } catch (error) {
        const err = error as { name?: string; code?: string; message?: string };
        const timedOut = signal.aborted || err.code === 'UND_ERR_HEADERS_TIMEOUT' || err.code === 'UND_ERR_BODY_TIMEOUT' || err.code === 'UND_ERR_CONNECT_TIMEOUT';
        const message = timedOut ? `timed out after ${options.timeoutMs} ms` : `${err.code ?? err.name ?? 'error'}: ${err.message ?? 'request failed'}`;
        return done({ status: null, body: null, retryAfterSec: null, error: message.slice(0, 500) });
      }
    },

    async close(): Promise<void> {
      const all = [...pools.values()];
      pools.clear();
      await Promise.all(all.map((p) => p.destroy().catch(() => undefined)));
    },
  };
}

export type Sender = ReturnType<typeof createSender>;
