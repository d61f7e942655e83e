import type { Kysely, Transaction } from 'kysely';
import type { Logger } from 'pino';
import type { AccountStatus, DB, ProxyColumn } from '../db/schema.js';
import type { Clock } from '../lib/clock.js';
import type { Vault } from '../vault/vault.js';
import { recordEvent } from '../webhooks/outbox.js';
import { type AccountRow, type AccountView, serializeAccount } from './model.js';
import {
  accountIdentity,
  applyStatusEvent,
  decryptCredentials,
  decryptProxyPassword,
  decryptSession,
  decryptTotpSecret,
  findAccount,
  findAccountByPlatformUser,
  insertAccount,
  type NewAccount,
  renewAccountSession,
  type SessionRenewal,
} from './repository.js';
import { statusEventForAttempt } from './status.js';

type Db = Kysely<DB> | Transaction<DB>;

/**
 * What other domains may do with accounts (connect logs in and renews sessions; the monitor and the
 * Access API read them). accounts/ owns every write to the `accounts` table: the composition root
 * hands this object over, so no domain imports accounts/ for its behaviour.
 */
export function createAccountsPort(deps: { db: Kysely<DB>; vault: Vault; clock: Clock; logger: Logger }) {
  const { db, vault, clock, logger } = deps;
  return {
    find: (on: Db, orgId: string, id: string) => findAccount(on, orgId, id),
    findByPlatformUser: findAccountByPlatformUser,
    async view(on: Db, orgId: string, id: string): Promise<AccountView | null> {
      const row = await findAccount(on, orgId, id);
      return row ? serializeAccount(row) : null;
    },
    /** The account's secrets, decrypted (for a login on its behalf). */
    secrets(account: AccountRow) {
      return {
        credentials: decryptCredentials(vault, account),
        totpSecret: decryptTotpSecret(vault, account),
        session: decryptSession(vault, account),
        proxyPassword: decryptProxyPassword(vault, account),
      };
    },
    identity: (account: AccountRow) => accountIdentity(vault, account),
    insert: (trx: Db, account: NewAccount, now: Date) => insertAccount(trx, vault, account, now),
    async renewSession(trx: Db, account: AccountRow, renewal: SessionRenewal, now: Date): Promise<AccountRow> {
      const row = await renewAccountSession(trx, vault, account, renewal, now);
      if (account.status !== row.status) {
        logger.info({ accountId: row.id, orgId: row.org_id, clientReferenceId: row.client_reference_id, from: account.status, status: row.status, event: 'session_renewed' }, 'account status changed');
      }
      return row;
    },
    /**
     * An attempt on the account changed (runs in the attempt's transaction): the account is
     * re-authenticating, waits for the creator, or ends up active or expired.
     */
    async followAttempt(
      trx: Transaction<DB>,
      change: { attemptId: string; kind: string; state: string; accountId: string | null; priorAccountStatus: AccountStatus | null; errorCode: string | null },
    ): Promise<void> {
      const event = statusEventForAttempt(change);
      if (!event || !change.accountId) return;
      const moved = await applyStatusEvent(trx, change.accountId, event, clock.now());
      if (moved && moved.from !== moved.row.status) {
        logger.info({ accountId: moved.row.id, orgId: moved.row.org_id, clientReferenceId: moved.row.client_reference_id, attemptId: change.attemptId, from: moved.from, status: moved.row.status, event }, 'account status changed');
      }
    },
    /**
     * A pool proxy of the account failed and the call moved to another of its country: the account
     * sticks to the new one (DESIGN 8), and `accounts.updated` says so. Only when the account still
     * uses `from` (a concurrent move or a PATCH wins).
     */
    async moveProxy(accountId: string, from: ProxyColumn, to: ProxyColumn): Promise<void> {
      await db.transaction().execute(async (trx) => {
        const account = await trx.selectFrom('accounts').selectAll().where('id', '=', accountId).forUpdate().executeTakeFirst();
        if (!account || account.proxy.type !== 'country' || account.proxy.country !== from.country || account.proxy.proxy_id !== from.proxy_id) return;
        const moved = await trx
          .updateTable('accounts')
          .set({ proxy: JSON.stringify(to), updated_at: clock.now() })
          .where('id', '=', accountId)
          .returningAll()
          .executeTakeFirstOrThrow();
        await recordAccountEvent(trx, 'accounts.updated', moved);
      });
    },
  };
}

export type AccountsPort = ReturnType<typeof createAccountsPort>;

/** An account event in the outbox, with the account as the API shows it (never a secret). */
export async function recordAccountEvent(trx: Db, event: Parameters<typeof recordEvent>[1]['event'], row: AccountRow, account: AccountView = serializeAccount(row)): Promise<void> {
  await recordEvent(trx, { orgId: row.org_id, event, accountId: row.id, attemptId: null, clientReferenceId: row.client_reference_id, payload: { account, attempt: null } });
}
