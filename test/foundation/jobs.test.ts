import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { type Kysely, sql } from 'kysely';
import { afterEach, expect, it } from 'vitest';
import { lockDataDir } from '../../src/db/data-dir-lock.js';
import { type Database, openDatabase } from '../../src/db/database.js';
import { createJobQueue, type JobQueue } from '../../src/jobs/queue.js';
import { createLogger } from '../../src/logger.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { createTestStore, describeEachStore, type TestStore } from '../support/stores.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CRASH_WORKER = join(ROOT, 'test/fixtures/crash-worker.ts');

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

/** The job as pg-boss sees it. */
async function jobRow(db: Kysely<any>, id: string): Promise<{ state: string; retry_count: number } | undefined> {
  const { rows } = await sql<{ state: string; retry_count: number }>`select state, retry_count from pgboss.job where id = ${id}`.execute(db);
  return rows[0];
}

function collectingLogger() {
  const lines: string[] = [];
  const logger = createLogger({
    level: 'warn',
    destination: new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    }),
  });
  return { logger, lines };
}

/** Things to undo after each test, last first, even when the test failed half way. */
let cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  const pending = cleanups.reverse();
  cleanups = [];
  for (const cleanup of pending) await Promise.resolve(cleanup()).catch(() => undefined);
});

/** A scratch database of the store under test, with a logger collecting warnings and errors; dropped after the test. */
async function scratchDatabase(kind: Parameters<typeof createTestStore>[0]) {
  const store = await createTestStore(kind);
  cleanups.push(() => store.drop());
  const { logger, lines } = collectingLogger();
  const database: Database = await openDatabase({ databaseUrl: store.databaseUrl, logger });
  cleanups.push(() => database.close());
  return { database, logger, lines };
}

describeEachStore('jobs', (kind) => {
  it('a job sent while no worker runs is executed after a restart with a worker', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'fangate-jobs-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const store: TestStore | undefined = kind === 'postgres' ? await createTestStore('postgres') : undefined;
    if (store) cleanups.push(() => store.drop());
    const reuse = kind === 'pglite' ? { persistent: true, dataDir } : { store, dataDir };

    // An API-only node: it can enqueue, nothing works the queue.
    const apiNode = await startTestApp(kind, { ...reuse, env: { FANGATE_ROLE: 'api' } });
    let apiNodeOpen = true;
    cleanups.push(() => apiNodeOpen && apiNode.close());
    const ranOnApiNode: unknown[] = [];
    await apiNode.fangate.jobs.define<{ greeting: string }>({ name: 'restart-test', handler: async (data) => void ranOnApiNode.push(data) });
    const id = await apiNode.fangate.jobs.send('restart-test', { greeting: 'hello after restart' });
    expect(id).toEqual(expect.any(String));
    await sleep(1500); // three polling intervals of the test app: a worker, if any, would have taken it
    expect(ranOnApiNode).toEqual([]);
    expect((await jobRow(apiNode.fangate.database.db, id!))?.state).toBe('created');
    await apiNode.close();
    apiNodeOpen = false;

    // Restart on the same store with a worker: the job runs, once, with its data.
    const worker: TestApp = await startTestApp(kind, reuse);
    cleanups.push(() => worker.close());
    const ran: Array<{ data: unknown; id: string }> = [];
    await worker.fangate.jobs.define<{ greeting: string }>({ name: 'restart-test', handler: async (data, job) => void ran.push({ data, id: job.id }) });
    await waitFor('the job to complete', async () => (await jobRow(worker.fangate.database.db, id!))?.state === 'completed', 15_000);
    expect(ran).toEqual([{ data: { greeting: 'hello after restart' }, id }]);
  }, 60_000);

  it('stop() lets a running job finish and leaves queued jobs for the next worker', async () => {
    const { database, logger, lines } = await scratchDatabase(kind);

    const events: string[] = [];
    let startedSlow!: () => void;
    const slowStarted = new Promise<void>((resolve) => (startedSlow = resolve));
    const first: JobQueue = createJobQueue({ database, logger, work: true, pollingIntervalSeconds: 0.5, maintenanceIntervalSeconds: 1 });
    let firstStopped = false;
    cleanups.push(() => !firstStopped && first.stop(1000));
    await first.define<{ name: string }>({
      name: 'drain-test',
      concurrency: 1,
      handler: async ({ name }) => {
        events.push(`start ${name}`);
        if (name === 'slow') startedSlow();
        await sleep(1500);
        events.push(`end ${name}`);
      },
    });
    await first.start();
    const slowId = await first.send('drain-test', { name: 'slow' });
    await waitFor('the slow job to start', () => slowStarted.then(() => true), 10_000);
    // Queued while the only worker is busy: it must not be started during the drain.
    const queuedId = await first.send('drain-test', { name: 'queued' });

    const stopBegan = Date.now();
    await first.stop();
    firstStopped = true;
    const stopTook = Date.now() - stopBegan;

    expect(events).toEqual(['start slow', 'end slow']);
    expect(stopTook).toBeGreaterThan(500); // it waited for the handler instead of abandoning it
    expect(await jobRow(database.db, slowId!)).toMatchObject({ state: 'completed', retry_count: 0 });
    expect(await jobRow(database.db, queuedId!)).toMatchObject({ state: 'created', retry_count: 0 });

    // The next worker (a restarted process) picks up what was left.
    const second = createJobQueue({ database, logger, work: true, pollingIntervalSeconds: 0.5, maintenanceIntervalSeconds: 1 });
    cleanups.push(() => second.stop(1000));
    await second.define<{ name: string }>({ name: 'drain-test', concurrency: 1, handler: async ({ name }) => void events.push(`second ran ${name}`) });
    await second.start();
    await waitFor('the queued job to complete', async () => (await jobRow(database.db, queuedId!))?.state === 'completed', 15_000);
    expect(events).toEqual(['start slow', 'end slow', 'second ran queued']);
    expect(lines.filter((l) => /"level":(50|60)/.test(l))).toEqual([]);
  }, 60_000);

  it('a job sent on an inline slot is written claimed in the sender\'s transaction, runs in the sender after the commit, and is gone with a rollback', async () => {
    const { database, logger, lines } = await scratchDatabase(kind);
    const queue = createJobQueue({ database, logger, work: true, pollingIntervalSeconds: 0.5, maintenanceIntervalSeconds: 1 });
    cleanups.push(() => queue.stop(1000));
    const ran: Array<{ data: unknown; local: unknown; id: string; retryCount?: number }> = [];
    await queue.define<{ n: number }>({
      name: 'inline-test', inline: true, expireInSeconds: 7, retryLimit: 4, retryDelay: 1, retryBackoff: false,
      handler: async (data, job) => {
        ran.push({ data, local: job.local, id: job.id, ...(data.n === 3 ? { retryCount: job.retryCount } : {}) });
        if (data.n === 3 && job.retryCount === 0) throw new Error('first try fails');
      },
    });
    await queue.define<{ n: number }>({ name: 'queued-test', handler: async (data) => void ran.push({ data, local: undefined, id: 'queued' }) });
    await queue.start();

    // Not an inline queue: no slot.
    expect(queue.reserveInline('queued-test')).toBeNull();

    // Committed: the job is active from the start (no worker may fetch it), with the queue's expiry and retries.
    const slot = queue.reserveInline('inline-test')!;
    expect(slot).not.toBeNull();
    const id = await database.db.transaction().execute(async (trx) => {
      const sent = await queue.send('inline-test', { n: 1 }, { trx, reservation: slot });
      const { rows } = await sql<{ state: string }>`select state from pgboss.job where id = ${sent}`.execute(trx);
      expect(rows).toEqual([{ state: 'active' }]);
      return sent!;
    });
    const { rows } = await sql<{ state: string; started: boolean; expire_in: number; retry_limit: number }>`
      select state, started_on is not null as started, extract(epoch from expire_in)::int as expire_in, retry_limit from pgboss.job where id = ${id}`.execute(database.db);
    expect(rows).toEqual([{ state: 'active', started: true, expire_in: 7, retry_limit: 4 }]);
    expect(ran).toEqual([]);
    expect(queue.runReserved(slot, { row: 'as committed' })).toBe(true);
    await waitFor('the job to complete', async () => (await jobRow(database.db, id))?.state === 'completed', 10_000);
    expect(ran).toEqual([{ data: { n: 1 }, local: { row: 'as committed' }, id }]);
    expect(queue.runReserved(slot)).toBe(false); // once

    // Rolled back: no job, and the slot is free again.
    const lost = queue.reserveInline('inline-test')!;
    let lostId: string | null = null;
    await expect(
      database.db.transaction().execute(async (trx) => {
        lostId = await queue.send('inline-test', { n: 2 }, { trx, reservation: lost });
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    queue.release(lost);
    expect(await jobRow(database.db, lostId!)).toBeUndefined();

    // 32 slots per process: the 33rd is refused until one is released.
    const held = Array.from({ length: 32 }, () => queue.reserveInline('inline-test'));
    expect(held.every((r) => r !== null)).toBe(true);
    expect(queue.reserveInline('inline-test')).toBeNull();
    queue.release(held[0]);
    const again = queue.reserveInline('inline-test');
    expect(again).not.toBeNull();
    for (const r of [...held, again]) queue.release(r);
    expect(ran).toHaveLength(1);

    // A run that fails goes through the queue's retries like any job: a worker runs it again, without what the
    // sender handed over.
    const failing = queue.reserveInline('inline-test')!;
    const failingId = await database.db.transaction().execute((trx) => queue.send('inline-test', { n: 3 }, { trx, reservation: failing }));
    queue.runReserved(failing, { row: 'as committed' });
    await waitFor('the retried job to complete', async () => (await jobRow(database.db, failingId!))?.state === 'completed', 15_000);
    expect(ran.slice(1)).toEqual([
      { data: { n: 3 }, local: { row: 'as committed' }, id: failingId, retryCount: 0 },
      { data: { n: 3 }, local: undefined, id: failingId, retryCount: 1 },
    ]);
    expect(lines.filter((l) => /"level":(50|60)/.test(l))).toEqual([]);
  }, 60_000);

  it('a job claimed for a process whose stop begins before the commit still runs there, and the stop waits for it', async () => {
    const { database, logger, lines } = await scratchDatabase(kind);
    const ran: string[] = [];
    const queue = createJobQueue({ database, logger, work: true, pollingIntervalSeconds: 0.5, maintenanceIntervalSeconds: 1 });
    await queue.define<{ n: number }>({
      name: 'stopping-test', inline: true, expireInSeconds: 60,
      handler: async () => {
        await sleep(500);
        ran.push('ran');
      },
    });
    await queue.start();
    const slot = queue.reserveInline('stopping-test')!;
    // The commit lands once the process has begun to stop (a request finishing during the grace period).
    let stopping: Promise<void> | undefined;
    const id = await database.db.transaction().execute(async (trx) => {
      const sent = await queue.send('stopping-test', { n: 1 }, { trx, reservation: slot });
      stopping = queue.stop(10_000);
      expect(queue.reserveInline('stopping-test')).toBeNull(); // no new slot once stopping
      return sent!;
    });
    expect(queue.runReserved(slot)).toBe(true);
    await stopping;
    // Done before the stop returned, not left active until its 60 s expiry.
    expect(ran).toEqual(['ran']);
    expect(await jobRow(database.db, id)).toMatchObject({ state: 'completed', retry_count: 0 });
    expect(lines).toEqual([]);
  }, 60_000);

  it("a queue's settings changed by a newer version reach a database an older version made", async () => {
    const { database, logger, lines } = await scratchDatabase(kind);

    // The older version: no retries.
    const older = createJobQueue({ database, logger, work: false });
    await older.define({ name: 'settings-test', retryLimit: 0, expireInSeconds: 60, handler: async () => undefined });
    await older.start();
    await older.stop(1000);

    // The newer one allows one retry, at once.
    const runs: number[] = [];
    const newer = createJobQueue({ database, logger, work: true, pollingIntervalSeconds: 0.5, maintenanceIntervalSeconds: 1 });
    cleanups.push(() => newer.stop(1000));
    await newer.define({
      name: 'settings-test',
      retryLimit: 1,
      retryDelay: 0,
      retryBackoff: false,
      expireInSeconds: 120,
      concurrency: 1,
      handler: async (_data, { retryCount }) => {
        runs.push(retryCount);
        throw new Error('fails every time');
      },
    });
    await newer.start();
    const id = await newer.send('settings-test', {});
    await waitFor('the job to fail for good', async () => (await jobRow(database.db, id!))?.state === 'failed', 20_000);
    expect(runs).toEqual([0, 1]);
    const { rows } = await sql<{ retry_limit: number; expire_seconds: number }>`select retry_limit, expire_seconds from pgboss.queue where name = 'settings-test'`.execute(database.db);
    expect(rows).toEqual([{ retry_limit: 1, expire_seconds: 120 }]);
    expect(lines.filter((l) => /"level":(50|60)/.test(l))).toEqual([]);
  }, 60_000);

  it('a job whose worker was killed (SIGKILL) runs again on another worker', async () => {
    const store = await createTestStore(kind);
    cleanups.push(() => store.drop());
    const dataDir = await mkdtemp(join(tmpdir(), 'fangate-crash-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));

    const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', CRASH_WORKER], {
      cwd: ROOT,
      env: {
        ...process.env,
        FIXTURE_QUEUE: 'crash-test',
        ...(store.databaseUrl ? { FIXTURE_DATABASE_URL: store.databaseUrl } : { FIXTURE_DATA_DIR: dataDir }),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code)));
    cleanups.push(() => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL'));
    let stderr = '';
    child.stderr!.on('data', (chunk) => (stderr += chunk));
    const running = new Promise<{ id: string; retryCount: number; data: unknown }>((resolve, reject) => {
      let buffer = '';
      child.stdout!.on('data', (chunk) => {
        buffer += chunk;
        let newline;
        while ((newline = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + 1);
          const event = JSON.parse(line) as { event: string; id: string; retryCount: number; data: unknown };
          if (event.event === 'running') {
            // Die mid-job, well before the 2 s expiry the child's own pg-boss would enforce.
            child.kill('SIGKILL');
            resolve(event);
          }
        }
      });
      void exited.then((how) => reject(new Error(`crash worker exited (${how}) before running the job:\n${stderr}`)));
    });
    const crashed = await running;
    expect(await exited).toBe('SIGKILL');
    expect(crashed).toMatchObject({ retryCount: 0, data: { n: 42 } });

    // Now take over the store (PGlite: the dead process's lock is stale and must be taken over).
    const unlock = store.databaseUrl ? async () => undefined : await lockDataDir(dataDir, 'jobs test');
    cleanups.push(unlock);
    const { logger } = collectingLogger();
    const database = await openDatabase({ databaseUrl: store.databaseUrl, pgliteDir: store.databaseUrl ? undefined : join(dataDir, 'pgdata'), logger });
    cleanups.push(() => database.close());
    // The crash left the job claimed by a worker that no longer exists.
    expect(await jobRow(database.db, crashed.id)).toMatchObject({ state: 'active', retry_count: 0 });

    const ran: Array<{ id: string; retryCount: number; data: unknown }> = [];
    const rescuer = createJobQueue({ database, logger, work: true, pollingIntervalSeconds: 0.5, maintenanceIntervalSeconds: 1 });
    cleanups.push(() => rescuer.stop(1000));
    await rescuer.define<{ n: number }>({
      name: 'crash-test',
      expireInSeconds: 2,
      retryDelay: 1,
      retryBackoff: false,
      handler: async (data, job) => void ran.push({ id: job.id, retryCount: job.retryCount, data }),
    });
    const rescueStarted = Date.now();
    await rescuer.start();
    await waitFor('the crashed job to run again and complete', async () => (await jobRow(database.db, crashed.id))?.state === 'completed', 20_000);
    expect(Date.now() - rescueStarted).toBeLessThan(20_000);
    expect(ran).toEqual([{ id: crashed.id, retryCount: 1, data: { n: 42 } }]);
    expect(await jobRow(database.db, crashed.id)).toMatchObject({ state: 'completed', retry_count: 1 });
  }, 90_000);
});
