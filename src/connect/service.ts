import { type Actor, type AuditRecorder, noAudit } from '../lib/audit.js';
import { createHash } from 'node:crypto';
import type { Kysely, Transaction } from 'kysely';
import type { Logger } from 'pino';
import type { AccountRow } from '../accounts/model.js';
import type { AccountsPort } from '../accounts/port.js';
import type { AttemptState, DB, PlatformName } from '../db/schema.js';
import { ApiError, type FieldError, notFound, validationError } from '../lib/errors.js';
import type { Clock } from '../lib/clock.js';
import { newId, randomBase62 } from '../lib/ids.js';
import { decodeCursor, type Page, toPage } from '../lib/pagination.js';
import { ProxyError, UpstreamUnavailableError } from '../net/errors.js';
import { parseProxyChoice } from '../net/proxy-choice.js';
import { capabilitiesOf, sessionCookieErrors } from '../platforms/capabilities.js';
import { NoPoolProxyError, type PlatformGateway, UpstreamTimeoutError } from '../platforms/gateway.js';
import { newBrowserIdentity } from '../platforms/identity.js';
import type { PlatformSession } from '../platforms/types.js';
import type { ProxyInput } from '../net/proxy-choice.js';
import type { Vault } from '../vault/vault.js';
import { type AttemptKind, type AttemptRow, type AttemptView, mobileDeeplink, pollingUrl, snapshotColumns } from './attempts.js';
import { parseStartInput, type StartBody, type StartInput } from './input.js';
import { type AttemptEvent, EMAIL_COOLDOWN_MS, isTerminal, type RefusalReason, startAttempt } from './state-machine.js';
import { type AttemptSecrets, type AttemptStore, attemptPlace, type StepSlot } from './store.js';
import type { AttemptWatcher } from './watch.js';

export interface ListAttemptsQuery {
  limit: number;
  cursor?: string;
  account_id?: string;
  state?: AttemptState;
  client_reference_id?: string;
}

export const START_MESSAGE = 'Authentication process started. Query the polling_url to check the progress.';
export const CREDENTIALS_MESSAGE = 'Authentication credentials updated. Re-authentication started. Query the polling_url to check the progress.';

export interface ConnectDeps {
  db: Kysely<DB>;
  vault: Vault;
  store: AttemptStore;
  watcher: AttemptWatcher;
  platforms: PlatformGateway;
  accounts: Pick<AccountsPort, 'find' | 'findByPlatformUser' | 'secrets' | 'identity' | 'moveProxy'>;
  clock: Clock;
  publicUrl: string;
  logger: Logger;
  /** Upstream logins per account and hour (re-authentications of every kind), to spare the creator a platform lock. */
  loginsPerHour: number;
  /** The audit log (written in the change's transaction). */
  audit?: AuditRecorder;
  /** How often the sweep runs (it expires attempts whose time is up). */
  sweepIntervalMs?: number;
}

/** How long confirming a selfie waits for the platform's answer before answering 202 (the check goes on). */
const SELFIE_CHECK_WAIT_MS = 10_000;

/** A pending attempt without a job for this long gets its step queued again by the sweep. */
const STUCK_AFTER_MS = 30_000;

const hashCode = (code: string) => createHash('sha256').update(code, 'utf8').digest('hex');

/** The 409 of DESIGN 3.3 and friends, from a refusal of the state machine. */
function refusalError(reason: RefusalReason | 'conflict' | 'not_found', row?: Pick<AttemptRow, 'state' | 'email_sent_at'>, now = new Date()): ApiError {
  const state = row ? ` (state ${row.state})` : '';
  switch (reason) {
    case 'not_found':
      return notFound('Attempt');
    case 'attempt_not_awaiting_email':
      return new ApiError(409, 'attempt_not_awaiting_email', `The attempt${state} is not waiting for the email device check: only an attempt in needs_email sends the email.`, { extra: row ? { state: row.state } : {} });
    case 'email_cooldown':
      return new ApiError(429, 'email_recently_sent', `The email was sent less than ${EMAIL_COOLDOWN_MS / 1000} s ago; ask again after the cool-down.`, {
        retryAfterSec: row?.email_sent_at ? Math.max(1, Math.ceil((row.email_sent_at.getTime() + EMAIL_COOLDOWN_MS - now.getTime()) / 1000)) : EMAIL_COOLDOWN_MS / 1000,
      });
    case 'attempt_already_completed':
      return new ApiError(409, 'attempt_already_completed', `The attempt has already completed${state}.`, { extra: row ? { state: row.state } : {} });
    case 'conflict':
      return new ApiError(409, 'attempt_busy', 'The attempt changed concurrently; try again.', { retryable: true, retryAfterSec: 1 });
    default:
      return new ApiError(409, 'attempt_not_awaiting_input', `The attempt${state} is not waiting for this input; check its state and next_actions.`, { extra: row ? { state: row.state } : {} });
  }
}

/** The answer to a started connect. */
export interface StartAnswer {
  attempt_id: string;
  message: string;
  polling_url: string;
  state: AttemptState;
  mobile_auth_session_deeplink?: string;
}

interface NewAttempt {
  orgId: string;
  platform: PlatformName;
  kind: AttemptKind;
  input: StartInput;
  account?: AccountRow;
  /** Secrets carried over from the account (stored credentials, TOTP, proxy password). */
  secrets?: AttemptSecrets;
  /** The Link session the attempt is started from. */
  linkSessionId?: string;
}

/**
 * Connect and re-authenticate: the API side of attempts. Each request writes the attempt and
 * queues a step; workers (steps.ts) talk to the platform.
 */
export function createConnectService(deps: ConnectDeps) {
  const { db, vault, store, watcher, platforms, clock } = deps;

  /** `slot`: an inline slot for the first step (see `withStepSlot`), or null. */
  async function insertAttempt(trx: Transaction<DB>, spec: NewAttempt, slot: StepSlot): Promise<{ row: AttemptRow; effects: ReturnType<typeof startAttempt>['effects']; mobileCode: string | null }> {
    const { input, account } = spec;
    const now = clock.now();
    const id = newId('auth');
    const { snapshot, effects } = startAttempt({ platform: spec.platform, authType: input.authType }, now);
    // 43 base62 characters ≈ 256 bits: the code alone authorises the phone's hand-off.
    const mobileCode = input.authType === 'mobile_app' ? randomBase62(43) : null;
    // A session from the creator's browser keeps its user agent (the platform binds the session to it); its
    // x-bc stays inside the encrypted session and is never the account's (plain text) device id.
    const browser = input.session
      ? { userAgent: input.session.userAgent, deviceId: account?.device_id ?? newBrowserIdentity().deviceId }
      : account
        ? { userAgent: account.user_agent, deviceId: account.device_id }
        : newBrowserIdentity();
    const proxy: ProxyInput = input.proxy ?? (account
      ? { proxy: deps.accounts.identity(account).proxy, password: spec.secrets?.proxyPassword ?? null, username: spec.secrets?.proxyUsername ?? null }
      : { proxy: { type: 'none' as const }, password: null, username: null });
    const secrets: AttemptSecrets = {
      login: input.login,
      password: input.password,
      session: input.session,
      totpSecret: input.totpSecret ?? spec.secrets?.totpSecret ?? null,
      proxyPassword: proxy.password,
      proxyUsername: proxy.username,
      mobileCode,
      ...(input.authType === 'email_password' && !input.login && spec.secrets ? { login: spec.secrets.login, password: spec.secrets.password } : {}),
    };
    const row = await trx
      .insertInto('auth_attempts')
      .values({
        id,
        org_id: spec.orgId,
        platform: spec.platform,
        auth_type: input.authType,
        kind: spec.kind,
        ...snapshotColumns(store.startedAtOnce(snapshot, slot)),
        step_seq: 1,
        account_id: account?.id ?? null,
        prior_account_status: account?.status ?? null,
        client_reference_id: input.clientReferenceId ?? account?.client_reference_id ?? null,
        display_name: input.name,
        force_connect: input.forceConnect,
        remember_credentials: input.rememberCredentials,
        input_enc: vault.encryptJson(secrets, attemptPlace({ org_id: spec.orgId, id }, 'input_enc')),
        proxy: JSON.stringify(proxy.proxy),
        user_agent: browser.userAgent,
        device_id: browser.deviceId,
        mobile_code_hash: mobileCode ? hashCode(mobileCode) : null,
        link_session_id: spec.linkSessionId ?? null,
        created_at: now,
        updated_at: now,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    await store.runHooks(trx, row, null);
    await store.enqueue(trx, row, effects, slot);
    return { row, effects, mobileCode };
  }

  /**
   * A transaction that may start an attempt, holding an inline slot for its first step (email/password and
   * raw_data logins queue one; a phone hand-off does not, and its slot is simply freed after the commit).
   * Pass the slot to `insertAttempt` and, after the commit, to `store.afterCommit`, which starts the step here.
   */
  async function withStepSlot<T>(work: (trx: Transaction<DB>, slot: StepSlot) => Promise<T>): Promise<{ result: T; slot: StepSlot }> {
    const slot = store.reserveStep();
    try {
      return { result: await db.transaction().execute((trx) => work(trx, slot)), slot };
    } catch (error) {
      store.releaseStep(slot);
      throw error;
    }
  }

  async function findAccountOn(orgId: string, platform: PlatformName, accountId: string): Promise<AccountRow> {
    const account = await deps.accounts.find(db, orgId, accountId);
    if (!account || account.platform !== platform) throw notFound('Account');
    return account;
  }

  /**
   * A start or credentials body, checked whole: the combinations the schema cannot express and the
   * custom proxy's address, every bad field in one 422.
   */
  async function parseInput(platform: PlatformName, body: StartBody): Promise<StartInput> {
    const errors: FieldError[] = [];
    let input: StartInput | null = null;
    try {
      input = parseStartInput(platform, body, platforms.pool);
    } catch (error) {
      if (!(error instanceof ApiError) || !error.errors) throw error;
      errors.push(...error.errors);
    }
    errors.push(...(await platforms.checkCustomProxy(input ? input.proxy : parseProxyChoice(body, platforms.pool, []))));
    if (errors.length > 0 || !input) throw validationError(errors);
    return input;
  }

  /** The account's row lock: re-authentications of one account start one at a time, on every node. */
  async function lockAccount(trx: Transaction<DB>, orgId: string, platform: PlatformName, accountId: string): Promise<AccountRow> {
    const locked = await trx.selectFrom('accounts').selectAll().where('org_id', '=', orgId).where('id', '=', accountId).forUpdate().executeTakeFirst();
    if (!locked || locked.platform !== platform) throw notFound('Account');
    return locked;
  }

  /**
   * At most `loginsPerHour` re-authentications of an account start per hour (DESIGN 2), counted from the
   * attempts themselves, so every node sees the same count. Call under the account's row lock.
   */
  async function limitLogins(trx: Transaction<DB>, accountId: string): Promise<void> {
    const now = clock.now();
    const windowStart = new Date(now.getTime() - 3_600_000);
    const recent = await trx
      .selectFrom('auth_attempts')
      .select('created_at')
      .where('account_id', '=', accountId)
      .where('kind', 'in', ['reauthenticate', 'credentials_update'])
      .where('created_at', '>', windowStart)
      .orderBy('created_at', 'desc')
      .limit(deps.loginsPerHour)
      .execute();
    if (recent.length < deps.loginsPerHour) return;
    const oldest = recent[recent.length - 1]!.created_at;
    const retryAfterSec = Math.max(1, Math.ceil((oldest.getTime() + 3_600_000 - now.getTime()) / 1000));
    throw new ApiError(
      429,
      'rate_limited',
      `This account logged in upstream ${deps.loginsPerHour} times in the last hour, the most allowed per hour (FANGATE_ACCOUNT_LOGINS_PER_HOUR) to protect the creator's account from a platform lock; retry in ${retryAfterSec} s.`,
      { retryAfterSec },
    );
  }

  async function runningReauth(trx: Kysely<DB> | Transaction<DB>, accountId: string): Promise<AttemptRow | undefined> {
    return trx
      .selectFrom('auth_attempts')
      .selectAll()
      .where('account_id', '=', accountId)
      .where('kind', 'in', ['reauthenticate', 'credentials_update'])
      .where('completed_at', 'is', null)
      .orderBy('created_at', 'desc')
      .executeTakeFirst();
  }

  /** Ends an attempt whose time is up (the 20-minute limit wins when both have passed); the expired row, or undefined. */
  async function expire(id: string): Promise<AttemptRow | undefined> {
    for (const event of [{ type: 'overall_timeout' }, { type: 'input_timeout' }] as AttemptEvent[]) {
      const result = await store.apply(id, event);
      if (result.ok) return result.row;
    }
    return undefined;
  }

  /**
   * An attempt as the API shows it, expiring it first if its time is up (the sweep may lag). `cached`:
   * through this node's cache of attempts (reads only: every change drops it there, by NOTIFY).
   */
  async function current(orgId: string, platform: PlatformName | null, id: string, cached = false): Promise<AttemptRow> {
    let row = cached ? await watcher.cached(id, () => store.load(id)) : await store.load(id, orgId);
    // The cache is keyed by attempt id alone: the organisation is checked here, on every read.
    if (!row || row.org_id !== orgId || (platform && row.platform !== platform)) throw notFound('Attempt');
    if (!isTerminal(row.state) && clock.now() >= row.expires_at) {
      row = (await expire(id)) ?? (await store.load(id, orgId))!;
    }
    return row;
  }

  /**
   * The one wait loop (long-poll, event streams, the phone's hand-off): yields the attempt now and after
   * each change, until it completes, `until` (epoch ms) passes or `signal` aborts. Wakes on NOTIFY from
   * any node, on the attempt's own expiry, and at least every 15 s (a lost NOTIFY costs no more).
   */
  async function* follow(orgId: string, platform: PlatformName | null, id: string, until: number, signal?: AbortSignal): AsyncGenerator<AttemptRow> {
    let row = await current(orgId, platform, id, true);
    yield row;
    while (!isTerminal(row.state) && Date.now() < until && !signal?.aborted) {
      const untilExpiry = row.expires_at.getTime() - clock.now().getTime() + 50;
      await watcher.next(id, Math.min(until - Date.now(), 15_000, Math.max(untilExpiry, 0)), signal);
      const next = await current(orgId, platform, id, true);
      if (next.version !== row.version) yield next;
      row = next;
    }
  }

  /** The last attempt `rows` yields, or the first for which `stop` says so. */
  async function lastOf(rows: AsyncGenerator<AttemptRow>, stop?: (row: AttemptRow) => boolean): Promise<AttemptRow> {
    let last: AttemptRow | undefined;
    for await (const row of rows) {
      last = row;
      if (stop?.(row)) break;
    }
    return last!;
  }

  async function act(orgId: string, platform: PlatformName, id: string, event: AttemptEvent, columns?: (row: AttemptRow) => Record<string, string | null>): Promise<AttemptView> {
    const row = await current(orgId, platform, id);
    const result = await store.apply(row.id, event, columns ? { columns: columns(row) } : {}, { row });
    if (!result.ok) throw refusalError(result.reason, (await store.load(row.id)) ?? row, clock.now());
    return store.view(result.row);
  }

  const service = {
    /**
     * The field errors of a start or credentials body beyond its schema, for a 422 that names every
     * bad field at once. `body` holds only the members that passed the schema.
     */
    async startBodyErrors(platform: PlatformName, body: StartBody): Promise<FieldError[]> {
      try {
        await parseInput(platform, body);
        return [];
      } catch (error) {
        if (error instanceof ApiError && error.errors) return error.errors;
        return [];
      }
    },
    /**
     * Starts a connect. `claim`, when given, runs inside the attempt's transaction with the answer (the API's
     * Idempotency-Key): the key, the attempt and its first job commit together or not at all. `linkSessionId`:
     * the Link page the attempt is started from.
     */
    async start(orgId: string, platform: PlatformName, body: StartBody, options: { claim?: (trx: Transaction<DB>, answer: StartAnswer) => Promise<void>; linkSessionId?: string } = {}): Promise<StartAnswer> {
      const { claim, linkSessionId } = options;
      const input = await parseInput(platform, body);
      if (input.session && !input.forceConnect) {
        const existing = await deps.accounts.findByPlatformUser(db, orgId, platform, input.session.authId);
        if (existing) {
          throw new ApiError(409, 'account_already_connected', `This platform user is already connected as ${existing.id}. Send force_connect: true to connect it again.`, {
            extra: { existing_account_id: existing.id },
          });
        }
      }
      const { result: { row, answer }, slot } = await withStepSlot(async (trx, slot) => {
        const { row, mobileCode } = await insertAttempt(trx, { orgId, platform, kind: 'connect', input, linkSessionId }, slot);
        const answer: StartAnswer = {
          attempt_id: row.id,
          message: START_MESSAGE,
          polling_url: pollingUrl(deps.publicUrl, platform, row.id),
          state: row.state,
          ...(mobileCode ? { mobile_auth_session_deeplink: mobileDeeplink(mobileCode) } : {}),
        };
        await claim?.(trx, answer);
        return { row, answer };
      });
      await store.afterCommit(row, null, slot);
      return answer;
    },

    /** The organisation's attempts, newest first (`platform` null: every platform). */
    async list(orgId: string, platform: PlatformName | null, query: ListAttemptsQuery): Promise<Page<AttemptView>> {
      const cursor = decodeCursor(query.cursor);
      let q = db.selectFrom('auth_attempts').selectAll().where('org_id', '=', orgId).orderBy('created_at', 'desc').orderBy('id', 'desc').limit(query.limit + 1);
      if (platform) q = q.where('platform', '=', platform);
      if (query.account_id !== undefined) q = q.where('account_id', '=', query.account_id);
      if (query.state !== undefined) q = q.where('state', '=', query.state);
      if (query.client_reference_id !== undefined) q = q.where('client_reference_id', '=', query.client_reference_id);
      if (cursor) {
        q = q.where((eb) => eb.or([eb('created_at', '<', cursor.createdAt), eb.and([eb('created_at', '=', cursor.createdAt), eb('id', '<', cursor.id)])]));
      }
      const rows = await q.execute();
      const page = toPage(rows, query.limit, (row) => row);
      return { ...page, data: await Promise.all(page.data.map((row) => store.view(row))) };
    },

    async get(orgId: string, platform: PlatformName | null, id: string): Promise<AttemptView> {
      return store.view(await current(orgId, platform, id, true));
    },

    /**
     * Long-poll: answers once the state differs from `lastState` (default: the state now), or
     * when `waitSec` runs out.
     */
    async wait(orgId: string, platform: PlatformName | null, id: string, waitSec: number, lastState?: string, signal?: AbortSignal): Promise<AttemptView> {
      let seen = lastState;
      const row = await lastOf(follow(orgId, platform, id, Date.now() + waitSec * 1000, signal), (r) => (seen ??= r.state) !== r.state);
      return store.view(row);
    },

    /** Every change of the attempt until it completes (for Server-Sent Events). */
    async *changes(orgId: string, platform: PlatformName | null, id: string, signal: AbortSignal): AsyncGenerator<AttemptView> {
      for await (const row of follow(orgId, platform, id, Number.POSITIVE_INFINITY, signal)) yield store.view(row);
    },

    submitCode(orgId: string, platform: PlatformName, id: string, code: string) {
      return act(orgId, platform, id, { type: 'code_submitted' }, (row) => ({ pending_code_enc: vault.encrypt(code, attemptPlace(row, 'pending_code_enc')) }));
    },

    /**
     * The creator says the selfie check is done: FanGate asks the platform and waits (a few seconds) for
     * its answer, so that a selfie the platform has not seen is a clear 409 `selfie_not_completed`
     * (the attempt stays on `needs_face_otp`), not a 202 followed by a silent return to the face check.
     */
    async confirmSelfie(orgId: string, platform: PlatformName, id: string) {
      const confirmed = await act(orgId, platform, id, { type: 'selfie_confirmed' });
      const row = await lastOf(follow(orgId, platform, id, Date.now() + SELFIE_CHECK_WAIT_MS), (r) => r.state !== 'pending');
      if (row.state === 'needs_face_otp') {
        throw new ApiError(409, 'selfie_not_completed', 'The platform has not seen a completed selfie check yet (state needs_face_otp): the creator finishes it at face_verification_url, then confirm again.', {
          extra: { state: row.state },
        });
      }
      return row.state === 'pending' ? confirmed : store.view(row);
    },

    requestEmail(orgId: string, platform: PlatformName, id: string) {
      return act(orgId, platform, id, { type: 'email_requested' });
    },

    async cancel(orgId: string, platform: PlatformName, id: string) {
      return act(orgId, platform, id, { type: 'cancel' });
    },

    /**
     * New credentials (any method): cancels what runs and re-authenticates at once, under the account's row
     * lock, so concurrent updates leave exactly one running; the old credentials stay until it succeeds.
     */
    async updateCredentials(orgId: string, platform: PlatformName, accountId: string, body: StartBody, actor: Actor, options: { linkSessionId?: string } = {}) {
      await findAccountOn(orgId, platform, accountId);
      const input = await parseInput(platform, body);
      const { result: { created, cancelled }, slot } = await withStepSlot(async (trx, slot) => {
        const locked = await lockAccount(trx, orgId, platform, accountId);
        await limitLogins(trx, locked.id);
        const cancelled = await store.cancelAccountAttemptsIn(trx, locked.id);
        // As it is after the cancellations (they may have changed its status).
        const fresh = (await deps.accounts.find(trx, orgId, accountId))!;
        const { totpSecret, proxyPassword, proxyUsername } = deps.accounts.secrets(fresh);
        const created = await insertAttempt(trx, {
          orgId, platform, kind: 'credentials_update', input, account: fresh, secrets: { totpSecret, proxyPassword, proxyUsername }, linkSessionId: options.linkSessionId,
        }, slot);
        // Which method and whether a TOTP secret came along; never a value.
        await (deps.audit ?? noAudit)(trx, {
          orgId, action: 'account.credentials_updated', targetType: 'account', targetId: locked.id,
          details: { via: 'credentials', auth_type: input.authType, attempt_id: created.row.id, totp_secret_given: Boolean(input.totpSecret) }, actor,
        });
        return { created, cancelled };
      });
      const { row, mobileCode } = created;
      try {
        for (const cancelledRow of cancelled) await store.afterCommit(cancelledRow.row, cancelledRow.previousState);
      } finally {
        // The new attempt's step starts whatever happened to the cancelled ones' bookkeeping.
        await store.afterCommit(row, null, slot);
      }
      return {
        attempt_id: row.id,
        message: CREDENTIALS_MESSAGE,
        polling_url: pollingUrl(deps.publicUrl, platform, row.id),
        ...(mobileCode ? { mobile_auth_session_deeplink: mobileDeeplink(mobileCode) } : {}),
      };
    },

    /**
     * Re-authenticate with stored credentials. Single-flight per account: a running one is
     * returned; the check is repeated under the account's row lock (double-checked).
     */
    async reauthenticate(orgId: string, platform: PlatformName, accountId: string, force: boolean) {
      const account = await findAccountOn(orgId, platform, accountId);
      const answer = (row: AttemptRow) => ({ success: true as const, message: 'Re-authentication started.', attempt_id: row.id, polling_url: pollingUrl(deps.publicUrl, platform, row.id) });
      const running = await runningReauth(db, account.id);
      if (running) return answer(running);
      const { credentials } = deps.accounts.secrets(account);
      if (!credentials) {
        throw new ApiError(412, 'no_stored_credentials', 'No credentials are stored for this account (imported, or connected with remember_credentials: false). Use PUT …/credentials.');
      }
      if (!force && account.status === 'active' && (await sessionStillValid(account))) {
        throw new ApiError(400, 'already_authenticated', capabilitiesOf(platform).alreadyAuthenticatedMessage, { retryable: false });
      }
      const { result: created, slot } = await withStepSlot(async (trx, slot) => {
        const locked = await lockAccount(trx, orgId, platform, account.id);
        const again = await runningReauth(trx, account.id);
        if (again) return { row: again, effects: [] as ReturnType<typeof startAttempt>['effects'], mobileCode: null };
        await limitLogins(trx, locked.id);
        const input: StartInput = {
          authType: 'email_password', name: null, login: credentials.login, password: credentials.password, session: null, proxy: null,
          forceConnect: false, rememberCredentials: locked.remember_credentials, totpSecret: null, clientReferenceId: null,
        };
        const { totpSecret, proxyPassword, proxyUsername } = deps.accounts.secrets(locked);
        return insertAttempt(trx, { orgId, platform, kind: 'reauthenticate', input, account: locked, secrets: { totpSecret, proxyPassword, proxyUsername } }, slot);
      });
      await store.afterCommit(created.row, created.effects.length > 0 ? null : undefined, slot);
      return answer(created.row);
    },

    /** The companion app's hand-off: the single-use code is the credential (no API key). */
    async completeMobileSession(code: string, body: { auth_id: string; cookies: string; xbc: string; user_agent: string }) {
      const unknown = () => new ApiError(404, 'not_found', 'This hand-off code is unknown, expired or already used.');
      const found = await db.selectFrom('auth_attempts').select(['id', 'org_id', 'platform']).where('mobile_code_hash', '=', hashCode(code)).executeTakeFirst();
      const errors = sessionCookieErrors(found?.platform ?? 'onlyfans', body.cookies, 'cookies', { value: body.auth_id, field: 'auth_id' });
      if (errors.length > 0) throw validationError(errors);
      if (!found) throw unknown();
      const row = await current(found.org_id, null, found.id);
      if (row.state !== 'awaiting_mobile_session') throw unknown();
      const session: PlatformSession = { authId: body.auth_id, cookies: body.cookies, xbc: body.xbc, userAgent: body.user_agent };
      const secrets = { ...vault.decryptJson<AttemptSecrets>(row.input_enc!, attemptPlace(row, 'input_enc')), session, mobileCode: null };
      const result = await store.apply(row.id, { type: 'mobile_session_received' }, {
        columns: { input_enc: vault.encryptJson(secrets, attemptPlace(row, 'input_enc')), mobile_code_hash: null, user_agent: body.user_agent },
      });
      if (!result.ok) throw unknown();
      // The phone waits for the verdict, like an import.
      const done = await service.waitForEnd(row.org_id, row.id, 25);
      return done;
    },

    /** Waits until the attempt completes or `seconds` pass. */
    async waitForEnd(orgId: string, id: string, seconds: number): Promise<AttemptView> {
      return store.view(await lastOf(follow(orgId, null, id, Date.now() + seconds * 1000)));
    },

    /**
     * The worker's sweep: expires attempts whose time is up, and queues again the step of an attempt pending
     * for STUCK_AFTER_MS without any job (a last resort: steps are queued in the attempt's transaction, and a
     * step whose worker died runs again when its job expires). Safe on every node at once.
     */
    async sweep(): Promise<void> {
      const now = clock.now();
      // Attempts' deadlines are carried out here (and on any read): batches until none is due, for up to a
      // sweep interval, so a wave of abandoned attempts ends within seconds rather than 200 per interval.
      const until = Date.now() + (deps.sweepIntervalMs ?? 10_000);
      for (;;) {
        const due = await db
          .selectFrom('auth_attempts')
          .select('id')
          .where('completed_at', 'is', null)
          .where('expires_at', '<=', now)
          .orderBy('expires_at')
          .limit(200)
          .execute();
        for (const { id } of due) await expire(id);
        if (due.length < 200 || Date.now() > until) break;
      }
      const stuck = await db
        .selectFrom('auth_attempts')
        .selectAll()
        .where('state', '=', 'pending')
        .where('updated_at', '<', new Date(now.getTime() - STUCK_AFTER_MS))
        .limit(100)
        .execute();
      for (const row of stuck) {
        if (row.step && (await store.requeueStep(row))) deps.logger.warn({ attemptId: row.id, seq: row.step_seq }, 'pending attempt had no step job; queued it again');
      }
    },
  };

  /** Whether the account's session still works upstream; unknown (network trouble) counts as no. */
  async function sessionStillValid(account: AccountRow): Promise<boolean> {
    const { session } = deps.accounts.secrets(account);
    if (!session) return false;
    try {
      const check = await platforms.call(account.platform, deps.accounts.identity(account), (driver, ctx) => driver.validateSession(ctx, session), {
        onFailover: (to) => deps.accounts.moveProxy(account.id, account.proxy, to),
      });
      return check.valid && check.user.id === account.platform_user_id;
    } catch (error) {
      if (error instanceof ProxyError || error instanceof NoPoolProxyError || error instanceof UpstreamUnavailableError || error instanceof UpstreamTimeoutError) return false;
      throw error;
    }
  }

  return service;
}

export type ConnectService = ReturnType<typeof createConnectService>;
