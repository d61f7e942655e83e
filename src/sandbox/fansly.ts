import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { errors, sendError } from './errors.js';
import { maskEmail } from './identities.js';
import type { ChallengeKind, LoginResult } from './login.js';
import { chatsOf, fansOf, findChatFan, messagesOf, paginate, postsOf, sendMessage, unsendMessage, type Message } from './seed.js';
import type { Session } from './sessions.js';
import type { SandboxState } from './state.js';
import { identityKey, type SandboxUser } from './users.js';
import { PageQuery, pageOf, UserAgentHeader, header, parseCookies, remoteAddress, setCookie } from './wire.js';

/**
 * The Fansly-like side, mounted under /api/v1. Token sessions (sent as the `authorization` header or
 * the `fansly-token` cookie), bound to the user agent of the login. Every answer is wrapped in
 * `{success, response}`. Reference: docs/sandbox.md.
 */

const LoginBody = Type.Object({
  username: Type.Optional(Type.String({ minLength: 1, maxLength: 320 })),
  email: Type.Optional(Type.String({ minLength: 1, maxLength: 320 })),
  password: Type.String({ maxLength: 1024 }),
  deviceId: Type.String({ minLength: 1, maxLength: 256 }),
});
const TwofaBody = Type.Object({
  token: Type.String({ minLength: 1, maxLength: 200 }),
  code: Type.String({ minLength: 1, maxLength: 32 }),
});
const GroupOnly = Type.Object({ groupId: Type.String({ pattern: '^[0-9]{1,20}$' }) });
const GroupQuery = Type.Object({ ...PageQuery.properties, ...GroupOnly.properties });
const MessageParams = Type.Object({ messageId: Type.String({ pattern: '^[0-9]{1,20}$' }) });
const SendBody = Type.Object({
  groupId: Type.String({ pattern: '^[0-9]{1,20}$' }),
  content: Type.String({ minLength: 1, maxLength: 5000 }),
  price: Type.Optional(Type.Number({ minimum: 0, maximum: 200 })),
});

/** Fansly's `twofa_type` numbers. */
const TWOFA_TYPE: Partial<Record<ChallengeKind, number>> = { app: 0, email: 2 };

const ok = <T>(response: T) => ({ success: true, response });
const seconds = (ms: number) => Math.floor(ms / 1000);

export const fanslyApi: FastifyPluginAsyncTypebox<{ state: SandboxState }> = async (app, { state }) => {
  const account = (user: SandboxUser) => ({
    id: user.id,
    username: user.username,
    displayName: user.name,
    avatar: `${state.baseUrl()}/avatars/${user.id}.svg`,
    email: user.email,
  });

  const answer = (result: LoginResult) => {
    if ('flow' in result) {
      const { flow } = result;
      const twofa = { token: flow.token, twofa_type: TWOFA_TYPE[result.challenge]! };
      return ok({
        session: null,
        twofa: result.challenge === 'email' ? { ...twofa, masked_email: maskEmail(flow.user.email) } : twofa,
      });
    }
    const { session } = result;
    return ok({
      session: { token: session.secret, accountId: session.user.id, deviceId: session.device },
      twofa: null,
      account: account(session.user),
    });
  };

  const authenticate = async (request: FastifyRequest, reply: FastifyReply): Promise<Session> => {
    const token = header(request, 'authorization') ?? parseCookies(request.headers.cookie)['fansly-token'];
    const found = token ? state.sessions.find(token) : undefined;
    if (!found || found.session.user.platform !== 'fansly') throw errors.sessionInvalid();
    const { session } = found;
    await state.upstreamCall(request, session.user);
    if (session.ended === 'expired') throw errors.sessionExpired();
    if (session.ended || !found.current) throw errors.sessionInvalid();
    if (header(request, 'user-agent') !== session.userAgent) throw errors.userAgentMismatch();
    if (session.expiresAt !== null && session.expiresAt <= state.now()) {
      state.sessions.end(session, 'expired');
      throw errors.sessionExpired();
    }
    if (!request.routeOptions.url?.endsWith('/logout')) {
      const rotated = state.rotateIfDue(request, session);
      if (rotated !== undefined) reply.header('set-cookie', setCookie('fansly-token', rotated));
    }
    return session;
  };

  const message = (creator: SandboxUser, item: Message) => ({
    id: String(item.id),
    groupId: item.chatId,
    senderId: item.fromCreator ? creator.id : item.chatId,
    content: item.text,
    price: item.price,
    createdAt: seconds(item.createdAt),
  });

  app.post('/login', { schema: { headers: UserAgentHeader, body: LoginBody } }, async (request) => {
    const login = request.body.username ?? request.body.email;
    if (login === undefined) throw errors.badRequest('body must have property username or email');
    const key = identityKey('fansly', login);
    if (!key) throw errors.invalidCredentials();
    const user = state.users.fansly.get(key);
    await state.upstreamCall(request, user);
    state.logins.checkCredentials(user, request.body.password);
    const address = remoteAddress(request);
    const device = request.body.deviceId;
    // New-device check: a device id or an address the account has not confirmed by email yet.
    const newDevice = !user.trustedDevices.has(device) || !user.trustedAddresses.has(address);
    const steps: ChallengeKind[] = [];
    if (user.tags.has('email') && newDevice) steps.push('email');
    if (user.tags.has('app')) steps.push('app');
    const context = { userAgent: request.headers['user-agent'], device, fp: '', address };
    // Fansly mails the code as part of the login: there is no "send" step.
    return answer(state.logins.start(user, context, steps, true));
  });

  app.post('/login/twofa', { schema: { body: TwofaBody } }, async (request) => {
    const flow = await state.resumeLogin(request, 'fansly', request.body.token);
    return answer(state.logins.submitCode(flow, request.body.code));
  });

  // Unknown routes: 404 without session checks, attributed when the call carries a known token (see onlyfans.ts).
  app.setNotFoundHandler(async (request, reply) => {
    const token = header(request, 'authorization') ?? parseCookies(request.headers.cookie)['fansly-token'];
    const found = token ? state.sessions.find(token) : undefined;
    if (found?.session.user.platform === 'fansly') state.attribute(request, found.session.user);
    return sendError(request, reply, errors.notFound(`Route ${request.method} ${request.url.split('?')[0]} not found`));
  });

  // Authenticated routes: the session is checked before the input (see onlyfans.ts).
  const sessions = new WeakMap<FastifyRequest, Session>();
  const sessionOf = (request: FastifyRequest): Session => sessions.get(request)!;
  const authenticated: FastifyPluginAsyncTypebox = async (authed) => {
    authed.addHook('onRequest', async (request, reply) => {
      sessions.set(request, await authenticate(request, reply));
    });

    authed.get('/account/me', async (request) => ok({ account: account(sessionOf(request).user) }));

    authed.post('/logout', async (request) => {
      state.sessions.end(sessionOf(request), 'logout');
      return ok(true);
    });

    authed.get('/messaging/groups', { schema: { querystring: PageQuery } }, async (request) => {
      const { user } = sessionOf(request);
      const page = paginate(chatsOf(user), pageOf(request.query));
      return ok({
        data: page.items.map(({ fan, messages }) => ({
          groupId: String(fan.id),
          partner: { id: String(fan.id), username: fan.username, displayName: fan.name },
          lastMessage: message(user, messages[0]!),
          unreadCount: fan.id % 3,
        })),
        hasMore: page.hasMore,
        nextOffset: page.nextOffset,
      });
    });

    authed.get('/message', { schema: { querystring: GroupQuery } }, async (request) => {
      const { user } = sessionOf(request);
      const fan = findChatFan(user, request.query.groupId);
      if (!fan) throw errors.notFound('Group not found');
      const page = paginate(messagesOf(user, fan), pageOf(request.query));
      return ok({ data: page.items.map((item) => message(user, item)), hasMore: page.hasMore, nextOffset: page.nextOffset });
    });

    authed.post('/message', { schema: { body: SendBody } }, async (request) => {
      const { user } = sessionOf(request);
      const fan = findChatFan(user, request.body.groupId);
      if (!fan) throw errors.notFound('Group not found');
      return ok(message(user, sendMessage(user, fan, request.body.content, state.now(), request.body.price)));
    });

    authed.delete('/message/:messageId', { schema: { params: MessageParams, querystring: GroupOnly } }, async (request) => {
      const { user } = sessionOf(request);
      const fan = findChatFan(user, request.query.groupId);
      if (!fan || !unsendMessage(user, fan, request.params.messageId)) throw errors.notFound('Message not found');
      return ok(true);
    });

    authed.get('/subscribers', { schema: { querystring: PageQuery } }, async (request) => {
      const { user } = sessionOf(request);
      const page = paginate(fansOf(user), pageOf(request.query));
      return ok({
        data: page.items.map((fan) => ({
          id: String(fan.id),
          username: fan.username,
          displayName: fan.name,
          subscribedAt: seconds(fan.subscribedAt),
          renewsAt: seconds(fan.renewsAt),
          price: fan.price,
        })),
        hasMore: page.hasMore,
        nextOffset: page.nextOffset,
      });
    });

    authed.get('/posts', { schema: { querystring: PageQuery } }, async (request) => {
      const { user } = sessionOf(request);
      const page = paginate(postsOf(user), pageOf(request.query));
      return ok({
        data: page.items.map((post) => ({
          id: String(post.id),
          accountId: user.id,
          content: post.text,
          price: post.price,
          mediaCount: post.mediaCount,
          likeCount: post.likesCount,
          replyCount: post.commentsCount,
          createdAt: seconds(post.postedAt),
        })),
        hasMore: page.hasMore,
        nextOffset: page.nextOffset,
      });
    });
  };
  await app.register(authenticated);
};
