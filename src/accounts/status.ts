import type { AccountStatus, AccountsTable } from '../db/schema.js';
import type { Updateable } from 'kysely';

/**
 * The account's status (DESIGN 5) as a table of transitions, like the attempts' state machine: every
 * status change names its event, and `enterStatus` derives what else the row must say.
 */
export type AccountStatusEvent =
  /** FanGate logs in again (re-authentication, credentials update, health-check recovery). */
  | 'reauth_started'
  /** That login waits for the creator (a code, the email check, a selfie). */
  | 'reauth_needs_creator'
  /** A fresh session: a login succeeded, an import was rotated. */
  | 'session_renewed'
  /** The re-authentication failed, but the session it would have replaced still works. */
  | 'reauth_failed_session_kept'
  /** The session is gone and FanGate cannot renew it alone. */
  | 'session_lost';

const ANY: readonly AccountStatus[] = ['active', 'reauthenticating', 'awaiting_2fa', 'expired'];

export const ACCOUNT_TRANSITIONS: Record<AccountStatusEvent, { from: readonly AccountStatus[]; to: AccountStatus }> = {
  reauth_started: { from: ANY, to: 'reauthenticating' },
  reauth_needs_creator: { from: ANY, to: 'awaiting_2fa' },
  session_renewed: { from: ANY, to: 'active' },
  reauth_failed_session_kept: { from: ['reauthenticating', 'awaiting_2fa'], to: 'active' },
  session_lost: { from: ANY, to: 'expired' },
};

/** The columns that change when the account takes `event`, or null when the event does not apply. */
export function enterStatus(current: AccountStatus, event: AccountStatusEvent, now: Date): Updateable<AccountsTable> | null {
  const rule = ACCOUNT_TRANSITIONS[event];
  if (!rule.from.includes(current)) return null;
  const to = rule.to;
  return {
    status: to,
    updated_at: now,
    // Expiry is stamped once, when it happens; anything but expired has no expiry.
    ...(to === 'expired' ? (current === 'expired' ? {} : { expired_at: now, next_check_at: null }) : { expired_at: null }),
  };
}

/** What an attempt on the account means for its status; null: nothing (connects, successes handled by the login). */
export function statusEventForAttempt(change: {
  kind: string;
  state: string;
  priorAccountStatus: AccountStatus | null;
  errorCode: string | null;
}): AccountStatusEvent | null {
  if (change.kind === 'connect' || change.state === 'completed_success') return null;
  if (change.state === 'completed_failed') {
    // A failed re-authentication leaves a usable session usable; anything else is expired.
    return change.priorAccountStatus === 'active' && change.errorCode !== '2fa_failed' ? 'reauth_failed_session_kept' : 'session_lost';
  }
  return change.state === 'pending' ? 'reauth_started' : 'reauth_needs_creator';
}
