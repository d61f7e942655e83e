import type { Selectable } from 'kysely';
import type { AccountView } from '../accounts/model.js';
import type { AttemptKind, AttemptState, AuthAttemptsTable, AuthType, ChallengeKind, PlatformName } from '../db/schema.js';
import { capabilitiesOf } from '../platforms/capabilities.js';
import { type AttemptSnapshot, type ErrorCode, fanslyFields, nextActions, type NextAction } from './state-machine.js';

export type AttemptRow = Selectable<AuthAttemptsTable>;
export type { AttemptKind };

/** The state machine's view of a row. */
export function toSnapshot(row: AttemptRow): AttemptSnapshot {
  return {
    platform: row.platform,
    state: row.state,
    step: row.step,
    progress: row.progress,
    otp_channel: row.otp_channel,
    phone_last4: row.phone_last4,
    email_mask: row.email_mask,
    face_verification_url: row.face_verification_url,
    email_sent_at: row.email_sent_at ?? null,
    attempts_remaining: row.attempts_remaining,
    wrong_codes: row.wrong_codes,
    error: row.error_code
      ? { code: row.error_code as ErrorCode, message: row.error_message ?? '', ...(row.existing_account_id ? { existing_account_id: row.existing_account_id } : {}) }
      : null,
    input_deadline: row.input_deadline,
    overall_deadline: row.overall_deadline,
    expires_at: row.expires_at,
    completed_at: row.completed_at,
  };
}

/** The columns a snapshot writes back. */
export function snapshotColumns(s: AttemptSnapshot) {
  return {
    state: s.state,
    step: s.step,
    progress: s.progress,
    otp_channel: s.otp_channel,
    phone_last4: s.phone_last4,
    email_mask: s.email_mask,
    face_verification_url: s.face_verification_url,
    email_sent_at: s.email_sent_at,
    attempts_remaining: s.attempts_remaining,
    wrong_codes: s.wrong_codes,
    error_code: s.error?.code ?? null,
    error_message: s.error?.message ?? null,
    existing_account_id: s.error?.existing_account_id ?? null,
    input_deadline: s.input_deadline,
    overall_deadline: s.overall_deadline,
    expires_at: s.expires_at,
    completed_at: s.completed_at,
  };
}

/** The public attempt object (DESIGN 3.2, plus the seed's Fansly fields on Fansly attempts). */
export interface AttemptView {
  attempt_id: string;
  platform: PlatformName;
  auth_type: AuthType;
  kind: AttemptKind;
  state: AttemptState;
  progress: string;
  account_id: string | null;
  account: AccountView | null;
  next_actions: NextAction[];
  otp_channel: ChallengeKind | null;
  phone_last4: string | null;
  email_mask: string | null;
  face_verification_url: string | null;
  mobile_auth_session_deeplink: string | null;
  attempts_remaining: number | null;
  email_sent_at: string | null;
  error: { code: ErrorCode; message: string; existing_account_id?: string } | null;
  client_reference_id: string | null;
  polling_url: string;
  created_at: string;
  updated_at: string;
  expires_at: string;
  completed_at: string | null;
  status?: string;
  needs_code?: boolean;
  twofa_type?: 0 | 2 | null;
  masked_email?: string | null;
}

export const pollingUrl = (publicUrl: string, platform: PlatformName, id: string) => `${publicUrl}/api${capabilitiesOf(platform).connectPath}/${id}`;

export const mobileDeeplink = (code: string) => `fangate://auth/${code}`;

export function serializeAttempt(
  row: AttemptRow,
  extras: { account: AccountView | null; publicUrl: string; mobileCode?: string | null },
): AttemptView {
  const snapshot = toSnapshot(row);
  const view: AttemptView = {
    attempt_id: row.id,
    platform: snapshot.platform,
    auth_type: row.auth_type,
    kind: row.kind,
    state: snapshot.state,
    progress: snapshot.progress,
    account_id: row.account_id,
    account: extras.account,
    next_actions: nextActions(snapshot.state, snapshot.platform, snapshot.email_sent_at !== null),
    otp_channel: snapshot.otp_channel,
    phone_last4: snapshot.phone_last4,
    email_mask: snapshot.email_mask,
    face_verification_url: snapshot.face_verification_url,
    mobile_auth_session_deeplink: extras.mobileCode ? mobileDeeplink(extras.mobileCode) : null,
    attempts_remaining: snapshot.attempts_remaining,
    email_sent_at: snapshot.email_sent_at?.toISOString() ?? null,
    error: snapshot.error,
    client_reference_id: row.client_reference_id,
    polling_url: pollingUrl(extras.publicUrl, row.platform, row.id),
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
    expires_at: snapshot.expires_at.toISOString(),
    completed_at: snapshot.completed_at?.toISOString() ?? null,
  };
  return capabilitiesOf(snapshot.platform).seedAttemptFields ? { ...view, ...fanslyFields(snapshot) } : view;
}
