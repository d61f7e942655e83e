import type { LinkRow } from './model.js';
import type { PageState } from './service.js';

/** The hosted page's HTML (DESIGN 6): every step is server-rendered; the script shows one at a time. */

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
/** JSON inside a data block: no `<` so that nothing can close the element. */
const jsonBlock = (value: unknown) => JSON.stringify(value).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026');

const PLATFORM_NAMES = { onlyfans: 'OnlyFans', fansly: 'Fansly' } as const;

function section(step: string, visible: string, body: string): string {
  return `<section id="step-${step}" class="step" data-step="${step}" aria-labelledby="h-${step}"${step === visible ? '' : ' hidden'}>\n${body}\n</section>`;
}

const nav = (back = true) =>
  `<div class="actions secondary">${back ? '<button type="button" class="quiet" data-action="back">Back</button>' : ''}<button type="button" class="quiet" data-action="cancel">Cancel</button></div>`;

/** Which section a state shows first (the script takes over from there). */
export function visibleSection(state: PageState): string {
  if (state.step === 'method' && state.platform === 'fansly') return 'email_password';
  return state.step;
}

export function renderLinkPage(link: LinkRow, state: PageState, csrf: string): string {
  const name = PLATFORM_NAMES[link.platform];
  const visible = visibleSection(state);
  const fansly = link.platform === 'fansly';
  const verb = state.reconnect ? 'Reconnect' : 'Connect';
  const title = `${verb} your ${name} account`;
  const parentOrigin = new URL(link.redirect_url).origin;

  const method = section(
    'method',
    visible,
    `<h1 id="h-method" tabindex="-1">${esc(title)}</h1>
<p>Choose how you want to sign in to ${name}. Your login is sent to this service only and stored encrypted.</p>
<ul class="methods" role="list">
  <li><button type="button" class="method" data-go="email_password"><span class="m-title">Email and password</span><span class="m-help">Sign in as you do on ${name}. You may be asked for a code.</span></button></li>
  <li><button type="button" class="method" data-go="raw_data"><span class="m-title">Paste cookies</span><span class="m-help">Copy your session from a browser where you are signed in.</span></button></li>
  <li><button type="button" class="method" data-go="mobile_app"><span class="m-title">Use your phone</span><span class="m-help">Scan a QR code and finish in the app.</span></button></li>
</ul>
${nav(false)}`,
  );

  const credentials = section(
    'email_password',
    visible,
    `<h1 id="h-email_password" tabindex="-1">${esc(fansly ? title : `Sign in to ${name}`)}</h1>
<form id="form-credentials" class="form" novalidate>
  <div class="field">
    <label for="login">${fansly ? 'Email or username' : 'Email'}</label>
    <input id="login" name="login" type="${fansly ? 'text' : 'email'}" autocomplete="username" autocapitalize="none" spellcheck="false" required aria-describedby="login-error">
    <p id="login-error" class="field-error" hidden></p>
  </div>
  <div class="field">
    <label for="password">Password</label>
    <input id="password" name="password" type="password" autocomplete="current-password" required aria-describedby="password-error">
    <p id="password-error" class="field-error" hidden></p>
  </div>
  <button type="submit" class="primary">${verb}</button>
</form>
${nav(!fansly)}`,
  );

  const cookies = section(
    'raw_data',
    visible,
    `<h1 id="h-raw_data" tabindex="-1">Paste your ${name} session</h1>
<details class="howto">
  <summary>How do I find these?</summary>
  <ol>
    <li>On a computer, sign in to ${name} in your browser.</li>
    <li>Open the developer tools (F12, or Cmd+Option+I on a Mac) and choose the <strong>Network</strong> tab.</li>
    <li>Reload the page and select any request to <code>/api2/</code>.</li>
    <li>Under <strong>Request headers</strong>, copy the values of <code>cookie</code>, <code>x-bc</code> and <code>user-agent</code> into the fields below.</li>
  </ol>
  <p>Stay signed in on ${name} afterwards: signing out ends this session.</p>
</details>
<form id="form-cookies" class="form" novalidate>
  <div class="field">
    <label for="cookies">Cookie header</label>
    <textarea id="cookies" name="cookies" rows="4" autocomplete="off" spellcheck="false" required aria-describedby="cookies-help cookies-error"></textarea>
    <p id="cookies-help" class="help">It contains auth_id, sess and fp.</p>
    <p id="cookies-error" class="field-error" hidden></p>
  </div>
  <div class="field">
    <label for="xbc">x-bc header</label>
    <input id="xbc" name="xbc" type="text" autocomplete="off" spellcheck="false" required aria-describedby="xbc-error">
    <p id="xbc-error" class="field-error" hidden></p>
  </div>
  <div class="field">
    <label for="user_agent">User agent of that browser</label>
    <input id="user_agent" name="user_agent" type="text" autocomplete="off" spellcheck="false" required aria-describedby="user_agent-help user_agent-error">
    <p id="user_agent-help" class="help">Filled in with this browser's; change it if you copied the cookies from another one.</p>
    <p id="user_agent-error" class="field-error" hidden></p>
  </div>
  <button type="submit" class="primary">${verb}</button>
</form>
${nav()}`,
  );

  const mobile = section(
    'mobile_app',
    visible,
    `<h1 id="h-mobile_app" tabindex="-1">Continue on your phone</h1>
<p>Scan this code with your phone's camera and sign in to ${name} in the app. This page moves on by itself.</p>
<div class="qr"><img id="qr" alt="QR code that opens the sign-in on your phone" width="240" height="240"></div>
<p class="help">The code is valid for 10 minutes and is replaced by a new one when it runs out.</p>
${nav()}`,
  );

  const pending = section(
    'pending',
    visible,
    `<h1 id="h-pending" tabindex="-1">Connecting…</h1>
<div class="spinner" aria-hidden="true"></div>
<p id="progress" class="center">Signing in to ${name}.</p>
${nav(false)}`,
  );

  const codeForm = (id: string) => `<form id="form-${id}" class="form code-form" novalidate>
  <div class="field">
    <label for="${id}-input">Code</label>
    <input id="${id}-input" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" minlength="4" maxlength="16" required aria-describedby="${id}-input-error">
    <p id="${id}-input-error" class="field-error" hidden></p>
  </div>
  <button type="submit" class="primary">Verify</button>
</form>`;

  const code = section(
    'code',
    visible,
    `<h1 id="h-code" tabindex="-1">Enter your code</h1>
<p id="code-help">Enter the code ${name} sent you.</p>
<p id="code-wrong" class="notice error" hidden></p>
${codeForm('code')}
${nav()}`,
  );

  const email = section(
    'email',
    visible,
    `<h1 id="h-email" tabindex="-1">Confirm it's you by email</h1>
<p id="email-help">${name} wants to confirm this sign-in with a code sent by email.</p>
<button type="button" class="primary" data-action="email" id="send-email">Send me the email</button>
<p id="email-sent" class="notice" hidden>We asked ${name} to send the email. It can take a minute; check your spam folder too.</p>
<p id="email-wrong" class="notice error" hidden></p>
${codeForm('email')}
${nav()}`,
  );

  const face = section(
    'face',
    visible,
    `<h1 id="h-face" tabindex="-1">Take a quick selfie</h1>
<p>${name} asks for a selfie to confirm it's you. Open the check, follow the steps, then come back here.</p>
<p><a id="face-link" class="button" href="#" target="_blank" rel="noopener noreferrer">Open the selfie check<span class="visually-hidden"> (opens in a new tab)</span></a></p>
<button type="button" class="primary" data-action="selfie">I've done it</button>
${nav()}`,
  );

  const failed = section(
    'failed',
    visible,
    `<h1 id="h-failed" tabindex="-1">We couldn't connect your account</h1>
<p id="failed-message" class="notice error"></p>
<div class="actions">
  <button type="button" class="primary" data-action="retry" id="retry">Try again</button>
  <button type="button" class="quiet" data-action="finish">Return to the app</button>
</div>`,
  );

  const done = section(
    'done',
    visible,
    `<h1 id="h-done" tabindex="-1">Your account is connected</h1>
<p>Taking you back…</p>
<p><a id="done-link" class="button" href="#">Continue</a></p>`,
  );

  const closedTitle = state.status === 'expired' ? 'This link has expired' : state.status === 'cancelled' ? 'Connection cancelled' : 'This link has already been used';
  const closed = section(
    'closed',
    visible,
    `<h1 id="h-closed" tabindex="-1">${esc(closedTitle)}</h1>
<p id="closed-message">${state.status === 'expired' ? 'Ask the app that sent you here for a new link.' : 'You can close this page.'}</p>
<p><a id="closed-link" class="button" href="#" hidden>Return to the app</a></p>`,
  );

  return `<!doctype html>
<html lang="en" data-theme="${link.theme}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="${link.theme === 'auto' ? 'light dark' : link.theme}">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex">
<title>${esc(title)}</title>
<link rel="stylesheet" href="/link/assets/page.css">
<script src="/link/assets/page.js" defer></script>
</head>
<body data-csrf="${esc(csrf)}" data-parent-origin="${esc(parentOrigin)}" data-platform="${link.platform}">
<main id="main" class="card">
<p class="brand">${esc(name)} · secure connection</p>
<div id="live" class="visually-hidden" role="status" aria-live="polite"></div>
<div id="alert" class="alert" role="alert" aria-live="assertive" hidden></div>
${method}
${credentials}
${cookies}
${mobile}
${pending}
${code}
${email}
${face}
${failed}
${done}
${closed}
</main>
<script type="application/json" id="initial-state">${jsonBlock(state)}</script>
</body>
</html>`;
}

/** A plain page for an unknown token. */
export function renderNotFoundPage(): string {
  return `<!doctype html>
<html lang="en" data-theme="auto">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>Link not found</title>
<link rel="stylesheet" href="/link/assets/page.css">
</head>
<body>
<main id="main" class="card">
<section class="step"><h1>This link does not exist</h1><p>Check that you opened the whole link, or ask the app that sent you for a new one.</p></section>
</main>
</body>
</html>`;
}
