import type { Dispatcher } from 'undici';
import { UpstreamUnavailableError } from '../net/errors.js';
import {
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
 * Driver for the Fansly-like side of the sandbox platform (`/api/v1`, reference: docs/sandbox.md part 2).
 *
 * Session (`PlatformSession`): Fansly sessions are a bearer-like token bound to the user agent of the login,
 * not cookies. We store `authId` = the platform account id, `token` = the session token (sent as the bare
 * `authorization` header), `xbc` = the device id the login was made with (= `ctx.deviceId`), `cookies` = ''
 * and `userAgent`. A session imported with only a cookie string (`fansly-token=…`, as the browser holds it
 * and as the sandbox mints it) works too: the token is read from that cookie when `token` is empty.
 *
 * Login: by `username`, or by `email` when the login contains "@". The device id is `ctx.deviceId`.
 * Challenges: `twofa_type` 2 = new-device email code (mailed by the platform at login, so the challenge
 * comes with `emailSent: true` and `requestEmailCode` only answers it again), 0 = authenticator app.
 */

const PLATFORM = 'fansly';
const API = '/api/v1';
const TWOFA_KINDS: Record<number, ChallengeKind> = { 0: 'app', 2: 'email' };

export interface FanslyResume {
  v: 1;
  platform: 'fansly';
  /** The platform's two-factor token (same across the steps of one login). */
  token: string;
  userAgent: string;
  deviceId: string;
  kind: ChallengeKind;
  emailMask?: string;
}

function readResume(resume: unknown): FanslyResume {
  if (
    !isRecord(resume) ||
    resume.platform !== PLATFORM ||
    typeof resume.token !== 'string' ||
    typeof resume.userAgent !== 'string' ||
    typeof resume.deviceId !== 'string' ||
    (resume.kind !== 'email' && resume.kind !== 'app')
  ) {
    throw new TypeError('not a Fansly login resume state');
  }
  return resume as unknown as FanslyResume;
}

function platformError(body: unknown): PlatformErrorBody | undefined {
  if (!isRecord(body) || !isRecord(body.error)) return undefined;
  const { reason, details } = body.error;
  if (typeof reason !== 'string') return undefined;
  return { reason, message: stringOr(details, reason) };
}

function accountOf(value: unknown): PlatformUser | undefined {
  if (!isRecord(value)) return undefined;
  const id = idString(value.id);
  if (id === undefined || typeof value.username !== 'string') return undefined;
  return {
    id,
    username: value.username,
    name: typeof value.displayName === 'string' && value.displayName !== '' ? value.displayName : value.username,
    avatar: typeof value.avatar === 'string' && value.avatar !== '' ? value.avatar : null,
  };
}

/** The session token: `token`, or the `fansly-token` cookie of an imported browser cookie string. */
function tokenOf(session: PlatformSession): string {
  return session.token || parseCookieString(session.cookies).get('fansly-token') || '';
}

/** The session with the token the platform rotated (`Set-Cookie: fansly-token=…`), or undefined when none was. */
function rotatedToken(session: PlatformSession, setCookies: string[]): PlatformSession | undefined {
  const token = setCookieValues(setCookies).get('fansly-token');
  if (!token || token === tokenOf(session)) return undefined;
  const cookies = session.cookies ? (rotateCookies(session.cookies, setCookies, ['fansly-token']) ?? session.cookies) : '';
  return { ...session, token, cookies };
}

export function createFanslyDriver(opts: { baseUrl: string }): PlatformDriver {
  const url = (path: string) => platformUrl(opts.baseUrl, path);

  const jsonPost = (ctx: DriverContext, path: string, userAgent: string, body: unknown) =>
    exchange(ctx, url(`${API}${path}`), {
      method: 'POST',
      headers: { 'user-agent': userAgent, accept: 'application/json', 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  function challengeResult(state: FanslyResume): StepResult {
    return {
      type: 'challenge',
      kind: state.kind,
      resume: state,
      ...(state.kind === 'email' ? { emailSent: true, ...(state.emailMask ? { emailMask: state.emailMask } : {}) } : {}),
    };
  }

  /** Reads an answer of `/login` or `/login/twofa`: the session, the next challenge, or why not. */
  function loginAnswer(
    ctx: DriverContext,
    reply: Exchange,
    what: string,
    login: { userAgent: string; deviceId: string },
    state?: FanslyResume,
  ): StepResult {
    if (reply.status >= 500) throw upstreamStatusError(PLATFORM, what, reply.status);
    const body = parseJson(reply);

    if (reply.status === 200 && isRecord(body) && body.success === true && isRecord(body.response)) {
      const { session, twofa, account } = body.response;
      if (isRecord(session)) {
        const user = accountOf(account);
        const authId = idString(session.accountId) ?? user?.id;
        if (!user || typeof session.token !== 'string' || !session.token || !authId) {
          throw new UpstreamUnavailableError(`${PLATFORM}: ${what} answered an unreadable session`);
        }
        return {
          type: 'success',
          session: {
            authId,
            cookies: '',
            xbc: typeof session.deviceId === 'string' && session.deviceId !== '' ? session.deviceId : login.deviceId,
            token: session.token,
            userAgent: login.userAgent,
          },
          user,
        };
      }
      if (isRecord(twofa) && typeof twofa.token === 'string' && typeof twofa.twofa_type === 'number') {
        const kind = TWOFA_KINDS[twofa.twofa_type];
        if (kind) {
          return challengeResult({
            v: 1,
            platform: PLATFORM,
            token: twofa.token,
            userAgent: login.userAgent,
            deviceId: login.deviceId,
            kind,
            ...(typeof twofa.masked_email === 'string' ? { emailMask: twofa.masked_email } : {}),
          });
        }
      }
      throw new UpstreamUnavailableError(`${PLATFORM}: ${what} answered neither a session nor a known two-factor step`);
    }

    return loginRefusal(PLATFORM, what, reply.status, platformError(body), state);
  }

  function sessionHeaders(session: PlatformSession, ctx: DriverContext): Record<string, string> {
    return {
      authorization: tokenOf(session),
      'user-agent': session.userAgent || ctx.userAgent,
      ...(session.cookies ? { cookie: session.cookies } : {}),
    };
  }

  return {
    platform: PLATFORM,

    async startLogin(ctx, credentials) {
      const field = credentials.login.includes('@') ? 'email' : 'username';
      const reply = await jsonPost(ctx, '/login', ctx.userAgent, {
        [field]: credentials.login,
        password: credentials.password,
        deviceId: ctx.deviceId,
      });
      return loginAnswer(ctx, reply, 'login', { userAgent: ctx.userAgent, deviceId: ctx.deviceId });
    },

    async submitCode(ctx, resume, code) {
      const state = readResume(resume);
      const reply = await jsonPost(ctx, '/login/twofa', state.userAgent, { token: state.token, code });
      return loginAnswer(ctx, reply, 'twofa', state, state);
    },

    async requestEmailCode(_ctx, resume) {
      // Fansly mails the code as part of the login: nothing to ask, the challenge stands.
      return challengeResult(readResume(resume));
    },

    async confirmSelfie(_ctx, resume) {
      // No selfie check on Fansly: the current challenge stands.
      return challengeResult(readResume(resume));
    },

    async validateSession(ctx, session): Promise<SessionCheck> {
      if (!tokenOf(session)) return { valid: false, code: 'session_invalid', message: 'The session has no token' };
      const reply = await exchange(ctx, url(`${API}/account/me`), {
        method: 'GET',
        headers: { ...sessionHeaders(session, ctx), accept: 'application/json' },
      });
      if (reply.status >= 500 || reply.status === 429) throw upstreamStatusError(PLATFORM, 'account/me', reply.status);
      const body = parseJson(reply);
      if (reply.status === 401 || reply.status === 403) {
        const error = platformError(body);
        const message = error?.message ?? `the platform answered ${reply.status}`;
        return { valid: false, code: error?.reason === 'wrong_user' ? 'wrong_user' : 'session_invalid', message };
      }
      const user =
        reply.status === 200 && isRecord(body) && body.success === true && isRecord(body.response)
          ? accountOf(body.response.account)
          : undefined;
      if (!user) throw new UpstreamUnavailableError(`${PLATFORM}: unexpected answer ${reply.status} to account/me`);
      // The token belongs to another account than the one stored: the platform's "Wrong user".
      if (session.authId && user.id !== session.authId) return { valid: false, code: 'wrong_user', message: 'Wrong user' };
      const next = rotatedToken(session, reply.setCookies);
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
      // A platform 5xx is answered, not thrown; a rotated token goes back to the caller to store.
      const next = rotatedToken(session, reply.setCookies);
      return { status: reply.status, headers: forwardableResponseHeaders(reply.headers), body: reply.body, ...(next ? { session: next } : {}) };
    },

    async logout(ctx, session) {
      // Best effort: whatever the platform answers; network failures still throw (typed).
      if (!tokenOf(session)) return;
      await exchange(ctx, url(`${API}/logout`), {
        method: 'POST',
        headers: { ...sessionHeaders(session, ctx), accept: 'application/json' },
      });
    },
  };
}
