import { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { errors, sendError } from './errors.js';
import { SANDBOX_LIMITS, SANDBOX_PHONE_LAST4, maskEmail } from './identities.js';
import type { ChallengeKind, LoginFlow, LoginResult } from './login.js';
import { chatsOf, fansOf, findChatFan, messagesOf, paginate, postsOf, sendMessage, transactionsOf, unsendMessage, type Message } from './seed.js';
import { randomHex, type Session } from './sessions.js';
import type { SandboxState } from './state.js';
import { identityKey, type SandboxUser } from './users.js';
import { PageQuery, pageOf, header, parseCookies, remoteAddress, setCookie } from './wire.js';

/**
 * The OnlyFans-like side, mounted under /api2/v2. Sessions are the cookies `auth_id`, `sess`, `fp`
 * plus the `x-bc` header, bound to the user agent of the login. Reference: docs/sandbox.md.
 */

const LoginHeaders = Type.Object({
  'user-agent': Type.String({ minLength: 1 }),
  'x-bc': Type.String({ minLength: 8, maxLength: 256 }),
});
const LoginBody = Type.Object({
  email: Type.String({ minLength: 1, maxLength: 320 }),
  password: Type.String({ maxLength: 1024 }),
});
const LoginToken = Type.String({ minLength: 1, maxLength: 200 });
const TokenBody = Type.Object({ login_token: LoginToken });
const CodeBody = Type.Object({ login_token: LoginToken, code: Type.String({ minLength: 1, maxLength: 32 }) });
const DownloadQuery = Type.Object({
  bytes: Type.Optional(Type.String({ pattern: '^[0-9]{1,9}$', description: 'size of the answer, 0–268435456 (default 1 MiB)' })),
  chunk_ms: Type.Optional(Type.String({ pattern: '^([0-9]{1,3}|1000)$', description: 'pause between chunks, 0–1000 ms' })),
  chunk_bytes: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,4}$', description: 'size of a chunk, 1–65536 (default 65536)' })),
  status: Type.Optional(Type.String({ pattern: '^(200|403)$', description: 'the status of the answer: 200 (default) or 403, a refusal whose body comes as slowly' })),
  cut_after: Type.Optional(Type.String({ pattern: '^[0-9]{1,9}$', description: 'close the connection once this many bytes of the body are sent: a platform that fails in the middle of an answer' })),
});
const ChatParams = Type.Object({ chatId: Type.String({ pattern: '^[0-9]{1,20}$' }) });
const MessageParams = Type.Object({ ...ChatParams.properties, messageId: Type.String({ pattern: '^[0-9]{1,20}$' }) });
const SendBody = Type.Object({
  text: Type.String({ minLength: 1, maxLength: 5000 }),
  price: Type.Optional(Type.Number({ minimum: 0, maximum: 200 })),
});

/** Order in which chained checks are met: device check first, then selfie, then second factors. */
const CHALLENGE_ORDER: ChallengeKind[] = ['email', 'face', 'app', 'sms'];

export const onlyFansApi: FastifyPluginAsyncTypebox<{ state: SandboxState }> = async (app, { state }) => {
  const profile = (user: SandboxUser) => ({
    id: Number(user.id),
    username: user.username,
    name: user.name,
    avatar: `${state.baseUrl()}/avatars/${user.id}.svg`,
    email: user.email,
    subscribersCount: fansOf(user).length,
    postsCount: postsOf(user).length,
  });

  const challenge = (flow: LoginFlow, kind: ChallengeKind) => {
    switch (kind) {
      case 'sms':
        return { type: kind, phone_last4: SANDBOX_PHONE_LAST4 };
      case 'app':
        return { type: kind };
      case 'email':
        return { type: kind, email_mask: maskEmail(flow.user.email), email_sent: flow.emailSent };
      case 'face':
        return {
          type: kind,
          face_url: `${state.baseUrl()}/face/${flow.faceToken}`,
          face_status: flow.faceCompleted ? 'completed' : 'pending',
        };
    }
  };

  const answer = (reply: FastifyReply, result: LoginResult) => {
    if ('flow' in result) {
      const { flow } = result;
      return {
        status: 'challenge',
        login_token: flow.token,
        challenge: challenge(flow, result.challenge),
        attempts_remaining: SANDBOX_LIMITS.wrongCodesPerLogin - flow.wrongCodes,
      };
    }
    const { session } = result;
    reply.header('set-cookie', [
      setCookie('auth_id', session.user.id),
      setCookie('sess', session.secret),
      setCookie('fp', session.fp),
    ]);
    return { status: 'authenticated', user: profile(session.user), x_bc: session.device };
  };

  /** The session of an authenticated request, after every check the real web API makes. */
  const authenticate = async (request: FastifyRequest, reply: FastifyReply): Promise<Session> => {
    const cookies = parseCookies(request.headers.cookie);
    const found = cookies.sess ? state.sessions.find(cookies.sess) : undefined;
    if (!found || found.session.user.platform !== 'onlyfans') throw errors.sessionInvalid();
    const { session } = found;
    await state.upstreamCall(request, session.user);
    if (session.ended === 'expired') throw errors.sessionExpired();
    if (session.ended || !found.current) throw errors.sessionInvalid();
    const userIdHeader = header(request, 'user-id');
    if (cookies.auth_id !== session.user.id || (userIdHeader !== undefined && userIdHeader !== session.user.id)) {
      throw errors.wrongUser();
    }
    if (header(request, 'user-agent') !== session.userAgent) throw errors.userAgentMismatch();
    const xbc = header(request, 'x-bc');
    if (cookies.fp !== session.fp || (xbc !== undefined && xbc !== session.device)) throw errors.deviceMismatch();
    if (session.expiresAt !== null && session.expiresAt <= state.now()) {
      state.sessions.end(session, 'expired');
      throw errors.sessionExpired();
    }
    // Logout clears the cookies instead.
    const rotated = request.routeOptions.url?.endsWith('/users/logout') ? undefined : state.rotateIfDue(request, session);
    if (rotated !== undefined) reply.header('set-cookie', setCookie('sess', rotated));
    return session;
  };

  const message = (creator: SandboxUser, item: Message) => ({
    id: item.id,
    text: item.text,
    fromUser: { id: item.fromCreator ? Number(creator.id) : Number(item.chatId) },
    price: item.price,
    isFree: item.price === 0,
    createdAt: new Date(item.createdAt).toISOString(),
  });

  app.post('/users/login', { schema: { headers: LoginHeaders, body: LoginBody } }, async (request, reply) => {
    const key = identityKey('onlyfans', request.body.email);
    if (!key) throw errors.invalidCredentials();
    const user = state.users.onlyfans.get(key);
    await state.upstreamCall(request, user);
    state.logins.checkCredentials(user, request.body.password);
    const address = remoteAddress(request);
    const steps = CHALLENGE_ORDER.filter((kind) =>
      kind === 'email' ? user.tags.has('email') && !user.trustedAddresses.has(address) : user.tags.has(kind),
    );
    const context = {
      userAgent: request.headers['user-agent'],
      device: request.headers['x-bc'],
      // A browser keeps its fp cookie across logins; a fresh one gets a new fingerprint cookie.
      fp: parseCookies(request.headers.cookie).fp ?? randomHex(),
      address,
    };
    return answer(reply, state.logins.start(user, context, steps));
  });

  app.post('/users/login/otp', { schema: { body: CodeBody } }, async (request, reply) => {
    const flow = await state.resumeLogin(request, 'onlyfans', request.body.login_token);
    return answer(reply, state.logins.submitCode(flow, request.body.code));
  });

  app.post('/users/login/email/send', { schema: { body: TokenBody } }, async (request, reply) => {
    const flow = await state.resumeLogin(request, 'onlyfans', request.body.login_token);
    return answer(reply, state.logins.sendEmail(flow));
  });

  app.post('/users/login/face/check', { schema: { body: TokenBody } }, async (request, reply) => {
    const flow = await state.resumeLogin(request, 'onlyfans', request.body.login_token);
    return answer(reply, state.logins.checkFace(flow));
  });

  // Unknown routes answer 404 without session checks, but a call carrying a known session still shows in
  // its user's request log.
  app.setNotFoundHandler(async (request, reply) => {
    const sess = parseCookies(request.headers.cookie).sess;
    const found = sess ? state.sessions.find(sess) : undefined;
    if (found?.session.user.platform === 'onlyfans') state.attribute(request, found.session.user);
    return sendError(request, reply, errors.notFound(`Route ${request.method} ${request.url.split('?')[0]} not found`));
  });

  // Authenticated routes: the session is checked before the input (a dead session is a 401 whatever the
  // query or body), so every call with a known session is attributed to its user in the request log.
  const sessions = new WeakMap<FastifyRequest, Session>();
  const sessionOf = (request: FastifyRequest): Session => sessions.get(request)!;
  const authenticated: FastifyPluginAsyncTypebox = async (authed) => {
    authed.addHook('onRequest', async (request, reply) => {
      sessions.set(request, await authenticate(request, reply));
    });

    authed.get('/users/me', async (request) => profile(sessionOf(request).user));

    authed.post('/users/logout', async (request, reply) => {
      state.sessions.end(sessionOf(request), 'logout');
      reply.header('set-cookie', ['auth_id', 'sess', 'fp'].map((name) => setCookie(name, '', 0)));
      return { success: true };
    });

    authed.get('/chats', { schema: { querystring: PageQuery } }, async (request) => {
      const { user } = sessionOf(request);
      const page = paginate(chatsOf(user), pageOf(request.query));
      return {
        list: page.items.map(({ fan, messages }) => ({
          withUser: { id: fan.id, username: fan.username, name: fan.name },
          lastMessage: message(user, messages[0]!),
          messagesCount: messages.length,
          unreadMessagesCount: fan.id % 3,
        })),
        hasMore: page.hasMore,
        nextOffset: page.nextOffset,
      };
    });

    authed.get(
      '/chats/:chatId/messages',
      { schema: { params: ChatParams, querystring: PageQuery } },
      async (request) => {
        const { user } = sessionOf(request);
        const fan = findChatFan(user, request.params.chatId);
        if (!fan) throw errors.notFound('Chat not found');
        const page = paginate(messagesOf(user, fan), pageOf(request.query));
        return { list: page.items.map((item) => message(user, item)), hasMore: page.hasMore, nextOffset: page.nextOffset };
      },
    );

    authed.post('/chats/:chatId/messages', { schema: { params: ChatParams, body: SendBody } }, async (request) => {
      const { user } = sessionOf(request);
      const fan = findChatFan(user, request.params.chatId);
      if (!fan) throw errors.notFound('Chat not found');
      return message(user, sendMessage(user, fan, request.body.text, state.now(), request.body.price));
    });

    authed.delete('/chats/:chatId/messages/:messageId', { schema: { params: MessageParams } }, async (request) => {
      const { user } = sessionOf(request);
      const fan = findChatFan(user, request.params.chatId);
      if (!fan || !unsendMessage(user, fan, request.params.messageId)) throw errors.notFound('Message not found');
      return { success: true };
    });

    authed.get('/subscriptions/subscribers', { schema: { querystring: PageQuery } }, async (request) => {
      const { user } = sessionOf(request);
      const page = paginate(fansOf(user), pageOf(request.query));
      return {
        list: page.items.map((fan) => ({
          id: fan.id,
          username: fan.username,
          name: fan.name,
          subscribedAt: new Date(fan.subscribedAt).toISOString(),
          renewsAt: new Date(fan.renewsAt).toISOString(),
          price: fan.price,
        })),
        hasMore: page.hasMore,
        nextOffset: page.nextOffset,
      };
    });

    authed.get('/payouts/transactions', { schema: { querystring: PageQuery } }, async (request) => {
      const { user } = sessionOf(request);
      const page = paginate(transactionsOf(user), pageOf(request.query));
      return {
        list: page.items.map((item) => ({
          id: item.id,
          type: item.type,
          amount: item.amount,
          fee: item.fee,
          net: item.net,
          currency: 'USD',
          fromUser: { id: item.fanId },
          createdAt: new Date(item.createdAt).toISOString(),
        })),
        hasMore: page.hasMore,
        nextOffset: page.nextOffset,
      };
    });

    // A large answer, sent in 64 KiB chunks with a pause between them: what an Access API must stream. As a
    // 403 (`status=403`, small chunks) it is a refusal whose body trickles, which a proxy may read part of.
    authed.get('/media/download', { schema: { querystring: DownloadQuery } }, async (request, reply) => {
      sessionOf(request);
      const total = Math.min(256 * 1024 * 1024, request.query.bytes === undefined ? 1024 * 1024 : Number(request.query.bytes));
      const pauseMs = request.query.chunk_ms === undefined ? 0 : Number(request.query.chunk_ms);
      const chunkBytes = request.query.chunk_bytes === undefined ? 64 * 1024 : Number(request.query.chunk_bytes);
      if (chunkBytes > 64 * 1024) throw errors.badRequest('querystring/chunk_bytes must be at most 65536');
      const chunk = Buffer.alloc(chunkBytes, 0x61);
      const cutAfter = request.query.cut_after === undefined ? Number.POSITIVE_INFINITY : Number(request.query.cut_after);
      async function* body() {
        for (let sent = 0; sent < total; sent += chunk.length) {
          if (sent > 0 && pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
          if (sent >= cutAfter) {
            // Short of its content-length: the client sees the connection end in the middle of the body.
            reply.raw.destroy();
            return;
          }
          yield chunk.subarray(0, Math.min(chunk.length, total - sent));
        }
      }
      reply.code(request.query.status === undefined ? 200 : Number(request.query.status)).header('content-type', 'application/octet-stream');
      // Compressed when the caller accepts it, as a real platform's CDN does.
      if (/\bgzip\b/.test(header(request, 'accept-encoding') ?? '')) {
        return reply.header('content-encoding', 'gzip').send(Readable.from(body()).pipe(createGzip()));
      }
      return reply.header('content-length', String(total)).send(Readable.from(body()));
    });

    authed.get('/posts', { schema: { querystring: PageQuery } }, async (request) => {
      const { user } = sessionOf(request);
      const page = paginate(postsOf(user), pageOf(request.query));
      return {
        list: page.items.map((post) => ({
          id: post.id,
          text: post.text,
          price: post.price,
          isFree: post.price === 0,
          mediaCount: post.mediaCount,
          likesCount: post.likesCount,
          commentsCount: post.commentsCount,
          author: { id: Number(user.id) },
          postedAt: new Date(post.postedAt).toISOString(),
        })),
        hasMore: page.hasMore,
        nextOffset: page.nextOffset,
      };
    });
  };
  await app.register(authenticated);
};
