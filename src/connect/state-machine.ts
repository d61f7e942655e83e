/**
 * The connect attempt state machine (DESIGN 3.2–3.3, 4): pure data and functions, no I/O and no clock of
 * its own. The service loads the attempt row, calls `transition(snapshot, event, now)`, writes the new
 * snapshot and performs the effects in the same transaction. Every rule lives in the TRANSITIONS table.
 */

import { capabilitiesOf, type PlatformCapabilities } from '../platforms/capabilities.js';
import type { AttemptState, AttemptStep, AuthType, ChallengeKind, PlatformName } from '../db/schema.js';

export type { AttemptState, AttemptStep, AuthType, ChallengeKind };

export type ErrorCode =
  | 'invalid_credentials'
  | 'account_locked'
  | '2fa_failed'
  | 'expired'
  | 'cancelled'
  | 'session_invalid'
  | 'wrong_user'
  | 'account_already_connected'
  | 'upstream_unavailable'
  | 'proxy_error';

/** The codes a driver step or the service may end an attempt with; the machine itself decides the others. */
export type FailureCode = Exclude<ErrorCode, 'expired' | 'cancelled'>;

export type NextAction = 'open_mobile_app' | 'submit_code' | 'send_email_to_creator' | 'open_face_verification' | 'confirm_selfie';


export type AttemptWebhookEvent =
  | 'accounts.otp_code_required'
  | 'accounts.email_code_required'
  | 'accounts.face_otp_required'
  | 'accounts.authentication_failed';

export interface AttemptError {
  code: ErrorCode;
  message: string;
  existing_account_id?: string;
}

/** The machine's part of an attempt row (field names as in the attempt object). */
export interface AttemptSnapshot {
  platform: PlatformName;
  state: AttemptState;
  /** The step queued or running; null unless `pending`. */
  step: AttemptStep | null;
  progress: string;
  otp_channel: ChallengeKind | null;
  phone_last4: string | null;
  email_mask: string | null;
  face_verification_url: string | null;
  /** When the device-check email was last asked for; null before. */
  email_sent_at: Date | null;
  /** Codes left before `2fa_failed` while a code can be sent or is being checked (0 once exhausted), else null. */
  attempts_remaining: number | null;
  /** Wrong codes over the whole attempt, whatever the channel: the cap is per attempt, not per challenge. */
  wrong_codes: number;
  error: AttemptError | null;
  /** End of the current wait for the creator; null unless waiting for input. */
  input_deadline: Date | null;
  overall_deadline: Date;
  /** While waiting for input min(input_deadline, overall_deadline), else overall_deadline; frozen once completed. */
  expires_at: Date;
  completed_at: Date | null;
}

export type AttemptEvent =
  | { type: 'step_started'; progress?: string }
  | { type: 'challenge'; kind: ChallengeKind; phoneLast4?: string; emailMask?: string; faceUrl?: string }
  | { type: 'code_submitted' }
  | { type: 'code_rejected' }
  | { type: 'email_requested' }
  | { type: 'selfie_confirmed' }
  | { type: 'mobile_session_received' }
  | { type: 'succeeded' }
  | { type: 'failed'; code: FailureCode; message?: string; existingAccountId?: string }
  | { type: 'cancel' }
  | { type: 'input_timeout' }
  | { type: 'overall_timeout' };

export type AttemptEventType = AttemptEvent['type'];

/** What the service must do after writing the new snapshot. */
export type AttemptEffect =
  | { type: 'run_step'; step: AttemptStep }
  /** Ask the platform to send the device-check email (OnlyFans `send-email-to-creator`). */
  | { type: 'request_email' }
  | { type: 'emit_webhook'; event: AttemptWebhookEvent }
  /** Store the session on the account, then emit `accounts.connected` or `accounts.reconnected` (the service knows which). */
  | { type: 'connect_account' }
  /** Deliver `input_timeout` / `overall_timeout` at `at`; an early or stale delivery is refused harmlessly. */
  | { type: 'schedule_timeout'; timeout: 'input' | 'overall'; at: Date };

/**
 * Why an event was refused. `attempt_not_awaiting_input` is DESIGN 3.3's 409. `stale_event` is a driver
 * result, timer or duplicate that no longer applies (after a cancel, an expiry, a renewed deadline): the
 * caller drops it.
 */
export type RefusalReason = 'attempt_not_awaiting_input' | 'attempt_not_awaiting_email' | 'attempt_already_completed' | 'email_cooldown' | 'stale_event';

/** The device-check email can be asked for again this long after the last time (DESIGN 3.3: a cool-down). */
export const EMAIL_COOLDOWN_MS = 60_000;

export type TransitionResult =
  | { ok: true; snapshot: AttemptSnapshot; effects: AttemptEffect[] }
  | { ok: false; reason: RefusalReason };

export const MAX_WRONG_CODES = 5;
export const INPUT_TIMEOUT_MS = 10 * 60_000;
export const OVERALL_TIMEOUT_MS = 20 * 60_000;

const CODE_STATES: readonly AttemptState[] = ['needs_otp', 'needs_app_otp', 'needs_email', 'wrong_2fa_code_retry'];
/** States waiting for the creator: each entry into one starts a new 10-minute input window. */
const WAITING_STATES: readonly AttemptState[] = [...CODE_STATES, 'needs_face_otp', 'awaiting_mobile_session'];
const ACTIVE_STATES: readonly AttemptState[] = ['pending', ...WAITING_STATES];
const TERMINAL_STATES: readonly AttemptState[] = ['completed_success', 'completed_failed'];

const NEXT_ACTIONS: Record<AttemptState, readonly NextAction[]> = {
  pending: [],
  awaiting_mobile_session: ['open_mobile_app'],
  needs_otp: ['submit_code'],
  needs_app_otp: ['submit_code'],
  needs_email: ['send_email_to_creator', 'submit_code'],
  needs_face_otp: ['open_face_verification', 'confirm_selfie'],
  wrong_2fa_code_retry: ['submit_code'],
  completed_success: [],
  completed_failed: [],
};

const CHALLENGE_STATE: Record<ChallengeKind, AttemptState> = {
  sms: 'needs_otp',
  app: 'needs_app_otp',
  email: 'needs_email',
  face: 'needs_face_otp',
};

const CHALLENGE_WEBHOOK: Record<ChallengeKind, AttemptWebhookEvent> = {
  sms: 'accounts.otp_code_required',
  app: 'accounts.otp_code_required',
  email: 'accounts.email_code_required',
  face: 'accounts.face_otp_required',
};

const STATE_PROGRESS: Record<Exclude<AttemptState, 'pending'>, string> = {
  awaiting_mobile_session: 'Waiting for the creator to finish in the mobile app',
  needs_otp: 'Waiting for the SMS code',
  needs_app_otp: 'Waiting for the authenticator app code',
  needs_email: 'Waiting for the email code',
  needs_face_otp: 'Waiting for the selfie check',
  wrong_2fa_code_retry: 'The code was wrong; waiting for another one',
  completed_success: 'Connected',
  completed_failed: 'Failed',
};

const STEP_PROGRESS: Record<AttemptStep, string> = {
  login: 'Signing in',
  validate_session: 'Validating the session',
  submit_code: 'Verifying the code',
  confirm_selfie: 'Checking the selfie verification',
};
const QUEUED_PROGRESS = 'Waiting for a worker';
const EMAIL_SENT_PROGRESS = 'The email with the code was sent to the creator; waiting for the code';

export const ERROR_MESSAGES: Record<ErrorCode, string> = {
  invalid_credentials: 'The email or password is wrong.',
  account_locked: 'The platform has locked the account.',
  '2fa_failed': `${MAX_WRONG_CODES} wrong codes: the verification failed.`,
  expired: 'The attempt expired.',
  cancelled: 'The attempt was cancelled.',
  session_invalid: 'The platform rejected the session.',
  wrong_user: 'The credentials belong to another platform user than the account.',
  account_already_connected: 'This platform user is already connected.',
  upstream_unavailable: 'The platform could not be reached.',
  proxy_error: 'The proxy could not be used.',
};

// ---------------------------------------------------------------------------------------------------
// The table. A row applies when the event type matches, the attempt is in one of `from` (and on one of
// `platforms`, if given) and `when` holds. `set` and `effects` are the row's own changes; what follows from
// the target state alone (step, input deadline and its timer, attempts_remaining, expires_at,
// completed_at, progress) is derived in one place, `enter`.
// ---------------------------------------------------------------------------------------------------

type EventOf<T extends AttemptEventType> = Extract<AttemptEvent, { type: T }>;

interface Row<T extends AttemptEventType> {
  from: readonly AttemptState[];
  on: T;
  to: AttemptState | ((s: AttemptSnapshot, e: EventOf<T>) => AttemptState);
  /** The row applies only on platforms with these capabilities. */
  requires?: (c: PlatformCapabilities) => boolean;
  /** When false the event is refused as stale (a late timer, a driver result for another step). */
  when?: (s: AttemptSnapshot, e: EventOf<T>, now: Date) => boolean;
  set?: (s: AttemptSnapshot, e: EventOf<T>, now: Date) => Partial<AttemptSnapshot>;
  /** A refusal of its own (e.g. a cool-down) instead of applying. */
  refuse?: (s: AttemptSnapshot, now: Date) => RefusalReason | null;
  effects?: (s: AttemptSnapshot, e: EventOf<T>) => AttemptEffect[];
}

type AnyRow = { [T in AttemptEventType]: Row<T> }[AttemptEventType];
const row = <T extends AttemptEventType>(r: Row<T>): AnyRow => r as unknown as AnyRow;

const runStep = (step: AttemptStep): AttemptEffect => ({ type: 'run_step', step });
const webhook = (event: AttemptWebhookEvent): AttemptEffect => ({ type: 'emit_webhook', event });
const failure = (code: ErrorCode, message = ERROR_MESSAGES[code]): Partial<AttemptSnapshot> => ({ error: { code, message } });
const authenticationFailed = () => [webhook('accounts.authentication_failed')];
/** Only where the creator must ask for the device-check email (the platform does not send it at login). */
const askForEmail = (c: PlatformCapabilities) => !c.emailCodeSentAtLogin;
const exhausted = (s: AttemptSnapshot) => s.wrong_codes + 1 >= MAX_WRONG_CODES;
const emailCooldown = (s: AttemptSnapshot, now: Date): RefusalReason | null =>
  s.email_sent_at && now.getTime() - s.email_sent_at.getTime() < EMAIL_COOLDOWN_MS ? 'email_cooldown' : null;

export const TRANSITIONS: readonly AnyRow[] = [
  // A worker has picked up the queued step.
  row({ from: ['pending'], on: 'step_started', to: 'pending',
    set: (s, e) => ({ progress: e.progress ?? (s.step ? STEP_PROGRESS[s.step] : QUEUED_PROGRESS) }) }),

  // The platform asks for a checkpoint: park and relay it.
  // A selfie confirmed too early answers the same face check again: the developer already knows it.
  row({ from: ['pending'], on: 'challenge', to: (_, e) => CHALLENGE_STATE[e.kind],
    set: (_, e) => ({ otp_channel: e.kind, phone_last4: e.phoneLast4 ?? null, email_mask: e.emailMask ?? null,
      face_verification_url: e.faceUrl ?? null }),
    effects: (s, e) => (s.step === 'confirm_selfie' && s.otp_channel === e.kind ? [] : [webhook(CHALLENGE_WEBHOOK[e.kind])]) }),

  // The creator's answers.
  row({ from: CODE_STATES, on: 'code_submitted', to: 'pending', effects: () => [runStep('submit_code')] }),
  row({ from: ['needs_face_otp'], on: 'selfie_confirmed', to: 'pending', effects: () => [runStep('confirm_selfie')] }),
  row({ from: ['awaiting_mobile_session'], on: 'mobile_session_received', to: 'pending',
    effects: () => [runStep('validate_session')] }),
  // OnlyFans only: Fansly sends its device-check email by itself at login (DESIGN 4). Not a webhook: the
  // developer asked for it. Re-entering needs_email gives the creator a fresh 10 minutes to read the mail.
  // Asking again is allowed once the cool-down since the last request has passed.
  row({ from: ['needs_email'], on: 'email_requested', to: 'needs_email', requires: askForEmail,
    refuse: emailCooldown, set: (_s, _e, now) => ({ email_sent_at: now }), effects: () => [{ type: 'request_email' }] }),
  // A code typed before the email was sent is wrong by definition: the creator can still ask for the email.
  row({ from: ['wrong_2fa_code_retry'], on: 'email_requested', to: 'needs_email', requires: askForEmail,
    when: (s) => s.otp_channel === 'email', refuse: emailCooldown, set: (_s, _e, now) => ({ email_sent_at: now }),
    effects: () => [{ type: 'request_email' }] }),

  // The platform refused the code: retry on the same channel, until the fifth wrong code. No webhook on a
  // retry: the challenge the developer was told about is still the one to answer.
  row({ from: ['pending'], on: 'code_rejected', when: (s) => s.step === 'submit_code',
    to: (s) => (exhausted(s) ? 'completed_failed' : 'wrong_2fa_code_retry'),
    set: (s) => ({ wrong_codes: s.wrong_codes + 1, ...(exhausted(s) ? failure('2fa_failed') : {}) }),
    effects: (s) => (exhausted(s) ? authenticationFailed() : []) }),

  // A step's outcome.
  row({ from: ['pending'], on: 'succeeded', to: 'completed_success', effects: () => [{ type: 'connect_account' }] }),
  row({ from: ['pending'], on: 'failed', to: 'completed_failed',
    set: (_, e) => ({ error: { code: e.code, message: e.message ?? ERROR_MESSAGES[e.code],
      ...(e.existingAccountId === undefined ? {} : { existing_account_id: e.existingAccountId }) } }),
    effects: authenticationFailed }),

  // Ends from outside. Every failed end emits accounts.authentication_failed, cancels included, so a
  // webhook consumer sees exactly one end per attempt.
  row({ from: ACTIVE_STATES, on: 'cancel', to: 'completed_failed', set: () => failure('cancelled'),
    effects: authenticationFailed }),
  row({ from: WAITING_STATES, on: 'input_timeout', to: 'completed_failed',
    when: (s, _, now) => s.input_deadline !== null && now >= s.input_deadline,
    set: () => failure('expired', 'No answer from the creator for 10 minutes.'), effects: authenticationFailed }),
  row({ from: ACTIVE_STATES, on: 'overall_timeout', to: 'completed_failed',
    when: (s, _, now) => now >= s.overall_deadline,
    set: () => failure('expired', 'The attempt did not finish within 20 minutes.'), effects: authenticationFailed }),
];

/** The first snapshot of an attempt: mobile_app waits for the phone, the other types queue their first step. */
export function startAttempt(input: { platform: PlatformName; authType: AuthType }, now: Date): { snapshot: AttemptSnapshot; effects: AttemptEffect[] } {
  const overall_deadline = new Date(now.getTime() + OVERALL_TIMEOUT_MS);
  const blank: AttemptSnapshot = {
    platform: input.platform, state: 'pending', step: null, progress: QUEUED_PROGRESS, otp_channel: null,
    phone_last4: null, email_mask: null, face_verification_url: null, email_sent_at: null, attempts_remaining: null, wrong_codes: 0,
    error: null, input_deadline: null, overall_deadline, expires_at: overall_deadline, completed_at: null,
  };
  const overallTimer: AttemptEffect = { type: 'schedule_timeout', timeout: 'overall', at: overall_deadline };
  const { snapshot, effects } =
    input.authType === 'mobile_app'
      ? enter(blank, 'awaiting_mobile_session', {}, [], now)
      : enter(blank, 'pending', {}, [runStep(input.authType === 'raw_data' ? 'validate_session' : 'login')], now);
  return { snapshot, effects: [overallTimer, ...effects] };
}

/** Applies `event` at `now`. Never throws: an event the current state does not take is refused. */
export function transition(snapshot: AttemptSnapshot, event: AttemptEvent, now: Date): TransitionResult {
  // The rows' callbacks are typed per event; TypeScript cannot correlate a found row with `event`.
  const match = TRANSITIONS.find(
    (r) => r.on === event.type && r.from.includes(snapshot.state) && (!r.requires || r.requires(capabilitiesOf(snapshot.platform))),
  ) as Row<AttemptEventType> | undefined;
  if (!match) return { ok: false, reason: refusal(event) };
  const e = event as EventOf<AttemptEventType>;
  if (match.when && !match.when(snapshot, e, now)) return { ok: false, reason: 'stale_event' };
  const refused = match.refuse?.(snapshot, now);
  if (refused) return { ok: false, reason: refused };

  const to = typeof match.to === 'function' ? match.to(snapshot, e) : match.to;
  return { ok: true, ...enter(snapshot, to, match.set?.(snapshot, e, now) ?? {}, match.effects?.(snapshot, e) ?? [], now) };
}

export function nextActions(state: AttemptState, platform: PlatformName, emailSent = false): NextAction[] {
  // The platform already sent the code: there is no email to ask for.
  if (state === 'needs_email' && capabilitiesOf(platform).emailCodeSentAtLogin) return ['submit_code'];
  // The email went out: the code comes first now; asking again stays possible (after the cool-down).
  if (state === 'needs_email' && emailSent) return ['submit_code', 'send_email_to_creator'];
  return [...NEXT_ACTIONS[state]];
}

export function isTerminal(state: AttemptState): boolean {
  return TERMINAL_STATES.includes(state);
}

/** The seed's Fansly attempt fields (DESIGN 4), derived from the snapshot. */
export interface FanslyAttemptFields {
  /** `authenticating`, `challenge-email`, `challenge-2fa`, `verifying`, `authenticated` or `failed`. */
  status: string;
  needs_code: boolean;
  /** 2 = email code, 0 = authenticator app; null when no code challenge is in play. */
  twofa_type: 0 | 2 | null;
  masked_email: string | null;
}

export function fanslyFields(s: AttemptSnapshot): FanslyAttemptFields {
  const codeChannel = s.otp_channel === 'email' || s.otp_channel === 'app' ? s.otp_channel : null;
  const verifying = s.state === 'pending' && s.step === 'submit_code';
  // As in the seed, the challenge stays "in place" while its code is being verified.
  const needs_code = codeChannel !== null && (CODE_STATES.includes(s.state) || verifying);
  let status: string;
  if (s.state === 'completed_success') status = 'authenticated';
  else if (s.state === 'completed_failed') status = 'failed';
  else if (verifying) status = 'verifying';
  else if (needs_code) status = codeChannel === 'email' ? 'challenge-email' : 'challenge-2fa';
  else status = 'authenticating';
  return {
    status,
    needs_code,
    twofa_type: needs_code ? (codeChannel === 'email' ? 2 : 0) : null,
    masked_email: codeChannel === 'email' ? s.email_mask : null,
  };
}

/** Moves to `to` with the row's changes, deriving everything that follows from the target state alone. */
function enter(
  from: AttemptSnapshot,
  to: AttemptState,
  changes: Partial<AttemptSnapshot>,
  effects: AttemptEffect[],
  now: Date,
): { snapshot: AttemptSnapshot; effects: AttemptEffect[] } {
  const next: AttemptSnapshot = { ...from, ...changes, state: to };
  const queued = effects.find((effect) => effect.type === 'run_step');
  if (queued) {
    next.step = queued.step;
    next.progress = QUEUED_PROGRESS;
  } else if (to !== 'pending') {
    next.step = null;
    next.progress = to === 'needs_email' && next.email_sent_at ? EMAIL_SENT_PROGRESS : STATE_PROGRESS[to];
  }

  const all = [...effects];
  if (WAITING_STATES.includes(to)) {
    next.input_deadline = new Date(now.getTime() + INPUT_TIMEOUT_MS);
    all.push({ type: 'schedule_timeout', timeout: 'input', at: next.input_deadline });
  } else {
    next.input_deadline = null;
  }

  // Counted while a code can be sent or is being checked; 0 when the codes ran out; null otherwise.
  const codeInPlay =
    CODE_STATES.includes(to) || (to === 'pending' && next.step === 'submit_code') || next.error?.code === '2fa_failed';
  next.attempts_remaining = codeInPlay ? MAX_WRONG_CODES - next.wrong_codes : null;
  if (isTerminal(to)) {
    next.completed_at = now;
  } else {
    next.expires_at =
      next.input_deadline && next.input_deadline < next.overall_deadline ? next.input_deadline : next.overall_deadline;
  }
  return { snapshot: next, effects: all };
}

function refusal(event: AttemptEvent): RefusalReason {
  switch (event.type) {
    case 'code_submitted':
    case 'selfie_confirmed':
    case 'mobile_session_received':
      return 'attempt_not_awaiting_input';
    case 'email_requested':
      return 'attempt_not_awaiting_email';
    case 'cancel': // every active state takes a cancel
      return 'attempt_already_completed';
    default:
      return 'stale_event';
  }
}
