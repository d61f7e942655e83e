import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { type Kysely, sql, type Transaction } from 'kysely';
import { LIVE_NODE_SQL } from '../../db/database.js';
import type { DB } from '../../db/schema.js';
import type { Vault } from '../../vault/vault.js';
import { ApiError, validationError } from '../../lib/errors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * POST that creates something: honours the Idempotency-Key header. `'in-transaction'`: the handler writes
     * the key with its answer inside its own transaction (through `request.idempotency.run`), so the key, what
     * the request created and its jobs commit together, and no claim is held while it runs.
     */
    idempotent?: boolean | 'in-transaction';
  }
  interface FastifyRequest {
    idempotencyKey: string | null;
    idempotency: InTransactionIdempotency | null;
  }
}

/** Writes the key with the answer the request will give, inside the caller's transaction. */
export type IdempotencyClaim = (trx: Transaction<DB>, body: unknown) => Promise<void>;

export interface InTransactionIdempotency {
  /**
   * Runs `work` with the claim to call inside its transaction. When a concurrent request with the same key
   * committed first (PostgreSQL makes the second insert wait for the first transaction), the work is rolled
   * back and that request's answer is replayed instead.
   */
  run<T>(reply: FastifyReply, work: (claim: IdempotencyClaim) => Promise<T>): Promise<T | FastifyReply>;
}

/** Thrown inside the transaction when the key was committed by another request meanwhile: rolls it back. */
class KeyTakenMeanwhile extends Error {}

const place = (orgId: string, key: string) => ({ orgId, table: 'idempotency_keys', field: 'response_enc', recordId: key });
const KEY = /^[\x21-\x7e]{1,255}$/;

/** What makes two requests the same: method, URL and body. */
const requestHash = (request: FastifyRequest) =>
  createHash('sha256').update(`${request.method} ${request.url}\n${JSON.stringify(request.body ?? null)}`).digest('hex');

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
async function idempotencyPlugin(app: FastifyInstance, { db, vault, nodeKey }: { db: Kysely<DB>; vault: Vault; nodeKey: string }) {
  app.decorateRequest('idempotencyKey', null);
  app.decorateRequest('idempotency', null);
  const committedInTransaction = new WeakSet<object>();

  function replay(reply: FastifyReply, orgId: string, key: string, responseEnc: string) {
    const stored = vault.decryptJson<StoredResponse>(responseEnc, place(orgId, key));
    return reply.code(stored.status).header('idempotent-replayed', 'true').type(stored.contentType).serializer((x) => x as string).send(stored.body);
  }

  app.addHook('preHandler', async (request, reply) => {
    const key = request.headers['idempotency-key'];
    const mode = request.routeOptions.config.idempotent;
    if (!mode || key === undefined) return;
    if (typeof key !== 'string' || !KEY.test(key)) {
      throw validationError([{ field: 'Idempotency-Key', message: 'must be 1-255 printable ASCII characters' }]);
    }
    const orgId = request.principal.organization.id;
    const hash = requestHash(request);

    const live = sql<boolean>`idempotency_keys.created_at >= now() - interval '24 hours'`;
    if (mode === 'in-transaction') {
      const first = await db.selectFrom('idempotency_keys').selectAll().where('org_id', '=', orgId).where('key', '=', key).where(live).executeTakeFirst();
      if (first) return answerFrom(first);
      request.idempotencyKey = key;
      request.idempotency = {
        async run(reply, work) {
          const claim: IdempotencyClaim = async (trx, body) => {
            const stored: StoredResponse = { status: 200, contentType: 'application/json; charset=utf-8', body: JSON.stringify(body) };
            const written = await trx
              .insertInto('idempotency_keys')
              .values({ org_id: orgId, key, request_hash: hash, status_code: stored.status, response_enc: vault.encryptJson(stored, place(orgId, key)) })
              .onConflict((oc) =>
                oc.columns(['org_id', 'key']).doUpdateSet({ request_hash: hash, status_code: stored.status, response_enc: (eb) => eb.ref('excluded.response_enc'), created_at: sql`now()` })
                  .where(sql<boolean>`idempotency_keys.created_at < now() - interval '24 hours'`),
              )
              .returning('key')
              .executeTakeFirst();
            if (!written) throw new KeyTakenMeanwhile();
            committedInTransaction.add(request);
          };
          try {
            return await work(claim);
          } catch (error) {
            if (!(error instanceof KeyTakenMeanwhile)) throw error;
            const winner = await db.selectFrom('idempotency_keys').selectAll().where('org_id', '=', orgId).where('key', '=', key).executeTakeFirstOrThrow();
            return (await answerFrom(winner)) ?? reply;
          }
        },
      };
      return;
    }

    // Claim the key (owned by this process), or take over an expired claim or one whose process died.
    const claimed = await db
      .insertInto('idempotency_keys')
      .values({ org_id: orgId, key, request_hash: hash, owner: nodeKey })
      .onConflict((oc) =>
        oc.columns(['org_id', 'key']).doUpdateSet({ request_hash: hash, status_code: null, response_enc: null, owner: nodeKey, created_at: sql`now()` })
          .where(sql<boolean>`idempotency_keys.created_at < now() - interval '24 hours'
            or (idempotency_keys.status_code is null and (
              (idempotency_keys.owner is not null and not ${sql.raw(LIVE_NODE_SQL('idempotency_keys.owner'))})
              -- claims written before owners were recorded keep their one-minute lease
              or (idempotency_keys.owner is null and idempotency_keys.created_at < now() - interval '1 minute')))`),
      )
      .returning('key')
      .executeTakeFirst();
    if (claimed) {
      request.idempotencyKey = key;
      return;
    }
    return answerFrom(await db.selectFrom('idempotency_keys').selectAll().where('org_id', '=', orgId).where('key', '=', key).executeTakeFirstOrThrow());

    /** The first request's answer, or why there is none to give. */
    function answerFrom(first: { request_hash: string; status_code: number | null; response_enc: string | null }) {
      if (first.request_hash !== hash) {
        throw new ApiError(422, 'idempotency_key_reused', 'This Idempotency-Key was used with a different request; use a new key.');
      }
      if (first.status_code === null || first.response_enc === null) {
        throw new ApiError(409, 'idempotency_key_in_use', 'A request with this Idempotency-Key is still running; retry shortly.', {
          retryable: true,
          retryAfterSec: 1,
        });
      }
      return replay(reply, orgId!, key as string, first.response_enc);
    }
  });

  app.addHook('onSend', async (request, reply, payload) => {
    const key = request.idempotencyKey;
    if (!key || committedInTransaction.has(request)) return payload;
    const orgId = request.principal.organization.id;
    const inTransaction = request.routeOptions.config.idempotent === 'in-transaction';
    if (reply.statusCode >= 500 || reply.statusCode === 429) {
      // Nothing happened: let the client try again with the same key.
      if (!inTransaction) await db.deleteFrom('idempotency_keys').where('org_id', '=', orgId).where('key', '=', key).execute();
      return payload;
    }
    const stored: StoredResponse = {
      status: reply.statusCode,
      contentType: String(reply.getHeader('content-type') ?? 'application/json; charset=utf-8'),
      body: typeof payload === 'string' ? payload : Buffer.isBuffer(payload) ? payload.toString('utf8') : '',
    };
    const responseEnc = vault.encryptJson(stored, place(orgId, key));
    if (inTransaction) {
      // Refused before anything was written (no claim was held): this refusal is the key's answer, unless a
      // concurrent request with the key committed first.
      await db.insertInto('idempotency_keys').values({ org_id: orgId, key, request_hash: requestHash(request), status_code: reply.statusCode, response_enc: responseEnc })
        .onConflict((oc) => oc.columns(['org_id', 'key']).doNothing()).execute();
      return payload;
    }
    await db
      .updateTable('idempotency_keys')
      .set({ status_code: reply.statusCode, response_enc: responseEnc, owner: null })
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
