import { constants, existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, rename, rm } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * A ready-made embedded database (initdb done, migrations and the job schema applied), made by
 * `fangate prepare` when the package is installed. A first start copies it instead of running
 * initdb, which halves the time to ready; without it FanGate simply runs initdb.
 *
 * Its own module, importing nothing of FanGate's, because the path is relative to this file: the server bundle
 * leaves it out and imports it from dist/db/ (scripts/build-server.mjs), so it resolves the same from src/ and dist/.
 */
export const PGLITE_TEMPLATE_DIR = fileURLToPath(new URL('../../node_modules/.cache/fangate/pgdata-template', import.meta.url));

/**
 * The same database as one tar file, made beside the directory by `fangate prepare`: an in-memory database (tests,
 * benchmarks) loads it instead of running initdb and the migrations (≈ 0.7 s of CPU against ≈ 4 s).
 */
export const PGLITE_TEMPLATE_TAR = `${PGLITE_TEMPLATE_DIR}.tar`;

/** Where the embedded database of a data directory lives. */
export const embeddedDatabaseDir = (dataDir: string): string => join(dataDir, 'pgdata');

const seeding = new Map<string, Promise<void>>();

/**
 * Gives an embedded database directory that has no database yet a copy of the template; does nothing when it has
 * one or when there is no template. Once per directory and process: `fangate serve` starts it before it loads the
 * rest of FanGate, so the copy (file system work on the thread pool) runs beside the module loading, and opening
 * the database awaits the same copy. It is made beside the directory and renamed into place, so a second process
 * starting on the same directory never sees half of it.
 */
export function seedFromTemplate(dir: string): Promise<void> {
  let seeded = seeding.get(dir);
  if (!seeded) {
    seeded = copyTemplate(dir);
    seeding.set(dir, seeded);
  }
  return seeded;
}

async function copyTemplate(dir: string): Promise<void> {
  if (existsSync(join(dir, 'PG_VERSION')) || !existsSync(join(PGLITE_TEMPLATE_DIR, 'PG_VERSION'))) return;
  await mkdir(dirname(dir), { recursive: true, mode: 0o700 });
  const building = `${dir}.seeding-${process.pid}`;
  await rm(building, { recursive: true, force: true });
  try {
    await copyInto(building);
    // Replaces an empty directory; a directory that holds something (another process got there first) stays.
    await rename(building, dir).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOTEMPTY' && error.code !== 'EEXIST') throw error;
    });
  } finally {
    await rm(building, { recursive: true, force: true });
  }
}

/**
 * Every file through the thread pool, several at a time (a copy-on-write clone where the file system has them),
 * instead of `fs.cp`, which copies one entry after another and checks every parent directory at each one: ≈ 1 s
 * of CPU for the template's 1,088 files, half of a first start.
 */
async function copyInto(to: string): Promise<void> {
  await mkdir(to, { recursive: true, mode: 0o700 });
  const files: string[] = [];
  for (const entry of await readdir(PGLITE_TEMPLATE_DIR, { withFileTypes: true, recursive: true })) {
    const path = relative(PGLITE_TEMPLATE_DIR, join(entry.parentPath ?? entry.path, entry.name)); // `path` before Node 20.12
    // PostgreSQL wants its directories private (initdb makes them 0700); recursive readdir lists parents first.
    if (entry.isDirectory()) await mkdir(join(to, path), { recursive: true, mode: 0o700 });
    else if (entry.isFile()) files.push(path);
    else throw new Error(`unexpected entry in the embedded database template: ${path}`);
  }
  let next = 0;
  const copyNext = async (): Promise<void> => {
    for (let path = files[next++]; path !== undefined; path = files[next++]) {
      await copyFile(join(PGLITE_TEMPLATE_DIR, path), join(to, path), constants.COPYFILE_FICLONE);
    }
  };
  await Promise.all(Array.from({ length: 8 }, copyNext));
}
