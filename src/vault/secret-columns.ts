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
  ...['credentials_enc', 'totp_secret_enc', 'session_enc', 'proxy_password_enc', 'proxy_username_enc'].map((field) => ({
    table: 'accounts',
    field,
    orgColumn: 'org_id',
    recordColumn: 'id',
  })),
  ...['input_enc', 'resume_enc', 'pending_code_enc'].map((field) => ({ table: 'auth_attempts', field, orgColumn: 'org_id', recordColumn: 'id' })),
  ...['secret_enc', 'previous_secret_enc'].map((field) => ({ table: 'webhook_endpoints', field, orgColumn: 'org_id', recordColumn: 'id' })),
];
