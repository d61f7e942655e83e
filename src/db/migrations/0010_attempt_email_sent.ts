import type { Kysely } from 'kysely';

/** When the device-check email was last asked for (`email_sent_at` on the attempt; its cool-down). */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('auth_attempts').addColumn('email_sent_at', 'timestamptz').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('auth_attempts').dropColumn('email_sent_at').execute();
}
