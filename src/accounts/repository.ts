import { createHash } from 'node:crypto';
import { type Kysely, sql, type Transaction } from 'kysely';
import type { AuthType, ChallengeKind, DB, PlatformName, ProxyColumn } from '../db/schema.js';
import type { PlatformSession, PlatformUser } from '../platforms/types.js';
import type { Vault } from '../vault/vault.js';
import { type AccountCredentials, type AccountRow, accountSecretPlace } from './model.js';
import { type AccountStatusEvent, enterStatus } from './status.js';

type Db = Kysely<DB> | Transaction<DB>;

export const DEFAULT_HEALTH_CHECK_INTERVAL_SEC = 900;

/**
 * The first health check of a new account: between 70 % and 100 % of the interval after it connected,
 * by a hash of its id, so accounts connected together (a bulk import) are not all checked together.
 */
export function firstCheckAt(id: string, now: Date, intervalSec = DEFAULT_HEALTH_CHECK_INTERVAL_SEC): Date {
  const fraction = createHash('sha256').update(id).digest().readUInt32BE(0) / 2 ** 32;
  return new Date(now.getTime() + Math.round(intervalSec * 1000 * (0.7 + 0.3 * fraction)));
}

export async function findAccount(db: Db, orgId: string, id: string): Promise<AccountRow | undefined> {
  return db.selectFrom('accounts').selectAll().where('org_id', '=', orgId).where('id', '=', id).executeTakeFirst();
}

export async function findAccountByPlatformUser(db: Db, orgId: string, platform: PlatformName, platformUserId: string): Promise<AccountRow | undefined> {
  return db
    .selectFrom('accounts')
    .selectAll()
    .where('org_id', '=', orgId)
    .where('platform', '=', platform)
    .where('platform_user_id', '=', platformUserId)
    .executeTakeFirst();
}

/** Everything a new account row holds; secrets in plain text here, encrypted on the way in. */
export interface NewAccount {
  id: string;
  orgId: string;
  platform: PlatformName;
  displayName: string;
  authType: AuthType;
  imported: boolean;
  rememberCredentials: boolean;
  clientReferenceId: string | null;
  user: PlatformUser;
  proxy: ProxyColumn;
  proxyPassword: string | null;
  proxyUsername: string | null;
  userAgent: string;
  deviceId: string;
  credentials: AccountCredentials | null;
  totpSecret: string | null;
  session: PlatformSession;
  lastChallenges: ChallengeKind[];
}

export async function insertAccount(db: Db, vault: Vault, account: NewAccount, now: Date): Promise<AccountRow> {
  return (await insertAccountQuery(db, vault, account, now)).executeTakeFirstOrThrow();
}

/**
 * Inserts the account unless its platform user is connected in the organisation already (undefined then). An
 * insert racing another for the same user waits for it on the unique index and then inserts nothing.
 */
export async function insertAccountIfAbsent(db: Db, vault: Vault, account: NewAccount, now: Date): Promise<AccountRow | undefined> {
  return (await insertAccountQuery(db, vault, account, now))
    .onConflict((oc) => oc.columns(['org_id', 'platform', 'platform_user_id']).doNothing())
    .executeTakeFirst();
}

async function insertAccountQuery(db: Db, vault: Vault, account: NewAccount, now: Date) {
  const row = { org_id: account.orgId, id: account.id };
  return db
    .insertInto('accounts')
    .values({
      id: account.id,
      org_id: account.orgId,
      platform: account.platform,
      display_name: account.displayName,
      status: 'active',
      auth_type: account.authType,
      imported: account.imported,
      remember_credentials: account.rememberCredentials,
      client_reference_id: account.clientReferenceId,
      platform_user_id: account.user.id,
      platform_username: account.user.username,
      platform_name: account.user.name,
      platform_avatar: account.user.avatar,
      proxy: JSON.stringify(withoutUsername(account.proxy)),
      proxy_password_enc: account.proxyPassword ? vault.encrypt(account.proxyPassword, accountSecretPlace(row, 'proxy_password_enc')) : null,
      proxy_username_enc: account.proxyUsername ? vault.encrypt(account.proxyUsername, accountSecretPlace(row, 'proxy_username_enc')) : null,
      user_agent: account.userAgent,
      device_id: account.deviceId,
      credentials_enc: account.credentials ? vault.encryptJson(account.credentials, accountSecretPlace(row, 'credentials_enc')) : null,
      totp_secret_enc: account.totpSecret ? vault.encrypt(account.totpSecret, accountSecretPlace(row, 'totp_secret_enc')) : null,
      session_enc: vault.encryptJson(account.session, accountSecretPlace(row, 'session_enc')),
      last_challenges: account.lastChallenges,
      last_checked_at: now,
      next_check_at: firstCheckAt(account.id, now),
      created_at: now,
      updated_at: now,
    })
    .returningAll();
}

/** A fresh session for an existing account (re-authentication, reconnect, import rotation). */
export interface SessionRenewal {
  session: PlatformSession;
  user: PlatformUser;
  authType?: AuthType;
  /** undefined: keep; null: erase. */
  credentials?: AccountCredentials | null;
  totpSecret?: string | null;
  rememberCredentials?: boolean;
  lastChallenges?: ChallengeKind[];
  userAgent?: string;
  deviceId?: string;
  proxy?: { proxy: ProxyColumn; password: string | null; username: string | null };
  displayName?: string;
  clientReferenceId?: string | null;
}

export async function renewAccountSession(db: Db, vault: Vault, account: AccountRow, renewal: SessionRenewal, now: Date): Promise<AccountRow> {
  const enc = <T>(value: T | null | undefined, field: 'credentials_enc' | 'totp_secret_enc', encode: (v: T) => string) =>
    value === undefined ? {} : { [field]: value === null ? null : encode(value) };
  return db
    .updateTable('accounts')
    .set({
      ...enterStatus(account.status, 'session_renewed', now),
      platform_username: renewal.user.username,
      platform_name: renewal.user.name,
      platform_avatar: renewal.user.avatar,
      session_enc: vault.encryptJson(renewal.session, accountSecretPlace(account, 'session_enc')),
      last_checked_at: now,
      next_check_at: new Date(now.getTime() + account.health_check_interval_sec * 1000),
      check_failures: 0,
      ...(renewal.authType === undefined ? {} : { auth_type: renewal.authType }),
      ...enc(renewal.credentials, 'credentials_enc', (c) => vault.encryptJson(c, accountSecretPlace(account, 'credentials_enc'))),
      ...enc(renewal.totpSecret, 'totp_secret_enc', (s) => vault.encrypt(s, accountSecretPlace(account, 'totp_secret_enc'))),
      ...(renewal.rememberCredentials === undefined ? {} : { remember_credentials: renewal.rememberCredentials }),
      ...(renewal.lastChallenges === undefined ? {} : { last_challenges: renewal.lastChallenges }),
      ...(renewal.userAgent === undefined ? {} : { user_agent: renewal.userAgent }),
      ...(renewal.deviceId === undefined ? {} : { device_id: renewal.deviceId }),
      ...(renewal.displayName === undefined ? {} : { display_name: renewal.displayName }),
      ...(renewal.clientReferenceId === undefined ? {} : { client_reference_id: renewal.clientReferenceId }),
      ...(renewal.proxy === undefined
        ? {}
        : {
            proxy: JSON.stringify(withoutUsername(renewal.proxy.proxy)),
            proxy_password_enc: renewal.proxy.password ? vault.encrypt(renewal.proxy.password, accountSecretPlace(account, 'proxy_password_enc')) : null,
            proxy_username_enc: renewal.proxy.username ? vault.encrypt(renewal.proxy.username, accountSecretPlace(account, 'proxy_username_enc')) : null,
          }),
    })
    .where('id', '=', account.id)
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** Moves the account's status by `event` (accounts/status.ts); the row as it is afterwards, or undefined when gone. */
export async function applyStatusEvent(db: Db, accountId: string, event: AccountStatusEvent, now: Date): Promise<{ from: AccountRow['status']; row: AccountRow } | undefined> {
  const current = await db.selectFrom('accounts').selectAll().where('id', '=', accountId).forUpdate().executeTakeFirst();
  if (!current) return undefined;
  const set = enterStatus(current.status, event, now);
  if (!set) return { from: current.status, row: current };
  const row = await db.updateTable('accounts').set(set).where('id', '=', accountId).returningAll().executeTakeFirstOrThrow();
  return { from: current.status, row };
}

export function decryptSession(vault: Vault, account: AccountRow): PlatformSession | null {
  return account.session_enc ? vault.decryptJson<PlatformSession>(account.session_enc, accountSecretPlace(account, 'session_enc')) : null;
}

export function decryptCredentials(vault: Vault, account: AccountRow): AccountCredentials | null {
  return account.credentials_enc ? vault.decryptJson<AccountCredentials>(account.credentials_enc, accountSecretPlace(account, 'credentials_enc')) : null;
}

export function decryptTotpSecret(vault: Vault, account: AccountRow): string | null {
  return account.totp_secret_enc ? vault.decrypt(account.totp_secret_enc, accountSecretPlace(account, 'totp_secret_enc')) : null;
}

export function decryptProxyPassword(vault: Vault, account: AccountRow): string | null {
  return account.proxy_password_enc ? vault.decrypt(account.proxy_password_enc, accountSecretPlace(account, 'proxy_password_enc')) : null;
}

/** The proxy username (a secret like the password); rows not yet sealed still carry it in `proxy`. */
export function decryptProxyUsername(vault: Vault, account: AccountRow): string | null {
  if (account.proxy_username_enc) return vault.decrypt(account.proxy_username_enc, accountSecretPlace(account, 'proxy_username_enc'));
  return account.proxy.username ?? null;
}

/** The `proxy` column as stored: never the username (it lives in the vault). */
export function withoutUsername(proxy: ProxyColumn): ProxyColumn {
  const { username: _secret, ...rest } = proxy;
  return rest;
}

/** The platform identity of an account, for driver contexts. */
export function accountIdentity(vault: Vault, account: AccountRow) {
  return {
    proxy: withoutUsername(account.proxy),
    proxyPassword: decryptProxyPassword(vault, account),
    proxyUsername: decryptProxyUsername(vault, account),
    userAgent: account.user_agent,
    deviceId: account.device_id,
  };
}

/**
 * Seals proxy usernames stored in plain text by versions before migration 0030 into the vault; returns how
 * many accounts changed. Run at start; safe on every node at once.
 */
export async function sealLegacyProxyUsernames(db: Kysely<DB>, vault: Vault): Promise<number> {
  const legacy = await db.selectFrom('accounts').select(['id', 'org_id']).where(sql<boolean>`proxy ? 'username'`).execute();
  let sealed = 0;
  for (const { id } of legacy) {
    await db.transaction().execute(async (trx) => {
      const account = await trx.selectFrom('accounts').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
      if (!account?.proxy.username) return;
      await trx
        .updateTable('accounts')
        .set({ proxy: JSON.stringify(withoutUsername(account.proxy)), proxy_username_enc: vault.encrypt(account.proxy.username, accountSecretPlace(account, 'proxy_username_enc')) })
        .where('id', '=', id)
        .execute();
      sealed++;
    });
  }
  return sealed;
}
