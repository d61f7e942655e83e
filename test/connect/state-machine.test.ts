import { describe, expect, it } from 'vitest';
import {
  MAX_WRONG_CODES,
  TRANSITIONS,
  fanslyFields,
  isTerminal,
  nextActions,
  startAttempt,
  transition,
  type AttemptEvent,
  type AttemptEventType,
  type AttemptSnapshot,
  type AttemptState,
} from '../../src/connect/state-machine.js';
import type { PlatformName as Platform } from '../../src/db/schema.js';

const T0 = new Date('2030-01-01T00:00:00Z');
const at = (minutes: number) => new Date(T0.getTime() + minutes * 60_000);

/** Applies events in order at `now`, failing the test on any refusal. */
function run(snapshot: AttemptSnapshot, events: AttemptEvent[], now = T0): AttemptSnapshot {
  for (const event of events) {
    const result = transition(snapshot, event, now);
    if (!result.ok) throw new Error(`${event.type} refused in ${snapshot.state}: ${result.reason}`);
    snapshot = result.snapshot;
  }
  return snapshot;
}
const ok = (result: ReturnType<typeof transition>) => {
  if (!result.ok) throw new Error(`refused: ${result.reason}`);
  return result;
};

const started = (platform: Platform = 'onlyfans') => startAttempt({ platform, authType: 'email_password' }, T0).snapshot;
const sms: AttemptEvent = { type: 'challenge', kind: 'sms', phoneLast4: '4242' };

/** An attempt in `state`; `pending` is one verifying a code, so that every pending row applies. */
function reach(state: AttemptState, platform: Platform = 'onlyfans'): AttemptSnapshot {
  const fresh = started(platform);
  switch (state) {
    case 'pending':
      return run(fresh, [sms, { type: 'code_submitted' }]);
    case 'awaiting_mobile_session':
      return startAttempt({ platform, authType: 'mobile_app' }, T0).snapshot;
    case 'needs_otp':
      return run(fresh, [sms]);
    case 'needs_app_otp':
      return run(fresh, [{ type: 'challenge', kind: 'app' }]);
    case 'needs_email':
      return run(fresh, [{ type: 'challenge', kind: 'email', emailMask: 'j***@s*****.test' }]);
    case 'needs_face_otp':
      return run(fresh, [{ type: 'challenge', kind: 'face', faceUrl: 'http://sandbox/face/t' }]);
    case 'wrong_2fa_code_retry': // on the email channel, so that every retry row applies
      return run(fresh, [{ type: 'challenge', kind: 'email', emailMask: 'j***@s*****.test' }, { type: 'code_submitted' }, { type: 'code_rejected' }]);
    case 'completed_success':
      return run(fresh, [{ type: 'succeeded' }]);
    case 'completed_failed':
      return run(fresh, [{ type: 'failed', code: 'invalid_credentials' }]);
  }
}

const ALL_STATES: AttemptState[] = [
  'pending', 'awaiting_mobile_session', 'needs_otp', 'needs_app_otp', 'needs_email', 'needs_face_otp',
  'wrong_2fa_code_retry', 'completed_success', 'completed_failed',
];
const ACTIVE = ALL_STATES.filter((state) => !isTerminal(state));
const SAMPLE: Record<AttemptEventType, AttemptEvent> = {
  step_started: { type: 'step_started' },
  challenge: sms,
  code_submitted: { type: 'code_submitted' },
  code_rejected: { type: 'code_rejected' },
  email_requested: { type: 'email_requested' },
  selfie_confirmed: { type: 'selfie_confirmed' },
  mobile_session_received: { type: 'mobile_session_received' },
  succeeded: { type: 'succeeded' },
  failed: { type: 'failed', code: 'account_locked' },
  cancel: { type: 'cancel' },
  input_timeout: { type: 'input_timeout' },
  overall_timeout: { type: 'overall_timeout' },
};
// Timers are delivered when due: 20 minutes after start both deadlines have passed.
const timeOf = (type: AttemptEventType) => (type.endsWith('_timeout') ? at(20) : T0);

/** DESIGN 3.2–3.3, written out by hand: [from, event, to] for the OnlyFans side. */
const EXPECTED: [AttemptState, AttemptEventType, AttemptState][] = [
  ['pending', 'step_started', 'pending'],
  ['pending', 'challenge', 'needs_otp'],
  ['pending', 'code_rejected', 'wrong_2fa_code_retry'],
  ['pending', 'succeeded', 'completed_success'],
  ['pending', 'failed', 'completed_failed'],
  ['pending', 'cancel', 'completed_failed'],
  ['pending', 'overall_timeout', 'completed_failed'],
  ['awaiting_mobile_session', 'mobile_session_received', 'pending'],
  ['needs_email', 'email_requested', 'needs_email'],
  ['wrong_2fa_code_retry', 'email_requested', 'needs_email'],
  ['needs_face_otp', 'selfie_confirmed', 'pending'],
  ...(['needs_otp', 'needs_app_otp', 'needs_email', 'wrong_2fa_code_retry'] as const).map(
    (state): [AttemptState, AttemptEventType, AttemptState] => [state, 'code_submitted', 'pending'],
  ),
  ...(['awaiting_mobile_session', 'needs_otp', 'needs_app_otp', 'needs_email', 'needs_face_otp', 'wrong_2fa_code_retry'] as const).flatMap(
    (state): [AttemptState, AttemptEventType, AttemptState][] => [
      [state, 'cancel', 'completed_failed'],
      [state, 'input_timeout', 'completed_failed'],
      [state, 'overall_timeout', 'completed_failed'],
    ],
  ),
];

describe('the transition table', () => {
  it('has exactly the transitions of the contract', () => {
    const inTable = TRANSITIONS.flatMap((row) => row.from.map((from) => `${from} --${row.on}-->`)).sort();
    expect(inTable).toEqual(EXPECTED.map(([from, on]) => `${from} --${on}-->`).sort());
  });

  it.each(EXPECTED)('%s --%s--> %s', (from, on, to) => {
    const result = ok(transition(reach(from), SAMPLE[on], timeOf(on)));
    expect(result.snapshot.state).toBe(to);
  });

  it('refuses every other event in every state, without throwing', () => {
    const allowed = new Set(EXPECTED.map(([from, on]) => `${from}/${on}`));
    for (const state of ALL_STATES) {
      for (const type of Object.keys(SAMPLE) as AttemptEventType[]) {
        if (allowed.has(`${state}/${type}`)) continue;
        const result = transition(reach(state), SAMPLE[type], timeOf(type));
        expect(result.ok, `${state}/${type}`).toBe(false);
      }
    }
  });

  it('lets no event leave a terminal state', () => {
    for (const state of ['completed_success', 'completed_failed'] as const) {
      for (const event of Object.values(SAMPLE)) {
        expect(transition(reach(state), event, at(60)).ok).toBe(false);
      }
    }
  });

  it('does not mutate the snapshot it is given', () => {
    const snapshot = Object.freeze(reach('needs_otp'));
    expect(() => transition(snapshot, { type: 'code_submitted' }, T0)).not.toThrow();
    expect(snapshot.state).toBe('needs_otp');
  });
});

describe('starting', () => {
  it('queues the login for email_password and schedules the overall expiry', () => {
    const { snapshot, effects } = startAttempt({ platform: 'onlyfans', authType: 'email_password' }, T0);
    expect(snapshot).toMatchObject({
      state: 'pending', step: 'login', progress: 'Waiting for a worker', attempts_remaining: null, wrong_codes: 0,
      error: null, input_deadline: null, overall_deadline: at(20), expires_at: at(20), completed_at: null,
    });
    expect(effects).toEqual([
      { type: 'schedule_timeout', timeout: 'overall', at: at(20) },
      { type: 'run_step', step: 'login' },
    ]);
    expect(ok(transition(snapshot, { type: 'step_started' }, T0)).snapshot.progress).toBe('Signing in');
    expect(ok(transition(snapshot, { type: 'step_started', progress: 'Retrying' }, T0)).snapshot.progress).toBe('Retrying');
  });

  it('validates the session first for raw_data', () => {
    const { effects } = startAttempt({ platform: 'onlyfans', authType: 'raw_data' }, T0);
    expect(effects).toContainEqual({ type: 'run_step', step: 'validate_session' });
  });

  it('waits 10 minutes for the phone for mobile_app', () => {
    const { snapshot, effects } = startAttempt({ platform: 'onlyfans', authType: 'mobile_app' }, T0);
    expect(snapshot).toMatchObject({ state: 'awaiting_mobile_session', step: null, input_deadline: at(10), expires_at: at(10) });
    expect(effects).toEqual([
      { type: 'schedule_timeout', timeout: 'overall', at: at(20) },
      { type: 'schedule_timeout', timeout: 'input', at: at(10) },
    ]);
    const received = ok(transition(snapshot, { type: 'mobile_session_received' }, at(2)));
    expect(received.snapshot).toMatchObject({ state: 'pending', step: 'validate_session', input_deadline: null, expires_at: at(20) });
    expect(received.effects).toEqual([{ type: 'run_step', step: 'validate_session' }]);
  });
});

describe('challenges', () => {
  it.each([
    [{ type: 'challenge', kind: 'sms', phoneLast4: '4242' }, 'needs_otp', 'accounts.otp_code_required', { phone_last4: '4242' }, 5],
    [{ type: 'challenge', kind: 'app' }, 'needs_app_otp', 'accounts.otp_code_required', {}, 5],
    [{ type: 'challenge', kind: 'email', emailMask: 'j***@s.test' }, 'needs_email', 'accounts.email_code_required', { email_mask: 'j***@s.test' }, 5],
    [{ type: 'challenge', kind: 'face', faceUrl: 'http://s/face/x' }, 'needs_face_otp', 'accounts.face_otp_required', { face_verification_url: 'http://s/face/x' }, null],
  ] as const)('%o parks in %s and emits %s', (event, state, webhook, fields, remaining) => {
    const result = ok(transition(started(), event, at(1)));
    expect(result.snapshot).toMatchObject({
      state, step: null, otp_channel: event.kind, attempts_remaining: remaining, input_deadline: at(11), expires_at: at(11), ...fields,
    });
    expect(result.effects).toEqual([
      { type: 'emit_webhook', event: webhook },
      { type: 'schedule_timeout', timeout: 'input', at: at(11) },
    ]);
  });

  it('caps expires_at at the overall deadline', () => {
    const late = ok(transition(started(), sms, at(15))).snapshot;
    expect(late.input_deadline).toEqual(at(25));
    expect(late.expires_at).toEqual(at(20));
  });

  it('does not announce the face check again when a selfie was confirmed too early', () => {
    const face: AttemptEvent = { type: 'challenge', kind: 'face', faceUrl: 'http://sandbox/face/t' };
    const confirming = run(started(), [face, { type: 'selfie_confirmed' }]);
    const again = ok(transition(confirming, face, T0));
    expect(again.snapshot.state).toBe('needs_face_otp');
    expect(again.effects.filter((e) => e.type === 'emit_webhook')).toEqual([]);
    // A different checkpoint after the selfie is news.
    const next = ok(transition(confirming, sms, T0));
    expect(next.effects).toContainEqual({ type: 'emit_webhook', event: 'accounts.otp_code_required' });
  });

  it('confirms a selfie by running the check', () => {
    const result = ok(transition(reach('needs_face_otp'), { type: 'selfie_confirmed' }, T0));
    expect(result.snapshot).toMatchObject({ state: 'pending', step: 'confirm_selfie', input_deadline: null });
    expect(result.effects).toEqual([{ type: 'run_step', step: 'confirm_selfie' }]);
  });

  it('still sends the email after a code typed before it was sent, and only on the email channel', () => {
    const retry = run(started(), [{ type: 'challenge', kind: 'email', emailMask: 'j***@s*****.test' }, { type: 'code_submitted' }, { type: 'code_rejected' }]);
    const result = ok(transition(retry, { type: 'email_requested' }, T0));
    expect(result.snapshot).toMatchObject({ state: 'needs_email', otp_channel: 'email', attempts_remaining: 4 });
    expect(result.effects[0]).toEqual({ type: 'request_email' });
    const smsRetry = run(started(), [sms, { type: 'code_submitted' }, { type: 'code_rejected' }]);
    expect(transition(smsRetry, { type: 'email_requested' }, T0).ok).toBe(false);
  });

  it('requests the OnlyFans device-check email and gives the creator a fresh 10 minutes', () => {
    const result = ok(transition(reach('needs_email'), { type: 'email_requested' }, at(4)));
    expect(result.snapshot).toMatchObject({ state: 'needs_email', input_deadline: at(14), expires_at: at(14) });
    expect(result.effects).toEqual([{ type: 'request_email' }, { type: 'schedule_timeout', timeout: 'input', at: at(14) }]);
  });
});

describe('codes', () => {
  it('counts attempts_remaining down on wrong codes, then accepts the right one', () => {
    let snapshot = reach('needs_otp');
    expect(snapshot.attempts_remaining).toBe(5);
    for (const remaining of [4, 3, 2, 1]) {
      const submitted = ok(transition(snapshot, { type: 'code_submitted' }, T0));
      expect(submitted.snapshot).toMatchObject({ state: 'pending', step: 'submit_code', attempts_remaining: remaining + 1 });
      expect(submitted.effects).toEqual([{ type: 'run_step', step: 'submit_code' }]);
      const rejected = ok(transition(submitted.snapshot, { type: 'code_rejected' }, T0));
      expect(rejected.snapshot).toMatchObject({
        state: 'wrong_2fa_code_retry', otp_channel: 'sms', phone_last4: '4242', attempts_remaining: remaining, error: null,
      });
      expect(rejected.effects).toEqual([{ type: 'schedule_timeout', timeout: 'input', at: at(10) }]);
      snapshot = rejected.snapshot;
    }
    const success = ok(transition(run(snapshot, [{ type: 'code_submitted' }]), { type: 'succeeded' }, at(3)));
    expect(success.snapshot).toMatchObject({
      state: 'completed_success', step: null, error: null, completed_at: at(3), attempts_remaining: null, input_deadline: null,
    });
    expect(success.effects).toEqual([{ type: 'connect_account' }]);
  });

  it(`fails 2fa_failed on the ${MAX_WRONG_CODES}th wrong code`, () => {
    let snapshot = reach('needs_app_otp');
    for (let i = 1; i < MAX_WRONG_CODES; i++) snapshot = run(snapshot, [{ type: 'code_submitted' }, { type: 'code_rejected' }]);
    const last = ok(transition(run(snapshot, [{ type: 'code_submitted' }]), { type: 'code_rejected' }, at(5)));
    expect(last.snapshot).toMatchObject({
      state: 'completed_failed', wrong_codes: 5, attempts_remaining: 0, completed_at: at(5),
      error: { code: '2fa_failed', message: expect.any(String) },
    });
    expect(last.effects).toEqual([{ type: 'emit_webhook', event: 'accounts.authentication_failed' }]);
    expect(nextActions(last.snapshot.state, 'onlyfans')).toEqual([]);
  });

  it('caps wrong codes per attempt, across channels', () => {
    let snapshot = reach('needs_otp');
    for (let i = 0; i < 3; i++) snapshot = run(snapshot, [{ type: 'code_submitted' }, { type: 'code_rejected' }]);
    snapshot = run(snapshot, [{ type: 'code_submitted' }, { type: 'challenge', kind: 'email', emailMask: 'm' }]);
    expect(snapshot).toMatchObject({ state: 'needs_email', otp_channel: 'email', attempts_remaining: 2 });
  });

  it('ignores a code rejection that answers no code', () => {
    expect(transition(started(), { type: 'code_rejected' }, T0)).toEqual({ ok: false, reason: 'stale_event' });
  });
});

describe('refusals', () => {
  it.each(['pending', 'awaiting_mobile_session', 'needs_face_otp', 'completed_success', 'completed_failed'] as const)(
    'answers attempt_not_awaiting_input to a code in %s',
    (state) => {
      expect(transition(reach(state), { type: 'code_submitted' }, T0)).toEqual({ ok: false, reason: 'attempt_not_awaiting_input' });
    },
  );

  it('answers attempt_not_awaiting_input to a selfie confirmation outside needs_face_otp', () => {
    expect(transition(reach('needs_otp'), { type: 'selfie_confirmed' }, T0)).toEqual({ ok: false, reason: 'attempt_not_awaiting_input' });
  });

  it('answers attempt_not_awaiting_email outside OnlyFans needs_email', () => {
    expect(transition(reach('needs_otp'), { type: 'email_requested' }, T0)).toEqual({ ok: false, reason: 'attempt_not_awaiting_email' });
    expect(transition(reach('needs_email', 'fansly'), { type: 'email_requested' }, T0)).toEqual({
      ok: false, reason: 'attempt_not_awaiting_email',
    });
  });

  it('drops a driver result that arrives after a cancel', () => {
    const cancelled = run(reach('pending'), [{ type: 'cancel' }]);
    expect(transition(cancelled, { type: 'succeeded' }, T0)).toEqual({ ok: false, reason: 'stale_event' });
    expect(transition(cancelled, { type: 'cancel' }, T0)).toEqual({ ok: false, reason: 'attempt_already_completed' });
  });
});

describe('failures, cancel and expiry', () => {
  it('ends with the driver failure code and its message', () => {
    const result = ok(transition(started(), { type: 'failed', code: 'account_already_connected', existingAccountId: 'acct_1' }, at(1)));
    expect(result.snapshot).toMatchObject({
      state: 'completed_failed', completed_at: at(1),
      error: { code: 'account_already_connected', message: 'This platform user is already connected.', existing_account_id: 'acct_1' },
    });
    expect(result.effects).toEqual([{ type: 'emit_webhook', event: 'accounts.authentication_failed' }]);
    const custom = ok(transition(started(), { type: 'failed', code: 'proxy_error', message: 'proxy down' }, T0));
    expect(custom.snapshot.error).toEqual({ code: 'proxy_error', message: 'proxy down' });
  });

  it.each(ACTIVE)('cancels from %s', (state) => {
    const result = ok(transition(reach(state), { type: 'cancel' }, at(2)));
    expect(result.snapshot).toMatchObject({
      state: 'completed_failed', error: { code: 'cancelled' }, completed_at: at(2), step: null, input_deadline: null,
    });
    expect(result.effects).toEqual([{ type: 'emit_webhook', event: 'accounts.authentication_failed' }]);
  });

  it('expires after 10 minutes without input, ignoring a timer made stale by a renewed wait', () => {
    // Wait #1 ends at 10 min; a wrong code at 5 min starts wait #2, ending at 15 min.
    const first = ok(transition(started(), sms, T0)).snapshot;
    const retry = run(first, [{ type: 'code_submitted' }, { type: 'code_rejected' }], at(5));
    expect(retry.expires_at).toEqual(at(15));
    expect(transition(retry, { type: 'input_timeout' }, at(10))).toEqual({ ok: false, reason: 'stale_event' });
    const expired = ok(transition(retry, { type: 'input_timeout' }, at(15)));
    expect(expired.snapshot).toMatchObject({ state: 'completed_failed', error: { code: 'expired' }, expires_at: at(15) });
    expect(expired.effects).toEqual([{ type: 'emit_webhook', event: 'accounts.authentication_failed' }]);
  });

  it('expires 20 minutes after the start whatever the state', () => {
    const working = reach('pending');
    expect(transition(working, { type: 'overall_timeout' }, at(19))).toEqual({ ok: false, reason: 'stale_event' });
    const expired = ok(transition(working, { type: 'overall_timeout' }, at(20)));
    expect(expired.snapshot).toMatchObject({ state: 'completed_failed', error: { code: 'expired' }, completed_at: at(20) });
  });

  it('ignores an input timer while a step is running', () => {
    expect(transition(reach('pending'), { type: 'input_timeout' }, at(20))).toEqual({ ok: false, reason: 'stale_event' });
  });
});

describe('nextActions and isTerminal', () => {
  it('match DESIGN 3.2', () => {
    expect(Object.fromEntries(ALL_STATES.map((state) => [state, nextActions(state, 'onlyfans')]))).toEqual({
      pending: [],
      awaiting_mobile_session: ['open_mobile_app'],
      needs_otp: ['submit_code'],
      needs_app_otp: ['submit_code'],
      needs_email: ['send_email_to_creator', 'submit_code'],
      needs_face_otp: ['open_face_verification', 'confirm_selfie'],
      wrong_2fa_code_retry: ['submit_code'],
      completed_success: [],
      completed_failed: [],
    });
    expect(ALL_STATES.filter(isTerminal)).toEqual(['completed_success', 'completed_failed']);
  });

  it('give Fansly needs_email submit_code only (the platform sends the email itself)', () => {
    expect(nextActions('needs_email', 'fansly')).toEqual(['submit_code']);
    expect(nextActions('needs_app_otp', 'fansly')).toEqual(['submit_code']);
  });

  it('return a fresh array', () => {
    nextActions('needs_otp', 'onlyfans').push('confirm_selfie');
    expect(nextActions('needs_otp', 'onlyfans')).toEqual(['submit_code']);
  });
});

describe('fanslyFields', () => {
  it('follows an email challenge through a wrong code to success', () => {
    let snapshot = started('fansly');
    expect(fanslyFields(snapshot)).toEqual({ status: 'authenticating', needs_code: false, twofa_type: null, masked_email: null });
    snapshot = run(snapshot, [{ type: 'challenge', kind: 'email', emailMask: 't**@e*****.com' }]);
    const challenge = { status: 'challenge-email', needs_code: true, twofa_type: 2, masked_email: 't**@e*****.com' };
    expect(fanslyFields(snapshot)).toEqual(challenge);
    snapshot = run(snapshot, [{ type: 'code_submitted' }]);
    expect(fanslyFields(snapshot)).toEqual({ ...challenge, status: 'verifying' });
    snapshot = run(snapshot, [{ type: 'code_rejected' }]);
    expect(fanslyFields(snapshot)).toEqual(challenge);
    snapshot = run(snapshot, [{ type: 'code_submitted' }, { type: 'succeeded' }]);
    expect(fanslyFields(snapshot)).toEqual({ status: 'authenticated', needs_code: false, twofa_type: null, masked_email: 't**@e*****.com' });
  });

  it('reports an authenticator challenge as twofa_type 0 and a failure as failed', () => {
    const app = reach('needs_app_otp', 'fansly');
    expect(fanslyFields(app)).toEqual({ status: 'challenge-2fa', needs_code: true, twofa_type: 0, masked_email: null });
    expect(fanslyFields(run(app, [{ type: 'cancel' }])).status).toBe('failed');
  });
});
