import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { SandboxState } from './state.js';

/**
 * The selfie check page a creator opens from `face_url`. "Confirm selfie" is a plain form POST, so it
 * works without JavaScript and from a browser test.
 */

export const FaceParams = Type.Object({ token: Type.String({ pattern: '^[A-Za-z0-9_-]{1,200}$' }) });

export const facePages: FastifyPluginAsyncTypebox<{ state: SandboxState }> = async (app, { state }) => {
  // Browsers post forms urlencoded; the button carries no data worth parsing.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_request, _body, done) =>
    done(null, {}),
  );

  app.get('/face/:token', { schema: { params: FaceParams } }, async (request, reply) => {
    const status = state.logins.faceStatus(request.params.token);
    reply.type('text/html; charset=utf-8');
    if (status === null) return reply.code(404).send(page('Link expired', '<p>This verification link is invalid or has expired.</p>'));
    if (status === 'completed') return page('Selfie confirmed', '<p id="status">Selfie confirmed. You can return to the app.</p>');
    return page(
      'Selfie check',
      `<p>Take a selfie to confirm it is you signing in.</p>
<form method="post" action="/face/${request.params.token}">
  <button type="submit" id="confirm">Confirm selfie</button>
</form>`,
    );
  });

  app.post('/face/:token', { schema: { params: FaceParams } }, async (request, reply) => {
    if (!state.logins.completeFace(request.params.token)) {
      return reply.code(404).type('text/html; charset=utf-8').send(page('Link expired', '<p>This verification link is invalid or has expired.</p>'));
    }
    // Post/redirect/get: reloading the result page does not re-submit.
    return reply.redirect(`/face/${request.params.token}`, 303);
  });
};

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${title} · Sandbox</title>
<style>body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}button{font-size:1.1rem;padding:.6rem 1.2rem}</style>
</head>
<body><h1>${title}</h1>
${body}
</body>
</html>`;
}
