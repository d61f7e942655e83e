import type { Kysely } from 'kysely';

/** `GET /api/authenticate` lists an organisation's attempts newest first, with cursor pagination. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.createIndex('auth_attempts_org_created_idx').on('auth_attempts').columns(['org_id', 'created_at', 'id']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('auth_attempts_org_created_idx').execute();
}
