import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError } from '../config.js';

export interface Keyring {
  /** The key new ciphertexts are written with (the first of FANGATE_MASTER_KEY). */
  currentKid: string;
  keys: Map<string, Buffer>;
}

const KID = /^[A-Za-z0-9_-]{1,32}$/;

/** Parses `kid:base64key[,kid:base64key…]`; every key is 32 bytes (AES-256). */
export function parseKeyring(spec: string): Keyring {
  const keys = new Map<string, Buffer>();
  const problems: string[] = [];
  for (const [index, entry] of spec.split(',').map((s) => s.trim()).filter(Boolean).entries()) {
    const sep = entry.indexOf(':');
    const kid = sep > 0 ? entry.slice(0, sep) : '';
    const key = Buffer.from(sep > 0 ? entry.slice(sep + 1) : '', 'base64');
    if (!KID.test(kid)) problems.push(`FANGATE_MASTER_KEY entry ${index + 1}: key id must be 1-32 of A-Z a-z 0-9 _ -`);
    else if (key.length !== 32) problems.push(`FANGATE_MASTER_KEY key "${kid}": must be 32 bytes in base64 (got ${key.length})`);
    else if (keys.has(kid)) problems.push(`FANGATE_MASTER_KEY key id "${kid}" appears twice`);
    else keys.set(kid, key);
  }
  const currentKid = keys.keys().next().value;
  if (problems.length > 0 || currentKid === undefined) {
    throw new ConfigError(problems.length > 0 ? problems : ['FANGATE_MASTER_KEY holds no key']);
  }
  return { currentKid, keys };
}

export function generateKeySpec(kid = `k${new Date().toISOString().slice(0, 10).replaceAll('-', '')}`): string {
  return `${kid}:${randomBytes(32).toString('base64')}`;
}

/**
 * The keyring FanGate runs with. An explicit FANGATE_MASTER_KEY always wins. Embedded mode
 * without one keeps a generated key beside the database (0600) so `npm start` just works;
 * PostgreSQL mode refuses, because a key living on one node's disk would strand the others.
 */
export async function loadKeyring(options: {
  masterKey: string | undefined;
  databaseUrl: string | undefined;
  dataDir: string;
  logger: Logger;
}): Promise<Keyring> {
  if (options.masterKey) return parseKeyring(options.masterKey);
  if (options.databaseUrl) {
    throw new ConfigError([
      'FANGATE_MASTER_KEY is required with DATABASE_URL (every node must share the same keyring). ' +
        'Create one with `fangate vault new-key` and set FANGATE_MASTER_KEY to its output.',
    ]);
  }
  const file = join(options.dataDir, 'master.key');
  let spec: string;
  try {
    spec = (await readFile(file, 'utf8')).trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    await mkdir(options.dataDir, { recursive: true, mode: 0o700 });
    spec = generateKeySpec('local1');
    await writeFile(file, `${spec}\n`, { mode: 0o600, flag: 'wx' });
    await chmod(file, 0o600);
    options.logger.warn(
      { file },
      'FANGATE_MASTER_KEY is not set: created a master key in the data directory. Back it up, or set FANGATE_MASTER_KEY for production.',
    );
  }
  return parseKeyring(spec);
}
