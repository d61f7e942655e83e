import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { type Kysely, sql } from 'kysely';
import type { DB } from '../../db/schema.js';
import type { Vault } from '../../vault/vault.js';
import { ApiError, validationError } from '../../lib/errors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** POST that creates something: honours the Idempotency-Key header. */
    idempotent?: boolean;
  }
  interface FastifyRequest {
    idempotencyKey: string | null;
  }
}

const place = (orgId: string, key: string) => ({ orgId, table: 'idempotency_keys', field: 'response_enc', recordId: key });
const KEY = /^[\x21-\x7e]{1,255}$/;

interface StoredResponse {
  status: number;
  contentType: string;
  body: string;
}

/**
 * Stripe-style idempotency: the first request with a key claims it (a row with no response
 * yet), runs, and stores its response encrypted (it may hold a new API key or secret).
 * A retry with the same key and body within 24 h gets that response back; a different body
 * is refused; a retry while the first is still running is told to wait.
 */
async function idempotencyPlugin(app: FastifyInstance, { db, vault }: { db: Kysely<DB>; vault: Vault }) {
  app.decorateRequest('idempotencyKey', null);

  app.addHook('preHandler', async (request, reply) => {
    const key = request.headers['idempotency-key'];
    if (!request.routeOptions.config.idempotent || key === undefined) return;
    if (typeof key !== 'string' || !KEY.test(key)) {
      throw validationError([{ field: 'Idempotency-Key', message: 'must be 1-255 printable ASCII characters' }]);
    }
    const orgId = request.principal.organization.id;
    const hash = createHash('sha256')
      .update(`${request.method} ${request.url}\n${JSON.stringify(request.body ?? null)}`)
      .digest('hex');

    // Claim the key, or take over an expired claim.
    const claimed = await db
      .insertInto('idempotency_keys')
      .values({ org_id: orgId, key, request_hash: hash })
      .onConflict((oc) =>
        oc.columns(['org_id', 'key']).doUpdateSet({ request_hash: hash, status_code: null, response_enc: null, created_at: sql`now()` })
          // A claim whose request died before answering is released after a minute.
          .where(sql<boolean>`idempotency_keys.created_at < now() - interval '24 hours'
            or (idempotency_keys.status_code is null and idempotency_keys.created_at < now() - interval '1 minute')`),
      )
      .returning('key')
      .executeTakeFirst();
    if (claimed) {
      request.idempotencyKey = key;
      return;
    }

    const first = await db.selectFrom('idempotency_keys').selectAll().where('org_id', '=', orgId).where('key', '=', key).executeTakeFirstOrThrow();
    if (first.request_hash !== hash) {
      throw new ApiError(422, 'idempotency_key_reused', 'This Idempotency-Key was used with a different request; use a new key.');
    }
    if (first.status_code === null || first.response_enc === null) {
      throw new ApiError(409, 'idempotency_key_in_use', 'A request with this Idempotency-Key is still running; retry shortly.', {
        retryable: true,
        retryAfterSec: 1,
      });
    }
    const stored = vault.decryptJson<StoredResponse>(first.response_enc, place(orgId, key));
    return reply.code(stored.status).header('idempotent-replayed', 'true').type(stored.contentType).serializer((x) => x as string).send(stored.body);
  });

  app.addHook('onSend', async (request, reply, payload) => {
    const key = request.idempotencyKey;
    if (!key) return payload;
    const orgId = request.principal.organization.id;
    if (reply.statusCode >= 500 || reply.statusCode === 429) {
      // Nothing happened: let the client try again with the same key.
      await db.deleteFrom('idempotency_keys').where('org_id', '=', orgId).where('key', '=', key).execute();
      return payload;
    }
    const stored: StoredResponse = {
      status: reply.statusCode,
      contentType: String(reply.getHeader('content-type') ?? 'application/json; charset=utf-8'),
      body: typeof payload === 'string' ? payload : Buffer.isBuffer(payload) ? payload.toString('utf8') : '',
    };
    await db
      .updateTable('idempotency_keys')
      .set({ status_code: reply.statusCode, response_enc: vault.encryptJson(stored, place(orgId, key)) })
      .where('org_id', '=', orgId)
      .where('key', '=', key)
      .execute();
    return payload;
  });
}

/** Forgets keys past their 24 hours (run by the workers' sweep); returns how many. */
export async function purgeExpiredIdempotencyKeys(db: Kysely<DB>, now: Date): Promise<number> {
  const result = await db
    .deleteFrom('idempotency_keys')
    .where('created_at', '<', new Date(now.getTime() - 24 * 3_600_000))
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}

export default fp(idempotencyPlugin, { name: 'fangate-idempotency' });
