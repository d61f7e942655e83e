import type { Kysely, Transaction } from 'kysely';
import type { AuditAction, AuditEventsTable, DB } from '../db/schema.js';
import type { AuditEntry } from '../lib/audit.js';
import { newId } from '../lib/ids.js';
import { decodeCursor, type Page, toPage } from '../lib/pagination.js';
import type { Selectable } from 'kysely';

type AuditRow = Selectable<AuditEventsTable>;

/** The audit event as `GET /api/audit-events` returns it (DESIGN 11). */
export interface AuditEventView {
  id: string;
  actor: { type: AuditRow['actor_type']; id: string | null };
  action: AuditAction;
  target_type: AuditRow['target_type'];
  target_id: string | null;
  created_at: string;
  details: Record<string, unknown>;
}

export const serializeAuditEvent = (row: AuditRow): AuditEventView => ({
  id: row.id,
  actor: { type: row.actor_type, id: row.actor_id },
  action: row.action,
  target_type: row.target_type,
  target_id: row.target_id,
  created_at: row.created_at.toISOString(),
  details: row.details ?? {},
});

/** Keys whose values must never reach the log, whatever a caller puts in `details`. */
const SECRET_KEY = /pass|secret|token|cookie|xbc|x-bc|session|key$|^key|code|credential/i;

const ALLOWED = new Set(['fields', 'key_id', 'scopes', 'old_secret_valid_until', 'totp_secret_given']);

function scrub(details: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(details)) {
    if (v === undefined) continue;
    if (SECRET_KEY.test(k) && !ALLOWED.has(k)) continue;
    out[k] = v;
  }
  return out;
}

export interface AuditListQuery {
  limit: number;
  cursor?: string;
  action?: AuditAction;
  target_id?: string;
}

/** The audit log: owns `audit_events`; other domains write through the recorder handed to them. */
export function createAuditLog({ db }: { db: Kysely<DB> }) {
  return {
    /** The AuditRecorder port: one row on `on` (a transaction to record a change with it). */
    async record(on: Kysely<DB> | Transaction<DB>, entry: AuditEntry): Promise<void> {
      const { actor } = entry;
      await on
        .insertInto('audit_events')
        .values({
          id: newId('aud'),
          org_id: entry.orgId,
          actor_type: actor.type,
          actor_id: actor.id,
          action: entry.action,
          target_type: entry.targetType,
          target_id: entry.targetId,
          details: JSON.stringify(scrub(entry.details ?? {})),
          created_at: new Date(),
        })
        .execute();
    },

    /**
     * An organisation's events, newest first, with those concerning every organisation (vault rotation);
     * `orgId` null (the admin in the console) lists every organisation's.
     */
    async list(orgId: string | null, query: AuditListQuery): Promise<Page<AuditEventView>> {
      const cursor = decodeCursor(query.cursor);
      let q = db.selectFrom('audit_events').selectAll().orderBy('created_at', 'desc').orderBy('id', 'desc').limit(query.limit + 1);
      if (orgId !== null) q = q.where((eb) => eb.or([eb('org_id', '=', orgId), eb('org_id', 'is', null)]));
      if (query.action) q = q.where('action', '=', query.action);
      if (query.target_id) q = q.where('target_id', '=', query.target_id);
      if (cursor) {
        q = q.where((eb) => eb.or([eb('created_at', '<', cursor.createdAt), eb.and([eb('created_at', '=', cursor.createdAt), eb('id', '<', cursor.id)])]));
      }
      return toPage(await q.execute(), query.limit, serializeAuditEvent);
    },
  };
}

export type AuditLog = ReturnType<typeof createAuditLog>;
export const AUDIT_ACTIONS: readonly AuditAction[] = [
  'account.created',
  'account.deleted',
  'account.credentials_updated',
  'account.invalidated',
  'api_key.created',
  'api_key.revoked',
  'webhook_endpoint.created',
  'webhook_endpoint.updated',
  'webhook_endpoint.deleted',
  'webhook_endpoint.secret_rotated',
  'vault.rotated',
];
