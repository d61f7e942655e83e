import type { Migration } from 'kysely';
import * as foundation from './0001_foundation.js';
import * as connect from './0002_connect.js';
import * as access from './0003_access.js';
import * as webhooks from './0004_webhooks.js';
import * as link from './0005_link.js';
import * as attemptList from './0006_attempt_list.js';
import * as attemptEmailSent from './0010_attempt_email_sent.js';
import * as audit from './0020_audit.js';
import * as consoleSessions from './0021_console_sessions.js';
import * as proxyUsernameSecret from './0030_proxy_username_secret.js';
import * as idempotencyOwner from './0031_idempotency_owner.js';
import * as accountChanges from './0032_account_changes.js';
import * as attemptSweepIndexes from './0033_attempt_sweep_indexes.js';
import * as webhookHeadIndexes from './0034_webhook_head_indexes.js';
import * as attemptLinkSession from './0035_attempt_link_session.js';

/** Every migration, in order. Names never change once released; add new ones at the end. */
export const migrations: Record<string, Migration> = {
  '0001_foundation': foundation,
  '0002_connect': connect,
  '0003_access': access,
  '0004_webhooks': webhooks,
  '0005_link': link,
  '0006_attempt_list': attemptList,
  '0010_attempt_email_sent': attemptEmailSent,
  '0020_audit': audit,
  '0021_console_sessions': consoleSessions,
  '0030_proxy_username_secret': proxyUsernameSecret,
  '0031_idempotency_owner': idempotencyOwner,
  '0032_account_changes': accountChanges,
  '0033_attempt_sweep_indexes': attemptSweepIndexes,
  '0034_webhook_head_indexes': webhookHeadIndexes,
  '0035_attempt_link_session': attemptLinkSession,
};
