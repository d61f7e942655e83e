import type { Database } from '../db/database.js';
import { cacheListener, createNotifiedCache } from '../lib/notified-cache.js';
import type { AttemptRow } from './attempts.js';
import { ATTEMPT_CHANNEL } from './store.js';

/** How long a cached attempt may serve without any NOTIFY (a safety net: every change NOTIFYs). */
const ATTEMPT_CACHE_MS = 10_000;
/** How long a read waits at most for a commit of this node to report back (see `committing`). */
const COMMIT_WAIT_MS = 250;

/**
 * Wakes long-polls and event streams when an attempt changes, on any node: every change is
 * NOTIFYed on one channel, and this process keeps one LISTEN for all its waiters.
 *
 * The same NOTIFY keeps a per-node cache of attempt rows for reads (the poll route): a change drops older
 * copies of the attempt before any waiter wakes, and the node that made it caches the row it committed. While
 * the LISTEN connection is down the cache is bypassed.
 */
export function createAttemptWatcher(database: Database) {
  const waiters = new Map<string, Set<() => void>>();
  /** The newest version NOTIFYed per attempt, lately: a row this node wrote is not cached over a newer one. */
  const announced = new Map<string, number>();
  const remember = (attemptId: string, version: number) => {
    if (announced.size >= 5_000) announced.clear();
    announced.set(attemptId, version);
  };
  const listener = cacheListener(database, ATTEMPT_CHANNEL, {
    onNotify(payload) {
      // `id:version` for a transition (the version it wrote), a bare id for a change that keeps the version.
      const at = payload.lastIndexOf(':');
      const attemptId = at > 0 ? payload.slice(0, at) : payload;
      const version = at > 0 ? Number(payload.slice(at + 1)) : Number.NaN;
      if (Number.isFinite(version)) {
        if ((announced.get(attemptId) ?? -1) < version) remember(attemptId, version);
        // The row this node cached when it wrote that version itself stays.
        if ((rows.get(attemptId)?.version ?? -1) < version) rows.invalidate(attemptId);
      } else {
        rows.invalidate(attemptId);
      }
      for (const wake of waiters.get(attemptId) ?? []) wake();
    },
    onGap() {
      rows.clear();
      announced.clear();
    },
  });
  const rows = createNotifiedCache<string, AttemptRow>({ ttlMs: ATTEMPT_CACHE_MS, maxEntries: 5_000, live: listener.live });
  /**
   * Attempts this node is committing a new version of. Their NOTIFY leaves with the commit and often arrives
   * before the commit's own answer: a waiter it wakes here waits (briefly) for the committed row this node is
   * about to cache, rather than reading the database for it.
   */
  const committing = new Map<string, { since: number; done: Promise<void>; resolve: () => void }>();
  const settle = (attemptId: string) => {
    committing.get(attemptId)?.resolve();
    committing.delete(attemptId);
  };

  return {
    /** Resolves true when the attempt changes, false after `timeoutMs` or on abort. */
    async next(attemptId: string, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
      await listener.ready();
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
    async cached(attemptId: string, load: () => Promise<AttemptRow | undefined>): Promise<AttemptRow | undefined> {
      listener.subscribe();
      const commit = committing.get(attemptId);
      if (commit) {
        const left = COMMIT_WAIT_MS - (Date.now() - commit.since);
        // A commit that never reported back (its transaction failed elsewhere) stops counting after the wait.
        if (left <= 0) settle(attemptId);
        else await Promise.race([commit.done, new Promise((resolve) => setTimeout(resolve, left).unref())]);
      }
      return rows.load(attemptId, load);
    },

    /** This node wrote a new version of the attempt in a transaction not committed yet (`changed` follows). */
    writing(attemptId: string): void {
      if (committing.size >= 5_000) for (const id of [...committing.keys()]) settle(id);
      settle(attemptId);
      let resolve!: () => void;
      const done = new Promise<void>((r) => (resolve = r));
      committing.set(attemptId, { since: Date.now(), done, resolve });
    },

    /**
     * This node changed the attempt (just committed): its cached row is stale. With `row`, the row as committed
     * is cached instead, so the waiters its NOTIFY wakes here read it from memory.
     */
    changed(attemptId: string, row?: AttemptRow): void {
      if (row && (announced.get(attemptId) ?? -1) <= row.version) rows.put(attemptId, row);
      else rows.invalidate(attemptId);
      settle(attemptId);
    },

    async close(): Promise<void> {
      await listener.close();
      rows.clear();
    },
  };
}

export type AttemptWatcher = ReturnType<typeof createAttemptWatcher>;
