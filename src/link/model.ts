import type { Selectable } from 'kysely';
import type { LinkSessionsTable, LinkStatus } from '../db/schema.js';
import type { Actor } from '../lib/audit.js';

export type LinkRow = Selectable<LinkSessionsTable>;
export type LinkPlatform = 'onlyfans' | 'fansly';
export type LinkTheme = 'light' | 'dark' | 'auto';
export type LinkMethod = 'email_password' | 'raw_data' | 'mobile_app';

/** The attempt as link/ needs to see it: a structural subset of connect's attempt object (no import of connect/). */
export interface LinkAttempt {
  attempt_id: string;
  auth_type: string;
  state: string;
  progress: string;
  account_id: string | null;
  otp_channel: string | null;
  phone_last4: string | null;
  email_mask: string | null;
  face_verification_url: string | null;
  mobile_auth_session_deeplink: string | null;
  attempts_remaining: number | null;
  error: { code: string; message: string; existing_account_id?: string } | null;
  client_reference_id: string | null;
}

/** The start / credentials-update body link/ sends to connect (a subset of connect's StartBody). */
export interface LinkStartBody {
  auth_type?: LinkMethod;
  email?: string;
  username?: string;
  password?: string;
  auth_id?: string;
  cookies?: string;
  xbc?: string;
  user_agent?: string;
  proxyCountry?: string;
  client_reference_id?: string;
}

/**
 * The narrow part of the connect service link/ uses, declared here so that link/ does not import connect/.
 * The composition root hands the real service over (it satisfies this shape).
 */
export interface LinkConnectPort {
  /** `linkSessionId`: the attempt remembers its link, so the change hook below hears of its own attempts only. */
  start(orgId: string, platform: LinkPlatform, body: LinkStartBody, options: { linkSessionId: string }): Promise<{ attempt_id: string }>;
  get(orgId: string, platform: LinkPlatform | null, id: string): Promise<LinkAttempt>;
  wait(orgId: string, platform: LinkPlatform | null, id: string, waitSec: number, lastState?: string, signal?: AbortSignal): Promise<LinkAttempt>;
  submitCode(orgId: string, platform: LinkPlatform, id: string, code: string): Promise<LinkAttempt>;
  confirmSelfie(orgId: string, platform: LinkPlatform, id: string): Promise<LinkAttempt>;
  requestEmail(orgId: string, platform: LinkPlatform, id: string): Promise<LinkAttempt>;
  cancel(orgId: string, platform: LinkPlatform, id: string): Promise<LinkAttempt>;
  /** `actor`: who is audited for it (the Link page's creator acts as the system). */
  updateCredentials(orgId: string, platform: LinkPlatform, accountId: string, body: LinkStartBody, actor: Actor, options: { linkSessionId: string }): Promise<{ attempt_id: string }>;
  changes(orgId: string, platform: LinkPlatform | null, id: string, signal: AbortSignal): AsyncIterable<LinkAttempt>;
}

/** What the attempt store's change hook tells link/ (structural subset of connect's AttemptChange). */
export interface LinkAttemptChange {
  attemptId: string;
  orgId: string;
  state: string;
  previousState: string | null;
  accountId: string | null;
  clientReferenceId: string | null;
  errorCode: string | null;
  /** The link the attempt was started from (null: not started from a link). */
  linkSessionId: string | null;
  view: () => Promise<unknown>;
}

/** The link object of `GET /api/link/{id}` (DESIGN 6). */
export interface LinkView {
  id: string;
  status: LinkStatus;
  platform: LinkPlatform;
  client_reference_id: string | null;
  connection_id: string | null;
  attempt_id: string | null;
  error: { code: string; message: string } | null;
  redirect_url: string;
  theme: LinkTheme;
  created_at: string;
  updated_at: string;
  expires_at: string;
  completed_at: string | null;
}

export const TERMINAL_ATTEMPT_STATES = new Set(['completed_success', 'completed_failed']);

/** The link's status while its attempt is in `state`. */
export function linkStatusFor(state: string, errorCode: string | null): LinkStatus {
  switch (state) {
    case 'pending':
    case 'awaiting_mobile_session':
      return 'pending';
    case 'completed_success':
      return 'completed';
    case 'completed_failed':
      return errorCode === 'cancelled' ? 'cancelled' : 'failed';
    default:
      return 'awaiting_2fa';
  }
}

/** Expiry is lazy: a link nobody works on any more reads as `expired` after its 60 minutes. */
export function effectiveStatus(row: LinkRow, now: Date): LinkStatus {
  if ((row.status === 'initialized' || row.status === 'failed') && now >= row.expires_at && !row.finished_at) return 'expired';
  return row.status;
}

export function serializeLink(row: LinkRow, now: Date): LinkView {
  const status = effectiveStatus(row, now);
  return {
    id: row.id,
    status,
    platform: row.platform,
    client_reference_id: row.client_reference_id,
    connection_id: row.connection_id ?? row.reconnect_account_id,
    attempt_id: row.attempt_id,
    error: row.error_code ? { code: row.error_code, message: row.error_message ?? '' } : status === 'expired' ? { code: 'expired', message: 'The link expired before the creator finished.' } : null,
    redirect_url: row.redirect_url,
    theme: row.theme,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
    expires_at: row.expires_at.toISOString(),
    completed_at: row.completed_at?.toISOString() ?? null,
  };
}

/** `redirectUrl` with the pinned query parameters added (existing ones kept). */
export function redirectTo(row: LinkRow, now: Date): string | null {
  const url = new URL(row.redirect_url);
  const status = effectiveStatus(row, now);
  if (status === 'completed') {
    url.searchParams.set('status', 'success');
    url.searchParams.set('connection_id', row.connection_id ?? row.reconnect_account_id ?? '');
    if (row.client_reference_id !== null) url.searchParams.set('client_reference_id', row.client_reference_id);
  } else if (status === 'cancelled') {
    url.searchParams.set('status', 'cancelled');
    url.searchParams.set('step', row.cancel_step ?? 'unknown');
    if (row.client_reference_id !== null) url.searchParams.set('client_reference_id', row.client_reference_id);
  } else if (status === 'expired' || (status === 'failed' && row.finished_at)) {
    url.searchParams.set('status', 'error');
    url.searchParams.set('error_code', status === 'expired' ? 'expired' : (row.error_code ?? 'unknown'));
    if (row.client_reference_id !== null) url.searchParams.set('client_reference_id', row.client_reference_id);
  } else {
    return null;
  }
  return url.toString();
}
