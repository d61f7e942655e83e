import type { Kysely } from 'kysely';

/**
 * The proxy username is a secret like its password (issue 11): it moves out of the plain `proxy` JSON into
 * its own vault column, bound to the account row and field. Existing plain usernames are sealed at start
 * (the vault is not available to migrations) and read from the old place until then.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('accounts').addColumn('proxy_username_enc', 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('accounts').dropColumn('proxy_username_enc').execute();
}
