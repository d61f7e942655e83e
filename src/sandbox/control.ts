import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { errors } from './errors.js';
import { FaceParams } from './face.js';
import { randomHex, randomToken } from './sessions.js';
import type { SandboxState } from './state.js';
import { PLATFORMS, identityKey, type Platform, type SandboxUser } from './users.js';
import { isLoopback, remoteAddress } from './wire.js';

/** The control API under /__sandbox (DESIGN.md section 7): no auth, loopback callers only. */

const PlatformField = Type.Union([Type.Literal('onlyfans'), Type.Literal('fansly')]);
const Identity = Type.String({ minLength: 1, maxLength: 320 });
const MintBody = Type.Object({
  platform: PlatformField,
  email: Identity,
  user_agent: Type.String({ minLength: 1, maxLength: 1024 }),
});
const RevokeBody = Type.Object({ platform: PlatformField, email: Identity });
const RequestsQuery = Type.Object({ email: Identity, platform: Type.Optional(PlatformField) });

export const controlApi: FastifyPluginAsyncTypebox<{ state: SandboxState }> = async (app, { state }) => {
  app.addHook('onRequest', async (request) => {
    if (!isLoopback(remoteAddress(request))) throw errors.forbidden('The sandbox control API only answers loopback callers');
  });

  const userOf = (platform: Platform, email: string): SandboxUser => {
    const key = identityKey(platform, email);
    if (!key) {
      throw errors.badRequest(
        platform === 'onlyfans' ? 'email must be an address @sandbox.test' : 'email must be a sandbox username or an address @sandbox.test',
      );
    }
    return state.users[platform].get(key);
  };

  // A session as the creator's browser would hold it, minted without logging in (no challenges, no
  // login counting). `+expire` still applies.
  app.post('/sessions', { schema: { body: MintBody } }, async (request) => {
    const { platform, email, user_agent: userAgent } = request.body;
    const user = userOf(platform, email);
    if (platform === 'onlyfans') {
      const session = state.sessions.create(user, { userAgent, device: randomHex(20), fp: randomHex() });
      return {
        auth_id: user.id,
        cookies: `auth_id=${user.id}; sess=${session.secret}; fp=${session.fp}`,
        xbc: session.device,
        user_agent: userAgent,
        user: { id: user.id, username: user.username },
      };
    }
    const session = state.sessions.create(user, { userAgent, device: randomToken(16), fp: '' });
    return {
      auth_id: user.id,
      cookies: `fansly-token=${session.secret}`,
      xbc: session.device,
      token: session.secret,
      user_agent: userAgent,
      user: { id: user.id, username: user.username },
    };
  });

  app.post('/sessions/revoke', { schema: { body: RevokeBody } }, async (request) => {
    const key = identityKey(request.body.platform, request.body.email);
    const user = key ? state.users[request.body.platform].find(key) : undefined;
    return { revoked: user ? state.sessions.revokeUser(user) : 0 };
  });

  // Makes the next authenticated answer of each live session of the user rotate its secret (docs/sandbox.md,
  // "Cookie rotation"), so a test can trigger exactly one rotation on a plain user.
  app.post('/sessions/rotate', { schema: { body: RevokeBody } }, async (request) => {
    const key = identityKey(request.body.platform, request.body.email);
    const user = key ? state.users[request.body.platform].find(key) : undefined;
    return { rotating: user ? state.sessions.rotateUserNext(user) : 0 };
  });

  app.get('/requests', { schema: { querystring: RequestsQuery } }, async (request) => {
    const platforms = request.query.platform ? [request.query.platform] : PLATFORMS;
    const data = platforms
      .flatMap((platform) => {
        const key = identityKey(platform, request.query.email);
        return (key && state.users[platform].find(key)?.requests) || [];
      })
      .sort((a, b) => a.time.localeCompare(b.time));
    return { data };
  });

  app.get('/open-requests', async () => ({ open: state.openRequests }));

  app.post('/face/:token/complete', { schema: { params: FaceParams } }, async (request) => {
    if (!state.logins.completeFace(request.params.token)) throw errors.notFound('Unknown or expired face verification token');
    return { token: request.params.token, status: 'completed' };
  });

  app.post('/reset', async () => {
    state.reset();
    return { reset: true };
  });
};
