/**
 * A per-node read cache whose entries are dropped by NOTIFY (the database's LISTEN/NOTIFY, which every
 * node receives), with a TTL as a safety net and a bounded size.
 *
 * - It serves from memory only while `live()` says NOTIFYs arrive; otherwise every read goes to the loader.
 * - A load that overlaps an invalidation of its key (or a clear) returns its value but does not keep it:
 *   the row may have been read before the change that the invalidation announced.
 */
export interface NotifiedCacheOptions {
  /** How long an entry may serve at most, even without any NOTIFY. */
  ttlMs: number;
  /** Past this many entries the cache starts over (a flood of distinct keys cannot grow it). */
  maxEntries: number;
  /** Whether NOTIFYs reach this process right now. */
  live: () => boolean;
}

export interface NotifiedCache<K, V> {
  /** The cached value, or undefined (absent, expired, or NOTIFYs not flowing). */
  get(key: K): V | undefined;
  /** Through the cache: `loader` runs on a miss; its value is kept unless the key was invalidated meanwhile. */
  load(key: K, loader: () => Promise<V | undefined>): Promise<V | undefined>;
  invalidate(key: K): void;
  /**
   * Keeps `value` as the key's current value (this node has just committed it): loads of the key in flight
   * may have read an older one and do not keep theirs.
   */
  put(key: K, value: V): void;
  /** Drops every entry `matches` selects. */
  invalidateWhere(matches: (value: V, key: K) => boolean): void;
  clear(): void;
  readonly size: number;
}

export function createNotifiedCache<K, V>(options: NotifiedCacheOptions): NotifiedCache<K, V> {
  const entries = new Map<K, { value: V; until: number }>();
  /** Loads in flight per key, and the generation at which their key was last invalidated. */
  const loading = new Map<K, { count: number; invalidatedAt: number }>();
  let generation = 0;
  let clearedAt = 0;

  /**
   * Drops entries past their TTL. Every entry lives the same TTL and is inserted at the end, so the expired
   * ones are at the front: an entry nobody asks for again (a parked attempt, an idle account) is let go once
   * its TTL passes instead of staying until the cache fills up.
   */
  const sweep = (now: number) => {
    for (const [key, entry] of entries) {
      if (entry.until > now) break;
      entries.delete(key);
    }
  };

  const markInvalidated = (key: K) => {
    const inflight = loading.get(key);
    if (inflight) inflight.invalidatedAt = ++generation;
  };

  const cache: NotifiedCache<K, V> = {
    get(key) {
      if (!options.live()) return undefined;
      const entry = entries.get(key);
      if (!entry) return undefined;
      if (entry.until <= Date.now()) {
        entries.delete(key);
        return undefined;
      }
      return entry.value;
    },

    async load(key, loader) {
      const hit = cache.get(key);
      if (hit !== undefined) return hit;
      const startedAt = generation;
      let inflight = loading.get(key);
      if (!inflight) loading.set(key, (inflight = { count: 0, invalidatedAt: 0 }));
      inflight.count += 1;
      try {
        const value = await loader();
        if (value !== undefined && inflight.invalidatedAt <= startedAt && clearedAt <= startedAt && options.live()) {
          const now = Date.now();
          sweep(now);
          if (entries.size >= options.maxEntries) entries.clear();
          // Re-inserted at the end, so the map stays in expiry order for `sweep`.
          entries.delete(key);
          entries.set(key, { value, until: now + options.ttlMs });
        }
        return value;
      } finally {
        inflight.count -= 1;
        if (inflight.count === 0 && loading.get(key) === inflight) loading.delete(key);
      }
    },

    invalidate(key) {
      entries.delete(key);
      markInvalidated(key);
    },

    put(key, value) {
      markInvalidated(key);
      entries.delete(key);
      if (!options.live()) return;
      const now = Date.now();
      sweep(now);
      if (entries.size >= options.maxEntries) entries.clear();
      entries.set(key, { value, until: now + options.ttlMs });
    },

    invalidateWhere(matches) {
      for (const [key, entry] of entries) if (matches(entry.value, key)) entries.delete(key);
      // Loads in flight cannot be matched by value yet: none of them may keep what it reads.
      clearedAt = ++generation;
    },

    clear() {
      entries.clear();
      clearedAt = ++generation;
    },

    get size() {
      return entries.size;
    },
  };
  return cache;
}

/** What a per-node cache needs of the database's LISTEN/NOTIFY (`Database` has it). */
export interface CacheNotifications {
  listen(channel: string, handler: (payload: string) => void): Promise<() => Promise<void>>;
  listenLive(): boolean;
  onListenGap(handler: () => void): () => void;
}

/**
 * The LISTEN that keeps a per-node cache: subscribed on first use (`subscribe`), `live()` only once it is in
 * place and while NOTIFYs flow (the cache's `live` option), `onGap` whenever some may have been missed.
 */
export function cacheListener(notifications: CacheNotifications, channel: string, handlers: { onNotify: (payload: string) => void; onGap: () => void }) {
  let subscribed = false;
  let subscribing: Promise<() => Promise<void>> | undefined;
  const stopGaps = notifications.onListenGap(handlers.onGap);
  return {
    live: () => subscribed && notifications.listenLive(),
    subscribe(): void {
      if (subscribing) return;
      subscribing = notifications.listen(channel, handlers.onNotify);
      subscribing.then(
        () => void (subscribed = true),
        () => void (subscribing = undefined),
      );
    },
    /** Subscribes if needed and resolves once the LISTEN is in place (a waiter must not miss a NOTIFY); rejects if it could not be. */
    async ready(): Promise<void> {
      this.subscribe();
      await subscribing;
    },
    async close(): Promise<void> {
      stopGaps();
      subscribed = false;
      const unlisten = await subscribing?.catch(() => undefined);
      subscribing = undefined;
      await unlisten?.().catch(() => undefined);
    },
  };
}
