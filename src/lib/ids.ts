import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** Uniform base62 from the CSPRNG (rejection sampling avoids modulo bias). */
export function randomBase62(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 248) out += ALPHABET[byte % 62];
      if (out.length === length) break;
    }
  }
  return out;
}

export type IdPrefix = 'org' | 'key' | 'acct' | 'auth' | 'link' | 'wh' | 'evt' | 'whd' | 'req' | 'aud';

/** Prefixed random ids (`acct_…`): 22 base62 characters carry about 131 bits. */
export const newId = (prefix: IdPrefix): string => `${prefix}_${randomBase62(22)}`;
