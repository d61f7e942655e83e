import type { Database } from '../db/database.js';
import { cacheListener, type CacheNotifications, createNotifiedCache } from '../lib/notified-cache.js';
import type { AccountRow } from './model.js';

/** NOTIFY channel of account changes (migration 0032's trigger): the payload is the account's id. */
export const ACCOUNTS_CHANNEL = 'fangate_accounts';

/** The health schedule's own columns: writes of only these change nothing a cached row is read for (as in migration 0032). */
const SCHEDULE_COLUMNS = ['last_checked_at', 'next_check_at', 'check_failures', 'updated_at'] as const;

/** How long a cached row may serve without any NOTIFY (a safety net: every change NOTIFYs). */
const ACCOUNT_CACHE_MS = 30_000;

/**
 * This node's copy of the account rows the Access API reads on every call. A trigger NOTIFYs every change
 * of an account (status, session, proxy, profile; not the health schedule's columns), from whatever code
 * path and node wrote it, and the entry is dropped on every node when the NOTIFY arrives (on PostgreSQL within
 * the LISTEN connection's delay, about a millisecond). This node's own writes also empty its cache as the
 * statement returns, so a request sees what the request before it changed. While the LISTEN connection is
 * down every read goes to the database.
 */
export function createAccountCache(notifications: CacheNotifications & Pick<Database, 'watchWrites'>) {
  const listener = cacheListener(notifications, ACCOUNTS_CHANNEL, { onNotify: (accountId) => rows.invalidate(accountId), onGap: () => rows.clear() });
  const rows = createNotifiedCache<string, AccountRow>({ ttlMs: ACCOUNT_CACHE_MS, maxEntries: 20_000, live: listener.live });
  // Which accounts a statement wrote is not known here; writes that matter are rare beside reads.
  const stopWrites = notifications.watchWrites('accounts', SCHEDULE_COLUMNS, () => rows.clear());

  return {
    /** The account through the cache (keyed by id; another organisation's id reads as absent). */
    async load(orgId: string, id: string, loader: () => Promise<AccountRow | undefined>): Promise<AccountRow | undefined> {
      listener.subscribe();
      const row = await rows.load(id, loader);
      return row && row.org_id === orgId ? row : undefined;
    },
    async close(): Promise<void> {
      stopWrites();
      await listener.close();
      rows.clear();
    },
  };
}

export type AccountCache = ReturnType<typeof createAccountCache>;
