import type { Selectable } from 'kysely';
import type { AccountStatus, AccountsTable, AuthType, PlatformName, ProxyColumn } from '../db/schema.js';

export type { AccountStatus };
export type AccountRow = Selectable<AccountsTable>;

/** The public account object (DESIGN 5); never a secret, never a proxy password. */
export interface AccountView {
  id: string;
  platform: PlatformName;
  display_name: string;
  status: AccountStatus;
  is_authenticated: boolean;
  auth_type: AuthType;
  imported: boolean;
  remember_credentials: boolean;
  can_reauth: boolean;
  platform_user: { id: string; username: string; name: string; avatar: string | null };
  client_reference_id: string | null;
  proxy: { type: ProxyColumn['type']; country?: string; host?: string; port?: number };
  health_check_interval_sec: number;
  last_checked_at: string | null;
  next_check_at: string | null;
  expired_at: string | null;
  created_at: string;
  updated_at: string;
}

/**
 * FanGate can log in again without the creator when it holds the credentials and every
 * checkpoint the account last met can be answered alone: none, or app codes with a TOTP secret.
 */
export function canReauth(row: Pick<AccountRow, 'credentials_enc' | 'totp_secret_enc' | 'last_challenges'>): boolean {
  if (!row.credentials_enc) return false;
  return row.last_challenges.every((kind) => kind === 'app' && row.totp_secret_enc !== null);
}

export function publicProxy(proxy: ProxyColumn): AccountView['proxy'] {
  if (proxy.type === 'country') return { type: 'country', country: proxy.country! };
  if (proxy.type === 'custom') return { type: 'custom', host: proxy.host!, port: proxy.port! };
  return { type: 'none' };
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function serializeAccount(row: AccountRow): AccountView {
  const status = row.status;
  return {
    id: row.id,
    platform: row.platform,
    display_name: row.display_name,
    status,
    is_authenticated: status === 'active',
    auth_type: row.auth_type,
    imported: row.imported,
    remember_credentials: row.remember_credentials,
    can_reauth: canReauth(row),
    platform_user: { id: row.platform_user_id, username: row.platform_username, name: row.platform_name, avatar: row.platform_avatar },
    client_reference_id: row.client_reference_id,
    proxy: publicProxy(row.proxy),
    health_check_interval_sec: row.health_check_interval_sec,
    last_checked_at: iso(row.last_checked_at),
    next_check_at: iso(row.next_check_at),
    expired_at: iso(row.expired_at),
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

/** Secrets of an account, as stored (each encrypted under its own AAD). */
export interface AccountCredentials {
  login: string;
  password: string;
}

export const accountSecretPlace = (row: { org_id: string; id: string }, field: 'credentials_enc' | 'totp_secret_enc' | 'session_enc' | 'proxy_password_enc' | 'proxy_username_enc') => ({
  orgId: row.org_id,
  table: 'accounts',
  field,
  recordId: row.id,
});
