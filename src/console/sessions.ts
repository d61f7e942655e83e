import { createHash } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { DB } from '../db/schema.js';
import type { Clock } from '../lib/clock.js';
import { randomBase62 } from '../lib/ids.js';

export const SESSION_TTL_MS = 12 * 3600 * 1000;

export interface ConsoleSession {
  actorType: 'admin' | 'api_key';
  actorId: string;
  /** null: the admin, every organisation. */
  orgId: string | null;
  csrf: string;
  expiresAt: Date;
}

const hash = (token: string) => createHash('sha256').update(token, 'utf8').digest('hex');

/** Server-side console sessions: the cookie holds 256 random bits; the database their hash. */
export function createConsoleSessions({ db, clock }: { db: Kysely<DB>; clock: Clock }) {
  return {
    async create(who: { actorType: 'admin' | 'api_key'; actorId: string; orgId: string | null }): Promise<{ token: string; session: ConsoleSession }> {
      const token = randomBase62(43);
      const now = clock.now();
      const session: ConsoleSession = { ...who, csrf: randomBase62(32), expiresAt: new Date(now.getTime() + SESSION_TTL_MS) };
      // Expired sessions go as new ones come.
      await db.deleteFrom('console_sessions').where('expires_at', '<', now).execute();
      await db
        .insertInto('console_sessions')
        .values({ token_hash: hash(token), actor_type: who.actorType, actor_id: who.actorId, org_id: who.orgId, csrf: session.csrf, created_at: now, expires_at: session.expiresAt })
        .execute();
      return { token, session };
    },

    async find(token: string | undefined): Promise<ConsoleSession | undefined> {
      if (!token || token.length > 100) return undefined;
      const row = await db.selectFrom('console_sessions').selectAll().where('token_hash', '=', hash(token)).where('expires_at', '>', clock.now()).executeTakeFirst();
      return row ? { actorType: row.actor_type, actorId: row.actor_id, orgId: row.org_id, csrf: row.csrf, expiresAt: row.expires_at } : undefined;
    },

    async remove(token: string | undefined): Promise<void> {
      if (token) await db.deleteFrom('console_sessions').where('token_hash', '=', hash(token)).execute();
    },
  };
}

export type ConsoleSessions = ReturnType<typeof createConsoleSessions>;
