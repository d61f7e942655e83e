// FanGate Link page: shows one step at a time, talks to its own origin only, follows the attempt by
// Server-Sent Events (long-poll when they fail). No framework, no third-party request, no secret kept.
(() => {
  'use strict';
  const body = document.body;
  const csrf = body.dataset.csrf;
  const parentOrigin = body.dataset.parentOrigin;
  const platform = body.dataset.platform;
  const base = location.pathname.replace(/\/+$/, '');
  const embedded = window.parent !== window;
  const $ = (id) => document.getElementById(id);
  const live = $('live');
  const alertBox = $('alert');

  let state = JSON.parse($('initial-state').textContent);
  // A link that had already ended when the page opened only says so; it does not redirect again.
  const endedBefore = Boolean(state.result);
  let shown = null;
  let chosen = null; // the method form picked while no attempt runs
  let emailSent = false;
  let selfieConfirmed = false; // "I've done it" pressed: coming back to the face step means not done yet
  let source = null;
  let polling = false;
  let ended = false;
  let busy = false;

  const RUNNING = new Set(['pending', 'mobile_app', 'code', 'email', 'face']);

  function post(message) {
    if (embedded && parentOrigin) window.parent.postMessage(message, parentOrigin);
  }

  function say(text) {
    live.textContent = '';
    // A fresh text node makes screen readers announce the same words twice in a row, too.
    window.setTimeout(() => { live.textContent = text; }, 30);
  }

  function showError(text) {
    if (!text) { alertBox.hidden = true; alertBox.textContent = ''; return; }
    alertBox.textContent = text;
    alertBox.hidden = false;
  }

  function clearFieldErrors() {
    for (const el of document.querySelectorAll('.field-error')) { el.hidden = true; el.textContent = ''; }
    for (const el of document.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  }

  function fieldError(field, message) {
    const ids = { login: 'login', email: 'login', username: 'login', password: 'password', cookies: 'cookies', auth_id: 'cookies', xbc: 'xbc', user_agent: 'user_agent', code: shown === 'email' ? 'email-input' : 'code-input' };
    const id = ids[field];
    const input = id && $(id);
    const out = id && $(id + '-error');
    if (!input || !out) return false;
    input.setAttribute('aria-invalid', 'true');
    out.textContent = message;
    out.hidden = false;
    return true;
  }

  function show(step) {
    if (step === 'method' && platform === 'fansly') step = 'email_password';
    for (const el of document.querySelectorAll('.step')) el.hidden = el.dataset.step !== step;
    if (step !== shown) {
      // Focus follows each new step (not the first: a fresh page is read from the top anyway).
      const heading = shown === null ? null : $('h-' + step);
      shown = step;
      if (heading) heading.focus();
      post({ type: 'fangate.link.event', name: 'step.' + step });
    }
  }

  function codeHelp(a) {
    const n = platform === 'fansly' ? 'Fansly' : 'OnlyFans';
    if (a.otp_channel === 'sms') return 'We sent a code by text message to your phone ending in ' + (a.phone_last4 || '…') + '.';
    if (a.otp_channel === 'app') return 'Open your authenticator app and enter the current code for ' + n + '.';
    if (a.otp_channel === 'email') return n + ' sent a code to ' + (a.email_mask || 'your email address') + '.';
    return 'Enter the code ' + n + ' sent you.';
  }

  function wrongText(a) {
    if (a.state !== 'wrong_2fa_code_retry') return '';
    const left = a.attempts_remaining;
    return 'That code was not correct. ' + (left == null ? 'Try again.' : left === 1 ? 'You have 1 try left.' : 'You have ' + left + ' tries left.');
  }

  function finishWith(s) {
    if (ended || !s.result || endedBefore) return;
    ended = true;
    stopFollowing();
    post(s.result);
    if (s.redirect && !embedded) window.setTimeout(() => location.assign(s.redirect), s.result.type === 'fangate.link.success' ? 800 : 300);
  }

  function render(s) {
    state = s;
    const a = s.attempt;
    let step = s.step;
    if (step === 'method' && chosen) step = chosen;
    if (step === 'code' || step === 'email') {
      const wrong = wrongText(a);
      $('code-help').textContent = codeHelp(a);
      for (const id of ['code-wrong', 'email-wrong']) { $(id).textContent = wrong; $(id).hidden = !wrong; }
      if (a.email_mask) $('email-help').textContent = (platform === 'fansly' ? 'Fansly' : 'OnlyFans') + ' wants to confirm this sign-in with a code sent to ' + a.email_mask + '.';
      $('email-sent').hidden = !emailSent;
      if (wrong) { showError(wrong); for (const id of ['code-input', 'email-input']) $(id).value = ''; }
    }
    if (step === 'face' && a.face_verification_url) $('face-link').href = a.face_verification_url;
    const selfieNotDone = step === 'face' && selfieConfirmed && shown === 'pending';
    if (step !== 'pending') selfieConfirmed = false;
    if (step === 'mobile_app') {
      const qr = $('qr');
      const src = base + '/qr.svg?attempt=' + encodeURIComponent(a.attempt_id);
      if (qr.getAttribute('src') !== src) qr.src = src;
    }
    if (step === 'pending') $('progress').textContent = a && a.progress ? a.progress + '…' : 'Signing in…';
    if (step === 'failed') {
      $('failed-message').textContent = s.error ? s.error.message : 'Something went wrong.';
      $('retry').hidden = !(s.error && s.error.retryable);
      // The phone's QR code ran out: show a fresh one instead of an error.
      if (a && a.auth_type === 'mobile_app' && s.error && s.error.code === 'expired' && s.error.retryable && !busy) {
        busy = true;
        act('/back').then(() => { busy = false; return start('mobile_app'); }, () => { busy = false; refresh(); });
        return;
      }
    }
    if (step === 'done') { $('done-link').href = s.redirect || '#'; }
    if (step === 'closed') {
      const link = $('closed-link');
      link.hidden = !s.redirect;
      if (s.redirect) link.href = s.redirect;
      $('h-closed').textContent = s.status === 'expired' ? 'This link has expired' : s.status === 'cancelled' ? 'Connection cancelled' : s.error ? 'We couldn\u2019t connect your account' : 'This link has already been used';
    }
    const before = shown;
    show(step);
    if (step !== before) {
      const words = { pending: 'Connecting. Please wait.', code: codeHelp(a || {}), email: 'Confirm by email.', face: 'Selfie check needed.', mobile_app: 'Scan the QR code with your phone.', failed: s.error ? s.error.message : 'Failed.', done: 'Your account is connected.', closed: $('h-closed').textContent };
      if (words[step]) say(words[step]);
      if (step !== 'failed' && !(step === 'code' && a && a.state === 'wrong_2fa_code_retry')) showError('');
      if (selfieNotDone) showError('The selfie check is not finished yet. Complete it in the other tab, then press \u201cI\u2019ve done it\u201d again.');
    }
    if (s.result && (s.status === 'completed' || s.status === 'cancelled' || s.redirect)) finishWith(s);
    if (RUNNING.has(s.step)) follow(); else stopFollowing();
  }

  function stopFollowing() {
    if (source) { source.close(); source = null; }
  }

  function follow() {
    if (source || polling || ended) return;
    if (!('EventSource' in window)) { poll(); return; }
    source = new EventSource(base + '/events');
    source.addEventListener('state', (e) => render(JSON.parse(e.data)));
    source.onerror = () => {
      // The stream ended or broke: keep following by long-poll.
      stopFollowing();
      if (RUNNING.has(state.step)) poll();
    };
  }

  async function poll() {
    if (polling) return;
    polling = true;
    try {
      while (!ended && RUNNING.has(state.step)) {
        const last = state.attempt ? state.attempt.state : '';
        try {
          const res = await fetch(base + '/state?wait=25&state=' + encodeURIComponent(last), { cache: 'no-store', credentials: 'same-origin' });
          if (!res.ok) throw new Error(String(res.status));
          const next = await res.json();
          polling = false;
          render(next);
          polling = true;
          if (source) break;
        } catch {
          await new Promise((r) => window.setTimeout(r, 2000));
        }
      }
    } finally {
      polling = false;
    }
  }

  async function act(path, data) {
    const res = await fetch(base + path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-fangate-csrf': csrf },
      body: JSON.stringify(data || {}),
      credentials: 'same-origin',
      cache: 'no-store',
    });
    const json = await res.json().catch(() => null);
    if (!res.ok) throw json || { detail: 'Something went wrong. Try again.' };
    return json;
  }

  // Problems a creator meets on purpose, said for them rather than for the developer.
  const CREATOR_TEXT = {
    selfie_not_completed: 'The selfie check is not finished yet. Complete it in the other tab, then press \u201cI\u2019ve done it\u201d again.',
    email_recently_sent: 'The email is on its way. You can ask for another one in a minute.',
  };

  function problem(p) {
    clearFieldErrors();
    let named = false;
    for (const e of (p && p.errors) || []) named = fieldError(e.field, e.message) || named;
    const own = p && CREATOR_TEXT[p.code];
    showError(named ? 'Please correct the marked fields.' : own || (p && p.detail) || 'Something went wrong. Try again.');
    if (p && (p.code === 'link_closed' || p.code === 'link_expired')) refresh();
  }

  async function refresh() {
    try {
      const res = await fetch(base + '/state', { cache: 'no-store', credentials: 'same-origin' });
      if (res.ok) render(await res.json());
    } catch { /* stay where we are */ }
  }

  async function run(button, path, data) {
    if (busy) return;
    busy = true;
    if (button) button.disabled = true;
    try {
      clearFieldErrors();
      showError('');
      const next = await act(path, data);
      render(next);
      return next;
    } catch (p) {
      problem(p);
    } finally {
      busy = false;
      if (button) button.disabled = false;
    }
  }

  function start(method, data) {
    chosen = null;
    return run(null, '/start', Object.assign({ method }, data || {}));
  }

  function cancelStep() {
    return state.attempt && RUNNING.has(state.step) ? state.attempt.state : shown || 'method';
  }

  // ---- wiring ----------------------------------------------------------------------------------------

  document.addEventListener('click', (event) => {
    const target = event.target.closest('button[data-go], button[data-action]');
    if (!target) return;
    const go = target.dataset.go;
    if (go === 'mobile_app') { start('mobile_app'); return; }
    if (go) {
      chosen = go;
      showError('');
      show(go);
      if (go === 'raw_data' && !$('user_agent').value) $('user_agent').value = navigator.userAgent;
      post({ type: 'fangate.link.event', name: 'method.' + go });
      return;
    }
    const action = target.dataset.action;
    if (action === 'back') {
      chosen = null;
      emailSent = false;
      showError('');
      if (state.attempt && RUNNING.has(state.step)) run(target, '/back');
      else render(state);
      if (!state.attempt) { shown = null; show('method'); }
    } else if (action === 'cancel') {
      run(target, '/cancel', { step: cancelStep() });
    } else if (action === 'email') {
      run(target, '/email').then((r) => { if (r) { emailSent = true; $('email-sent').hidden = false; say($('email-sent').textContent); $('email-input').focus(); } });
    } else if (action === 'selfie') {
      selfieConfirmed = true;
      run(target, '/selfie');
    } else if (action === 'finish') {
      run(target, '/finish');
    } else if (action === 'retry') {
      const method = state.attempt ? state.attempt.auth_type : 'email_password';
      run(target, '/back').then((r) => {
        if (!r) return;
        if (method === 'mobile_app') { start('mobile_app'); return; }
        chosen = method;
        render(r);
      });
    }
  });

  $('form-credentials').addEventListener('submit', (event) => {
    event.preventDefault();
    const password = $('password');
    const data = { login: $('login').value, password: password.value };
    const button = event.target.querySelector('button[type=submit]');
    run(button, '/start', Object.assign({ method: 'email_password' }, data)).then((r) => { if (r) { chosen = null; password.value = ''; } });
  });

  $('form-cookies').addEventListener('submit', (event) => {
    event.preventDefault();
    const data = { cookies: $('cookies').value, xbc: $('xbc').value, user_agent: $('user_agent').value };
    const button = event.target.querySelector('button[type=submit]');
    run(button, '/start', Object.assign({ method: 'raw_data' }, data)).then((r) => { if (r) { chosen = null; $('cookies').value = ''; $('xbc').value = ''; } });
  });

  for (const form of document.querySelectorAll('.code-form')) {
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const input = form.querySelector('input[name=code]');
      const code = input.value.replace(/\s+/g, '');
      if (code.length < 4) { clearFieldErrors(); fieldError('code', 'Enter the code (at least 4 characters).'); input.focus(); return; }
      run(form.querySelector('button[type=submit]'), '/code', { code }).then((r) => { if (r) input.value = ''; });
    });
  }

  // Escape asks link.js (when embedded) to close the window.
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && embedded) post({ type: 'fangate.link.event', name: 'close_requested' });
  });

  post({ type: 'fangate.link.event', name: 'open' });
  render(state);
})();
