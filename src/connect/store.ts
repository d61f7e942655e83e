import { createHash } from 'node:crypto';
import { type Kysely, sql, type Transaction, type Updateable } from 'kysely';
import type { Logger } from 'pino';
import type { AccountRow } from '../accounts/model.js';
import type { AccountsPort } from '../accounts/port.js';
import type { Database } from '../db/database.js';
import type { AccountStatus, AttemptKind, AttemptState, AuthAttemptsTable, ChallengeKind, DB } from '../db/schema.js';
import type { InlineReservation, JobQueue } from '../jobs/queue.js';
import type { Clock } from '../lib/clock.js';
import { Counter, Histogram, type Registry } from '../lib/metrics.js';
import type { PlatformSession } from '../platforms/types.js';
import type { Vault } from '../vault/vault.js';
import { type EventName, recordEvent } from '../webhooks/outbox.js';
import { type AttemptRow, type AttemptView, serializeAttempt, snapshotColumns, toSnapshot } from './attempts.js';
import { type AttemptEffect, type AttemptEvent, type AttemptSnapshot, isTerminal, type RefusalReason, transition, type TransitionResult } from './state-machine.js';

export const STEP_QUEUE = 'connect-step';
export const EMAIL_QUEUE = 'connect-request-email';
export const DEADLINE_QUEUE = 'connect-deadline';
export const ATTEMPT_CHANNEL = 'fangate_attempts';

/**
 * A deadline job of an earlier version (`schedule_timeout` once queued one per deadline): at its time, the attempt
 * gets its timeout event (a stale one is refused). Kept so that jobs queued before an upgrade still run.
 */
export interface DeadlineJob {
  attemptId: string;
  timeout: 'input' | 'overall';
}

/** The compare-and-swap found a newer version: the transaction rolls back and the caller decides again. */
class LostRace extends Error {}

export interface StepJob {
  attemptId: string;
  seq: number;
}

/**
 * The id of an attempt's step job, derived from the attempt and its step counter (each step is queued once), so
 * that the job of a given step can be found from the attempt alone.
 */
export function stepJobId(attemptId: string, seq: number): string {
  const h = createHash('sha256').update(`${STEP_QUEUE}:${attemptId}:${seq}`).digest('hex');
  // UUID layout, version 8 (custom) and the RFC 4122 variant bits.
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** Secrets of an attempt, stored together as `input_enc`. */
export interface AttemptSecrets {
  login?: string | null;
  password?: string | null;
  session?: PlatformSession | null;
  totpSecret?: string | null;
  proxyPassword?: string | null;
  proxyUsername?: string | null;
  mobileCode?: string | null;
}

export const attemptPlace = (row: { org_id: string; id: string }, field: 'input_enc' | 'resume_enc' | 'pending_code_enc') => ({
  orgId: row.org_id,
  table: 'auth_attempts',
  field,
  recordId: row.id,
});

/** What an applied event may also write, besides the snapshot (inside the same transaction). */
export interface EventExtras {
  columns?: Pick<Updateable<AuthAttemptsTable>, 'resume_enc' | 'pending_code_enc' | 'input_enc' | 'account_id' | 'mobile_code_hash' | 'user_agent' | 'device_id'>;
  challenges?: ChallengeKind[];
  /**
   * Runs inside the transaction before the attempt row is written, e.g. to create the account: the columns it
   * sets on the attempt, and the account as it wrote it (the events' payload then needs no read of it).
   */
  beforeWrite?: (trx: Transaction<DB>, row: AttemptRow) => Promise<{ columns?: Updateable<AuthAttemptsTable>; account?: AccountRow }>;
  /** Overrides the default event name for `connect_account` (connected vs reconnected). */
  connectedEvent?: EventName;
}

/** What hooks of other domains learn about an attempt change (no secret, no row internals). */
export interface AttemptChange {
  attemptId: string;
  orgId: string;
  kind: AttemptKind;
  state: AttemptState;
  /** null when the attempt was just created. */
  previousState: AttemptState | null;
  accountId: string | null;
  /** The account's status when the attempt started (re-authentications). */
  priorAccountStatus: AccountStatus | null;
  clientReferenceId: string | null;
  errorCode: string | null;
  /** The Link session the attempt was started from, if any. */
  linkSessionId: string | null;
  /** The attempt as the API shows it. */
  view: () => Promise<AttemptView>;
}

/**
 * Runs inside the attempt's transaction after the row is written: another domain (e.g. Link) keeps
 * its own rows and outbox events in step with the attempt without importing connect/.
 */
export type AttemptChangeHook = (trx: Transaction<DB>, change: AttemptChange) => Promise<void>;

/**
 * An inline slot for the step a transaction may queue (see JobQueue.reserveInline), or null: the step then goes
 * to the workers.
 */
export type StepSlot = InlineReservation | null;

export type ApplyResult = { ok: true; row: AttemptRow } | { ok: false; reason: RefusalReason | 'conflict' | 'not_found' };

/**
 * The one place an attempt changes. It reads the row, asks the state machine, and writes the
 * new snapshot with a compare-and-swap on `version`, together with the outbox events and the
 * account status the change implies — one transaction, no network inside it. Jobs, NOTIFY and
 * anything slow happen after the commit.
 */
export function createAttemptStore(deps: { db: Kysely<DB>; database: Database; vault: Vault; jobs: JobQueue; clock: Clock; publicUrl: string; logger: Logger; accounts: Pick<AccountsPort, 'view' | 'serialize'>; hooks?: AttemptChangeHook[]; metrics: Registry; changed?: (attemptId: string, row?: AttemptRow) => void; writing?: (attemptId: string) => void }) {
  const { db, vault, jobs, clock } = deps;

  /**
   * Views of rows without an account, by row: the watcher hands every poll the same row object until the
   * attempt changes, and without an account the view is a function of the row alone, so it is made once.
   */
  const views = new WeakMap<AttemptRow, AttemptView>();

  /** `account`: the attempt's account as the caller holds it (read or written in `trx`), instead of reading it. */
  async function view(row: AttemptRow, trx: Kysely<DB> | Transaction<DB> = db, account?: AccountRow): Promise<AttemptView> {
    const known = row.account_id ? undefined : views.get(row);
    if (known) return known;
    const made = await viewOf(row, trx, account?.id === row.account_id ? account : undefined);
    if (!row.account_id) views.set(row, Object.freeze(made));
    return made;
  }

  async function viewOf(row: AttemptRow, trx: Kysely<DB> | Transaction<DB>, known?: AccountRow) {
    const account = !row.account_id ? null : known ? deps.accounts.serialize(known) : await deps.accounts.view(trx, row.org_id, row.account_id);
    let mobileCode: string | null = null;
    if (row.state === 'awaiting_mobile_session' && row.input_enc) {
      mobileCode = vault.decryptJson<AttemptSecrets>(row.input_enc, attemptPlace(row, 'input_enc')).mobileCode ?? null;
    }
    return serializeAttempt(row, { account, publicUrl: deps.publicUrl, mobileCode });
  }

  const attemptsTotal = new Counter({
    name: 'fangate_attempts_total',
    help: 'Connect and re-authentication attempts that ended, by platform, auth type and outcome (success or the error code).',
    labelNames: ['platform', 'auth_type', 'outcome'] as const,
    registers: [deps.metrics],
  });
  const attemptDuration = new Histogram({
    name: 'fangate_attempt_duration_seconds',
    help: 'Time from the start of an attempt to its end (including the time the creator took to answer).',
    labelNames: ['platform', 'outcome'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200],
    registers: [deps.metrics],
  });

  /** One log line per state change, with its ids; attempts that end are counted and timed. */
  function observe(row: AttemptRow, previousState: AttemptState | null) {
    const line = {
      attemptId: row.id, orgId: row.org_id, accountId: row.account_id, clientReferenceId: row.client_reference_id,
      platform: row.platform, kind: row.kind, from: previousState, state: row.state, ...(row.error_code ? { errorCode: row.error_code } : {}),
    };
    deps.logger.info(line, previousState === null ? 'attempt started' : 'attempt state changed');
    if (isTerminal(row.state)) {
      const outcome = row.state === 'completed_success' ? 'success' : (row.error_code ?? 'failed');
      attemptsTotal.inc({ platform: row.platform, auth_type: row.auth_type, outcome });
      attemptDuration.observe({ platform: row.platform, outcome }, ((row.completed_at ?? row.updated_at).getTime() - row.created_at.getTime()) / 1000);
    }
  }

  /** Tells the other domains' hooks (account status, Link) about the change, inside its transaction. */
  async function runHooks(trx: Transaction<DB>, row: AttemptRow, previousState: AttemptState | null): Promise<void> {
    for (const hook of deps.hooks ?? []) {
      await hook(trx, {
        attemptId: row.id,
        orgId: row.org_id,
        kind: row.kind,
        state: row.state,
        previousState,
        accountId: row.account_id,
        priorAccountStatus: row.prior_account_status,
        clientReferenceId: row.client_reference_id,
        errorCode: row.error_code,
        linkSessionId: row.link_session_id,
        view: () => view(row, trx),
      });
    }
  }

  /**
   * Inside the attempt's transaction: the jobs and timers its effects ask for, so they exist exactly when
   * the change commits (a crash between a commit and a send would leave the attempt without its step).
   */
  async function enqueue(trx: Transaction<DB>, row: AttemptRow, effects: AttemptEffect[], slot: StepSlot = null): Promise<void> {
    for (const effect of effects) {
      if (effect.type === 'run_step') {
        await jobs.send(STEP_QUEUE, { attemptId: row.id, seq: row.step_seq } satisfies StepJob, { trx, id: stepJobId(row.id, row.step_seq), ...(slot ? { reservation: slot } : {}) });
      }
      if (effect.type === 'request_email') await jobs.send(EMAIL_QUEUE, { attemptId: row.id, seq: row.step_seq } satisfies StepJob, { trx });
      // `schedule_timeout` needs no job: the deadline is the attempt's `expires_at`, which the worker's sweep
      // (indexed, every few seconds) and every read of the attempt enforce. A job per deadline was one more
      // insert per attempt and one more run for each, nearly always to find the attempt long finished.
    }
  }

  /**
   * An inline slot for a step the coming transaction may queue, if one is free: the step then runs in this process
   * right after the commit, from the row the commit wrote (see `afterCommit`).
   */
  function reserveStep(): StepSlot {
    return jobs.reserveInline(STEP_QUEUE);
  }

  /**
   * The snapshot to write when the step it queues starts at once in this process: `step_started` applied before
   * the write rather than as a second write when the step begins.
   */
  function startedAtOnce(snapshot: AttemptSnapshot, slot: StepSlot): AttemptSnapshot {
    if (!slot) return snapshot;
    const started = transition(snapshot, { type: 'step_started' }, clock.now());
    return started.ok ? started.snapshot : snapshot;
  }

  /**
   * After the commit: the cache drop, the log line and the inline start of a queued step (the jobs were written
   * with the change, and so was the NOTIFY that wakes long-polls on every node).
   * `previousState` (null for a new attempt) marks a state change, which is logged and counted once, here.
   */
  async function afterCommit(row: AttemptRow, previousState?: AttemptState | null, slot: StepSlot = null) {
    try {
      deps.changed?.(row.id, row);
      if (previousState !== undefined && previousState !== row.state) observe(row, previousState);
    } finally {
      // The step this change queued, claimed for this process in its transaction, starts here with the committed
      // row whatever happened above (its job, claimed, would otherwise wait for its expiry); the job stays the
      // durable copy (see JobQueue.runReserved).
      if (slot) jobs.runReserved(slot, row);
    }
  }

  /**
   * Writes a decided transition inside `trx`: the snapshot with a compare-and-swap on `version`, what
   * the other domains' hooks change, and the outbox events. undefined when the row changed meanwhile.
   */
  async function write(trx: Transaction<DB>, current: AttemptRow, result: Extract<TransitionResult, { ok: true }>, extras: EventExtras, slot: StepSlot = null): Promise<AttemptRow | undefined> {
    // Locks in one order everywhere, the account before its attempts (credential updates and re-authentications
    // take the account's row lock first, hooks write the account after the attempt): no deadlock between them.
    if (current.account_id) await trx.selectFrom('accounts').select('id').where('id', '=', current.account_id).forUpdate().execute();
    const now = clock.now();
    const queuesStep = result.effects.some((e) => e.type === 'run_step' || e.type === 'request_email');
    let next: Updateable<AuthAttemptsTable> = {
      ...snapshotColumns(startedAtOnce(result.snapshot, slot)),
      ...extras.columns,
      step_seq: queuesStep ? current.step_seq + 1 : current.step_seq,
      version: current.version + 1,
      updated_at: now,
    };
    if (extras.challenges) next.challenges = [...new Set([...current.challenges, ...extras.challenges])];
    let account: AccountRow | undefined;
    if (result.effects.some((e) => e.type === 'connect_account') && extras.beforeWrite) {
      const before = await extras.beforeWrite(trx, { ...current, ...next } as AttemptRow);
      next = { ...next, ...before.columns };
      account = before.account;
    }
    // Terminal attempts keep no secrets: credentials, sessions and codes live on the account.
    if (isTerminal(result.snapshot.state)) {
      Object.assign(next, { input_enc: null, resume_enc: null, pending_code_enc: null, mobile_code_hash: null });
    }
    // The NOTIFY that wakes long-polls (with the version written) goes out with the commit, from the same statement.
    const written = await trx
      .updateTable('auth_attempts')
      .set(next)
      .where('id', '=', current.id)
      .where('version', '=', current.version)
      .returningAll()
      .returning(sql<string>`pg_notify(${ATTEMPT_CHANNEL}, id || ':' || version)`.as('notified'))
      .executeTakeFirst();
    // Lost the race: what beforeWrite wrote for this version (an account) must not commit without it.
    if (!written) throw new LostRace();
    const { notified: _, ...row } = written;
    deps.writing?.(row.id);
    await runHooks(trx, row, current.state);
    await enqueue(trx, row, result.effects, slot);
    const webhookEvents: EventName[] = result.effects.flatMap((e) =>
      e.type === 'emit_webhook' ? [e.event] : e.type === 'connect_account' ? [extras.connectedEvent ?? 'accounts.connected'] : [],
    );
    if (webhookEvents.length > 0) {
      // The account as beforeWrite left it: no hook changes an account whose attempt succeeded.
      const attempt = await view(row, trx, row.state === 'completed_success' ? account : undefined);
      const payload = { account: attempt.account, attempt };
      for (const name of webhookEvents) {
        await recordEvent(trx, { orgId: row.org_id, event: name, accountId: row.account_id, attemptId: row.id, clientReferenceId: row.client_reference_id, payload });
      }
    }
    return row;
  }

  const store = {
    view,
    runHooks,
    enqueue,
    reserveStep,
    startedAtOnce,
    /** The transaction of a reserved step did not commit: the slot is free again. */
    releaseStep: (slot: StepSlot) => jobs.release(slot),

    /**
     * The sweep's last resort: queues the step of a pending attempt again when no job for it waits or runs
     * anywhere (only a job sent by an older version, outside the transaction, can be lost). true when queued.
     */
    async requeueStep(row: AttemptRow): Promise<boolean> {
      const job: StepJob = { attemptId: row.id, seq: row.step_seq };
      if (await jobs.hasLive(STEP_QUEUE, job)) return false;
      await jobs.send(STEP_QUEUE, job);
      return true;
    },

    async load(id: string, orgId?: string): Promise<AttemptRow | undefined> {
      let query = db.selectFrom('auth_attempts').selectAll().where('id', '=', id);
      if (orgId) query = query.where('org_id', '=', orgId);
      return query.executeTakeFirst();
    },

    /**
     * Applies `event` to the attempt as it is now; retries a lost compare-and-swap a few times. `expect.row`: the
     * attempt as the caller just read or wrote it, decided on without reading it again (the compare-and-swap
     * catches a change since, and the next try reads).
     */
    async apply(id: string, event: AttemptEvent, extras: EventExtras = {}, expect?: { seq?: number; row?: AttemptRow }): Promise<ApplyResult> {
      for (let tries = 0; tries < 5; tries++) {
        const current = tries === 0 && expect?.row?.id === id ? expect.row : await store.load(id);
        if (!current) return { ok: false, reason: 'not_found' };
        if (expect?.seq !== undefined && current.step_seq !== expect.seq) return { ok: false, reason: 'stale_event' };
        const decided = transition(toSnapshot(current), event, clock.now());
        if (!decided.ok) {
          // A refusal decided on the caller's copy may be stale: decide again on the row as it is.
          if (current === expect?.row) continue;
          return decided;
        }
        const slot = decided.effects.some((e) => e.type === 'run_step') ? reserveStep() : null;
        const written = await db
          .transaction()
          .execute((trx) => write(trx, current, decided, extras, slot))
          .catch((error: unknown) => {
            // Nothing committed: a version marked as being written (deps.writing) never comes.
            deps.changed?.(id);
            jobs.release(slot);
            if (error instanceof LostRace) return undefined;
            throw error;
          });
        if (!written) continue; // someone else changed it first: read again and re-decide
        await afterCommit(written, current.state, slot);
        return { ok: true, row: written };
      }
      return { ok: false, reason: 'conflict' };
    },

    /** The `connect-deadline` job: the state machine refuses it harmlessly when the deadline moved or the attempt ended. */
    async expireAt(job: DeadlineJob): Promise<void> {
      await store.apply(job.attemptId, { type: job.timeout === 'input' ? 'input_timeout' : 'overall_timeout' });
    },

    /**
     * Cancels the account's running attempts inside `trx` (the caller holds the account's row lock, so no
     * new one can start meanwhile); what to run after the commit is returned.
     */
    async cancelAccountAttemptsIn(trx: Transaction<DB>, accountId: string): Promise<{ row: AttemptRow; effects: AttemptEffect[]; previousState: AttemptState }[]> {
      const running = await trx.selectFrom('auth_attempts').selectAll().where('account_id', '=', accountId).where('completed_at', 'is', null).forUpdate().execute();
      const done: { row: AttemptRow; effects: AttemptEffect[]; previousState: AttemptState }[] = [];
      for (const current of running) {
        const decided = transition(toSnapshot(current), { type: 'cancel' }, clock.now());
        if (!decided.ok) continue;
        const row = await write(trx, current, decided, {});
        if (row) done.push({ row, effects: decided.effects, previousState: current.state });
      }
      return done;
    },

    /** Cancels every attempt of the account still running (re-authentications, credential updates). */
    async cancelAccountAttempts(accountId: string): Promise<void> {
      const running = await db.selectFrom('auth_attempts').select('id').where('account_id', '=', accountId).where('completed_at', 'is', null).execute();
      for (const { id } of running) {
        const result = await store.apply(id, { type: 'cancel' });
        // Already ended meanwhile is fine; anything else is worth knowing.
        if (!result.ok && result.reason !== 'attempt_already_completed' && result.reason !== 'not_found') {
          deps.logger.warn({ accountId, attemptId: id, reason: result.reason }, 'could not cancel a running attempt of the account');
        }
      }
    },

    /** Writes columns outside the state machine (driver resume state), guarded by the step counter. */
    async patch(id: string, seq: number, columns: Pick<Updateable<AuthAttemptsTable>, 'resume_enc' | 'input_enc' | 'proxy'>): Promise<boolean> {
      const result = await db
        .updateTable('auth_attempts')
        .set({ ...columns, updated_at: clock.now() })
        .where('id', '=', id)
        .where('step_seq', '=', seq)
        .executeTakeFirst();
      const patched = Number(result.numUpdatedRows) > 0;
      if (patched) {
        // updated_at shows: cached copies on every node go.
        deps.changed?.(id);
        await deps.database.notify(ATTEMPT_CHANNEL, id).catch(() => undefined);
      }
      return patched;
    },

    afterCommit,
  };
  return store;
}

export type AttemptStore = ReturnType<typeof createAttemptStore>;
