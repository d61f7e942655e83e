import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { Keyring } from './keyring.js';

/** Where a secret lives. The AAD binds a ciphertext to exactly this place. */
export interface SecretPlace {
  orgId: string;
  table: string;
  field: string;
  recordId: string;
}

export class VaultError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VaultError';
  }
}

const PREFIX = 'fgv1';

const aad = (place: SecretPlace) =>
  Buffer.from(`${PREFIX}|${place.orgId}|${place.table}.${place.field}|${place.recordId}`, 'utf8');

/** `fgv1:<kid>:<iv>:<tag>:<ciphertext>`, base64url parts: the key id travels with the data. */
export function keyIdOf(ciphertext: string): string | undefined {
  const parts = ciphertext.split(':');
  return parts.length === 5 && parts[0] === PREFIX ? parts[1] : undefined;
}

export function createVault(keyring: Keyring) {
  return {
    get currentKid() {
      return keyring.currentKid;
    },

    encrypt(plaintext: string, place: SecretPlace): string {
      const key = keyring.keys.get(keyring.currentKid)!;
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      cipher.setAAD(aad(place));
      const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
      return [PREFIX, keyring.currentKid, iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), body.toString('base64url')].join(':');
    },

    decrypt(ciphertext: string, place: SecretPlace): string {
      const [prefix, kid, iv, tag, body] = ciphertext.split(':');
      if (prefix !== PREFIX || !kid || iv === undefined || tag === undefined || body === undefined) {
        throw new VaultError(`${place.table}.${place.field}: not a FanGate ciphertext`);
      }
      const key = keyring.keys.get(kid);
      if (!key) throw new VaultError(`${place.table}.${place.field}: encrypted with key "${kid}", which is not in FANGATE_MASTER_KEY`);
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
        decipher.setAAD(aad(place));
        decipher.setAuthTag(Buffer.from(tag, 'base64url'));
        return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
      } catch {
        // GCM tells tampering and a wrong place (AAD) apart from nothing else: both are refusals.
        throw new VaultError(`${place.table}.${place.field}: ciphertext failed authentication`);
      }
    },

    encryptJson(value: unknown, place: SecretPlace): string {
      return this.encrypt(JSON.stringify(value), place);
    },

    decryptJson<T>(ciphertext: string, place: SecretPlace): T {
      return JSON.parse(this.decrypt(ciphertext, place)) as T;
    },

    /** True when the ciphertext is under an older key and `vault rotate` should rewrite it. */
    needsRotation(ciphertext: string): boolean {
      return keyIdOf(ciphertext) !== keyring.currentKid;
    },
  };
}

export type Vault = ReturnType<typeof createVault>;
