import { TOTP } from 'otpauth';
import { type Kysely, type Transaction, type Updateable } from 'kysely';
import type { Logger } from 'pino';
import type { AccountRow } from '../accounts/model.js';
import type { AccountsPort } from '../accounts/port.js';
import type { AuthAttemptsTable, ChallengeKind, DB } from '../db/schema.js';
import type { Clock } from '../lib/clock.js';
import { newId } from '../lib/ids.js';
import { ProxyError, UpstreamUnavailableError } from '../net/errors.js';
import { NoPoolProxyError, type PlatformGateway, UpstreamTimeoutError } from '../platforms/gateway.js';
import type { DriverContext, PlatformDriver, PlatformSession, PlatformUser, StepResult } from '../platforms/types.js';
import type { Vault } from '../vault/vault.js';
import type { AttemptRow } from './attempts.js';
import type { AttemptEvent, FailureCode } from './state-machine.js';
import { type AttemptSecrets, type AttemptStore, attemptPlace, type EventExtras, type StepJob } from './store.js';

const TRANSIENT_RETRIES = 3;
/** One upstream try of a step; with the retries it keeps a step well inside its job's expiry. */
const UPSTREAM_TRY_TIMEOUT_MS = 6_000;

export interface StepDeps {
  db: Kysely<DB>;
  vault: Vault;
  store: AttemptStore;
  platforms: PlatformGateway;
  accounts: Pick<AccountsPort, 'find' | 'findByPlatformUser' | 'insertIfAbsent' | 'renewSession' | 'moveProxy'>;
  clock: Clock;
  logger: Logger;
  /** Milliseconds between retries of a transient upstream failure. */
  retryDelayMs?: number;
}

/** A driver call's outcome, including network trouble, as something the state machine understands. */
type Outcome = StepResult | { type: 'network'; code: Extract<FailureCode, 'upstream_unavailable' | 'proxy_error'>; message: string };

/**
 * The worker side of an attempt: one job runs one driver step (log in, check a code, check the
 * selfie, validate a session) and feeds the result to the state machine through the store.
 */
export function createStepRunner(deps: StepDeps) {
  const { vault, store, platforms, clock, logger } = deps;

  const secretsOf = (row: AttemptRow): AttemptSecrets => (row.input_enc ? vault.decryptJson<AttemptSecrets>(row.input_enc, attemptPlace(row, 'input_enc')) : {});
  const resumeOf = (row: AttemptRow): unknown => (row.resume_enc ? vault.decryptJson(row.resume_enc, attemptPlace(row, 'resume_enc')) : null);

  /**
   * Runs a driver call through the one platform call (retries, pool failover); a pool proxy that fails
   * moves the attempt, and the account it belongs to, to another proxy of the same country.
   */
  async function call(row: AttemptRow, secrets: AttemptSecrets, fn: (driver: PlatformDriver, ctx: DriverContext) => Promise<StepResult>): Promise<Outcome> {
    const identity = { proxy: row.proxy, proxyPassword: secrets.proxyPassword ?? null, proxyUsername: secrets.proxyUsername ?? null, userAgent: row.user_agent, deviceId: row.device_id };
    try {
      return await platforms.call(row.platform, identity, fn, {
        retries: TRANSIENT_RETRIES - 1,
        retryDelayMs: deps.retryDelayMs ?? 500,
        timeoutMs: UPSTREAM_TRY_TIMEOUT_MS,
        onFailover: async (moved) => {
          await store.patch(row.id, row.step_seq, { proxy: JSON.stringify(moved) });
          if (row.account_id) await deps.accounts.moveProxy(row.account_id, row.proxy, moved);
          logger.warn({ attemptId: row.id, country: moved.country }, 'pool proxy failed; moved the attempt to another proxy of the country');
        },
      });
    } catch (error) {
      if (error instanceof ProxyError) return { type: 'network', code: 'proxy_error', message: error.publicMessage };
      if (error instanceof NoPoolProxyError) return { type: 'network', code: 'proxy_error', message: error.message };
      if (error instanceof UpstreamUnavailableError || error instanceof UpstreamTimeoutError) {
        return { type: 'network', code: 'upstream_unavailable', message: 'The platform could not be reached.' };
      }
      throw error;
    }
  }

  /**
   * With the creator's TOTP secret FanGate answers app codes itself (twice: a code may straddle
   * 30 s). The app challenge still counts as met, for `can_reauth`.
   */
  async function answerAppCodes(row: AttemptRow, secrets: AttemptSecrets, result: Outcome): Promise<{ outcome: Outcome; met: ChallengeKind[] }> {
    const met: ChallengeKind[] = [];
    for (let i = 0; i < 2 && result.type === 'challenge' && result.kind === 'app' && secrets.totpSecret; i++) {
      met.push('app');
      const code = new TOTP({ secret: secrets.totpSecret, digits: 6, period: 30, algorithm: 'SHA1' }).generate();
      const resume = result.resume;
      const next = await call(row, secrets, (driver, ctx) => driver.submitCode(ctx, resume, code));
      result = next.type === 'wrong_code' ? { ...result, resume: next.resume } : next;
    }
    return { outcome: result, met };
  }

  async function runDriverStep(row: AttemptRow, secrets: AttemptSecrets): Promise<Outcome> {
    switch (row.step) {
      case 'login':
        return call(row, secrets, (driver, ctx) => driver.startLogin(ctx, { login: secrets.login ?? '', password: secrets.password ?? '' }));
      case 'submit_code': {
        const code = row.pending_code_enc ? vault.decrypt(row.pending_code_enc, attemptPlace(row, 'pending_code_enc')) : '';
        const resume = resumeOf(row);
        return call(row, secrets, (driver, ctx) => driver.submitCode(ctx, resume, code));
      }
      case 'confirm_selfie': {
        const resume = resumeOf(row);
        return call(row, secrets, (driver, ctx) => driver.confirmSelfie(ctx, resume));
      }
      case 'validate_session': {
        const session = secrets.session;
        if (!session) return { type: 'failure', code: 'session_invalid', message: 'No session was given.' };
        return call(row, secrets, async (driver, ctx) => {
          const check = await driver.validateSession({ ...ctx, userAgent: session.userAgent }, session);
          return check.valid ? { type: 'success', session: check.session ?? session, user: check.user } : { type: 'failure', code: check.code, message: check.message };
        });
      }
      default:
        throw new Error(`attempt ${row.id} has no step to run`);
    }
  }

  /**
   * The account side of a successful login, decided inside the attempt's transaction: a new
   * account, a forced reconnect, or a renewed session — or a refusal (duplicate, wrong user).
   */
  function connectAccount(row: AttemptRow, secrets: AttemptSecrets, session: PlatformSession, user: PlatformUser) {
    return async (trx: Transaction<DB>, current: AttemptRow): Promise<{ columns?: Updateable<AuthAttemptsTable>; account?: AccountRow }> => {
      const now = clock.now();
      const credentials = row.auth_type === 'email_password' && row.remember_credentials && secrets.login && secrets.password ? { login: secrets.login, password: secrets.password } : null;
      const lastChallenges = current.challenges;
      if (row.kind !== 'connect') {
        const account = row.account_id ? await deps.accounts.find(trx, row.org_id, row.account_id) : undefined;
        if (!account) throw new AttemptRefused('session_invalid', 'The account was deleted while re-authenticating.');
        if (account.platform_user_id !== user.id) throw new AttemptRefused('wrong_user', `These credentials log in as @${user.username}, not as the account's @${account.platform_username}.`);
        const renewed = await deps.accounts.renewSession(trx, account, {
          session,
          user,
          lastChallenges,
          ...(row.kind === 'credentials_update'
            ? {
                authType: row.auth_type,
                userAgent: row.user_agent,
                deviceId: row.device_id,
                rememberCredentials: row.remember_credentials,
                // The proxy of the request (or the account's own, carried over): the attempt logged in through it.
                proxy: { proxy: current.proxy, password: secrets.proxyPassword ?? null, username: secrets.proxyUsername ?? current.proxy.username ?? null },
                ...(row.auth_type === 'email_password' ? { credentials } : {}),
                ...(secrets.totpSecret ? { totpSecret: secrets.totpSecret } : {}),
                ...(row.display_name ? { displayName: row.display_name } : {}),
                ...(row.client_reference_id ? { clientReferenceId: row.client_reference_id } : {}),
              }
            : {}),
        }, now);
        return { account: renewed };
      }
      // The attempt's proxy as it is now: a pool proxy that failed during the login was swapped.
      const proxy = { proxy: current.proxy, password: secrets.proxyPassword ?? null, username: secrets.proxyUsername ?? current.proxy.username ?? null };
      // Two attempts may finish as the same platform user at once (a double click, two tabs): the later insert
      // waits for the earlier one on the unique index and inserts nothing, so the later attempt finds that
      // account (account_already_connected, or a forced reconnect) instead of failing and re-running its step.
      // Twice at most: an account deleted between the two statements is inserted again.
      const account: Parameters<AccountsPort['insertIfAbsent']>[1] = {
        id: newId('acct'),
        orgId: row.org_id,
        platform: row.platform,
        // DESIGN 3.1: `name` defaults to the email (email_password) or the auth_id (raw_data, mobile_app).
        displayName: row.display_name ?? secrets.login ?? secrets.session?.authId ?? user.username,
        authType: row.auth_type,
        imported: false,
        rememberCredentials: row.remember_credentials,
        clientReferenceId: row.client_reference_id,
        user,
        proxy: proxy.proxy,
        proxyPassword: proxy.password,
        proxyUsername: proxy.username,
        userAgent: row.user_agent,
        deviceId: row.device_id,
        credentials,
        totpSecret: secrets.totpSecret ?? null,
        session,
        lastChallenges,
      };
      for (let tries = 0; tries < 2; tries++) {
        const inserted = await deps.accounts.insertIfAbsent(trx, account, now, row.id);
        if (inserted) return { columns: { account_id: inserted.id }, account: inserted };
        const existing = await deps.accounts.findByPlatformUser(trx, row.org_id, row.platform, user.id);
        if (!existing) continue;
        if (!row.force_connect) {
          throw new AttemptRefused('account_already_connected', `@${user.username} is already connected as ${existing.id}.`, existing.id);
        }
        const renewed = await deps.accounts.renewSession(trx, existing, {
          session, user, authType: row.auth_type, credentials, totpSecret: secrets.totpSecret ?? null, rememberCredentials: row.remember_credentials,
          lastChallenges, userAgent: row.user_agent, deviceId: row.device_id, proxy,
          ...(row.display_name ? { displayName: row.display_name } : {}),
          ...(row.client_reference_id ? { clientReferenceId: row.client_reference_id } : {}),
        }, now);
        return { columns: { account_id: existing.id }, account: renewed };
      }
      throw new Error('the account could neither be inserted nor found');
    };
  }

  /** Feeds an outcome to the machine. A refusal found inside the transaction becomes a failure. */
  async function record(row: AttemptRow, secrets: AttemptSecrets, outcome: Outcome, met: ChallengeKind[]): Promise<void> {
    // The row as the step's start wrote it: the outcome is decided on it without reading it again.
    const seq = { seq: row.step_seq, row };
    const encResume = (resume: unknown) => vault.encryptJson(resume ?? null, attemptPlace(row, 'resume_enc'));
    let event: AttemptEvent;
    let extras: EventExtras = {};
    switch (outcome.type) {
      case 'success':
        event = { type: 'succeeded' };
        extras = { challenges: met, beforeWrite: connectAccount(row, secrets, outcome.session, outcome.user), connectedEvent: row.kind === 'connect' ? 'accounts.connected' : 'accounts.reconnected' };
        break;
      case 'challenge':
        event = {
          type: 'challenge',
          kind: outcome.kind,
          ...(outcome.phoneLast4 ? { phoneLast4: outcome.phoneLast4 } : {}),
          ...(outcome.emailMask ? { emailMask: outcome.emailMask } : {}),
          ...(outcome.faceUrl ? { faceUrl: outcome.faceUrl } : {}),
        };
        extras = { columns: { resume_enc: encResume(outcome.resume), pending_code_enc: null }, challenges: [...met, outcome.kind] };
        break;
      case 'wrong_code':
        event = { type: 'code_rejected' };
        extras = { columns: { resume_enc: encResume(outcome.resume), pending_code_enc: null } };
        break;
      case 'failure':
      case 'network':
        event = { type: 'failed', code: outcome.code, message: outcome.message };
        break;
    }
    try {
      const result = await store.apply(row.id, event, extras, seq);
      if (!result.ok) logger.info({ attemptId: row.id, reason: result.reason, event: event.type }, 'step result dropped: the attempt moved on');
    } catch (error) {
      if (!(error instanceof AttemptRefused)) throw error;
      await store.apply(row.id, { type: 'failed', code: error.code, message: error.message, ...(error.existingAccountId ? { existingAccountId: error.existingAccountId } : {}) }, {}, seq);
    }
  }

  return {
    /**
     * The `connect-step` job. Stale jobs (the attempt moved on) do nothing. `committed`: the row as the commit that
     * queued the step wrote it, when this process runs the step at once; that commit marked the step started
     * already (the store's `startedAtOnce`), and a change since is caught by the compare-and-swap of the outcome.
     */
    async runStep(job: StepJob, committed?: AttemptRow): Promise<void> {
      const waitsForThisStep = (r: AttemptRow | undefined): r is AttemptRow => r?.id === job.attemptId && r.state === 'pending' && r.step_seq === job.seq && r.step !== null;
      let row: AttemptRow;
      if (waitsForThisStep(committed)) {
        row = committed;
      } else {
        const loaded = await store.load(job.attemptId);
        if (!waitsForThisStep(loaded)) return;
        const started = await store.apply(loaded.id, { type: 'step_started' }, {}, { seq: job.seq, row: loaded });
        if (!started.ok) return;
        row = started.row;
      }
      const secrets = secretsOf(row);
      const { outcome, met } = await answerAppCodes(row, secrets, await runDriverStep(row, secrets));
      await record(row, secrets, outcome, met);
    },

    /** The step's job failed on every try (a bug, or input no step can use): the attempt ends instead of waiting. */
    async giveUp(job: StepJob, error: unknown): Promise<void> {
      logger.error({ err: error, attemptId: job.attemptId }, 'connect step failed on every try; ending the attempt');
      await store.apply(job.attemptId, { type: 'failed', code: 'upstream_unavailable', message: 'FanGate could not complete this login step; start again.' }, {}, { seq: job.seq });
    },

    /** The `connect-request-email` job: OnlyFans sends the device-check email on request. */
    async requestEmail(job: StepJob): Promise<void> {
      const row = await store.load(job.attemptId);
      if (!row || row.state !== 'needs_email' || row.step_seq !== job.seq) return;
      const secrets = secretsOf(row);
      const resume = resumeOf(row);
      const outcome = await call(row, secrets, (driver, ctx) => driver.requestEmailCode(ctx, resume));
      if (outcome.type === 'challenge') {
        await store.patch(row.id, row.step_seq, { resume_enc: vault.encryptJson(outcome.resume ?? null, attemptPlace(row, 'resume_enc')) });
      } else {
        logger.warn({ attemptId: row.id, outcome: outcome.type }, 'requesting the email code failed; the creator can ask again');
      }
    },
  };
}

/** A success the account side refuses (duplicate, wrong user): the attempt fails with this code. */
export class AttemptRefused extends Error {
  constructor(
    readonly code: FailureCode,
    message: string,
    readonly existingAccountId?: string,
  ) {
    super(message);
    this.name = 'AttemptRefused';
  }
}

export type StepRunner = ReturnType<typeof createStepRunner>;
