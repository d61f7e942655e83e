import type { FastifyReply, FastifyRequest } from 'fastify';

/**
 * A platform refusal. `reason` is the stable machine name drivers switch on; `status` the HTTP status;
 * `extra` adds fields to the error object (e.g. `attempts_remaining`).
 */
export class SandboxError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'SandboxError';
  }
}

export const errors = {
  badRequest: (message: string) => new SandboxError(400, 'bad_request', message),
  notFound: (message = 'Not found') => new SandboxError(404, 'not_found', message),
  invalidCredentials: () => new SandboxError(401, 'invalid_credentials', 'Wrong email or password'),
  accountLocked: () => new SandboxError(403, 'account_locked', 'This account is locked'),
  suspiciousActivity: (lockedUntil: number) =>
    new SandboxError(403, 'account_locked', 'Suspicious activity detected. The account is locked for an hour', {
      locked_until: new Date(lockedUntil).toISOString(),
    }),
  wrongCode: (attemptsRemaining: number) =>
    new SandboxError(400, 'wrong_code', 'Wrong code', { attempts_remaining: attemptsRemaining }),
  tooManyAttempts: () =>
    new SandboxError(429, 'too_many_attempts', 'Too many wrong codes. Please log in again'),
  loginTokenInvalid: () =>
    new SandboxError(401, 'login_token_invalid', 'The login has expired or is unknown. Please log in again'),
  challengeMismatch: (expected: string) =>
    new SandboxError(409, 'challenge_mismatch', `The current verification step is "${expected}"`, { challenge: expected }),
  sessionInvalid: () => new SandboxError(401, 'session_invalid', 'Please refresh the page'),
  sessionExpired: () => new SandboxError(401, 'session_expired', 'Session expired. Please log in again'),
  userAgentMismatch: () =>
    new SandboxError(401, 'user_agent_mismatch', 'Session was created in another browser. Please log in again'),
  deviceMismatch: () =>
    new SandboxError(401, 'device_mismatch', 'Session was created on another device. Please log in again'),
  wrongUser: () => new SandboxError(401, 'wrong_user', 'Wrong user'),
  badGateway: () => new SandboxError(502, 'bad_gateway', 'Bad gateway'),
  forbidden: (message: string) => new SandboxError(403, 'forbidden', message),
};

/** Turns anything thrown while serving into a platform-style 4xx/5xx answer in the caller's dialect. */
export function sendError(request: FastifyRequest, reply: FastifyReply, error: unknown): FastifyReply {
  const refusal = toSandboxError(request, error);
  if (refusal.status === 502) {
    // What a CDN in front of the platform answers: HTML, so drivers must check the status before parsing.
    return reply
      .code(502)
      .type('text/html; charset=utf-8')
      .send('<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>');
  }
  const body = { code: refusal.status, reason: refusal.reason, message: refusal.message, ...refusal.extra };
  reply.code(refusal.status);
  // Fansly wraps every answer in {success, response|error} and names the text `details`.
  if (request.url.startsWith('/api/v1/')) {
    const { message, ...rest } = body;
    return reply.send({ success: false, error: { ...rest, details: message } });
  }
  return reply.send({ error: body });
}

function toSandboxError(request: FastifyRequest, error: unknown): SandboxError {
  if (error instanceof SandboxError) return error;
  const status = (error as { statusCode?: unknown }).statusCode;
  const message = error instanceof Error ? error.message : 'Bad request';
  // Fastify's own client errors: schema validation, malformed JSON, unsupported media type, body too large.
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return new SandboxError(status, status === 400 ? 'bad_request' : 'request_rejected', message);
  }
  request.log.error({ err: error }, 'sandbox request failed');
  return new SandboxError(500, 'internal_error', 'Internal error');
}
