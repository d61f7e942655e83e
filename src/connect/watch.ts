import type { Database } from '../db/database.js';
import { createNotifiedCache } from '../lib/notified-cache.js';
import type { AttemptRow } from './attempts.js';
import { ATTEMPT_CHANNEL } from './store.js';

/** How long a cached attempt may serve without any NOTIFY (a safety net: every change NOTIFYs). */
const ATTEMPT_CACHE_MS = 10_000;

/**
 * Wakes long-polls and event streams when an attempt changes, on any node: every change is
 * NOTIFYed on one channel, and this process keeps one LISTEN for all its waiters.
 *
 * The same NOTIFY keeps a per-node cache of attempt rows for reads (the poll route): a change drops the
 * attempt from the cache before any waiter wakes, and this node's own changes drop it at commit. While
 * the LISTEN connection is down the cache is bypassed.
 */
export function createAttemptWatcher(database: Database) {
  const waiters = new Map<string, Set<() => void>>();
  let listening: Promise<() => Promise<void>> | undefined;
  let subscribed = false;
  const rows = createNotifiedCache<string, AttemptRow>({ ttlMs: ATTEMPT_CACHE_MS, maxEntries: 5_000, live: () => subscribed && database.listenLive() });
  const stopGaps = database.onListenGap(() => rows.clear());

  function ensureListening() {
    if (!listening) {
      listening = database.listen(ATTEMPT_CHANNEL, (attemptId) => {
        rows.invalidate(attemptId);
        for (const wake of waiters.get(attemptId) ?? []) wake();
      });
      listening.then(
        () => void (subscribed = true),
        () => void (listening = undefined),
      );
    }
    return listening;
  }

  return {
    /** Resolves true when the attempt changes, false after `timeoutMs` or on abort. */
    async next(attemptId: string, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
      await ensureListening();
      return new Promise<boolean>((resolve) => {
        let set = waiters.get(attemptId);
        if (!set) waiters.set(attemptId, (set = new Set()));
        const done = (changed: boolean) => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          set.delete(wake);
          if (set.size === 0) waiters.delete(attemptId);
          resolve(changed);
        };
        const wake = () => done(true);
        const onAbort = () => done(false);
        const timer = setTimeout(() => done(false), Math.max(0, timeoutMs));
        set.add(wake);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    },

    /** The attempt through this node's cache; `load` reads it from the database on a miss. */
    cached(attemptId: string, load: () => Promise<AttemptRow | undefined>): Promise<AttemptRow | undefined> {
      if (!subscribed) void ensureListening().catch(() => undefined);
      return rows.load(attemptId, load);
    },

    /** This node changed the attempt (just committed): its cached row is stale. */
    changed(attemptId: string): void {
      rows.invalidate(attemptId);
    },

    async close(): Promise<void> {
      stopGaps();
      subscribed = false;
      rows.clear();
      if (listening) await (await listening)();
      listening = undefined;
    },
  };
}

export type AttemptWatcher = ReturnType<typeof createAttemptWatcher>;
