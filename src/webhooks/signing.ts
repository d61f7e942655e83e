import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';

/** Standard Webhooks signing: `whsec_` secrets, `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`. */

export const generateSecret = (): string => `whsec_${randomBytes(32).toString('base64')}`;

/** A secret a user may bring: `whsec_` + base64 of 24 to 64 bytes. */
export function isValidSecret(secret: string): boolean {
  const m = /^whsec_([A-Za-z0-9+/]+={0,2})$/.exec(secret);
  if (!m) return false;
  const bytes = Buffer.from(m[1]!, 'base64');
  return bytes.length >= 24 && bytes.length <= 64 && bytes.toString('base64').replace(/=+$/, '') === m[1]!.replace(/=+$/, '');
}

const signers = new Map<string, Webhook>();
function signer(secret: string): Webhook {
  let s = signers.get(secret);
  if (!s) {
    if (signers.size > 1000) signers.clear();
    s = new Webhook(secret);
    signers.set(secret, s);
  }
  return s;
}

/** Headers of one try; several secrets (during a rotation) give space-separated signatures. */
export function signHeaders(secrets: string[], id: string, at: Date, body: string): Record<string, string> {
  // Whole seconds: the timestamp header has no fraction, and the signed timestamp must match it.
  const ts = new Date(Math.floor(at.getTime() / 1000) * 1000);
  return {
    'webhook-id': id,
    'webhook-timestamp': String(ts.getTime() / 1000),
    'webhook-signature': secrets.map((s) => signer(s).sign(id, ts, body)).join(' '),
  };
}
