import { type Actor, type AuditRecorder, noAudit } from '../lib/audit.js';
import { type Kysely, sql, type Updateable } from 'kysely';
import type { Logger } from 'pino';
import type { AccountsTable, DB, PlatformName, ProxyColumn } from '../db/schema.js';
import { ApiError, type FieldError, notFound, validationError } from '../lib/errors.js';
import type { Clock } from '../lib/clock.js';
import { newId } from '../lib/ids.js';
import { decodeCursor, type Page, toPage } from '../lib/pagination.js';
import { ProxyError, UpstreamUnavailableError } from '../net/errors.js';
import { type CustomProxyBody, parseProxyChoice, type ProxyInput } from '../net/proxy-choice.js';
import { IMPORT_PLATFORM, sessionCookieErrors, sessionUserId } from '../platforms/capabilities.js';
import { NoPoolProxyError, type PlatformGateway, type PlatformIdentity, UpstreamTimeoutError } from '../platforms/gateway.js';
import { newBrowserIdentity } from '../platforms/identity.js';
import type { DriverContext, PlatformDriver, PlatformSession, PlatformUser } from '../platforms/types.js';
import type { Vault } from '../vault/vault.js';
import { type AccountRow, type AccountStatus, type AccountView, accountSecretPlace, serializeAccount } from './model.js';
import { createAccountsPort, recordAccountEvent } from './port.js';
import { accountIdentity, decryptSession, findAccount, findAccountByPlatformUser, insertAccount, renewAccountSession } from './repository.js';
import { enterStatus } from './status.js';

/**
 * Accounts (DESIGN 5) and the Access API's `GET /api/{account_id}/me` (DESIGN 10): list, read,
 * change, disconnect and invalidate connected accounts, import copied browser sessions and rotate
 * them in place. Every change writes its outbox event in the same transaction as the change; no
 * network call runs inside a transaction.
 */

export interface AccountServiceDeps {
  db: Kysely<DB>;
  vault: Vault;
  platforms: PlatformGateway;
  /** Cancels the account's running attempts (connect/), before a delete, an invalidation or an import rotation. */
  cancelAttempts: (accountId: string) => Promise<void>;
  clock: Clock;
  logger: Logger;
  /** How long one upstream call may take before it is answered 502, in ms. Default 20 s. */
  upstreamTimeoutMs?: number;
  /** The audit log (written in the change's transaction). */
  audit?: AuditRecorder;
}

export const MIN_HEALTH_CHECK_INTERVAL_SEC = 60;
export const MAX_HEALTH_CHECK_INTERVAL_SEC = 86_400;
/** Retry-After of the 503 while FanGate logs in again by itself, and while it waits for the creator. */
const RETRY_AFTER_REAUTHENTICATING_SEC = 5;
const RETRY_AFTER_AWAITING_2FA_SEC = 30;

export interface ListAccountsQuery {
  limit: number;
  cursor?: string;
  status?: AccountStatus;
  platform?: PlatformName;
  client_reference_id?: string;
  /** Platform username, case-insensitive. */
  username?: string;
}

export interface PatchAccountBody {
  display_name?: string;
  /** null clears it. */
  client_reference_id?: string | null;
  /** null: no proxy (direct). */
  proxyCountry?: string | null;
  /** null: no proxy (direct). */
  customProxy?: CustomProxyBody | null;
  health_check_interval_sec?: number;
}

export interface ImportBody {
  cookie: string;
  userAgent: string;
  xbc?: string;
  clientReferenceId?: string;
  name?: string;
  proxyCountry?: string;
  customProxy?: CustomProxyBody;
}

export interface RotateImportBody {
  cookie: string;
  userAgent: string;
  xbc?: string;
}

export interface MeView {
  id: string;
  username: string;
  name: string;
  avatar: string | null;
}

const upstreamError = (detail: string, upstreamStatus: number | null, retryable = true) =>
  new ApiError(502, 'upstream_error', detail, { retryable, extra: { upstreamStatus } });

/** A unique-index violation (PostgreSQL and PGlite both report SQLSTATE 23505). */
const isUniqueViolation = (error: unknown) => (error as { code?: unknown } | null)?.code === '23505';

export function createAccountService(deps: AccountServiceDeps) {
  const audit = deps.audit ?? noAudit;
  const { db, vault, platforms, clock, logger } = deps;
  const port = createAccountsPort({ db, vault, clock, logger });
  const timeoutMs = deps.upstreamTimeoutMs ?? 20_000;

  async function load(orgId: string, id: string): Promise<AccountRow> {
    const row = await findAccount(db, orgId, id);
    if (!row) throw notFound('Account');
    return row;
  }

  /**
   * One call to the platform with the given identity, in the language of the API: a pool proxy that
   * fails is swapped once for another of its country (`onFailover` persists the move); a proxy or
   * network failure, or no answer in time, is a 502 `upstream_error` problem, never a 500.
   * `retries`: extra tries after an upstream failure (not after a proxy failure).
   */
  async function callPlatform<T>(
    platform: PlatformName,
    identity: PlatformIdentity,
    fn: (driver: PlatformDriver, ctx: DriverContext) => Promise<T>,
    options: { retries?: number; onFailover?: (proxy: ProxyColumn) => Promise<void> } = {},
  ): Promise<T> {
    try {
      return await platforms.call(platform, identity, fn, { timeoutMs, ...options });
    } catch (error) {
      if (error instanceof NoPoolProxyError) {
        throw upstreamError(`The account's proxy failed: no proxy of country "${error.country}" is available in the operator's pool.`, null);
      }
      if (error instanceof ProxyError) throw upstreamError(`The account's proxy failed: ${error.publicMessage}`, null);
      if (error instanceof UpstreamUnavailableError) {
        throw upstreamError(`The platform could not be reached or failed: ${error.message}.`, error.upstreamStatus ?? null);
      }
      if (error instanceof UpstreamTimeoutError) throw upstreamError(`The platform did not answer within ${Math.round(timeoutMs / 1000)} s.`, null);
      throw error;
    }
  }

  /** Records a pool failover on an existing account: its new sticky proxy, and `accounts.updated`. */
  const persistFailover = (account: AccountRow) => (proxy: ProxyColumn) => port.moveProxy(account.id, account.proxy, proxy);

  /** The cookie string of an import, checked like a raw_data connect; errors name `cookie`. */
  function importSession(body: RotateImportBody, errors: FieldError[]): PlatformSession | null {
    errors.push(...sessionCookieErrors(IMPORT_PLATFORM, body.cookie, 'cookie'));
    if (body.userAgent.trim() === '') errors.push({ field: 'userAgent', message: 'must not be blank' });
    if (errors.length > 0) return null;
    const authId = sessionUserId(IMPORT_PLATFORM, body.cookie)!;
    // Without x-bc the platform checks the session without it: never invent one it would reject.
    return { authId, cookies: body.cookie.trim(), xbc: body.xbc ?? '', userAgent: body.userAgent };
  }

  function alreadyConnected(existing: AccountRow): ApiError {
    return new ApiError(409, 'account_already_connected', `This platform user (@${existing.platform_username}) is already connected as ${existing.id}.`, {
      extra: { existing_account_id: existing.id },
    });
  }

  /** Validates a session upstream; a rejection is 400 `session_invalid`. */
  async function validateOrReject(platform: PlatformName, identity: PlatformIdentity, session: PlatformSession, onFailover?: (proxy: ProxyColumn) => Promise<void>) {
    let used = identity;
    const check = await callPlatform(platform, identity, (driver, ctx) => driver.validateSession(ctx, session), {
      retries: 1,
      onFailover: async (proxy) => {
        used = { ...used, proxy };
        await onFailover?.(proxy);
      },
    });
    if (!check.valid) throw new ApiError(400, 'session_invalid', `The platform rejected the session: ${check.message}.`, { retryable: false });
    return { user: check.user, session: check.session ?? session, proxy: used.proxy };
  }

  const service = {
    async list(orgId: string, query: ListAccountsQuery): Promise<Page<AccountView>> {
      const cursor = decodeCursor(query.cursor);
      let q = db
        .selectFrom('accounts')
        .selectAll()
        .where('org_id', '=', orgId)
        .orderBy('created_at', 'desc')
        .orderBy('id', 'desc')
        .limit(query.limit + 1);
      if (query.status) q = q.where('status', '=', query.status);
      if (query.platform) q = q.where('platform', '=', query.platform);
      if (query.client_reference_id !== undefined) q = q.where('client_reference_id', '=', query.client_reference_id);
      if (query.username !== undefined) q = q.where(sql<string>`lower(platform_username)`, '=', query.username.replace(/^@/, '').toLowerCase());
      if (cursor) {
        q = q.where((eb) => eb.or([eb('created_at', '<', cursor.createdAt), eb.and([eb('created_at', '=', cursor.createdAt), eb('id', '<', cursor.id)])]));
      }
      return toPage(await q.execute(), query.limit, serializeAccount);
    },

    async get(orgId: string, id: string): Promise<AccountView> {
      return serializeAccount(await load(orgId, id));
    },

    /** Changes what the developer owns of an account; `accounts.updated` when anything changed. */
    async patch(orgId: string, id: string, body: PatchAccountBody): Promise<AccountView> {
      const errors: FieldError[] = [];
      let proxy: ProxyInput | null | undefined;
      if (body.proxyCountry !== undefined && body.customProxy !== undefined) {
        errors.push({ field: 'proxyCountry', message: 'cannot be combined with customProxy: choose one' });
      } else if (body.proxyCountry === null || body.customProxy === null) {
        proxy = { proxy: { type: 'none' }, password: null, username: null };
      } else if (body.proxyCountry !== undefined || body.customProxy !== undefined) {
        proxy = parseProxyChoice({ proxyCountry: body.proxyCountry ?? undefined, customProxy: body.customProxy ?? undefined }, platforms.pool, errors);
        errors.push(...(await platforms.checkCustomProxy(proxy)));
      }
      const interval = body.health_check_interval_sec;
      if (interval !== undefined && (interval < MIN_HEALTH_CHECK_INTERVAL_SEC || interval > MAX_HEALTH_CHECK_INTERVAL_SEC)) {
        errors.push({ field: 'health_check_interval_sec', message: `must be between ${MIN_HEALTH_CHECK_INTERVAL_SEC} and ${MAX_HEALTH_CHECK_INTERVAL_SEC} seconds` });
      }
      if (errors.length > 0) throw validationError(errors);

      return db.transaction().execute(async (trx) => {
        const current = await trx.selectFrom('accounts').selectAll().where('org_id', '=', orgId).where('id', '=', id).forUpdate().executeTakeFirst();
        if (!current) throw notFound('Account');
        const now = clock.now();
        const set: Updateable<AccountsTable> = {};
        if (body.display_name !== undefined) set.display_name = body.display_name;
        if (body.client_reference_id !== undefined) set.client_reference_id = body.client_reference_id;
        if (proxy) {
          const sameCountry = proxy.proxy.type === 'country' && current.proxy.type === 'country' && current.proxy.country === proxy.proxy.country;
          // Same country again: stay on the proxy the account already sticks to.
          if (!sameCountry) {
            set.proxy = JSON.stringify(proxy.proxy);
            set.proxy_password_enc = proxy.password ? vault.encrypt(proxy.password, accountSecretPlace(current, 'proxy_password_enc')) : null;
            set.proxy_username_enc = proxy.username ? vault.encrypt(proxy.username, accountSecretPlace(current, 'proxy_username_enc')) : null;
          }
        }
        if (interval !== undefined) {
          set.health_check_interval_sec = interval;
          if (current.next_check_at) {
            // The next check follows the new interval from the last one, but is never in the past.
            const due = (current.last_checked_at ?? now).getTime() + interval * 1000;
            set.next_check_at = new Date(Math.max(due, now.getTime()));
          }
        }
        if (Object.keys(set).length === 0) return serializeAccount(current);
        const row = await trx
          .updateTable('accounts')
          .set({ ...set, updated_at: now })
          .where('id', '=', current.id)
          .returningAll()
          .executeTakeFirstOrThrow();
        await recordAccountEvent(trx, 'accounts.updated', row);
        return serializeAccount(row);
      });
    },

    /**
     * Disconnects: cancels running attempts, logs out upstream where it can, then in one transaction
     * erases every secret (the account row and what its attempts still hold), deletes the row and
     * records `accounts.disconnected` with the account as it was.
     */
    async remove(orgId: string, id: string, actor: Actor): Promise<void> {
      const account = await load(orgId, id);
      await deps.cancelAttempts(account.id);
      try {
        const session = decryptSession(vault, account);
        if (session) await callPlatform(account.platform, accountIdentity(vault, account), (driver, ctx) => driver.logout(ctx, session));
      } catch (error) {
        // Best effort: the session is forgotten here whatever the platform (or a lost vault key) says.
        logger.warn({ accountId: account.id, err: error instanceof ApiError ? error.message : error }, 'upstream logout failed; deleting the account anyway');
      }
      await db.transaction().execute(async (trx) => {
        const current = await trx.selectFrom('accounts').selectAll().where('org_id', '=', orgId).where('id', '=', id).forUpdate().executeTakeFirst();
        if (!current) throw notFound('Account');
        await trx
          .updateTable('auth_attempts')
          .set({ input_enc: null, resume_enc: null, pending_code_enc: null, mobile_code_hash: null })
          .where('account_id', '=', current.id)
          .execute();
        await recordAccountEvent(trx, 'accounts.disconnected', current);
        await audit(trx, { orgId, action: 'account.deleted', targetType: 'account', targetId: current.id, details: { platform: current.platform, username: current.platform_username }, actor });
        await trx.deleteFrom('accounts').where('id', '=', current.id).execute();
      });
    },

    /** Marks the session dead (e.g. the creator logged out elsewhere); the record stays for a reconnect. */
    async invalidate(orgId: string, id: string, actor: Actor): Promise<AccountView> {
      const account = await load(orgId, id);
      if (account.status === 'expired') return serializeAccount(account);
      await deps.cancelAttempts(account.id);
      return db.transaction().execute(async (trx) => {
        const now = clock.now();
        const row = await trx
          .updateTable('accounts')
          .set({ ...enterStatus(account.status, 'session_lost', now), next_check_at: null })
          .where('org_id', '=', orgId)
          .where('id', '=', id)
          .returningAll()
          .executeTakeFirst();
        if (!row) throw notFound('Account');
        await recordAccountEvent(trx, 'accounts.session_expired', row);
        await audit(trx, { orgId, action: 'account.invalidated', targetType: 'account', targetId: row.id, details: { from: account.status }, actor });
        return serializeAccount(row);
      });
    },

    /** `POST /api/accounts/import`: validates the copied session synchronously and creates the account. */
    async importAccount(orgId: string, body: ImportBody, actor: Actor): Promise<AccountView> {
      const errors: FieldError[] = [];
      const session = importSession(body, errors);
      const proxy = parseProxyChoice(body, platforms.pool, errors);
      errors.push(...(await platforms.checkCustomProxy(proxy)));
      if (!session || errors.length > 0) throw validationError(errors);

      // Known before any upstream call: the auth_id cookie is the platform user id.
      const known = await findAccountByPlatformUser(db, orgId, IMPORT_PLATFORM, session.authId);
      if (known) throw alreadyConnected(known);

      // The creator's x-bc stays inside the encrypted session; the account's own device id (plain
      // text, used for FanGate's later logins) is a fresh one.
      const deviceId = newBrowserIdentity().deviceId;
      const identity: PlatformIdentity = { proxy: proxy?.proxy ?? { type: 'none' }, proxyPassword: proxy?.password ?? null, proxyUsername: proxy?.username ?? null, userAgent: body.userAgent, deviceId };
      const valid = await validateOrReject(IMPORT_PLATFORM, identity, session);

      try {
        return await db.transaction().execute(async (trx) => {
          const existing = await findAccountByPlatformUser(trx, orgId, IMPORT_PLATFORM, valid.user.id);
          if (existing) throw alreadyConnected(existing);
          const row = await insertAccount(
            trx,
            vault,
            {
              id: newId('acct'),
              orgId,
              platform: IMPORT_PLATFORM,
              displayName: body.name ?? valid.user.username,
              authType: 'raw_data',
              imported: true,
              rememberCredentials: false,
              clientReferenceId: body.clientReferenceId ?? null,
              user: valid.user,
              proxy: valid.proxy,
              proxyPassword: proxy?.password ?? null,
              proxyUsername: proxy?.username ?? null,
              userAgent: body.userAgent,
              deviceId,
              credentials: null,
              totpSecret: null,
              session: valid.session,
              lastChallenges: [],
            },
            clock.now(),
          );
          await recordAccountEvent(trx, 'accounts.connected', row);
          await audit(trx, { orgId, action: 'account.created', targetType: 'account', targetId: row.id, details: { via: 'import', platform: row.platform, username: row.platform_username }, actor });
          return serializeAccount(row);
        });
      } catch (error) {
        if (!isUniqueViolation(error)) throw error;
        // Imported concurrently by another request: answer like the check above would have.
        const existing = await findAccountByPlatformUser(db, orgId, IMPORT_PLATFORM, valid.user.id);
        if (existing) throw alreadyConnected(existing);
        throw error;
      }
    },

    /** `PATCH /api/accounts/import/{id}`: a fresh session of the same platform user, in place. */
    async rotateImport(orgId: string, id: string, body: RotateImportBody, actor: Actor): Promise<AccountView> {
      const errors: FieldError[] = [];
      const session = importSession(body, errors);
      if (!session || errors.length > 0) throw validationError(errors);
      const account = await load(orgId, id);
      if (!account.imported) {
        throw new ApiError(400, 'not_imported', 'This account was connected by logging in, not imported: update it with PUT /api/authenticate/{account_id}/credentials.', {
          retryable: false,
        });
      }
      const wrongUser = (username?: string) =>
        new ApiError(409, 'wrong_user', `This session belongs to ${username ? `@${username}` : 'another platform user'}, not to the account's @${account.platform_username}.`, {
          retryable: false,
        });
      if (session.authId !== account.platform_user_id) throw wrongUser();

      const identity: PlatformIdentity = { ...accountIdentity(vault, account), userAgent: body.userAgent };
      const valid = await validateOrReject(account.platform, identity, session, persistFailover(account));
      if (valid.user.id !== account.platform_user_id) throw wrongUser(valid.user.username);

      // A re-authentication still running would overwrite the new session when it ends.
      if (account.status === 'reauthenticating' || account.status === 'awaiting_2fa') await deps.cancelAttempts(account.id);
      return db.transaction().execute(async (trx) => {
        const current = await trx.selectFrom('accounts').selectAll().where('org_id', '=', orgId).where('id', '=', id).forUpdate().executeTakeFirst();
        if (!current) throw notFound('Account');
        const row = await renewAccountSession(trx, vault, current, { session: valid.session, user: valid.user, userAgent: body.userAgent }, clock.now());
        await recordAccountEvent(trx, current.status === 'active' ? 'accounts.updated' : 'accounts.reconnected', row);
        await audit(trx, { orgId, action: 'account.credentials_updated', targetType: 'account', targetId: row.id, details: { via: 'import_rotation', fields: ['cookie', 'userAgent', 'xbc'] }, actor });
        return serializeAccount(row);
      });
    },

    /**
     * `GET /api/{account_id}/me`: the platform user, asked with the stored session. Rotated cookies
     * are stored back; a session the platform refuses is queued for an immediate health check.
     */
    async me(orgId: string, id: string): Promise<MeView> {
      const account = await load(orgId, id);
      const status = account.status;
      if (status === 'reauthenticating' || status === 'awaiting_2fa') {
        const retryAfterSec = status === 'reauthenticating' ? RETRY_AFTER_REAUTHENTICATING_SEC : RETRY_AFTER_AWAITING_2FA_SEC;
        throw new ApiError(
          503,
          'account_reauthenticating',
          status === 'reauthenticating'
            ? 'The account is re-authenticating; try again shortly.'
            : 'The account is re-authenticating and waits for the creator to answer a verification step.',
          { retryable: true, retryAfterSec },
        );
      }
      const session = decryptSession(vault, account);
      if (status === 'expired' || !session) {
        throw new ApiError(410, 'account_expired', 'The session of this account has expired. Reconnect it (PUT /api/authenticate/{account_id}/credentials, or re-authenticate).', {
          retryable: false,
        });
      }
      const check = await callPlatform(account.platform, accountIdentity(vault, account), (driver, ctx) => driver.validateSession(ctx, session), {
        onFailover: persistFailover(account),
      });
      const now = clock.now();
      if (!check.valid || check.user.id !== account.platform_user_id) {
        await db.updateTable('accounts').set({ next_check_at: now }).where('id', '=', account.id).where('status', '=', 'active').execute();
        throw upstreamError(`The platform refused the account's session (${check.valid ? 'Wrong user' : check.message}); it is queued for a health check.`, 401, false);
      }
      await storeCheck(account, check.user, check.session, now);
      const { id: userId, username, name, avatar } = check.user;
      return { id: userId, username, name, avatar };
    },
  };

  /** After a good check: rotated cookies (encrypted) and the platform profile as it is now. */
  async function storeCheck(account: AccountRow, user: PlatformUser, rotated: PlatformSession | undefined, now: Date) {
    const profileChanged = user.username !== account.platform_username || user.name !== account.platform_name || user.avatar !== account.platform_avatar;
    await db
      .updateTable('accounts')
      .set({
        last_checked_at: now,
        ...(rotated ? { session_enc: vault.encryptJson(rotated, accountSecretPlace(account, 'session_enc')) } : {}),
        ...(profileChanged ? { platform_username: user.username, platform_name: user.name, platform_avatar: user.avatar, updated_at: now } : {}),
      })
      .where('id', '=', account.id)
      // A re-authentication may have renewed the session meanwhile: never overwrite a newer one.
      .where('session_enc', '=', account.session_enc)
      .execute();
  }

  return service;
}

export type AccountService = ReturnType<typeof createAccountService>;
