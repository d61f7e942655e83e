import { AsyncLocalStorage } from 'node:async_hooks';
import type { Kysely, Transaction } from 'kysely';
import type { AuditAction, AuditActorType, AuditTargetType, DB } from '../db/schema.js';

/** Who acts: an API key (`key_…`), the admin token, or FanGate itself (workers, the health monitor, the CLI). */
export interface Actor {
  type: AuditActorType;
  id: string | null;
}

export const SYSTEM_ACTOR: Actor = { type: 'system', id: null };

/**
 * The actor of the work in progress. `http/` enters it once a request is authenticated (API key, admin
 * token, console session); everything that runs outside a request (jobs, schedules, the CLI) is the system.
 * Domains need not pass it through every call: the audit recorder reads it where the change is written.
 */
const current = new AsyncLocalStorage<Actor>();

export const runAsActor = <T>(actor: Actor, fn: () => T): T => current.run(actor, fn);
export const currentActor = (): Actor => current.getStore() ?? SYSTEM_ACTOR;

/** One audited change. Never a secret in `details`: names of fields changed, ids, how, never values of secrets. */
export interface AuditEntry {
  orgId: string | null;
  action: AuditAction;
  targetType: AuditTargetType;
  targetId: string | null;
  details?: Record<string, unknown>;
  /** Defaults to the current actor. */
  actor?: Actor;
}

/**
 * The port domains get from the composition root: writes one audit row on the given connection, so a
 * caller inside a transaction records the change together with it (or not at all).
 */
export type AuditRecorder = (on: Kysely<DB> | Transaction<DB>, entry: AuditEntry) => Promise<void>;

/** For domains built without an audit log (CLI tools, tests of one domain). */
export const noAudit: AuditRecorder = async () => undefined;
