import { type Actor, type AuditRecorder, noAudit, SYSTEM_ACTOR } from '../lib/audit.js';
import { createHash } from 'node:crypto';
import { type Kysely, sql } from 'kysely';
import type { Database } from '../db/database.js';
import type { DB } from '../db/schema.js';
import { cacheListener, createNotifiedCache } from '../lib/notified-cache.js';
import { ApiError } from '../lib/errors.js';
import { newId, randomBase62 } from '../lib/ids.js';
import { decodeCursor, type Page, toPage } from '../lib/pagination.js';
import { ALL_SCOPES, type Scope } from './scopes.js';

export interface Organization {
  id: string;
  name: string;
}

export interface ApiKeyInfo {
  id: string;
  name: string;
  prefix: string;
  scopes: Scope[];
  created_at: Date;
  last_used_at: Date | null;
}

export interface CreatedApiKey extends ApiKeyInfo {
  /** The key itself: returned once, never stored. */
  key: string;
}

export interface Principal {
  organization: Organization;
  apiKey: ApiKeyInfo;
}

/** Keys are looked up by SHA-256: they carry ~190 random bits, so no slow hash is needed. */
export const hashApiKey = (key: string): string => createHash('sha256').update(key, 'utf8').digest('hex');

const toInfo = (row: { id: string; name: string; key_prefix: string; scopes: string[]; created_at: Date; last_used_at: Date | null }): ApiKeyInfo => ({
  id: row.id,
  name: row.name,
  prefix: row.key_prefix,
  scopes: row.scopes as Scope[],
  created_at: row.created_at,
  last_used_at: row.last_used_at,
});

/** NOTIFY channel of API-key changes: the payload is the id of a revoked key. */
export const API_KEYS_CHANNEL = 'fangate_api_keys';

export interface OrgServiceOptions {
  db: Kysely<DB>;
  /**
   * With it, every node keeps verified keys in memory (keyed by the key's hash) for up to
   * `principalCacheMs`, and a revocation on any node evicts them on every node at once through
   * LISTEN/NOTIFY (the NOTIFY is sent inside the revoking transaction, so it cannot be lost after a commit). While the LISTEN connection is down, keys are checked in the database on every request.
   * Without it (one-shot CLI commands), nothing is cached.
   */
  notifications?: Pick<Database, 'listen' | 'listenLive' | 'onListenGap'>;
  principalCacheMs?: number;
  /** The audit log (key creation and revocation are written with the change). */
  audit?: AuditRecorder;
}

/** Organisations and their API keys. Every request needs its key verified. */
export function createOrgService({ db, notifications, principalCacheMs = 60_000, audit = noAudit }: OrgServiceOptions) {
  // Touching last_used_at on every request would turn each read into a write.
  const lastTouched = new Map<string, number>();
  // Until the LISTEN is in place nothing is served from memory; without it (or a TTL) nothing ever is.
  const listener =
    notifications && principalCacheMs > 0
      ? cacheListener(notifications, API_KEYS_CHANNEL, {
          onNotify: (keyId) => evictKey(keyId),
          onGap: () => principals.clear(),
        })
      : undefined;
  const principals = createNotifiedCache<string, Principal>({
    ttlMs: principalCacheMs,
    maxEntries: 10_000,
    live: () => listener?.live() ?? false,
  });
  const evictKey = (keyId: string) => principals.invalidateWhere((principal) => principal.apiKey.id === keyId);

  /** Keys not revoked, with their organisation: what a principal is made of. */
  const activeKeys = () =>
    db
      .selectFrom('api_keys as k')
      .innerJoin('organizations as o', 'o.id', 'k.org_id')
      .select(['k.id', 'k.name', 'k.key_prefix', 'k.scopes', 'k.created_at', 'k.last_used_at', 'o.id as org_id', 'o.name as org_name'])
      .where('k.revoked_at', 'is', null);
  type ActiveKeyRow = NonNullable<Awaited<ReturnType<ReturnType<typeof activeKeys>['executeTakeFirst']>>>;
  const toPrincipal = (row: ActiveKeyRow): Principal => ({ organization: { id: row.org_id, name: row.org_name }, apiKey: toInfo(row) });

  async function lookup(hash: string): Promise<Principal | undefined> {
    const row = await activeKeys().where('k.key_hash', '=', hash).executeTakeFirst();
    if (!row) return undefined;
    const now = Date.now();
    if ((lastTouched.get(row.id) ?? 0) < now - 60_000) {
      if (lastTouched.size > 10_000) lastTouched.clear();
      lastTouched.set(row.id, now);
      // Not awaited: a bookkeeping write never delays (or fails) the request.
      void db.updateTable('api_keys').set({ last_used_at: sql`now()` }).where('id', '=', row.id).execute().catch(() => undefined);
    }
    return toPrincipal(row);
  }

  async function insertKey(orgId: string, key: string, name: string, scopes: readonly Scope[], actor: Actor): Promise<CreatedApiKey> {
    const row = await db.transaction().execute(async (trx) => {
      const inserted = await trx
        .insertInto('api_keys')
        .values({ id: newId('key'), org_id: orgId, name, key_hash: hashApiKey(key), key_prefix: key.slice(0, 10), scopes: [...scopes] })
        .returningAll()
        .executeTakeFirstOrThrow();
      await audit(trx, { orgId, action: 'api_key.created', targetType: 'api_key', targetId: inserted.id, details: { name, scopes: [...scopes] }, actor });
      return inserted;
    });
    return { ...toInfo(row), key };
  }

  const service = {
    async createOrganization(name: string): Promise<Organization> {
      const row = await db
        .insertInto('organizations')
        .values({ id: newId('org'), name })
        .onConflict((oc) => oc.column('name').doNothing())
        .returning(['id', 'name'])
        .executeTakeFirst();
      if (!row) throw new ApiError(409, 'organization_exists', `An organisation named "${name}" already exists.`);
      return row;
    },

    async findOrganization(idOrName: { id?: string; name?: string }): Promise<Organization | undefined> {
      let query = db.selectFrom('organizations').select(['id', 'name']);
      if (idOrName.id) query = query.where('id', '=', idOrName.id);
      if (idOrName.name) query = query.where('name', '=', idOrName.name);
      return query.executeTakeFirst();
    },

    /** An active (not revoked) key by id, with its organisation: console sessions check theirs on every page. */
    async findActiveKey(id: string): Promise<Principal | undefined> {
      const row = await activeKeys().where('k.id', '=', id).executeTakeFirst();
      return row ? toPrincipal(row) : undefined;
    },

    /** Every organisation by name (the admin's view in the operator console). */
    async listOrganizations(): Promise<Organization[]> {
      return db.selectFrom('organizations').select(['id', 'name']).orderBy('name').limit(1000).execute();
    },

    async ensureOrganization(name: string): Promise<Organization> {
      return (await service.findOrganization({ name })) ?? service.createOrganization(name);
    },

    async createApiKey(orgId: string, input: { name?: string; scopes?: readonly Scope[] }, actor: Actor): Promise<CreatedApiKey> {
      return insertKey(orgId, `fg_${randomBase62(32)}`, input.name ?? 'API key', input.scopes ?? ALL_SCOPES, actor);
    },

    /**
     * A first start with an empty database: organisation `default` with one API key (all scopes), or
     * undefined when any organisation exists. Safe when several nodes start at once: the unique
     * organisation name lets exactly one of them create it.
     */
    async firstRunKey(): Promise<{ organization: Organization; key: CreatedApiKey } | undefined> {
      const any = await db.selectFrom('organizations').select('id').limit(1).executeTakeFirst();
      if (any) return undefined;
      const row = await db
        .insertInto('organizations')
        .values({ id: newId('org'), name: 'default' })
        .onConflict((oc) => oc.column('name').doNothing())
        .returning(['id', 'name'])
        .executeTakeFirst();
      if (!row) return undefined;
      return { organization: row, key: await service.createApiKey(row.id, { name: 'first run' }, SYSTEM_ACTOR) };
    },

    /** FANGATE_BOOTSTRAP_API_KEY: the `default` organisation with this key exists after start. */
    async ensureBootstrapKey(key: string): Promise<{ organization: Organization; created: boolean }> {
      const organization = await service.ensureOrganization('default');
      const existing = await db.selectFrom('api_keys').select(['org_id']).where('key_hash', '=', hashApiKey(key)).executeTakeFirst();
      if (existing) return { organization, created: false };
      await insertKey(organization.id, key, 'bootstrap', ALL_SCOPES, SYSTEM_ACTOR);
      return { organization, created: true };
    },

    /** The organisation and key behind a bearer token, or undefined for unknown and revoked keys. */
    async authenticate(key: string): Promise<Principal | undefined> {
      const hash = hashApiKey(key);
      listener?.subscribe();
      return principals.load(hash, () => lookup(hash));
    },

    /** Stops listening for revocations (the process is shutting down). */
    async close(): Promise<void> {
      await listener?.close();
    },

    async listApiKeys(orgId: string, page: { limit: number; cursor?: string }): Promise<Page<ApiKeyInfo>> {
      const cursor = decodeCursor(page.cursor);
      let query = db
        .selectFrom('api_keys')
        .selectAll()
        .where('org_id', '=', orgId)
        .where('revoked_at', 'is', null)
        .orderBy('created_at', 'desc')
        .orderBy('id', 'desc')
        .limit(page.limit + 1);
      if (cursor) {
        query = query.where((eb) =>
          eb.or([eb('created_at', '<', cursor.createdAt), eb.and([eb('created_at', '=', cursor.createdAt), eb('id', '<', cursor.id)])]),
        );
      }
      return toPage(await query.execute(), page.limit, toInfo);
    },

    /**
     * Revoked keys fail authentication on every node at once: this node evicts the key right away, the
     * others on the NOTIFY sent after the commit. With `holding`, only a
     * key whose every scope is among them may be revoked (a `keys:write` key cannot revoke a
     * full-scope key): `forbidden` otherwise; `not_found` for no such active key.
     */
    async revokeApiKey(orgId: string, id: string, actor: Actor, holding?: readonly Scope[]): Promise<'revoked' | 'not_found' | 'forbidden'> {
      const outcome = await db.transaction().execute(async (trx) => {
        const key = await trx
          .selectFrom('api_keys')
          .select(['id', 'scopes'])
          .where('org_id', '=', orgId)
          .where('id', '=', id)
          .where('revoked_at', 'is', null)
          .forUpdate()
          .executeTakeFirst();
        if (!key) return 'not_found';
        if (holding && !key.scopes.every((scope) => holding.includes(scope as Scope))) return 'forbidden';
        await trx.updateTable('api_keys').set({ revoked_at: sql`now()` }).where('id', '=', key.id).execute();
        await audit(trx, { orgId, action: 'api_key.revoked', targetType: 'api_key', targetId: key.id, details: { scopes: key.scopes }, actor });
        // Inside the transaction: PostgreSQL delivers it exactly when the revocation commits, or never.
        await sql`select pg_notify(${API_KEYS_CHANNEL}, ${key.id})`.execute(trx);
        return 'revoked' as const;
      });
      if (outcome === 'revoked') evictKey(id);
      return outcome;
    },
  };
  return service;
}

export type OrgService = ReturnType<typeof createOrgService>;
