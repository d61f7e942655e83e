import { randomFillSync } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/**
 * CSPRNG bytes drawn a pool at a time (as Node's own randomUUID does): one `getrandom` per 4 KiB instead
 * of one per id, which every request pays for its request id. Each byte is used once.
 */
const pool = Buffer.alloc(4096);
let poolAt = pool.length;
function randomByte(): number {
  if (poolAt === pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  return pool[poolAt++]!;
}

/** Uniform base62 from the CSPRNG (rejection sampling avoids modulo bias). */
export function randomBase62(length: number): string {
  let out = '';
  while (out.length < length) {
    const byte = randomByte();
    if (byte < 248) out += ALPHABET[byte % 62];
  }
  return out;
}

export type IdPrefix = 'org' | 'key' | 'acct' | 'auth' | 'link' | 'wh' | 'evt' | 'whd' | 'req' | 'aud';

/** Prefixed random ids (`acct_…`): 22 base62 characters carry about 131 bits. */
export const newId = (prefix: IdPrefix): string => `${prefix}_${randomBase62(22)}`;
