import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Scope } from '../../orgs/scopes.js';
import type { OrgService, Principal } from '../../orgs/service.js';
import type { Actor } from '../../lib/audit.js';
import { ApiError } from '../../lib/errors.js';
import type { AuthFailureLimiter } from './rate-limit.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Scope the API key needs for this route. */
    scope?: Scope;
    /** The route authenticates by other means (e.g. a one-time code in the path). */
    public?: boolean;
  }
  interface FastifyRequest {
    principal: Principal;
  }
}

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/** Who an authenticated request acts as, for the audit log: its API key. */
export const actorOf = (request: FastifyRequest): Actor => ({ type: 'api_key', id: request.principal.apiKey.id });

/** Bearer API keys for everything under /api; the key's organisation scopes every query. */
async function authPlugin(app: FastifyInstance, { orgs, failures }: { orgs: OrgService; failures: AuthFailureLimiter }) {
  app.decorateRequest('principal', null as unknown as Principal);
  app.addHook('onRequest', async (request) => {
    const config = request.routeOptions.config;
    if (config.public || request.is404) return;
    const token = BEARER.exec(request.headers.authorization ?? '')?.[1];
    if (token) failures.check(request.ip);
    const principal = token ? await orgs.authenticate(token) : undefined;
    if (!principal) {
      const limited = token ? await failures.failed(request.ip) : undefined;
      if (limited) throw limited;
      throw new ApiError(401, 'unauthorized', token ? 'The API key is not valid or was revoked.' : 'Send your API key as `Authorization: Bearer fg_…`.');
    }
    if (config.scope && !principal.apiKey.scopes.includes(config.scope)) {
      throw new ApiError(403, 'forbidden', `This API key lacks the "${config.scope}" scope.`);
    }
    request.principal = principal;
  });
}

export default fp(authPlugin, { name: 'fangate-auth' });
