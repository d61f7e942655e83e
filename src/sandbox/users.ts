import { createHash } from 'node:crypto';
import { SANDBOX_EMAIL_DOMAIN, parseTags, type SandboxTag } from './identities.js';

export type Platform = 'onlyfans' | 'fansly';
export const PLATFORMS: readonly Platform[] = ['onlyfans', 'fansly'];

/** One upstream request the platform saw for a user (GET /__sandbox/requests). */
export interface RequestRecord {
  platform: Platform;
  method: string;
  path: string;
  remote_address: string;
  user_agent: string | null;
  time: string;
  status: number;
  /** Whether the request carried a body (a `content-length` above 0, or a chunked body). */
  has_body: boolean;
  /** The `content-length` sent (null when none, e.g. chunked or bodyless). */
  body_bytes: number | null;
  content_type: string | null;
  /** Whether the answer rotated the session secret (a `Set-Cookie` with a new `sess` / `fansly-token`). */
  rotated: boolean;
}

/** A message the creator sent through the data API; seeded history is generated, these are stored. */
export interface SentMessage {
  id: number;
  chatId: string;
  text: string;
  /** 0 = free; otherwise the unlock price in USD. */
  price: number;
  createdAt: number;
}

export interface SandboxUser {
  platform: Platform;
  /** Normalised login identity: the email on OnlyFans, the username on Fansly. */
  key: string;
  /** Decimal digits, derived from `platform:key` so the same identity always gets the same id. */
  id: string;
  username: string;
  name: string;
  email: string;
  tags: ReadonlySet<SandboxTag>;
  /** Remote addresses that passed the email device check (the "new IP" gate). */
  trustedAddresses: Set<string>;
  /** Fansly device ids that passed the new-device email check. */
  trustedDevices: Set<string>;
  loginTimes: number[];
  lockedUntil: number;
  /** Upstream calls attributed to the user; `+flaky` fails every even-numbered one. */
  calls: number;
  sentMessages: SentMessage[];
  /** Messages ever sent (deleted ones included), so a new message never reuses an id. */
  sentCount: number;
  requests: RequestRecord[];
}

const LOCAL_PART = /^[a-z0-9._-]+(\+[a-z0-9._-]+)*$/;
/** Keeps the request log of a long-running sandbox bounded. */
const MAX_REQUESTS_PER_USER = 1000;

/**
 * The login identity of `input` on `platform`, or null when it is not a sandbox identity.
 * OnlyFans logs in by `<local>@sandbox.test`; Fansly by username, where `jane` and `jane@sandbox.test`
 * are the same account.
 */
export function identityKey(platform: Platform, input: string): string | null {
  const value = input.trim().toLowerCase();
  const suffix = `@${SANDBOX_EMAIL_DOMAIN}`;
  if (platform === 'onlyfans') {
    return value.endsWith(suffix) && LOCAL_PART.test(value.slice(0, -suffix.length)) ? value : null;
  }
  const username = value.endsWith(suffix) ? value.slice(0, -suffix.length) : value;
  return LOCAL_PART.test(username) ? username : null;
}

/** Users of one platform, created on first sight. */
export class UserDirectory {
  private readonly byKey = new Map<string, SandboxUser>();
  private readonly byId = new Map<string, SandboxUser>();

  constructor(readonly platform: Platform) {}

  /** The user for a key returned by `identityKey`, created when first seen. */
  get(key: string): SandboxUser {
    const known = this.byKey.get(key);
    if (known) return known;
    const local = key.split('@')[0] ?? key;
    const base = local.split('+')[0] ?? local;
    const user: SandboxUser = {
      platform: this.platform,
      key,
      id: this.freeId(key),
      username: base,
      name: base.charAt(0).toUpperCase() + base.slice(1),
      email: this.platform === 'onlyfans' ? key : `${key}@${SANDBOX_EMAIL_DOMAIN}`,
      tags: parseTags(local),
      trustedAddresses: new Set(),
      trustedDevices: new Set(),
      loginTimes: [],
      lockedUntil: 0,
      calls: 0,
      sentMessages: [],
      sentCount: 0,
      requests: [],
    };
    this.byKey.set(key, user);
    this.byId.set(user.id, user);
    return user;
  }

  find(key: string): SandboxUser | undefined {
    return this.byKey.get(key);
  }

  clear(): void {
    this.byKey.clear();
    this.byId.clear();
  }

  /**
   * Hash-derived so ids survive restarts; on the (astronomically rare) collision the next salt is tried,
   * so two identities never share an id.
   */
  private freeId(key: string): string {
    for (let salt = 0; ; salt++) {
      const id = derivedId(this.platform, salt === 0 ? key : `${key}#${salt}`);
      if (!this.byId.has(id)) return id;
    }
  }
}

/** OnlyFans ids are 12-digit numbers (safe as JSON numbers); Fansly ids 18-digit strings. */
function derivedId(platform: Platform, key: string): string {
  const digest = createHash('sha256').update(`${platform}:${key}`).digest();
  if (platform === 'onlyfans') return String(100_000_000_000 + (digest.readUIntBE(0, 6) % 900_000_000_000));
  return String(100_000_000_000_000_000n + (digest.readBigUInt64BE(0) % 900_000_000_000_000_000n));
}

export function recordRequest(user: SandboxUser, record: RequestRecord): void {
  user.requests.push(record);
  if (user.requests.length > MAX_REQUESTS_PER_USER) user.requests.shift();
}
