import { type AuditRecorder, noAudit, SYSTEM_ACTOR } from '../lib/audit.js';
import { type Kysely, sql, type Transaction } from 'kysely';
import type { Logger } from 'pino';
import type { AccountStatus, DB, ProxyColumn } from '../db/schema.js';
import type { Clock } from '../lib/clock.js';
import type { PlatformSession, PlatformUser } from '../platforms/types.js';
import type { Vault } from '../vault/vault.js';
import { recordEvent } from '../webhooks/outbox.js';
import type { AccountCache } from './cache.js';
import { type AccountRow, type AccountView, accountSecretPlace, canReauth, serializeAccount } from './model.js';
import {
  accountIdentity,
  applyStatusEvent,
  decryptCredentials,
  decryptProxyPassword,
  decryptProxyUsername,
  decryptSession,
  decryptTotpSecret,
  findAccount,
  findAccountByPlatformUser,
  insertAccountIfAbsent,
  type NewAccount,
  renewAccountSession,
  sealLegacyProxyUsernames,
  type SessionRenewal,
} from './repository.js';
import { enterStatus, statusEventForAttempt } from './status.js';

type Db = Kysely<DB> | Transaction<DB>;

/**
 * What other domains may do with accounts (connect logs in and renews sessions; the monitor and the
 * Access API read them). accounts/ owns every write to the `accounts` table: the composition root
 * hands this object over, so no domain imports accounts/ for its behaviour.
 */
export function createAccountsPort(deps: { db: Kysely<DB>; vault: Vault; clock: Clock; logger: Logger; audit?: AuditRecorder }) {
  const { db, vault, clock, logger } = deps;
  const audit = deps.audit ?? noAudit;
  return {
    find: (on: Db, orgId: string, id: string) => findAccount(on, orgId, id),
    findByPlatformUser: findAccountByPlatformUser,
    async view(on: Db, orgId: string, id: string): Promise<AccountView | null> {
      const row = await findAccount(on, orgId, id);
      return row ? serializeAccount(row) : null;
    },
    /** The account as the API shows it, from a row the caller holds. */
    serialize: (row: AccountRow): AccountView => serializeAccount(row),
    /** The account's secrets, decrypted (for a login on its behalf). */
    secrets(account: AccountRow) {
      return {
        credentials: decryptCredentials(vault, account),
        totpSecret: decryptTotpSecret(vault, account),
        session: decryptSession(vault, account),
        proxyPassword: decryptProxyPassword(vault, account),
        proxyUsername: decryptProxyUsername(vault, account),
      };
    },
    identity: (account: AccountRow) => accountIdentity(vault, account),
    /** Moves proxy usernames of versions before migration 0030 from plain text into the vault (at start). */
    sealLegacyProxyUsernames: () => sealLegacyProxyUsernames(db, vault),
    /**
     * A login created the account (connect): audited with it, in the attempt's transaction. undefined, and
     * nothing written, when the platform user is connected in the organisation already.
     */
    async insertIfAbsent(trx: Db, account: NewAccount, now: Date, attemptId?: string): Promise<AccountRow | undefined> {
      const row = await insertAccountIfAbsent(trx, vault, account, now);
      if (!row) return undefined;
      await audit(trx, { orgId: row.org_id, action: 'account.created', targetType: 'account', targetId: row.id, details: { via: 'connect', auth_type: row.auth_type, platform: row.platform, username: row.platform_username, ...(attemptId ? { attempt_id: attemptId } : {}) }, actor: SYSTEM_ACTOR });
      return row;
    },
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

/** Accounts the monitor may check: active ones, and re-authenticating ones waiting for a retry. */
const CHECKED_STATUSES = ['active', 'reauthenticating'] as const;
/** First backoff step after a passing failure, in seconds; doubles per consecutive failure. */
export const BACKOFF_BASE_SEC = 30;
const BACKOFF_MAX_EXPONENT = 10;

/**
 * What the health monitor and the Access API may do with accounts beyond reading them: the schedule,
 * check results, rotated sessions and expiry. Each is one statement or one locked transaction, so
 * several nodes can run them at once.
 */
export function createAccountHealthPort(deps: { db: Kysely<DB>; vault: Vault; clock: Clock; cache?: AccountCache }) {
  const { db, vault, clock, cache } = deps;
  const canReauthRow = (row: AccountRow) => canReauth(row);
  return {
    load: (orgId: string, id: string) => findAccount(db, orgId, id),
    /** `load` through this node's account cache (the Access API's read on every call), when there is one. */
    current: (orgId: string, id: string) => (cache ? cache.load(orgId, id, () => findAccount(db, orgId, id)) : findAccount(db, orgId, id)),
    byId: (id: string) => db.selectFrom('accounts').selectAll().where('id', '=', id).executeTakeFirst(),
    canReauth: canReauthRow,
    view: (row: AccountRow) => serializeAccount(row),
    session: (account: AccountRow) => decryptSession(vault, account),
    identity: (account: AccountRow) => accountIdentity(vault, account),
    /** Moves proxy usernames of versions before migration 0030 from plain text into the vault (at start). */
    sealLegacyProxyUsernames: () => sealLegacyProxyUsernames(db, vault),

    /**
     * Claims up to `limit` accounts due for a check and pushes their next check one interval forward in
     * the same statement (`FOR UPDATE SKIP LOCKED`): no other node takes them, and a worker that dies
     * mid-check only delays them by one interval.
     */
    async claimDue(limit: number): Promise<AccountRow[]> {
      const now = clock.now();
      return db
        .updateTable('accounts')
        .set({ next_check_at: sql`${now}::timestamptz + health_check_interval_sec * interval '1 second'` })
        .where('id', 'in', (eb) =>
          eb
            .selectFrom('accounts')
            .select('id')
            .where('next_check_at', '<=', now)
            .where('status', 'in', CHECKED_STATUSES)
            .orderBy('next_check_at')
            .limit(limit)
            .forUpdate()
            .skipLocked(),
        )
        .returningAll()
        .execute();
    },

    /** The session is valid: stamp the check, schedule the next one, reset the backoff, follow profile changes. */
    async recordValidCheck(account: AccountRow, user: PlatformUser): Promise<AccountRow | undefined> {
      const now = clock.now();
      const profileChanged = user.username !== account.platform_username || user.name !== account.platform_name || user.avatar !== account.platform_avatar;
      return db
        .updateTable('accounts')
        .set({
          last_checked_at: now,
          next_check_at: new Date(now.getTime() + account.health_check_interval_sec * 1000),
          check_failures: 0,
          ...(profileChanged ? { platform_username: user.username, platform_name: user.name, platform_avatar: user.avatar, updated_at: now } : {}),
        })
        .where('id', '=', account.id)
        .where('status', '=', 'active')
        .returningAll()
        .executeTakeFirst();
    },

    /**
     * Many valid checks at once (a claimed batch): their next check was already set by the claim; stamp
     * the check and reset the backoff in one statement.
     */
    async recordValidChecks(ids: string[], profiles: Array<{ id: string; user: PlatformUser }> = []): Promise<void> {
      const now = clock.now();
      if (ids.length > 0) {
        await db.updateTable('accounts').set({ last_checked_at: now, check_failures: 0 }).where('id', 'in', ids).where('status', '=', 'active').execute();
      }
      // Profiles the platform changed (a first check after an import, a renamed creator): one statement too.
      for (let i = 0; i < profiles.length; i += 500) {
        const values = sql.join(profiles.slice(i, i + 500).map((p) => sql`(${p.id}::text, ${p.user.username}::text, ${p.user.name}::text, ${p.user.avatar}::text)`));
        await sql`
          update accounts a set last_checked_at = ${now}, check_failures = 0, platform_username = v.username, platform_name = v.name,
            platform_avatar = v.avatar, updated_at = ${now}
          from (values ${values}) as v(id, username, name, avatar)
          where a.id = v.id and a.status = 'active'`.execute(db);
      }
    },

    /** The platform could not be asked (passing): check again after a backoff (never later than the interval). */
    async recordFailedCheck(account: AccountRow): Promise<Date | null> {
      const now = clock.now();
      const row = await db
        .updateTable('accounts')
        .set({
          check_failures: sql`check_failures + 1`,
          next_check_at: sql`${now}::timestamptz + least(health_check_interval_sec, ${BACKOFF_BASE_SEC} * power(2, least(check_failures, ${BACKOFF_MAX_EXPONENT}))) * interval '1 second'`,
        })
        .where('id', '=', account.id)
        .where('status', '=', 'active')
        .returning('next_check_at')
        .executeTakeFirst();
      return row?.next_check_at ?? null;
    },

    /**
     * Cookies the platform rotated, stored only if the stored session is still the one the request was
     * sent with (compare-and-swap on the ciphertext): of parallel rotations on several nodes the first
     * wins, and a re-authentication's fresh session is never overwritten by an old one.
     */
    async storeRotatedSession(account: AccountRow, sentSessionEnc: string, session: PlatformSession): Promise<boolean> {
      const result = await db
        .updateTable('accounts')
        .set({ session_enc: vault.encryptJson(session, accountSecretPlace(account, 'session_enc')) })
        .where('id', '=', account.id)
        .where('session_enc', '=', sentSessionEnc)
        .executeTakeFirst();
      return Number(result.numUpdatedRows) > 0;
    },

    /**
     * The session is invalid and FanGate will log in again: the account is `reauthenticating` (so the
     * attempt's failure expires it rather than keeping a dead session) and leaves the schedule until the
     * attempt ends. Undefined when the account is gone or no longer checkable.
     */
    async beginReauth(accountId: string, checkedSessionEnc: string | null): Promise<AccountRow | undefined> {
      return db.transaction().execute(async (trx) => {
        const current = await trx.selectFrom('accounts').selectAll().where('id', '=', accountId).forUpdate().executeTakeFirst();
        if (!current || !(CHECKED_STATUSES as readonly string[]).includes(current.status)) return undefined;
        // Renewed since the check (another node's re-authentication already succeeded): nothing to do.
        if (current.session_enc !== checkedSessionEnc) return undefined;
        const now = clock.now();
        return trx
          .updateTable('accounts')
          .set({ ...enterStatus(current.status, 'reauth_started', now), last_checked_at: now, next_check_at: null })
          .where('id', '=', accountId)
          .returningAll()
          .executeTakeFirst();
      });
    },

    /**
     * The re-authentication could not start yet (the account's hourly login budget is spent): it stays
     * `reauthenticating` and the monitor tries again once the budget allows.
     */
    async deferReauth(accountId: string, delaySec: number): Promise<AccountRow | undefined> {
      return db
        .updateTable('accounts')
        .set({ next_check_at: new Date(clock.now().getTime() + delaySec * 1000) })
        .where('id', '=', accountId)
        .where('status', '=', 'reauthenticating')
        .returningAll()
        .executeTakeFirst();
    },

    /** The session is gone and cannot be renewed alone: `expired` + `accounts.session_expired`, once. */
    async expire(accountId: string, on?: Transaction<DB>): Promise<AccountRow | undefined> {
      const run = async (trx: Transaction<DB>) => {
        const current = await trx.selectFrom('accounts').selectAll().where('id', '=', accountId).forUpdate().executeTakeFirst();
        if (!current || current.status === 'expired') return current;
        const now = clock.now();
        const row = await trx
          .updateTable('accounts')
          .set({ ...enterStatus(current.status, 'session_lost', now), last_checked_at: now, next_check_at: null })
          .where('id', '=', accountId)
          .returningAll()
          .executeTakeFirstOrThrow();
        await recordAccountEvent(trx, 'accounts.session_expired', row);
        return row;
      };
      return on ? run(on) : db.transaction().execute(run);
    },

    /**
     * A re-authentication of the account failed (inside the attempt's transaction, after the status
     * table made it `expired`). A passing failure keeps it `reauthenticating` and schedules a retry with
     * backoff, up to `maxRetries`; a final one (or the last retry) announces the expiry.
     */
    async afterFailedReauth(trx: Transaction<DB>, accountId: string, passing: boolean, maxRetries: number): Promise<'retry' | 'expired' | 'none'> {
      const current = await trx.selectFrom('accounts').selectAll().where('id', '=', accountId).forUpdate().executeTakeFirst();
      if (!current || current.status !== 'expired') return 'none';
      if (passing && current.check_failures < maxRetries) {
        const now = clock.now();
        const delaySec = Math.min(BACKOFF_BASE_SEC * 2 ** Math.min(current.check_failures, BACKOFF_MAX_EXPONENT), 3600);
        await trx
          .updateTable('accounts')
          .set({ ...enterStatus(current.status, 'reauth_started', now), check_failures: current.check_failures + 1, next_check_at: new Date(now.getTime() + delaySec * 1000) })
          .where('id', '=', accountId)
          .execute();
        return 'retry';
      }
      await recordAccountEvent(trx, 'accounts.session_expired', current);
      return 'expired';
    },
  };
}

export type AccountHealthPort = ReturnType<typeof createAccountHealthPort>;

/** An account event in the outbox, with the account as the API shows it (never a secret). */
export async function recordAccountEvent(trx: Db, event: Parameters<typeof recordEvent>[1]['event'], row: AccountRow, account: AccountView = serializeAccount(row)): Promise<void> {
  await recordEvent(trx, { orgId: row.org_id, event, accountId: row.id, attemptId: null, clientReferenceId: row.client_reference_id, payload: { account, attempt: null } });
}
