import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * PGlite is a single-process database: a second process on the same directory would corrupt
 * it. The lock file names the owner so the refusal can say who holds it; a stale lock (its
 * process gone, e.g. after kill -9) is taken over.
 */
export async function lockDataDir(dataDir: string, purpose: string): Promise<() => Promise<void>> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const file = join(dataDir, 'fangate.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(file, 'wx', 0o600);
      await handle.writeFile(JSON.stringify({ pid: process.pid, purpose, since: new Date().toISOString() }));
      await handle.close();
      return () => rm(file, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = JSON.parse(await readFile(file, 'utf8').catch(() => '{}')) as { pid?: number; purpose?: string };
      if (owner.pid && owner.pid !== process.pid && alive(owner.pid)) {
        throw new Error(
          `The embedded database in ${dataDir} is in use by process ${owner.pid} (${owner.purpose ?? 'fangate'}). ` +
            'Stop it first, or run FanGate on PostgreSQL (DATABASE_URL) to share one database between processes.',
        );
      }
      await rm(file, { force: true });
    }
  }
  throw new Error(`Could not lock ${dataDir}`);
}

/** How a one-shot command reaches the embedded server that holds the data dir (`fangate keys create`). */
export interface LocalAdmin {
  url: string;
  token: string;
  pid: number;
}

const LOCAL_ADMIN_FILE = 'local-admin.json';

/** Written by a listening embedded server; readable by its owner only (mode 0600), removed on stop. */
export async function writeLocalAdmin(dataDir: string, admin: LocalAdmin): Promise<void> {
  await writeFile(join(dataDir, LOCAL_ADMIN_FILE), JSON.stringify(admin), { mode: 0o600 });
}

export async function removeLocalAdmin(dataDir: string): Promise<void> {
  await rm(join(dataDir, LOCAL_ADMIN_FILE), { force: true });
}

/** The running embedded server of this data dir, if one is there and alive. */
export async function readLocalAdmin(dataDir: string): Promise<LocalAdmin | undefined> {
  const admin = JSON.parse(await readFile(join(dataDir, LOCAL_ADMIN_FILE), 'utf8').catch(() => 'null')) as LocalAdmin | null;
  return admin && alive(admin.pid) ? admin : undefined;
}
