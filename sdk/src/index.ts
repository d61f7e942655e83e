import createClient from 'openapi-fetch';
import { Webhook } from 'standardwebhooks';
import { FanGateAttemptFailedError, FanGateProblemError, unwrap } from './errors.js';
import type { components, operations, paths } from './schema.js';

export { FanGateAttemptFailedError, FanGateProblemError, type Problem } from './errors.js';
export type { components, operations, paths } from './schema.js';

export type Attempt = components['schemas']['Attempt'];
export type Account = components['schemas']['Account'];
export type AttemptState = Attempt['state'];
export type AuthenticationRequest = components['schemas']['AuthenticationRequest'];
export type WebhookEvent = components['schemas']['WebhookEvent'];
export type Platform = 'onlyfans' | 'fansly';

export interface FanGateOptions {
  /** Where FanGate answers, e.g. `http://localhost:8080` (its FANGATE_PUBLIC_URL). */
  baseUrl: string;
  /** An API key `fg_…`. */
  apiKey: string;
  /** A fetch of your own (tests, proxies); the global one by default. */
  fetch?: typeof globalThis.fetch;
}

/** What a UI needs at a checkpoint, and the actions that answer it. */
export interface Checkpoint {
  attempt: Attempt;
  state: AttemptState;
  /** What the attempt takes now: `submit_code`, `send_email_to_creator`, `open_face_verification`, `confirm_selfie`, `open_mobile_app`. */
  nextActions: Attempt['next_actions'];
  /** Which code is asked for: `sms`, `app`, `email` or `face`. */
  channel: Attempt['otp_channel'];
  phoneLast4: string | null;
  emailMask: string | null;
  /** When the device-check email was asked for (null: not yet). */
  emailSentAt: string | null;
  faceVerificationUrl: string | null;
  mobileDeeplink: string | null;
  /** Codes left before the attempt fails `2fa_failed`. */
  attemptsRemaining: number | null;
  submitCode(code: string): Promise<Attempt>;
  sendEmailToCreator(): Promise<Attempt>;
  confirmSelfie(): Promise<Attempt>;
}

export interface ConnectOptions {
  /** Default `onlyfans`. */
  platform?: Platform;
  /** Called at every checkpoint (a state waiting for the creator); answer it with the checkpoint's actions. */
  onCheckpoint?: (checkpoint: Checkpoint) => void | Promise<void>;
  /** Called on every change the client sees, checkpoints included. */
  onChange?: (attempt: Attempt) => void;
  /** Sent as `Idempotency-Key`, so a retried start does not start twice. */
  idempotencyKey?: string;
  /** Stops following (the attempt keeps running on the server; cancel it with `cancelAttempt`). */
  signal?: AbortSignal;
  /** Seconds per long-poll (1-30, default 25). */
  waitSec?: number;
}

const CHECKPOINTS: readonly AttemptState[] = ['awaiting_mobile_session', 'needs_otp', 'needs_app_otp', 'needs_email', 'needs_face_otp', 'wrong_2fa_code_retry'];

/** A FanGate client: `api` is the typed client of every operation; the helpers follow attempts and verify webhooks. */
export function createFanGate(options: FanGateOptions) {
  const api = createClient<paths>({
    baseUrl: options.baseUrl.replace(/\/+$/, ''),
    headers: { authorization: `Bearer ${options.apiKey}` },
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });

  async function getAttempt(attemptId: string, platform: Platform = 'onlyfans', wait?: { state: AttemptState; waitSec: number }, signal?: AbortSignal): Promise<Attempt> {
    const query = wait ? { wait: wait.waitSec, state: wait.state } : {};
    const init = { params: { path: { attempt_id: attemptId }, query }, ...(signal ? { signal } : {}) };
    return platform === 'fansly' ? unwrap(await api.GET('/api/fansly/authenticate/{attempt_id}', init)) : unwrap(await api.GET('/api/authenticate/{attempt_id}', init));
  }

  /** Answers as soon as the attempt's state differs from `lastState`, or after `waitSec` with the attempt as it is. */
  async function waitForChange(attemptId: string, lastState: AttemptState, opts: { platform?: Platform; waitSec?: number; signal?: AbortSignal } = {}): Promise<Attempt> {
    return getAttempt(attemptId, opts.platform, { state: lastState, waitSec: Math.min(30, Math.max(1, opts.waitSec ?? 25)) }, opts.signal);
  }

  async function submitCode(attemptId: string, code: string, platform: Platform = 'onlyfans'): Promise<Attempt> {
    const init = { params: { path: { attempt_id: attemptId } }, body: { code } };
    return platform === 'fansly' ? unwrap(await api.PUT('/api/fansly/authenticate/{attempt_id}', init)) : unwrap(await api.PUT('/api/authenticate/{attempt_id}', init));
  }

  async function confirmSelfie(attemptId: string, platform: Platform = 'onlyfans'): Promise<Attempt> {
    const init = { params: { path: { attempt_id: attemptId } }, body: { selfie_verification_completed: true as const } };
    return platform === 'fansly' ? unwrap(await api.PUT('/api/fansly/authenticate/{attempt_id}', init)) : unwrap(await api.PUT('/api/authenticate/{attempt_id}', init));
  }

  async function sendEmailToCreator(attemptId: string): Promise<Attempt> {
    return unwrap(await api.POST('/api/authenticate/{attempt_id}/send-email-to-creator', { params: { path: { attempt_id: attemptId } } }));
  }

  async function start(body: AuthenticationRequest, platform: Platform = 'onlyfans', idempotencyKey?: string) {
    const init = { body, params: { header: idempotencyKey ? { 'idempotency-key': idempotencyKey } : {} } };
    return platform === 'fansly' ? unwrap(await api.POST('/api/fansly/authenticate', init)) : unwrap(await api.POST('/api/authenticate', init));
  }

  function checkpointOf(attempt: Attempt, platform: Platform): Checkpoint {
    const id = attempt.attempt_id;
    return {
      attempt,
      state: attempt.state,
      nextActions: attempt.next_actions,
      channel: attempt.otp_channel,
      phoneLast4: attempt.phone_last4,
      emailMask: attempt.email_mask,
      emailSentAt: attempt.email_sent_at ?? null,
      faceVerificationUrl: attempt.face_verification_url,
      mobileDeeplink: attempt.mobile_auth_session_deeplink,
      attemptsRemaining: attempt.attempts_remaining,
      submitCode: (code) => submitCode(id, code, platform),
      sendEmailToCreator: () => sendEmailToCreator(id),
      confirmSelfie: () => confirmSelfie(id, platform),
    };
  }

  /**
   * Follows an attempt to its end (long-poll): calls `onCheckpoint` at every checkpoint, resolves with
   * the connected account, throws FanGateAttemptFailedError when it fails.
   */
  async function follow(attemptId: string, opts: ConnectOptions = {}): Promise<Account> {
    const platform = opts.platform ?? 'onlyfans';
    let attempt = await getAttempt(attemptId, platform, undefined, opts.signal);
    let seen: string | undefined;
    for (;;) {
      const version = `${attempt.state}|${attempt.updated_at}`;
      if (version !== seen) {
        seen = version;
        opts.onChange?.(attempt);
        if (attempt.state === 'completed_success') {
          if (!attempt.account) throw new FanGateAttemptFailedError('no_account', 'The attempt succeeded without an account.', attempt.attempt_id);
          return attempt.account;
        }
        if (attempt.state === 'completed_failed') {
          throw new FanGateAttemptFailedError(attempt.error?.code ?? 'unknown', attempt.error?.message ?? 'The attempt failed.', attempt.attempt_id);
        }
        if (CHECKPOINTS.includes(attempt.state) && opts.onCheckpoint) {
          await opts.onCheckpoint(checkpointOf(attempt, platform));
          // What the callback did (a code, the email) shows at once; an unchanged attempt is not called back twice.
          attempt = await getAttempt(attemptId, platform, undefined, opts.signal);
          continue;
        }
      }
      attempt = await waitForChange(attemptId, attempt.state, { platform, ...(opts.waitSec ? { waitSec: opts.waitSec } : {}), ...(opts.signal ? { signal: opts.signal } : {}) });
    }
  }

  /** Starts connecting an account and follows it to the end: resolves with the account. */
  async function connect(body: AuthenticationRequest, opts: ConnectOptions = {}): Promise<Account> {
    const started = await start(body, opts.platform, opts.idempotencyKey);
    return follow(started.attempt_id, opts);
  }

  return { api, connect, follow, start, getAttempt, waitForChange, submitCode, confirmSelfie, sendEmailToCreator };
}

export type FanGateClient = ReturnType<typeof createFanGate>;

/**
 * Verifies a webhook delivery (Standard Webhooks: `webhook-id`, `webhook-timestamp`,
 * `webhook-signature`) against the endpoint's signing secret `whsec_…`, on the raw body as received.
 * Returns the event; throws when the signature or timestamp does not hold.
 */
export function verifyWebhook(secret: string, rawBody: string | Buffer, headers: Headers | Record<string, string | string[] | undefined>): WebhookEvent {
  const get = (name: string): string => {
    const value = headers instanceof Headers ? headers.get(name) : headers[name] ?? headers[name.toLowerCase()];
    return Array.isArray(value) ? (value[0] ?? '') : (value ?? '');
  };
  const payload = new Webhook(secret).verify(rawBody, {
    'webhook-id': get('webhook-id'),
    'webhook-timestamp': get('webhook-timestamp'),
    'webhook-signature': get('webhook-signature'),
  });
  return payload as WebhookEvent;
}

export { isProblemError };
function isProblemError(error: unknown, code?: string): error is FanGateProblemError {
  return error instanceof FanGateProblemError && (code === undefined || error.code === code);
}
export type StartAuthenticationOperation = operations['startAuthentication'];
