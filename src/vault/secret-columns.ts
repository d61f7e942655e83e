/**
 * Every encrypted column in the database. `fangate vault rotate` walks this list, and the
 * AAD of each value is built from `table`, `field` and the row's org and record id, so a
 * domain that adds an encrypted column adds it here.
 */
export interface SecretColumn {
  table: string;
  field: string;
  /** Column holding the organisation id. */
  orgColumn: string;
  /** Column whose value is the record id in the AAD (unique within the organisation). */
  recordColumn: string;
}

export const secretColumns: SecretColumn[] = [
  { table: 'idempotency_keys', field: 'response_enc', orgColumn: 'org_id', recordColumn: 'key' },
];
