import { createHmac, randomBytes } from 'node:crypto';

/** Standard Webhooks signing: `whsec_` secrets, `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`. */

export const generateSecret = (): string => `whsec_${randomBytes(32).toString('base64')}`;

/** A secret a user may bring: `whsec_` + base64 of 24 to 64 bytes. */
export function isValidSecret(secret: string): boolean {
  const m = /^whsec_([A-Za-z0-9+/]+={0,2})$/.exec(secret);
  if (!m) return false;
  const bytes = Buffer.from(m[1]!, 'base64');
  return bytes.length >= 24 && bytes.length <= 64 && bytes.toString('base64').replace(/=+$/, '') === m[1]!.replace(/=+$/, '');
}

const keys = new Map<string, Buffer>();
/** The HMAC key of a `whsec_` secret: the bytes its base64 stands for (as Standard Webhooks libraries read it). */
function keyOf(secret: string): Buffer {
  let key = keys.get(secret);
  if (!key) {
    if (keys.size > 1000) keys.clear();
    key = Buffer.from(secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret, 'base64');
    keys.set(secret, key);
  }
  return key;
}

/** `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, with Node's native HMAC (the `standardwebhooks` signer hashes in JavaScript). */
function sign(secret: string, id: string, seconds: number, body: string): string {
  return `v1,${createHmac('sha256', keyOf(secret)).update(`${id}.${seconds}.${body}`).digest('base64')}`;
}

/** Headers of one try; several secrets (during a rotation) give space-separated signatures. */
export function signHeaders(secrets: string[], id: string, at: Date, body: string): Record<string, string> {
  // Whole seconds: the timestamp header has no fraction, and the signed timestamp must match it.
  const seconds = Math.floor(at.getTime() / 1000);
  return {
    'webhook-id': id,
    'webhook-timestamp': String(seconds),
    'webhook-signature': secrets.map((s) => sign(s, id, seconds, body)).join(' '),
  };
}
