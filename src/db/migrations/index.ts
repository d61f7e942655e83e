import type { Migration } from 'kysely';
import * as foundation from './0001_foundation.js';
import * as connect from './0002_connect.js';
import * as access from './0003_access.js';

/** Every migration, in order. Names never change once released; add new ones at the end. */
export const migrations: Record<string, Migration> = {
  '0001_foundation': foundation,
  '0002_connect': connect,
  '0003_access': access,
};
