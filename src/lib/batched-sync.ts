/**
 * Counting shared by several nodes without a database write per request: each node adds to local
 * per-key deltas and flushes them all in one statement every `intervalMs` (and whenever a caller asks),
 * learning every key's shared state back from the same statement. Limits built on it (per-key rate
 * limits, the Access API's per-account buckets) decide from the last shared state plus the local delta,
 * and cap the local delta (flushed or in flight) per key at K: then all nodes together overshoot a limit
 * by at most (nodes - 1) x K, and a single node counts exactly.
 */
export interface BatchEntry {
  key: string;
  /** What this node added to the key since its last flush. */
  delta: number;
  /** A number the flush needs along (a window length, a bucket size): the last one added wins. */
  param: number;
}

export interface BatchedSyncOptions<S> {
  /** How often pending deltas are flushed in the background. */
  intervalMs: number;
  /** Applies the deltas (in one round trip for all keys) and answers the shared state of each key after them. */
  flush(batch: BatchEntry[]): Promise<Map<string, S>>;
  /** A state no longer worth keeping (a window that ended): pruned in the background. */
  isStale(state: S, nowMs: number): boolean;
  /** Background flush failures (the deltas stay pending and go with the next flush). */
  onError(error: unknown): void;
}

export interface BatchedSync<S> {
  /** The last shared state learnt for `key`, if any. */
  state(key: string): S | undefined;
  /** This node's delta for `key` not yet in the shared state (pending or being flushed). */
  local(key: string): number;
  add(key: string, delta: number, param: number): void;
  /** Flushes now (coalesced with a flush in flight); resolves once this node's deltas so far are shared. */
  sync(): Promise<void>;
  /** Starts a flush in the background unless one is in flight (sharing ahead of need, without waiting). */
  nudge(): void;
  /** Stops the background flush after a last one. */
  close(): Promise<void>;
}

export function createBatchedSync<S>(options: BatchedSyncOptions<S>): BatchedSync<S> {
  const pending = new Map<string, { delta: number; param: number }>();
  const inflight = new Map<string, number>();
  const states = new Map<string, S>();
  let current: Promise<void> | undefined;
  let queued: Promise<void> | undefined;
  let lastPrune = Date.now();

  async function flushOnce(): Promise<void> {
    const batch: BatchEntry[] = [...pending].map(([key, { delta, param }]) => ({ key, delta, param }));
    pending.clear();
    for (const entry of batch) inflight.set(entry.key, (inflight.get(entry.key) ?? 0) + entry.delta);
    try {
      const fresh = batch.length > 0 ? await options.flush(batch) : new Map<string, S>();
      for (const [key, state] of fresh) states.set(key, state);
    } catch (error) {
      // Not counted yet: back to pending, for the next flush.
      for (const entry of batch) {
        const waiting = pending.get(entry.key);
        pending.set(entry.key, { delta: (waiting?.delta ?? 0) + entry.delta, param: waiting?.param ?? entry.param });
      }
      throw error;
    } finally {
      for (const entry of batch) {
        const left = (inflight.get(entry.key) ?? 0) - entry.delta;
        if (left <= 0) inflight.delete(entry.key);
        else inflight.set(entry.key, left);
      }
    }
  }

  function sync(): Promise<void> {
    if (!current) {
      current = flushOnce().finally(() => {
        current = undefined;
      });
      return current;
    }
    // A flush is in flight: what was added since goes in the next one, which every caller meanwhile shares.
    queued ??= current
      .catch(() => undefined)
      .then(() => {
        queued = undefined;
        return sync();
      });
    return queued;
  }

  const timer = setInterval(() => {
    const now = Date.now();
    if (now - lastPrune > 10_000) {
      lastPrune = now;
      for (const [key, state] of states) if (options.isStale(state, now) && !pending.has(key) && !inflight.has(key)) states.delete(key);
    }
    if (pending.size > 0 && !current) sync().catch(options.onError);
  }, options.intervalMs);
  timer.unref();

  return {
    state: (key) => states.get(key),
    local: (key) => (pending.get(key)?.delta ?? 0) + (inflight.get(key) ?? 0),
    add(key, delta, param) {
      const waiting = pending.get(key);
      if (waiting) {
        waiting.delta += delta;
        waiting.param = param;
      } else pending.set(key, { delta, param });
    },
    sync,
    nudge() {
      if (!current) sync().catch(options.onError);
    },
    async close() {
      clearInterval(timer);
      if (pending.size > 0) await sync().catch(options.onError);
    },
  };
}

/**
 * The per-key cap on what a node counts before it must share it: about 2% of the limit (at least 1), so
 * the overshoot across nodes stays a small fraction of the limit. No absolute ceiling: one of 100 made a key
 * under a large limit share (an upsert) every 50 requests, 80 times a second at 4,000 requests/s, instead of
 * once per flush interval (≈ 25 µs of PostgreSQL's CPU per request, measured).
 */
export const localAllowance = (limit: number): number => Math.max(1, Math.floor(limit / 50));
