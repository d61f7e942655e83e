import type { ColumnType, Generated } from 'kysely';

/** Column types of every table; each domain documents its own tables in its migration. */
type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;

// The vocabulary of the typed columns: defined once here (the database is what holds these values) and
// re-exported by the domain that owns each concept.
/** The platforms FanGate has drivers for. */
export type PlatformName = 'onlyfans' | 'fansly';
/** How a connect logs in: credentials, a copied browser session, or the phone hand-off. */
export type AuthType = 'email_password' | 'raw_data' | 'mobile_app';
export type AccountStatus = 'active' | 'reauthenticating' | 'awaiting_2fa' | 'expired';
export type AttemptKind = 'connect' | 'reauthenticate' | 'credentials_update';
export type AttemptState =
  | 'pending'
  | 'awaiting_mobile_session'
  | 'needs_otp'
  | 'needs_app_otp'
  | 'needs_email'
  | 'needs_face_otp'
  | 'wrong_2fa_code_retry'
  | 'completed_success'
  | 'completed_failed';
/** The checkpoints a platform may put in front of a login. */
export type ChallengeKind = 'sms' | 'app' | 'email' | 'face';
/** A driver step, run as a job while the attempt is `pending`. */
export type AttemptStep = 'login' | 'validate_session' | 'submit_code' | 'confirm_selfie';

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
  /** While unfinished: the `nodeKey` of the process running the request (a dead owner's claim is taken over). */
  owner: ColumnType<string | null, string | null | undefined, string | null>;
  created_at: Timestamp;
}

export interface RateLimitCountersTable {
  key: string;
  count: number;
  window_ends_at: Timestamp;
}

export interface ProxyColumn {
  type: 'none' | 'country' | 'custom';
  country?: string;
  protocol?: 'http' | 'socks5';
  host?: string;
  port?: number;
  /** Rows written before migration 0030 only: the username is a vault secret (`proxy_username_enc`, attempt secrets). */
  username?: string;
  /** Pool proxies: which proxy of the country the account sticks to. */
  proxy_id?: string;
}

export interface AccountsTable {
  id: string;
  org_id: string;
  platform: PlatformName;
  display_name: string;
  status: AccountStatus;
  auth_type: AuthType;
  imported: Generated<boolean>;
  remember_credentials: Generated<boolean>;
  client_reference_id: string | null;
  platform_user_id: string;
  platform_username: string;
  platform_name: string;
  platform_avatar: string | null;
  proxy: ColumnType<ProxyColumn, string, string>;
  proxy_password_enc: string | null;
  proxy_username_enc: string | null;
  user_agent: string;
  device_id: string;
  credentials_enc: string | null;
  totp_secret_enc: string | null;
  session_enc: string | null;
  last_challenges: Generated<ChallengeKind[]>;
  health_check_interval_sec: Generated<number>;
  last_checked_at: Timestamp | null;
  next_check_at: Timestamp | null;
  expired_at: Timestamp | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  /** Consecutive passing failures of checks / re-authentications (backoff); 0 after a success. */
  check_failures: Generated<number>;
}

export interface AuthAttemptsTable {
  id: string;
  org_id: string;
  platform: PlatformName;
  auth_type: AuthType;
  kind: AttemptKind;
  state: AttemptState;
  progress: string;
  account_id: string | null;
  client_reference_id: string | null;
  display_name: string | null;
  force_connect: Generated<boolean>;
  remember_credentials: Generated<boolean>;
  otp_channel: ChallengeKind | null;
  phone_last4: string | null;
  email_mask: string | null;
  face_verification_url: string | null;
  attempts_remaining: number | null;
  wrong_codes: Generated<number>;
  challenges: Generated<ChallengeKind[]>;
  error_code: string | null;
  error_message: string | null;
  existing_account_id: string | null;
  input_enc: string | null;
  resume_enc: string | null;
  pending_code_enc: string | null;
  step: AttemptStep | null;
  step_seq: Generated<number>;
  proxy: ColumnType<ProxyColumn, string, string>;
  user_agent: string;
  device_id: string;
  mobile_code_hash: string | null;
  input_deadline: Timestamp | null;
  /** When the device-check email was last asked for (0010). */
  email_sent_at: Timestamp | null;
  overall_deadline: Timestamp;
  expires_at: Timestamp;
  prior_account_status: AccountStatus | null;
  /** The Link session the attempt was started from (0035). */
  link_session_id: string | null;
  version: Generated<number>;
  created_at: Timestamp;
  updated_at: Timestamp;
  completed_at: Timestamp | null;
}

export interface EventsTable {
  id: string;
  org_id: string;
  event: string;
  account_id: string | null;
  attempt_id: string | null;
  client_reference_id: string | null;
  payload: ColumnType<unknown, string, string>;
  created_at: Timestamp;
  /** Order of writing (per-account delivery order). */
  seq: ColumnType<string, never, never>;
  /** Fan-out to the endpoints done; null while waiting for a dispatcher. */
  dispatched_at: Timestamp | null;
}

export type WebhookAccountScope = 'global' | 'accounts';
export type WebhookDeliveryStatus = 'pending' | 'succeeded' | 'failed';
export type WebhookDisabledReason = 'endpoint_gone' | 'failing_for_5_days';

export interface WebhookEndpointsTable {
  id: string;
  org_id: string;
  endpoint_url: string;
  events: string[];
  account_scope: WebhookAccountScope;
  account_ids: string[];
  enabled: boolean;
  disabled_reason: WebhookDisabledReason | null;
  description: string | null;
  secret_enc: string;
  previous_secret_enc: string | null;
  previous_secret_expires_at: Timestamp | null;
  failing_since: Timestamp | null;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface WebhookDeliveriesTable {
  id: string;
  org_id: string;
  endpoint_id: string;
  event_id: string;
  event: string;
  order_key: string;
  seq: ColumnType<string, string | number, string | number>;
  status: WebhookDeliveryStatus;
  attempts: Generated<number>;
  last_response_status: number | null;
  manual_retry: Generated<boolean>;
  next_attempt_at: Timestamp | null;
  created_at: Timestamp;
  delivered_at: Timestamp | null;
  updated_at: Timestamp;
}

export interface WebhookDeliveryTriesTable {
  id: Generated<string>;
  delivery_id: string;
  attempted_at: Timestamp;
  response_status: number | null;
  duration_ms: number;
  error: string | null;
  /** The first 1 KB of the answer. */
  response_body: string | null;
}

export type LinkStatus = 'initialized' | 'pending' | 'awaiting_2fa' | 'completed' | 'failed' | 'expired' | 'cancelled';

export interface LinkSessionsTable {
  id: string;
  org_id: string;
  /** SHA-256 of the page's token; the token itself is in the link's URL only. */
  token_hash: string;
  status: LinkStatus;
  platform: 'onlyfans' | 'fansly';
  redirect_url: string;
  client_reference_id: string | null;
  reconnect_account_id: string | null;
  connection_id: string | null;
  proxy_country: string | null;
  theme: 'light' | 'dark' | 'auto';
  attempt_id: string | null;
  attempt_state: string | null;
  attempts_started: Generated<number>;
  error_code: string | null;
  error_message: string | null;
  cancel_step: string | null;
  finished_at: Timestamp | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  expires_at: Timestamp;
  completed_at: Timestamp | null;
}

/** Who did something the audit log records (DESIGN 11): an API key, the admin token, or FanGate itself. */
export type AuditActorType = 'api_key' | 'admin' | 'system';
/** What the audit log records (DESIGN 11). */
export type AuditAction =
  | 'account.created'
  | 'account.deleted'
  | 'account.credentials_updated'
  | 'account.invalidated'
  | 'api_key.created'
  | 'api_key.revoked'
  | 'webhook_endpoint.created'
  | 'webhook_endpoint.updated'
  | 'webhook_endpoint.deleted'
  | 'webhook_endpoint.secret_rotated'
  | 'vault.rotated';
export type AuditTargetType = 'account' | 'api_key' | 'webhook_endpoint' | 'vault';

export interface AuditEventsTable {
  id: string;
  /** null for what concerns every organisation (vault rotation). */
  org_id: string | null;
  actor_type: AuditActorType;
  /** The API key id (`key_…`), which admin token (`admin_token`, `local_admin_token`), or null for the system. */
  actor_id: string | null;
  action: AuditAction;
  target_type: AuditTargetType;
  target_id: string | null;
  /** Non-secret facts about the change (field names changed, how an account came to be, …). */
  details: ColumnType<Record<string, unknown>, string, string>;
  created_at: Timestamp;
}

/** One row per attempt state change, for the console's state history. */
export interface AttemptTransitionsTable {
  seq: Generated<string>;
  attempt_id: string;
  org_id: string;
  from_state: AttemptState | null;
  to_state: AttemptState;
  error_code: string | null;
  at: Timestamp;
}

/** An operator console session: the admin (every organisation) or an API key with scope `console` (its organisation). */
export interface ConsoleSessionsTable {
  /** SHA-256 of the session cookie's token. */
  token_hash: string;
  actor_type: 'admin' | 'api_key';
  /** `admin_token`, or the API key id. */
  actor_id: string;
  /** null for the admin (every organisation). */
  org_id: string | null;
  /** The session's CSRF token, sent back by every console form. */
  csrf: string;
  created_at: Timestamp;
  expires_at: Timestamp;
}

/** Access API token bucket per account (PostgreSQL: shared by every node). */
export interface AccessBucketsTable {
  account_id: string;
  tokens: number;
  allowed: boolean;
  updated_at: Timestamp;
}

export interface DB {
  link_sessions: LinkSessionsTable;
  events: EventsTable;
  webhook_endpoints: WebhookEndpointsTable;
  webhook_deliveries: WebhookDeliveriesTable;
  webhook_delivery_tries: WebhookDeliveryTriesTable;
  accounts: AccountsTable;
  auth_attempts: AuthAttemptsTable;
  organizations: OrganizationsTable;
  api_keys: ApiKeysTable;
  idempotency_keys: IdempotencyKeysTable;
  rate_limit_counters: RateLimitCountersTable;
  access_buckets: AccessBucketsTable;
  audit_events: AuditEventsTable;
  attempt_transitions: AttemptTransitionsTable;
  console_sessions: ConsoleSessionsTable;
}

export type { Generated };
