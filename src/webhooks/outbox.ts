import type { Kysely, Transaction } from 'kysely';
import type { DB } from '../db/schema.js';
import { newId } from '../lib/ids.js';

export type EventName =
  | 'accounts.connected'
  | 'accounts.reconnected'
  | 'accounts.session_expired'
  | 'accounts.authentication_failed'
  | 'accounts.otp_code_required'
  | 'accounts.email_code_required'
  | 'accounts.face_otp_required'
  | 'accounts.disconnected'
  | 'accounts.updated'
  | 'link.completed'
  | 'link.failed'
  | 'webhooks.test';

export interface OutboxEvent {
  orgId: string;
  event: EventName;
  accountId: string | null;
  attemptId: string | null;
  clientReferenceId: string | null;
  /** `{ account, attempt }` as the API shows them: never a secret. */
  payload: { account: unknown; attempt: unknown };
}

/**
 * Transactional outbox: an event row is written in the same transaction as the state change
 * that caused it, so an event exists exactly when its change does. Delivery reads from here.
 */
export async function recordEvent(db: Kysely<DB> | Transaction<DB>, event: OutboxEvent): Promise<string> {
  const id = newId('evt');
  await db
    .insertInto('events')
    .values({
      id,
      org_id: event.orgId,
      event: event.event,
      account_id: event.accountId,
      attempt_id: event.attemptId,
      client_reference_id: event.clientReferenceId,
      payload: JSON.stringify(event.payload),
    })
    .execute();
  return id;
}
