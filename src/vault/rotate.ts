import { type Kysely, sql } from 'kysely';
import { keyIdOf, type Vault } from './vault.js';
import { type SecretColumn, secretColumns } from './secret-columns.js';

export interface RotationReport {
  rotated: number;
  perColumn: Record<string, number>;
}

/**
 * Re-encrypts every secret under the current key, in small batches, while the service runs.
 * Each row is rewritten only if it still holds the ciphertext that was read (compare and
 * swap), so a concurrent write of a fresh value is never overwritten with a stale one.
 */
export async function rotateSecrets(db: Kysely<any>, vault: Vault, columns: SecretColumn[] = secretColumns, batchSize = 200): Promise<RotationReport> {
  const report: RotationReport = { rotated: 0, perColumn: {} };
  const current = `fgv1:${vault.currentKid}:%`;
  for (const column of columns) {
    const name = `${column.table}.${column.field}`;
    report.perColumn[name] = 0;
    let after = '';
    for (;;) {
      const rows = await sql<{ org: string; rec: string; value: string }>`
        select ${sql.ref(column.orgColumn)} as org, ${sql.ref(column.recordColumn)} as rec, ${sql.ref(column.field)} as value
        from ${sql.table(column.table)}
        where ${sql.ref(column.field)} is not null and ${sql.ref(column.field)} not like ${current}
          and (${sql.ref(column.orgColumn)} || '/' || ${sql.ref(column.recordColumn)}) > ${after}
        order by (${sql.ref(column.orgColumn)} || '/' || ${sql.ref(column.recordColumn)})
        limit ${batchSize}`.execute(db);
      if (rows.rows.length === 0) break;
      for (const row of rows.rows) {
        after = `${row.org}/${row.rec}`;
        if (!keyIdOf(row.value)) continue;
        const place = { orgId: row.org, table: column.table, field: column.field, recordId: row.rec };
        const fresh = vault.encrypt(vault.decrypt(row.value, place), place);
        const result = await sql`
          update ${sql.table(column.table)} set ${sql.ref(column.field)} = ${fresh}
          where ${sql.ref(column.orgColumn)} = ${row.org} and ${sql.ref(column.recordColumn)} = ${row.rec}
            and ${sql.ref(column.field)} = ${row.value}`.execute(db);
        const changed = Number(result.numAffectedRows ?? 0);
        report.perColumn[name]! += changed;
        report.rotated += changed;
      }
    }
  }
  return report;
}
