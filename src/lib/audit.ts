import type { Kysely, Transaction } from 'kysely';
import type { AuditAction, AuditActorType, AuditTargetType, DB } from '../db/schema.js';

/**
 * Who acts: an API key (`key_…`), the admin token, or FanGate itself (workers, the health monitor, the CLI).
 * It is passed along explicitly, from the route (its API key, the admin token, the console's operator) or the job
 * (the system) to the service that records the change. (An AsyncLocalStorage carried it implicitly before: on
 * Node.js 20 that puts a hook on every promise of the process: 3–4 % of a whoami's CPU profile.)
 */
export interface Actor {
  type: AuditActorType;
  id: string | null;
}

export const SYSTEM_ACTOR: Actor = { type: 'system', id: null };

/** One audited change. Never a secret in `details`: names of fields changed, ids, how, never values of secrets. */
export interface AuditEntry {
  orgId: string | null;
  action: AuditAction;
  targetType: AuditTargetType;
  targetId: string | null;
  details?: Record<string, unknown>;
  actor: Actor;
}

/**
 * The port domains get from the composition root: writes one audit row on the given connection, so a
 * caller inside a transaction records the change together with it (or not at all).
 */
export type AuditRecorder = (on: Kysely<DB> | Transaction<DB>, entry: AuditEntry) => Promise<void>;

/** For domains built without an audit log (CLI tools, tests of one domain). */
export const noAudit: AuditRecorder = async () => undefined;
