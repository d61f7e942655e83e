import { createHash } from 'node:crypto';
import type { Kysely, Transaction } from 'kysely';
import type { Logger } from 'pino';
import type { DB, LinkStatus } from '../db/schema.js';
import type { Clock } from '../lib/clock.js';
import { ApiError, type FieldError, notFound, validationError } from '../lib/errors.js';
import { newId, randomBase62 } from '../lib/ids.js';
import { decodeCursor, type Page, toPage } from '../lib/pagination.js';
import { recordEvent } from '../webhooks/outbox.js';
import {
  effectiveStatus,
  type LinkAttempt,
  type LinkAttemptChange,
  type LinkConnectPort,
  type LinkMethod,
  type LinkPlatform,
  type LinkRow,
  type LinkStartBody,
  type LinkTheme,
  type LinkView,
  linkStatusFor,
  redirectTo,
  serializeLink,
  TERMINAL_ATTEMPT_STATES,
} from './model.js';
import { SYSTEM_ACTOR } from '../lib/audit.js';

/** A link is usable for 60 minutes (DESIGN 6). */
export const LINK_TTL_MS = 60 * 60_000;
/** Attempts one link may start: with 5 codes each, this bounds code guessing through the page. */
export const MAX_ATTEMPTS_PER_LINK = 10;

const TOKEN = /^[A-Za-z0-9]{43}$/;
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);
/** Failures the creator can fix on the page by trying again (another password, a new code, a new QR). */
const RETRYABLE = new Set(['invalid_credentials', '2fa_failed', 'expired', 'session_invalid', 'wrong_user', 'upstream_unavailable', 'proxy_error', 'cancelled']);

export interface LinkInitBody {
  redirectUrl: string;
  clientReferenceId?: string;
  connectionId?: string;
  platform?: LinkPlatform;
  proxyCountry?: string;
  theme?: LinkTheme;
}

export interface LinkDeps {
  db: Kysely<DB>;
  connect: LinkConnectPort;
  /** The account of the organisation with this id, if any (for reconnect links). */
  findAccount: (orgId: string, id: string) => Promise<{ id: string; platform: string } | undefined>;
  /** Whether the operator's proxy pool has this country. */
  hasProxyCountry: (country: string) => boolean;
  clock: Clock;
  publicUrl: string;
  logger: Logger;
}

/** Which part of the page the creator is on. */
export type PageStep = 'method' | 'mobile_app' | 'pending' | 'code' | 'email' | 'face' | 'failed' | 'done' | 'closed';

/** What the page's script sees: never a secret (no deeplink, no code, no password). */
export interface PageState {
  status: LinkStatus;
  platform: LinkPlatform;
  reconnect: boolean;
  step: PageStep;
  attempt: {
    attempt_id: string;
    auth_type: string;
    state: string;
    progress: string;
    otp_channel: string | null;
    phone_last4: string | null;
    email_mask: string | null;
    face_verification_url: string | null;
    attempts_remaining: number | null;
  } | null;
  error: { code: string; message: string; retryable: boolean } | null;
  redirect: string | null;
  /** What the page posts to an embedding parent (link.js) when it ends. */
  result:
    | { type: 'fangate.link.success'; connection_id: string; client_reference_id: string | null }
    | { type: 'fangate.link.exit'; status: 'cancelled' | 'error'; step?: string; error_code?: string }
    | null;
}

export const hashToken = (token: string) => createHash('sha256').update(token, 'utf8').digest('hex');
/** The page's CSRF token: derived from the link token, so only a holder of the page can know it. */
export const csrfFor = (token: string) => createHash('sha256').update(`fangate-link-csrf:${token}`, 'utf8').digest('base64url');

/** The creator's words for an attempt's failure. */
const PAGE_MESSAGES: Record<string, string> = {
  invalid_credentials: 'The email or password is not correct. Check them and try again.',
  account_locked: 'The platform has locked this account for suspicious activity. Unlock it on the platform first, then try again later.',
  '2fa_failed': 'Too many wrong codes. Start again to get a new code.',
  expired: 'This took too long and timed out. Start again.',
  cancelled: 'The connection was cancelled.',
  session_invalid: 'The platform did not accept this session. Log in again on the platform and copy fresh cookies, or choose another method.',
  wrong_user: 'These credentials belong to a different account than the one being reconnected. Log in with the account you connected before.',
  account_already_connected: 'This account is already connected.',
  upstream_unavailable: 'The platform did not answer. Try again in a moment.',
  proxy_error: 'The connection to the platform failed. Try again in a moment.',
};

/** Link sessions (DESIGN 6): the API side (init, get, cancel), the hosted page's actions, and the attempt hook. */
export function createLinkService(deps: LinkDeps) {
  const { db, connect, clock, logger } = deps;

  function checkInit(body: LinkInitBody): FieldError[] {
    const errors: FieldError[] = [];
    let url: URL | undefined;
    try {
      url = new URL(body.redirectUrl);
    } catch {
      errors.push({ field: 'redirectUrl', message: 'must be an absolute URL' });
    }
    if (url) {
      if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname))) {
        errors.push({ field: 'redirectUrl', message: 'must use https:// (http:// only on localhost, 127.0.0.1 or [::1])' });
      } else if (url.username || url.password) {
        errors.push({ field: 'redirectUrl', message: 'must not contain a user name or password' });
      }
    }
    if (body.proxyCountry !== undefined && !deps.hasProxyCountry(body.proxyCountry.toLowerCase())) {
      errors.push({ field: 'proxyCountry', message: "is not a country of the operator's proxy pool (FANGATE_PROXY_POOL)" });
    }
    return errors;
  }

  async function byToken(token: string): Promise<LinkRow> {
    const row = TOKEN.test(token) ? await db.selectFrom('link_sessions').selectAll().where('token_hash', '=', hashToken(token)).executeTakeFirst() : undefined;
    if (!row) throw notFound('Link');
    return row;
  }

  async function byId(orgId: string, id: string): Promise<LinkRow> {
    const row = await db.selectFrom('link_sessions').selectAll().where('id', '=', id).where('org_id', '=', orgId).executeTakeFirst();
    if (!row) throw notFound('Link');
    return row;
  }

  const attemptRunning = (row: LinkRow) => row.attempt_id !== null && !TERMINAL_ATTEMPT_STATES.has(row.attempt_state ?? '');

  /** The page accepts input: not ended, not expired. */
  function assertOpen(row: LinkRow): void {
    const status = effectiveStatus(row, clock.now());
    if (status === 'expired') throw new ApiError(410, 'link_expired', 'This link has expired. Ask for a new one.');
    if (row.finished_at || status === 'completed' || status === 'cancelled') {
      throw new ApiError(409, 'link_closed', 'This link has already been used.');
    }
  }

  /**
   * Takes over the attempt's state (the store's in-transaction hook, and a catch-up after starting).
   * Terminal states are taken over once: the guard on `attempt_state` makes the event exactly-once.
   */
  async function sync(trx: Transaction<DB>, change: Pick<LinkAttemptChange, 'attemptId' | 'state' | 'previousState' | 'errorCode' | 'accountId' | 'view'>): Promise<void> {
    const now = clock.now();
    const status = linkStatusFor(change.state, change.errorCode);
    const terminal = TERMINAL_ATTEMPT_STATES.has(change.state);
    const failed = change.state === 'completed_failed';
    const pageMessage = failed ? PAGE_MESSAGES[change.errorCode ?? ''] : undefined;
    // The attempt's view reads its account: only when a message or a link's event needs it (most attempts have no link).
    const viewAttempt = async () => (await change.view()) as (LinkAttempt & { account?: unknown }) | undefined;
    let attempt = failed && pageMessage === undefined ? await viewAttempt() : undefined;
    const row = await trx
      .updateTable('link_sessions')
      .set((eb) => ({
        status,
        attempt_state: change.state,
        error_code: failed ? change.errorCode : null,
        error_message: failed ? (pageMessage ?? attempt?.error?.message ?? null) : null,
        updated_at: now,
        ...(status === 'completed' ? { connection_id: change.accountId, completed_at: now, finished_at: now } : {}),
        ...(status === 'cancelled' ? { completed_at: now, finished_at: now, cancel_step: eb.fn.coalesce('cancel_step', eb.val(change.previousState)) } : {}),
      }))
      .where('attempt_id', '=', change.attemptId)
      .where('finished_at', 'is', null)
      .where((eb) => eb.or([eb('attempt_state', 'is', null), eb('attempt_state', 'not in', [...TERMINAL_ATTEMPT_STATES, change.state])]))
      .returningAll()
      .executeTakeFirst();
    if (!row || !terminal) return;
    attempt ??= await viewAttempt();
    await recordLinkEvent(trx, row, status === 'completed' ? 'link.completed' : 'link.failed', attempt ?? null);
    logger.info({ link: row.id, attempt: change.attemptId, status: row.status, error_code: row.error_code }, 'link attempt ended');
  }

  async function recordLinkEvent(trx: Kysely<DB> | Transaction<DB>, row: LinkRow, event: 'link.completed' | 'link.failed', attempt: (LinkAttempt & { account?: unknown }) | null) {
    const payload = { account: attempt?.account ?? null, attempt, link: serializeLink(row, clock.now()) };
    await recordEvent(trx, { orgId: row.org_id, event, accountId: row.connection_id ?? row.reconnect_account_id, attemptId: row.attempt_id, clientReferenceId: row.client_reference_id, payload });
  }

  async function catchUp(row: LinkRow, attempt: LinkAttempt): Promise<void> {
    await db.transaction().execute((trx) =>
      sync(trx, { attemptId: attempt.attempt_id, state: attempt.state, previousState: 'pending', errorCode: attempt.error?.code ?? null, accountId: attempt.account_id, view: async () => attempt }),
    );
  }

  function stepOf(row: LinkRow, status: LinkStatus, attempt: LinkAttempt | null): PageStep {
    if (status === 'completed') return 'done';
    if (status === 'cancelled' || status === 'expired' || row.finished_at) return 'closed';
    if (!attempt) return 'method';
    switch (attempt.state) {
      case 'pending':
        return 'pending';
      case 'awaiting_mobile_session':
        return 'mobile_app';
      case 'needs_email':
        return row.platform === 'onlyfans' ? 'email' : 'code';
      case 'needs_face_otp':
        return 'face';
      case 'completed_success':
        return 'pending'; // the link row catches up in a moment
      case 'completed_failed':
        return 'failed';
      default:
        return 'code';
    }
  }

  async function pageState(link: LinkRow): Promise<PageState> {
    const now = clock.now();
    let row = link;
    let status = effectiveStatus(row, now);
    let attempt: LinkAttempt | null = null;
    if (row.attempt_id && status !== 'expired') {
      attempt = await connect.get(row.org_id, null, row.attempt_id).catch(() => null);
      // The attempt store's hook keeps a link in step with its attempt, in the attempt's transaction. An attempt
      // a FanGate before migration 0035 started (a rolling upgrade) does not name its link, and the hook skips
      // it: the page catches such a link up as soon as it sees the two disagree.
      if (attempt && row.attempt_state !== null && row.attempt_state !== attempt.state) {
        await catchUp(row, attempt);
        row = await byId(row.org_id, row.id);
        status = effectiveStatus(row, now);
      }
    }
    const step = stepOf(row, status, attempt);
    const errorCode = status === 'expired' ? 'expired' : step === 'failed' || step === 'closed' ? (row.error_code ?? attempt?.error?.code ?? null) : null;
    const redirect = redirectTo(row, now);
    let result: PageState['result'] = null;
    if (status === 'completed') {
      result = { type: 'fangate.link.success', connection_id: row.connection_id ?? row.reconnect_account_id ?? '', client_reference_id: row.client_reference_id };
    } else if (status === 'cancelled') {
      result = { type: 'fangate.link.exit', status: 'cancelled', step: row.cancel_step ?? 'unknown' };
    } else if (redirect) {
      result = { type: 'fangate.link.exit', status: 'error', error_code: errorCode ?? 'unknown' };
    }
    return {
      status,
      platform: row.platform,
      reconnect: row.reconnect_account_id !== null,
      step,
      attempt: attempt && {
        attempt_id: attempt.attempt_id,
        auth_type: attempt.auth_type,
        state: attempt.state,
        progress: attempt.progress,
        otp_channel: attempt.otp_channel,
        phone_last4: attempt.phone_last4,
        email_mask: attempt.email_mask,
        face_verification_url: attempt.face_verification_url,
        attempts_remaining: attempt.attempts_remaining,
      },
      error: errorCode
        ? {
            code: errorCode,
            message: status === 'expired' ? 'This link has expired. Go back and ask for a new one.' : (PAGE_MESSAGES[errorCode] ?? row.error_message ?? 'Something went wrong.'),
            retryable: status !== 'expired' && !row.finished_at && RETRYABLE.has(errorCode) && row.attempts_started < MAX_ATTEMPTS_PER_LINK,
          }
        : null,
      redirect,
      result,
    };
  }

  /** Acts on the running attempt of the link. */
  async function onAttempt(token: string, act: (orgId: string, platform: LinkPlatform, attemptId: string) => Promise<unknown>): Promise<PageState> {
    const row = await byToken(token);
    assertOpen(row);
    if (!row.attempt_id || !attemptRunning(row)) throw new ApiError(409, 'attempt_not_awaiting_input', 'Nothing is waiting for this step; start again.');
    await act(row.org_id, row.platform, row.attempt_id);
    return pageState(await byToken(token));
  }

  function startBody(row: LinkRow, method: LinkMethod, input: { login?: string; password?: string; cookies?: string; xbc?: string; user_agent?: string }): LinkStartBody {
    const common: LinkStartBody = {
      auth_type: method,
      ...(row.proxy_country ? { proxyCountry: row.proxy_country } : {}),
      ...(row.client_reference_id !== null ? { client_reference_id: row.client_reference_id } : {}),
    };
    if (method === 'email_password') {
      const login = input.login?.trim() ?? '';
      const errors: FieldError[] = [];
      if (!login) errors.push({ field: 'login', message: row.platform === 'fansly' ? 'Enter your email or username.' : 'Enter your email address.' });
      if (!input.password) errors.push({ field: 'password', message: 'Enter your password.' });
      if (errors.length) throw validationError(errors);
      const byEmail = row.platform === 'onlyfans' || login.includes('@');
      return { ...common, ...(byEmail ? { email: login } : { username: login }), password: input.password };
    }
    if (method === 'raw_data') {
      const cookies = input.cookies?.trim() ?? '';
      const authId = /(?:^|;\s*)auth_id=([^;\s]+)/.exec(cookies)?.[1];
      const errors: FieldError[] = [];
      if (!cookies) errors.push({ field: 'cookies', message: 'Paste the cookie header.' });
      else if (!authId) errors.push({ field: 'cookies', message: 'The cookies must contain auth_id, sess and fp.' });
      if (!input.xbc?.trim()) errors.push({ field: 'xbc', message: 'Paste the x-bc header.' });
      if (!input.user_agent?.trim()) errors.push({ field: 'user_agent', message: 'Paste the user agent of that browser.' });
      if (errors.length) throw validationError(errors);
      return { ...common, auth_id: authId, cookies, xbc: input.xbc!.trim(), user_agent: input.user_agent!.trim() };
    }
    return common;
  }

  const service = {
    // ---- API (DESIGN 6) ------------------------------------------------------------------------------

    async init(orgId: string, body: LinkInitBody): Promise<{ id: string; url: string; expiresAt: string }> {
      const errors = checkInit(body);
      let platform: LinkPlatform = body.platform ?? 'onlyfans';
      if (body.connectionId !== undefined) {
        const account = await deps.findAccount(orgId, body.connectionId);
        if (!account) throw notFound('Account');
        if (body.platform !== undefined && body.platform !== account.platform) {
          errors.push({ field: 'platform', message: `must match the platform of the account being reconnected (${account.platform})` });
        }
        platform = account.platform as LinkPlatform;
      }
      if (errors.length > 0) throw validationError(errors);
      const now = clock.now();
      const token = randomBase62(43);
      const row = await db
        .insertInto('link_sessions')
        .values({
          id: newId('link'),
          org_id: orgId,
          token_hash: hashToken(token),
          status: 'initialized',
          platform,
          redirect_url: new URL(body.redirectUrl).toString(),
          client_reference_id: body.clientReferenceId ?? null,
          reconnect_account_id: body.connectionId ?? null,
          proxy_country: body.proxyCountry?.toLowerCase() ?? null,
          theme: body.theme ?? 'auto',
          created_at: now,
          updated_at: now,
          expires_at: new Date(now.getTime() + LINK_TTL_MS),
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      logger.info({ link: row.id, org: orgId, platform, reconnect: row.reconnect_account_id }, 'link created');
      return { id: row.id, url: `${deps.publicUrl}/link/${token}`, expiresAt: row.expires_at.toISOString() };
    },

    async get(orgId: string, id: string) {
      return serializeLink(await byId(orgId, id), clock.now());
    },

    /** The organisation's link sessions, newest first (the operator console lists them). */
    async list(orgId: string, page: { limit: number; cursor?: string }): Promise<Page<LinkView>> {
      const cursor = decodeCursor(page.cursor);
      let q = db.selectFrom('link_sessions').selectAll().where('org_id', '=', orgId);
      if (cursor) q = q.where((eb) => eb.or([eb('created_at', '<', cursor.createdAt), eb.and([eb('created_at', '=', cursor.createdAt), eb('id', '<', cursor.id)])]));
      const rows = await q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(page.limit + 1).execute();
      const now = clock.now();
      return toPage(rows, page.limit, (row) => serializeLink(row, now));
    },

    /** Cancels the link (and its running attempt); a link that already ended is returned as it is. */
    async cancel(orgId: string, id: string) {
      const row = await byId(orgId, id);
      await cancelRow(row, 'cancelled_by_api');
      return serializeLink(await byId(orgId, id), clock.now());
    },

    /** The attempt store's hook: runs in the attempt's transaction after every change. */
    async onAttemptChange(trx: Transaction<DB>, change: LinkAttemptChange): Promise<void> {
      // Attempts started elsewhere (most of them) have no link. A link follows the attempt's state alone: a
      // change within one state (a step starting, a wrong code) leaves it as it is. Neither costs a statement.
      if (!change.linkSessionId || change.previousState === change.state) return;
      await sync(trx, change);
    },

    // ---- The hosted page (the token is the credential) ----------------------------------------------

    /** The link behind a page token, with what the page shows now. */
    async open(token: string): Promise<{ link: LinkRow; state: PageState }> {
      const row = await byToken(token);
      return { link: row, state: await pageState(row) };
    },

    async state(token: string): Promise<PageState> {
      return pageState(await byToken(token));
    },

    /** Starts an attempt with the method the creator chose (or re-authenticates the link's account). */
    async start(token: string, method: LinkMethod, input: { login?: string; password?: string; cookies?: string; xbc?: string; user_agent?: string }): Promise<PageState> {
      const row = await byToken(token);
      assertOpen(row);
      if (attemptRunning(row)) throw new ApiError(409, 'attempt_running', 'A connection is already in progress; go back first to choose another method.');
      if (row.attempts_started >= MAX_ATTEMPTS_PER_LINK) {
        throw new ApiError(429, 'too_many_attempts', 'Too many tries with this link. Ask for a new one.', { retryable: false });
      }
      const body = startBody(row, method, input);
      // Claim the start (two clicks, two tabs): only one request moves the counter.
      const claimed = await db
        .updateTable('link_sessions')
        .set({ attempts_started: row.attempts_started + 1, updated_at: clock.now() })
        .where('id', '=', row.id)
        .where('attempts_started', '=', row.attempts_started)
        .executeTakeFirst();
      if (Number(claimed.numUpdatedRows) === 0) throw new ApiError(409, 'attempt_running', 'A connection is already starting.', { retryable: true, retryAfterSec: 1 });
      let attemptId: string;
      try {
        const started = row.reconnect_account_id
          ? await connect.updateCredentials(row.org_id, row.platform, row.reconnect_account_id, body, SYSTEM_ACTOR, { linkSessionId: row.id })
          : await connect.start(row.org_id, row.platform, body, { linkSessionId: row.id });
        attemptId = started.attempt_id;
      } catch (error) {
        await db.updateTable('link_sessions').set({ attempts_started: row.attempts_started }).where('id', '=', row.id).execute();
        throw error;
      }
      await db
        .updateTable('link_sessions')
        .set({ attempt_id: attemptId, attempt_state: null, status: 'pending', error_code: null, error_message: null, updated_at: clock.now() })
        .where('id', '=', row.id)
        .execute();
      logger.info({ link: row.id, attempt: attemptId, method }, 'link attempt started');
      await catchUp(row, await connect.get(row.org_id, null, attemptId));
      return pageState(await byToken(token));
    },

    submitCode(token: string, code: string) {
      return onAttempt(token, (orgId, platform, id) => connect.submitCode(orgId, platform, id, code));
    },

    confirmSelfie(token: string) {
      return onAttempt(token, (orgId, platform, id) => connect.confirmSelfie(orgId, platform, id));
    },

    requestEmail(token: string) {
      return onAttempt(token, (orgId, platform, id) => connect.requestEmail(orgId, platform, id));
    },

    /** Back to the method choice: the running attempt is let go of (and cancelled) without ending the link. */
    async back(token: string): Promise<PageState> {
      const row = await byToken(token);
      assertOpen(row);
      // Only a link still open lets go of its attempt (one that just connected stays connected).
      const released = await db
        .updateTable('link_sessions')
        .set({ attempt_id: null, attempt_state: null, status: 'initialized', error_code: null, error_message: null, updated_at: clock.now() })
        .where('id', '=', row.id)
        .where('finished_at', 'is', null)
        .where((eb) => (row.attempt_id ? eb('attempt_id', '=', row.attempt_id) : eb('attempt_id', 'is', null)))
        .executeTakeFirst();
      if (Number(released.numUpdatedRows) === 0) return pageState(await byToken(token));
      if (row.attempt_id && attemptRunning(row)) {
        await connect.cancel(row.org_id, row.platform, row.attempt_id).catch((error) => logger.debug({ err: error, link: row.id }, 'attempt already ended when going back'));
      }
      return pageState(await byToken(token));
    },

    /** The creator cancels on the page at `step`. */
    async cancelPage(token: string, step: string): Promise<PageState> {
      const row = await byToken(token);
      assertOpen(row);
      await cancelRow(row, step);
      return pageState(await byToken(token));
    },

    /** After a failure, the creator returns to the integrator: the link ends with the error. */
    async finish(token: string): Promise<PageState> {
      const row = await byToken(token);
      if (effectiveStatus(row, clock.now()) === 'failed' && !row.finished_at) {
        await db.updateTable('link_sessions').set({ finished_at: clock.now(), completed_at: clock.now(), updated_at: clock.now() }).where('id', '=', row.id).where('finished_at', 'is', null).execute();
      }
      return pageState(await byToken(token));
    },

    /** Long-poll: answers when the attempt leaves `lastState`, or after `waitSec`. */
    async wait(token: string, waitSec: number, lastState: string | undefined, signal?: AbortSignal): Promise<PageState> {
      const row = await byToken(token);
      if (row.attempt_id && attemptRunning(row)) {
        await connect.wait(row.org_id, null, row.attempt_id, waitSec, lastState, signal).catch(() => undefined);
      }
      return pageState(await byToken(token));
    },

    /** Every change of the link's attempt, as page states (Server-Sent Events). */
    async *changes(token: string, signal: AbortSignal): AsyncGenerator<PageState> {
      const row = await byToken(token);
      if (!row.attempt_id || !attemptRunning(row)) {
        yield await pageState(row);
        return;
      }
      for await (const _ of connect.changes(row.org_id, null, row.attempt_id, signal)) {
        yield await pageState(await byToken(token));
      }
    },

    /** The QR code (SVG) of the running phone hand-off; the deeplink itself never leaves the server in text. */
    async qrSvg(token: string): Promise<string> {
      const row = await byToken(token);
      assertOpen(row);
      const attempt = row.attempt_id ? await connect.get(row.org_id, null, row.attempt_id) : null;
      if (!attempt?.mobile_auth_session_deeplink) throw notFound('Phone hand-off');
      // Loaded on first use: few starts ever draw a QR code, and the encoder costs ≈ 10 MB resident.
      const { default: QRCode } = await import('qrcode');
      return QRCode.toString(attempt.mobile_auth_session_deeplink, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
    },
  };

  async function cancelRow(row: LinkRow, step: string): Promise<void> {
    const now = clock.now();
    if (row.finished_at || row.status === 'completed' || row.status === 'cancelled') return;
    if (row.attempt_id && attemptRunning(row)) {
      // The hook ends the link (status cancelled, link.failed) in the attempt's own transaction.
      await db.updateTable('link_sessions').set({ cancel_step: step }).where('id', '=', row.id).execute();
      try {
        await catchUp(row, await connect.cancel(row.org_id, row.platform, row.attempt_id));
        return;
      } catch (error) {
        if (!(error instanceof ApiError) || error.status !== 409) throw error;
        await catchUp(row, await connect.get(row.org_id, null, row.attempt_id)); // it ended meanwhile: take over how
        const after = await db.selectFrom('link_sessions').selectAll().where('id', '=', row.id).executeTakeFirstOrThrow();
        if (after.finished_at) return;
      }
    }
    await db.transaction().execute(async (trx) => {
      const ended = await trx
        .updateTable('link_sessions')
        .set({ status: 'cancelled', cancel_step: step, error_code: 'cancelled', error_message: PAGE_MESSAGES.cancelled!, finished_at: now, completed_at: now, updated_at: now })
        .where('id', '=', row.id)
        .where('finished_at', 'is', null)
        .returningAll()
        .executeTakeFirst();
      // A link whose last attempt already failed has told its failure; cancelling it adds nothing new.
      if (ended && row.status !== 'failed') await recordLinkEvent(trx, ended, 'link.failed', null);
    });
    logger.info({ link: row.id, step }, 'link cancelled');
  }

  return service;
}

export type LinkService = ReturnType<typeof createLinkService>;
