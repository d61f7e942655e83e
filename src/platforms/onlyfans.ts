import type { Dispatcher } from 'undici';
import { UpstreamUnavailableError } from '../net/errors.js';
import {
  deviceCookie,
  exchange,
  exchangeStream,
  forwardableRequestHeaders,
  forwardableResponseHeaders,
  idString,
  isRecord,
  parseCookieString,
  parseJson,
  platformUrl,
  rotateCookies,
  serializeCookies,
  setCookieValues,
  stringOr,
  loginRefusal,
  type PlatformErrorBody,
  upstreamStatusError,
  type Exchange,
} from './http.js';
import type {
  ChallengeKind,
  DriverContext,
  PlatformDriver,
  PlatformSession,
  PlatformUser,
  SessionCheck,
  StepResult,
  UpstreamRequest,
  UpstreamResponse,
} from './types.js';

/**
 * Driver for the OnlyFans-like side of the sandbox platform (`/api2/v2`, reference: docs/sandbox.md part 2).
 *
 * Session: the cookies `auth_id`, `sess`, `fp` (`PlatformSession.cookies`, other cookies of an imported
 * browser string are kept as they are), the `x-bc` device token (`xbc`), and the user agent of the login,
 * which every session request carries. `authId` is the `auth_id` cookie, also sent as the `user-id` header
 * like the web app does, so a session whose cookie and stored user disagree answers "Wrong user".
 *
 * Device: the login sends `x-bc: ctx.deviceId` and an `fp` cookie derived from it, so every (re-)login of
 * an account comes from the same browser as far as the platform can tell.
 *
 * Resume state (`OnlyFansResume`): the platform's login token plus the user agent of the login (the
 * platform only continues a login from the browser that started it) and what the creator was last shown.
 */

const PLATFORM = 'onlyfans';
const API = '/api2/v2';
const SESSION_COOKIES = ['auth_id', 'sess', 'fp'] as const;

/** Where the codes went, as the platform last said: kept to answer a challenge again without asking. */
interface ChallengeHints {
  phoneLast4?: string;
  emailMask?: string;
  faceUrl?: string;
  emailSent?: boolean;
}

export interface OnlyFansResume {
  v: 1;
  platform: 'onlyfans';
  loginToken: string;
  userAgent: string;
  kind: ChallengeKind;
  hints: ChallengeHints;
}

const KINDS: readonly ChallengeKind[] = ['sms', 'app', 'email', 'face'];

function readResume(resume: unknown): OnlyFansResume {
  if (
    !isRecord(resume) ||
    resume.platform !== PLATFORM ||
    typeof resume.loginToken !== 'string' ||
    typeof resume.userAgent !== 'string' ||
    !KINDS.includes(resume.kind as ChallengeKind)
  ) {
    throw new TypeError('not an OnlyFans login resume state');
  }
  return { ...(resume as unknown as OnlyFansResume), hints: isRecord(resume.hints) ? (resume.hints as ChallengeHints) : {} };
}

function platformError(body: unknown): PlatformErrorBody | undefined {
  if (!isRecord(body) || !isRecord(body.error)) return undefined;
  const { reason, message, challenge } = body.error;
  if (typeof reason !== 'string') return undefined;
  return {
    reason,
    message: stringOr(message, reason),
    ...(typeof challenge === 'string' ? { challenge } : {}),
  };
}

function userOf(value: unknown): PlatformUser | undefined {
  if (!isRecord(value)) return undefined;
  const id = idString(value.id);
  if (id === undefined || typeof value.username !== 'string') return undefined;
  return {
    id,
    username: value.username,
    name: stringOr(value.name, value.username),
    avatar: typeof value.avatar === 'string' && value.avatar !== '' ? value.avatar : null,
  };
}

export function createOnlyFansDriver(opts: { baseUrl: string }): PlatformDriver {
  const url = (path: string) => platformUrl(opts.baseUrl, path);

  const jsonHeaders = (userAgent: string): Record<string, string> => ({
    'user-agent': userAgent,
    accept: 'application/json',
    'content-type': 'application/json',
  });

  /** A POST of the login flow (login token steps). */
  const loginCall = (ctx: DriverContext, state: OnlyFansResume, path: string, body: Record<string, string>) =>
    exchange(ctx, url(`${API}${path}`), {
      method: 'POST',
      headers: jsonHeaders(state.userAgent),
      body: JSON.stringify({ login_token: state.loginToken, ...body }),
    });

  /**
   * Reads any answer of the login endpoints: the session, the next challenge, or why not.
   * `state` is the login in progress (absent for the first call: a wrong code cannot happen there).
   */
  function loginAnswer(ctx: DriverContext, reply: Exchange, what: string, userAgent: string, state?: OnlyFansResume): StepResult {
    if (reply.status >= 500) throw upstreamStatusError(PLATFORM, what, reply.status);
    const body = parseJson(reply);

    if (reply.status === 200 && isRecord(body) && body.status === 'authenticated') {
      const user = userOf(body.user);
      const cookies = setCookieValues(reply.setCookies);
      const [authId, sess, fp] = SESSION_COOKIES.map((name) => cookies.get(name));
      if (!user || !authId || !sess || !fp) throw new UpstreamUnavailableError(`${PLATFORM}: ${what} answered a session without its cookies`);
      const session: PlatformSession = {
        authId,
        cookies: serializeCookies(new Map([['auth_id', authId], ['sess', sess], ['fp', fp]])),
        xbc: typeof body.x_bc === 'string' && body.x_bc !== '' ? body.x_bc : ctx.deviceId,
        userAgent,
      };
      return { type: 'success', session, user };
    }

    if (reply.status === 200 && isRecord(body) && body.status === 'challenge') {
      const loginToken = body.login_token;
      const challenge = body.challenge;
      if (typeof loginToken !== 'string' || !isRecord(challenge) || !KINDS.includes(challenge.type as ChallengeKind)) {
        throw new UpstreamUnavailableError(`${PLATFORM}: ${what} answered an unreadable challenge`);
      }
      const kind = challenge.type as ChallengeKind;
      const hints: ChallengeHints = { ...state?.hints };
      if (typeof challenge.phone_last4 === 'string') hints.phoneLast4 = challenge.phone_last4;
      if (typeof challenge.email_mask === 'string') hints.emailMask = challenge.email_mask;
      if (typeof challenge.face_url === 'string') hints.faceUrl = challenge.face_url;
      if (kind === 'email') hints.emailSent = challenge.email_sent === true;
      return challengeResult({ v: 1, platform: PLATFORM, loginToken, userAgent, kind, hints });
    }

    return loginRefusal(PLATFORM, what, reply.status, platformError(body), state);
  }

  function challengeResult(state: OnlyFansResume): StepResult {
    const { kind, hints } = state;
    return {
      type: 'challenge',
      kind,
      resume: state,
      ...(kind === 'sms' && hints.phoneLast4 !== undefined ? { phoneLast4: hints.phoneLast4 } : {}),
      ...(kind === 'email' && hints.emailMask !== undefined ? { emailMask: hints.emailMask } : {}),
      ...(kind === 'email' ? { emailSent: hints.emailSent === true } : {}),
      ...(kind === 'face' && hints.faceUrl !== undefined ? { faceUrl: hints.faceUrl } : {}),
    };
  }

  /**
   * A login step the platform answered 409 `challenge_mismatch` (the login is on another step than the caller
   * thought, e.g. a retried job after the step went through): answer the step it is really on.
   */
  async function currentStep(ctx: DriverContext, state: OnlyFansResume, reply: Exchange, what: string): Promise<StepResult | undefined> {
    if (reply.status !== 409) return undefined;
    const error = platformError(parseJson(reply));
    if (error?.reason !== 'challenge_mismatch' || !KINDS.includes(error.challenge as ChallengeKind)) return undefined;
    const kind = error.challenge as ChallengeKind;
    if (kind === 'face') {
      // The selfie poll answers the full face challenge (or moves on when it is done).
      const face = await loginCall(ctx, state, '/users/login/face/check', {});
      return loginAnswer(ctx, face, `${what} (face check)`, state.userAgent, state);
    }
    const hints = kind === state.kind ? state.hints : { ...state.hints, ...(kind === 'email' ? { emailSent: false } : {}) };
    return challengeResult({ ...state, kind, hints });
  }

  async function step(ctx: DriverContext, resume: unknown, path: string, body: Record<string, string>, what: string) {
    const state = readResume(resume);
    const reply = await loginCall(ctx, state, path, body);
    return (await currentStep(ctx, state, reply, what)) ?? loginAnswer(ctx, reply, what, state.userAgent, state);
  }

  /** Headers of an authenticated request: the session's cookies, device token, user and browser. */
  function sessionHeaders(session: PlatformSession, ctx: DriverContext): Record<string, string> {
    return {
      cookie: session.cookies,
      'user-agent': session.userAgent || ctx.userAgent,
      ...(session.xbc ? { 'x-bc': session.xbc } : {}),
      ...(session.authId ? { 'user-id': session.authId } : {}),
    };
  }

  /** The session with the cookies the platform rotated in `reply`, or undefined when none were. */
  function rotated(session: PlatformSession, reply: Pick<Exchange, 'setCookies'>): PlatformSession | undefined {
    const cookies = rotateCookies(session.cookies, reply.setCookies, SESSION_COOKIES);
    if (cookies === undefined) return undefined;
    return { ...session, cookies, authId: parseCookieString(cookies).get('auth_id') ?? session.authId };
  }

  return {
    platform: PLATFORM,

    async startLogin(ctx, credentials) {
      const reply = await exchange(ctx, url(`${API}/users/login`), {
        method: 'POST',
        headers: {
          ...jsonHeaders(ctx.userAgent),
          'x-bc': ctx.deviceId,
          // A browser keeps its device cookie across logins: derive it from the account's device id.
          cookie: `fp=${deviceCookie(ctx.deviceId)}`,
        },
        body: JSON.stringify({ email: credentials.login, password: credentials.password }),
      });
      return loginAnswer(ctx, reply, 'login', ctx.userAgent);
    },

    submitCode(ctx, resume, code) {
      return step(ctx, resume, '/users/login/otp', { code }, 'code');
    },

    requestEmailCode(ctx, resume) {
      return step(ctx, resume, '/users/login/email/send', {}, 'email send');
    },

    confirmSelfie(ctx, resume) {
      return step(ctx, resume, '/users/login/face/check', {}, 'face check');
    },

    async validateSession(ctx, session): Promise<SessionCheck> {
      const reply = await exchange(ctx, url(`${API}/users/me`), {
        method: 'GET',
        headers: { ...sessionHeaders(session, ctx), accept: 'application/json' },
      });
      if (reply.status >= 500 || reply.status === 429) throw upstreamStatusError(PLATFORM, 'users/me', reply.status);
      const body = parseJson(reply);
      if (reply.status === 401 || reply.status === 403) {
        const error = platformError(body);
        const message = error?.message ?? `the platform answered ${reply.status}`;
        return { valid: false, code: error?.reason === 'wrong_user' ? 'wrong_user' : 'session_invalid', message };
      }
      const user = reply.status === 200 ? userOf(body) : undefined;
      if (!user) throw new UpstreamUnavailableError(`${PLATFORM}: unexpected answer ${reply.status} to users/me`);
      if (session.authId && user.id !== session.authId) return { valid: false, code: 'wrong_user', message: 'Wrong user' };
      const next = rotated(session, reply);
      return { valid: true, user, ...(next ? { session: next } : {}) };
    },

    async request(ctx, session, upstream: UpstreamRequest): Promise<UpstreamResponse> {
      const method = upstream.method.toUpperCase();
      if (!/^[A-Z]+$/.test(method)) throw new TypeError(`invalid HTTP method "${upstream.method}"`);
      const headers = forwardableRequestHeaders(upstream.headers);
      if (upstream.body !== undefined && headers['content-type'] === undefined) headers['content-type'] = 'application/json';
      const reply = await exchangeStream(ctx, url(upstream.path), {
        method: method as Dispatcher.HttpMethod,
        headers: { accept: 'application/json', ...headers, ...sessionHeaders(session, ctx) },
        ...(upstream.body === undefined ? {} : { body: upstream.body }),
      });
      // A platform 5xx is answered, not thrown: the Access API reports it with its status.
      const next = rotated(session, reply);
      return {
        status: reply.status,
        headers: forwardableResponseHeaders(reply.headers),
        body: reply.body,
        ...(next ? { session: next } : {}),
      };
    },

    async logout(ctx, session) {
      // Best effort: whatever the platform answers, the session is forgotten by the caller. Network
      // failures still throw (typed), so the caller can log them.
      await exchange(ctx, url(`${API}/users/logout`), {
        method: 'POST',
        headers: { ...sessionHeaders(session, ctx), accept: 'application/json' },
      });
    },
  };
}
