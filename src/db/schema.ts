import type { ColumnType, Generated } from 'kysely';

/** Column types of every table; each domain documents its own tables in its migration. */
type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;

export interface OrganizationsTable {
  id: string;
  name: string;
  created_at: Timestamp;
}

export interface ApiKeysTable {
  id: string;
  org_id: string;
  name: string;
  /** SHA-256 of the key; the key itself is shown once and never stored. */
  key_hash: string;
  /** First characters of the key, so a person can tell keys apart. */
  key_prefix: string;
  scopes: string[];
  created_at: Timestamp;
  last_used_at: Timestamp | null;
  revoked_at: Timestamp | null;
}

export interface IdempotencyKeysTable {
  org_id: string;
  key: string;
  request_hash: string;
  /** null while the first request is still running. */
  status_code: number | null;
  /** The first response, encrypted: it may hold secrets (a new API key, a signing secret). */
  response_enc: string | null;
  created_at: Timestamp;
}

export interface RateLimitCountersTable {
  key: string;
  count: number;
  window_ends_at: Timestamp;
}

export interface DB {
  organizations: OrganizationsTable;
  api_keys: ApiKeysTable;
  idempotency_keys: IdempotencyKeysTable;
  rate_limit_counters: RateLimitCountersTable;
}

export type { Generated };
