import type { Database } from '../db/database.js';
import { createNotifiedCache } from '../lib/notified-cache.js';
import type { AccountRow } from './model.js';

/** NOTIFY channel of account changes (migration 0032's trigger): the payload is the account's id. */
export const ACCOUNTS_CHANNEL = 'fangate_accounts';

/** How long a cached row may serve without any NOTIFY (a safety net: every change NOTIFYs). */
const ACCOUNT_CACHE_MS = 30_000;

/**
 * This node's copy of the account rows the Access API reads on every call. A trigger NOTIFYs every change
 * of an account (status, session, proxy, profile; not the health schedule's columns), from whatever code
 * path and node wrote it, and the entry is dropped when the NOTIFY arrives: on PGlite before the writing
 * statement returns, on PostgreSQL within the LISTEN connection's delay (about a millisecond). While the
 * LISTEN connection is down every read goes to the database.
 */
export function createAccountCache(notifications: Pick<Database, 'listen' | 'listenLive' | 'onListenGap'>) {
  let subscribed = false;
  let subscribing: Promise<() => Promise<void>> | undefined;
  const rows = createNotifiedCache<string, AccountRow>({ ttlMs: ACCOUNT_CACHE_MS, maxEntries: 20_000, live: () => subscribed && notifications.listenLive() });
  const stopGaps = notifications.onListenGap(() => rows.clear());

  function subscribe(): void {
    if (subscribing) return;
    subscribing = notifications.listen(ACCOUNTS_CHANNEL, (accountId) => rows.invalidate(accountId));
    subscribing.then(
      () => void (subscribed = true),
      () => void (subscribing = undefined),
    );
  }

  return {
    /** The account through the cache (keyed by id; another organisation's id reads as absent). */
    async load(orgId: string, id: string, loader: () => Promise<AccountRow | undefined>): Promise<AccountRow | undefined> {
      subscribe();
      const row = await rows.load(id, loader);
      return row && row.org_id === orgId ? row : undefined;
    },
    async close(): Promise<void> {
      stopGaps();
      subscribed = false;
      rows.clear();
      const unlisten = await subscribing?.catch(() => undefined);
      subscribing = undefined;
      await unlisten?.();
    },
  };
}

export type AccountCache = ReturnType<typeof createAccountCache>;
