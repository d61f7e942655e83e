import type { Database } from '../db/database.js';
import { ATTEMPT_CHANNEL } from './store.js';

/**
 * Wakes long-polls and event streams when an attempt changes, on any node: every change is
 * NOTIFYed on one channel, and this process keeps one LISTEN for all its waiters.
 */
export function createAttemptWatcher(database: Database) {
  const waiters = new Map<string, Set<() => void>>();
  let listening: Promise<() => Promise<void>> | undefined;

  function ensureListening() {
    listening ??= database.listen(ATTEMPT_CHANNEL, (attemptId) => {
      for (const wake of waiters.get(attemptId) ?? []) wake();
    });
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

    async close(): Promise<void> {
      if (listening) await (await listening)();
      listening = undefined;
    },
  };
}

export type AttemptWatcher = ReturnType<typeof createAttemptWatcher>;
