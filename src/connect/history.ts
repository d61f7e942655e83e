import type { Kysely, Transaction } from 'kysely';
import type { AttemptState, DB } from '../db/schema.js';
import type { Clock } from '../lib/clock.js';
import type { AttemptChange } from './store.js';

export interface AttemptTransition {
  from: AttemptState | null;
  to: AttemptState;
  error_code: string | null;
  at: string;
}

/**
 * The state history of attempts (the operator console shows it): one row per state change, written by
 * an attempt hook inside the change's own transaction, so the history and the attempt never disagree.
 */
export function createAttemptHistory({ db, clock }: { db: Kysely<DB>; clock: Clock }) {
  return {
    async onAttemptChange(trx: Transaction<DB>, change: AttemptChange): Promise<void> {
      if (change.previousState === change.state) return;
      await trx
        .insertInto('attempt_transitions')
        .values({ attempt_id: change.attemptId, org_id: change.orgId, from_state: change.previousState, to_state: change.state, error_code: change.errorCode, at: clock.now() })
        .execute();
    },

    async of(orgId: string, attemptId: string): Promise<AttemptTransition[]> {
      const rows = await db
        .selectFrom('attempt_transitions')
        .select(['from_state', 'to_state', 'error_code', 'at'])
        .where('org_id', '=', orgId)
        .where('attempt_id', '=', attemptId)
        .orderBy('seq')
        .execute();
      return rows.map((r) => ({ from: r.from_state, to: r.to_state, error_code: r.error_code, at: r.at.toISOString() }));
    },
  };
}

export type AttemptHistory = ReturnType<typeof createAttemptHistory>;
