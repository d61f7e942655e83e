import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Database } from '../../db/database.js';
import { pendingMigrations } from '../../db/migrate.js';
import { problemResponses } from '../problem.js';
import { ApiError } from '../../lib/errors.js';

/** Liveness and readiness for load balancers and orchestrators. */
export const healthRoutes: FastifyPluginAsyncTypebox<{ database: Database }> = async (app, { database }) => {
  app.get(
    '/healthz',
    {
      schema: {
        tags: ['Operations'],
        summary: 'Liveness: the process is up',
        security: [],
        response: { 200: Type.Object({ status: Type.Literal('ok') }, { examples: [{ status: 'ok' }] }) },
      },
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        tags: ['Operations'],
        summary: 'Readiness: the database answers and every migration is applied',
        security: [],
        response: {
          200: Type.Object({ status: Type.Literal('ready'), database: Type.String() }, { examples: [{ status: 'ready', database: 'pglite' }] }),
          ...problemResponses(503),
        },
      },
    },
    async () => {
      try {
        await database.ping();
      } catch {
        throw new ApiError(503, 'database_unavailable', 'The database does not answer.');
      }
      const pending = await pendingMigrations(database.db);
      if (pending.length > 0) throw new ApiError(503, 'migrations_pending', `Migrations not applied: ${pending.join(', ')}.`);
      return { status: 'ready' as const, database: database.kind };
    },
  );
};
