import { expect } from 'vitest';
import { BOOTSTRAP_KEY, type TestApp } from '../support/app.js';

/**
 * Helpers for the end-to-end login flow tests: start an attempt, follow it with the long-poll the way a
 * developer's backend would, and look at what the sandbox platform saw.
 */

export type Platform = 'onlyfans' | 'fansly';

export const base = (platform: Platform = 'onlyfans') => (platform === 'fansly' ? '/api/fansly/authenticate' : '/api/authenticate');

/** Starts an attempt and returns its id (the start answer itself is checked). */
export async function startAttempt(app: TestApp, body: Record<string, unknown>, platform: Platform = 'onlyfans'): Promise<string> {
  const res = await app.api(base(platform), { method: 'POST', body });
  expect(res.status, res.text).toBe(200);
  expect(res.body).toEqual({
    attempt_id: expect.stringMatching(/^auth_/),
    message: 'Authentication process started. Query the polling_url to check the progress.',
    polling_url: `${app.url}${base(platform)}/${res.body.attempt_id}`,
    state: 'pending',
  });
  return res.body.attempt_id as string;
}

export async function getAttempt(app: TestApp, id: string, platform: Platform = 'onlyfans') {
  const res = await app.api(`${base(platform)}/${id}`);
  expect(res.status, res.text).toBe(200);
  return res.body;
}

/**
 * Long-polls until the attempt leaves `from` (default: pending), as a client would: `?wait=…&state=<last seen>`.
 * Returns the attempt in its new state. Fails after `timeoutMs`.
 */
export async function settle(app: TestApp, id: string, opts: { from?: string; platform?: Platform; timeoutMs?: number } = {}) {
  const from = opts.from ?? 'pending';
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  for (;;) {
    const res = await app.api(`${base(opts.platform)}/${id}?wait=5&state=${from}`);
    expect(res.status, res.text).toBe(200);
    if (res.body.state !== from) return res.body;
    if (Date.now() > deadline) throw new Error(`attempt ${id} still ${from} after ${opts.timeoutMs ?? 20_000} ms: ${res.text}`);
  }
}

/** Like `settle`, and checks the state it settled in. */
export async function expectSettled(app: TestApp, id: string, state: string, opts: { from?: string; platform?: Platform; timeoutMs?: number } = {}) {
  const attempt = await settle(app, id, opts);
  expect(attempt.state, JSON.stringify(attempt)).toBe(state);
  return attempt;
}

export async function submit(app: TestApp, id: string, body: Record<string, unknown>, platform: Platform = 'onlyfans') {
  return app.api(`${base(platform)}/${id}`, { method: 'PUT', body });
}

/** Submits a code (202, now verifying) and waits for the verdict. */
export async function submitCode(app: TestApp, id: string, code: string, platform: Platform = 'onlyfans') {
  const res = await submit(app, id, { code }, platform);
  expect(res.status, res.text).toBe(202);
  expect(res.body).toMatchObject({ message: 'OTP submitted successfully', attempt_id: id, state: 'pending', next_actions: [] });
  return settle(app, id, { platform });
}

/** Confirms a selfie the creator completed (202, the platform's answer awaited) and waits for the verdict. */
export async function confirmSelfie(app: TestApp, id: string) {
  const res = await submit(app, id, { selfie_verification_completed: true });
  expect(res.status, res.text).toBe(202);
  expect(res.body).toMatchObject({ message: 'OTP submitted successfully', attempt_id: id });
  expect(res.body.state).not.toBe('needs_face_otp');
  return settle(app, id);
}

/** Confirms a selfie the platform has not seen: 409 `selfie_not_completed`, the attempt stays on the face check. */
export async function confirmSelfieTooEarly(app: TestApp, id: string) {
  const res = await submit(app, id, { selfie_verification_completed: true });
  expect(res.status, res.text).toBe(409);
  expect(res.body).toMatchObject({ code: 'selfie_not_completed', state: 'needs_face_otp', message: res.body.detail });
  return getAttempt(app, id);
}

/** What the sandbox platform saw for a user, oldest first. */
export async function platformRequests(app: TestApp, email: string, platform: Platform = 'onlyfans'): Promise<Array<{ method: string; path: string; status: number }>> {
  const res = await fetch(`${app.sandbox.url}/__sandbox/requests?email=${encodeURIComponent(email)}&platform=${platform}`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { data: Array<{ method: string; path: string; status: number }> }).data;
}

/** Waits until the sandbox platform is answering at least `count` requests at once (calls still in flight). */
export async function waitForOpenPlatformRequests(app: TestApp, count: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await fetch(`${app.sandbox.url}/__sandbox/open-requests`);
    if ((((await res.json()) as { open: number }).open) >= count) return;
    if (Date.now() > deadline) throw new Error(`the platform never had ${count} requests in flight`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Asks the platform to send the device-check email and waits until the platform has sent it. */
export async function sendEmail(app: TestApp, id: string, email: string) {
  const res = await app.api(`/api/authenticate/${id}/send-email-to-creator`, { method: 'POST' });
  expect(res.status, res.text).toBe(202);
  expect(res.body).toMatchObject({ attempt_id: id, state: 'needs_email', next_actions: ['submit_code', 'send_email_to_creator'] });
  expect(res.body.email_sent_at).toEqual(expect.any(String));
  expect(res.body.progress).toMatch(/email .*sent/i);
  const deadline = Date.now() + 15_000;
  for (;;) {
    const sent = (await platformRequests(app, email)).some((r) => r.path === '/api2/v2/users/login/email/send' && r.status === 200);
    if (sent) return;
    if (Date.now() > deadline) throw new Error(`the platform never sent the email for ${email}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Completes the sandbox selfie check whose page is `faceUrl`. */
export async function completeFace(app: TestApp, faceUrl: string) {
  const token = faceUrl.split('/').pop();
  const res = await fetch(`${app.sandbox.url}/__sandbox/face/${token}/complete`, { method: 'POST' });
  expect(res.status).toBe(200);
}

/** A valid browser session for `email`, minted by the sandbox (for raw_data). */
export async function mintSession(app: TestApp, email: string, platform: Platform = 'onlyfans', userAgent = 'Mozilla/5.0 (FanGate tests)') {
  const res = await fetch(`${app.sandbox.url}/__sandbox/sessions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ platform, email, user_agent: userAgent }),
  });
  expect(res.status).toBe(200);
  return (await res.json()) as { auth_id: string; cookies: string; xbc: string; user_agent: string; user: { id: string; username: string } };
}

/** The full account object a connect by email and password leaves behind. */
export function expectedAccount(app: TestApp, over: { email: string; username: string; name: string; platform?: Platform } & Record<string, unknown>) {
  const { email, username, name, platform = 'onlyfans', ...rest } = over;
  return {
    id: expect.stringMatching(/^acct_/),
    platform,
    display_name: email,
    status: 'active',
    is_authenticated: true,
    auth_type: 'email_password',
    imported: false,
    remember_credentials: true,
    can_reauth: true,
    platform_user: {
      id: platform === 'fansly' ? expect.stringMatching(/^\d{18}$/) : expect.stringMatching(/^\d{12}$/),
      username,
      name,
      avatar: expect.stringMatching(new RegExp(`^${app.sandbox.url}/avatars/\\d+\\.svg$`)),
    },
    client_reference_id: null,
    proxy: { type: 'none' },
    health_check_interval_sec: 900,
    last_checked_at: expect.any(String),
    next_check_at: expect.any(String),
    expired_at: null,
    created_at: expect.any(String),
    updated_at: expect.any(String),
    ...rest,
  };
}

/** A completed_success attempt: account_id set, the account object in full and consistent. */
export function expectConnected(app: TestApp, attempt: any, account: Parameters<typeof expectedAccount>[1]) {
  expect(attempt).toMatchObject({
    state: 'completed_success',
    next_actions: [],
    error: null,
    account_id: expect.stringMatching(/^acct_/),
    completed_at: expect.any(String),
  });
  expect(attempt.account).toEqual(expectedAccount(app, account));
  expect(attempt.account.id).toBe(attempt.account_id);
}


/**
 * Opens `GET …/{id}/events` and reads `event: attempt` frames until the server ends the stream (or
 * `timeoutMs`). `onAttempt` sees each attempt as it arrives (e.g. to submit a code when it asks for one).
 */
export async function readEvents(
  app: TestApp,
  id: string,
  onAttempt: (attempt: any) => Promise<void> | void = () => undefined,
  opts: { platform?: Platform; timeoutMs?: number } = {},
): Promise<{ attempts: any[]; ended: boolean; contentType: string | null }> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), opts.timeoutMs ?? 20_000);
  const attempts: any[] = [];
  let ended = false;
  try {
    const res = await fetch(`${app.url}${base(opts.platform)}/${id}/events`, {
      headers: { authorization: `Bearer ${BOOTSTRAP_KEY}`, accept: 'text/event-stream' },
      signal: abort.signal,
    });
    expect(res.status).toBe(200);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        ended = true;
        break;
      }
      buffer += value;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const lines = frame.split('\n');
        const event = lines.find((l) => l.startsWith('event:'))?.slice(6).trim();
        const data = lines.filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n');
        if (event !== 'attempt' || !data) continue;
        const attempt = JSON.parse(data);
        attempts.push(attempt);
        await onAttempt(attempt);
      }
    }
    return { attempts, ended, contentType: res.headers.get('content-type') };
  } catch (error) {
    if (abort.signal.aborted) return { attempts, ended, contentType: null };
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** The states in order, with repeats (progress-only changes) collapsed. */
export const distinctStates = (attempts: Array<{ state: string }>) =>
  attempts.map((a) => a.state).filter((state, i, all) => i === 0 || all[i - 1] !== state);
