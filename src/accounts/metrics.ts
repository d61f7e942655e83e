import type { Kysely } from 'kysely';
import type { DB } from '../db/schema.js';
import { Gauge, type Registry } from '../lib/metrics.js';

const STATUSES = ['active', 'reauthenticating', 'awaiting_2fa', 'expired'] as const;

/** `fangate_accounts{status}`, read from the database at each scrape: correct on every node. */
export function registerAccountMetrics(metrics: Registry, db: Kysely<DB>): void {
  new Gauge({
    name: 'fangate_accounts',
    help: 'Connected accounts by status (read from the database: the same on every node).',
    labelNames: ['status'] as const,
    registers: [metrics],
    async collect() {
      const rows = await db.selectFrom('accounts').select(['status', (eb) => eb.fn.countAll<string>().as('n')]).groupBy('status').execute();
      for (const status of STATUSES) this.set({ status }, 0);
      for (const row of rows) this.set({ status: row.status }, Number(row.n));
    },
  });
}
