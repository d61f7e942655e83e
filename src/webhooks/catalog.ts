import type { EventName } from './outbox.js';

/** The event catalog (DESIGN 9): what each event means, and an example body a receiver gets. */

export interface CatalogEntry {
  name: EventName;
  description: string;
}

const entries: Record<EventName, string> = {
  'accounts.connected': 'A new account was connected (login, imported session or phone hand-off). `payload.account` is the new account.',
  'accounts.reconnected': 'An account that had expired or failed is connected again (re-authentication or new credentials).',
  'accounts.session_expired': 'The session of an account stopped working and FanGate could not renew it alone, or it was invalidated through the API.',
  'accounts.authentication_failed': 'A login attempt ended in failure (`payload.attempt.error` says why).',
  'accounts.otp_code_required': 'A login attempt waits for an SMS or authenticator-app code (`payload.attempt.otp_channel`).',
  'accounts.email_code_required': 'A login attempt waits for the code the platform e-mailed to the creator.',
  'accounts.face_otp_required': 'A login attempt waits for the creator to take a selfie (`payload.attempt.face_verification_url`).',
  'accounts.disconnected': 'An account was disconnected and deleted; `payload.account` is its last state.',
  'accounts.updated': 'An account changed (display name, client reference id, proxy, health check interval, rotated session).',
  'link.completed': 'A hosted Link session ended with a connected account.',
  'link.failed': 'A hosted Link session ended without a connected account.',
  'webhooks.test': 'Sent by POST /api/webhooks/{id}/test to check an endpoint; carries no account.',
};

export const EVENT_NAMES = Object.keys(entries) as EventName[];
export const isEventName = (name: string): name is EventName => Object.hasOwn(entries, name);

const exampleAccount = {
  id: 'acct_7QmZ2v9LkTfR1xWcB4nH8d',
  platform: 'onlyfans',
  display_name: 'Jane',
  status: 'active',
  is_authenticated: true,
  auth_type: 'email_password',
  imported: false,
  remember_credentials: true,
  can_reauth: true,
  platform_user: { id: '438518664811', username: 'jane', name: 'Jane', avatar: null },
  client_reference_id: 'creator-42',
  proxy: { type: 'country', country: 'us' },
  health_check_interval_sec: 900,
  last_checked_at: '2026-11-22T19:00:00.000Z',
  expired_at: null,
  created_at: '2026-11-22T18:58:41.000Z',
  updated_at: '2026-11-22T19:00:00.000Z',
};

const exampleAttempt = (state: string, extra: Record<string, unknown> = {}) => ({
  attempt_id: 'auth_3JkP0sW8qLr5TyVb2NcX6e',
  platform: 'onlyfans',
  auth_type: 'email_password',
  kind: 'connect',
  state,
  account_id: state === 'completed_success' ? exampleAccount.id : null,
  client_reference_id: 'creator-42',
  ...extra,
});

/** The body a receiver gets for this event (ids and times are examples). */
export function examplePayload(name: EventName) {
  const withAccount = name.startsWith('accounts.') && !['accounts.authentication_failed', 'accounts.otp_code_required', 'accounts.email_code_required', 'accounts.face_otp_required'].includes(name);
  let attempt: Record<string, unknown> | null = null;
  if (name === 'accounts.otp_code_required') attempt = exampleAttempt('needs_otp', { otp_channel: 'sms', phone_last4: '4242' });
  if (name === 'accounts.email_code_required') attempt = exampleAttempt('needs_email', { email_mask: 'j***@example.com' });
  if (name === 'accounts.face_otp_required') attempt = exampleAttempt('needs_face_otp', { face_verification_url: 'https://fangate.example.com/face/...' });
  if (name === 'accounts.authentication_failed' || name === 'link.failed') {
    attempt = exampleAttempt('completed_failed', { error: { code: 'invalid_credentials', message: 'The platform refused the e-mail or password.' } });
  }
  if (name === 'link.completed') attempt = exampleAttempt('completed_success');
  const account = withAccount || name === 'link.completed' ? { ...exampleAccount, ...(name === 'accounts.session_expired' ? { status: 'expired', is_authenticated: false, expired_at: '2026-11-22T19:00:00.000Z' } : {}) } : null;
  const accountId = account ? exampleAccount.id : null;
  return {
    id: 'evt_5NwQ8rT2kLm0VzXc7HbJ4y',
    event: name,
    created_at: '2026-11-22T19:00:00.000Z',
    account_id: accountId,
    attempt_id: attempt ? 'auth_3JkP0sW8qLr5TyVb2NcX6e' : null,
    client_reference_id: name === 'webhooks.test' ? null : 'creator-42',
    payload: { account, attempt },
  };
}

export const catalog = () => EVENT_NAMES.map((name) => ({ name, description: entries[name], example: examplePayload(name) }));
