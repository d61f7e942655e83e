import { Type } from 'typebox';
import { named } from './components.js';
import { Body, HeaderText, Timestamp } from './schemas.js';

/** Schemas of the connect and accounts API (DESIGN 3-5): one source for validation, serialisation and OpenAPI. */

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()]);

export const CustomProxySchema = Body(
  {
    protocol: Type.Optional(Type.Enum(['http', 'socks5'], { description: 'Default `http` (HTTP CONNECT).' })),
    host: Type.String({ minLength: 1, maxLength: 253, pattern: '^[^\\s/@]+$', examples: ['proxy.example.net'] }),
    port: Type.Integer({ minimum: 1, maximum: 65535, examples: [3128] }),
    username: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
    password: Type.Optional(Type.String({ minLength: 1, maxLength: 255, description: 'Stored encrypted; never returned.' })),
  },
  { description: 'A proxy of your own. Not together with `proxyCountry`.' },
);

const proxyCountry = Type.String({ pattern: '^[A-Za-z]{2}$', description: "A country of the operator's pool (FANGATE_PROXY_POOL), e.g. `us` or `uk`.", examples: ['us'] });

export const StartBodySchema = named('AuthenticationRequest', Body(
  {
    auth_type: Type.Optional(Type.Enum(['email_password', 'raw_data', 'mobile_app'], { description: 'Default `email_password`.' })),
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'Display name; defaults to the email or auth_id.' })),
    email: Type.Optional(Type.String({ minLength: 3, maxLength: 320, format: 'email', examples: ['jane@sandbox.test'] })),
    username: Type.Optional(Type.String({ minLength: 1, maxLength: 320, description: 'Fansly only: log in by username instead of email.' })),
    password: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: 'Stored encrypted (with remember_credentials); never returned.' })),
    auth_id: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$', description: 'raw_data: the auth_id cookie.' })),
    cookies: Type.Optional(HeaderText({ maxLength: 16384, description: 'raw_data: the full cookie string `a=b; c=d`; must hold auth_id, sess and fp.' })),
    xbc: Type.Optional(HeaderText({ maxLength: 512, description: 'raw_data: the x-bc header value.' })),
    user_agent: Type.Optional(HeaderText({ maxLength: 1024, description: 'raw_data: the browser user agent the session was made with.' })),
    proxyCountry: Type.Optional(proxyCountry),
    customProxy: Type.Optional(CustomProxySchema),
    force_connect: Type.Optional(Type.Boolean({ description: 'Connect even if this platform user is already connected in the organisation.' })),
    remember_credentials: Type.Optional(Type.Boolean({ description: 'Default true: store email/password (encrypted) so FanGate can re-authenticate alone.' })),
    totp_secret: Type.Optional(
      Type.String({ minLength: 16, maxLength: 128, pattern: '^[A-Za-z2-7 =-]+$', description: "Base32 secret of the creator's authenticator app: FanGate then answers app codes itself." }),
    ),
    client_reference_id: Type.Optional(Type.String({ minLength: 1, maxLength: 255, description: 'Your own id, echoed on the account, the attempt and every webhook.' })),
  },
  {
    examples: [
      { email: 'jane+sms@sandbox.test', password: 'password', client_reference_id: 'creator-42' },
      { auth_type: 'raw_data', auth_id: '123456789012', cookies: 'auth_id=123456789012; sess=7dfa347913c31bedae6c195de2863535; fp=8c486fbe38fb36729ab25071f543e7f3', xbc: '186c7d50c4d01030c3bad0175c3ab00dd5dbbf6b', user_agent: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.6 Safari/605.1.15' },
      { auth_type: 'mobile_app' },
    ],
  },
));

export const AccountSchema = named('Account', Type.Object(
  {
    id: Type.String(),
    platform: Type.Enum(['onlyfans', 'fansly']),
    display_name: Type.String(),
    status: Type.Enum(['active', 'reauthenticating', 'awaiting_2fa', 'expired']),
    is_authenticated: Type.Boolean(),
    auth_type: Type.String(),
    imported: Type.Boolean(),
    remember_credentials: Type.Boolean(),
    can_reauth: Type.Boolean({ description: 'Credentials are stored and every checkpoint last met can be answered without the creator.' }),
    platform_user: Type.Object({ id: Type.String(), username: Type.String(), name: Type.String(), avatar: Nullable(Type.String()) }),
    client_reference_id: Nullable(Type.String()),
    proxy: Type.Object({
      type: Type.Enum(['none', 'country', 'custom']),
      country: Type.Optional(Type.String()),
      host: Type.Optional(Type.String()),
      port: Type.Optional(Type.Integer()),
    }),
    health_check_interval_sec: Type.Integer(),
    last_checked_at: Nullable(Timestamp),
    next_check_at: Type.Union([Timestamp, Type.Null()], { description: 'When the health monitor checks the session next (null: not scheduled, e.g. expired or re-authenticating).' }),
    expired_at: Nullable(Timestamp),
    created_at: Timestamp,
    updated_at: Timestamp,
  },
  {
    examples: [
      {
        id: 'acct_7QmV2c9XkT4rB1nH8sL3dW',
        platform: 'onlyfans',
        display_name: 'jane@sandbox.test',
        status: 'active',
        is_authenticated: true,
        auth_type: 'email_password',
        imported: false,
        remember_credentials: true,
        can_reauth: true,
        platform_user: { id: '418839207712', username: 'jane', name: 'Jane', avatar: 'http://127.0.0.1:8081/avatars/418839207712.svg' },
        client_reference_id: 'creator-42',
        proxy: { type: 'none' },
        health_check_interval_sec: 900,
        last_checked_at: '2026-11-22T19:00:00.000Z',
        next_check_at: '2026-11-22T19:15:00.000Z',
        expired_at: null,
        created_at: '2026-11-22T19:00:00.000Z',
        updated_at: '2026-11-22T19:00:00.000Z',
      },
    ],
  },
));

const AttemptProperties = {
  attempt_id: Type.String(),
  platform: Type.Enum(['onlyfans', 'fansly']),
  auth_type: Type.Enum(['email_password', 'raw_data', 'mobile_app']),
  kind: Type.Enum(['connect', 'reauthenticate', 'credentials_update']),
  state: Type.Enum([
    'pending',
    'awaiting_mobile_session',
    'needs_otp',
    'needs_app_otp',
    'needs_email',
    'needs_face_otp',
    'wrong_2fa_code_retry',
    'completed_success',
    'completed_failed',
  ]),
  progress: Type.String({ description: 'What is happening now, for people.' }),
  account_id: Nullable(Type.String()),
  account: Nullable(AccountSchema),
  next_actions: Type.Array(Type.Enum(['open_mobile_app', 'submit_code', 'send_email_to_creator', 'open_face_verification', 'confirm_selfie'])),
  otp_channel: Nullable(Type.Enum(['sms', 'app', 'email', 'face'])),
  phone_last4: Nullable(Type.String()),
  email_mask: Nullable(Type.String()),
  face_verification_url: Nullable(Type.String()),
  mobile_auth_session_deeplink: Nullable(Type.String()),
  attempts_remaining: Nullable(Type.Integer()),
  email_sent_at: Type.Union([Timestamp, Type.Null()], { description: 'When the device-check email was last asked for (send-email-to-creator); null before. Asking again is possible 60 s later.' }),
  error: Nullable(
    Type.Object({
      code: Type.Enum([
        'invalid_credentials',
        'account_locked',
        '2fa_failed',
        'expired',
        'cancelled',
        'session_invalid',
        'wrong_user',
        'account_already_connected',
        'upstream_unavailable',
        'proxy_error',
      ]),
      message: Type.String(),
      existing_account_id: Type.Optional(Type.String()),
    }),
  ),
  client_reference_id: Nullable(Type.String()),
  polling_url: Type.String(),
  created_at: Timestamp,
  updated_at: Timestamp,
  expires_at: Timestamp,
  completed_at: Nullable(Timestamp),
  status: Type.Optional(Type.String({ description: 'Fansly attempts only (seed field).' })),
  needs_code: Type.Optional(Type.Boolean({ description: 'Fansly attempts only (seed field).' })),
  twofa_type: Type.Optional(Nullable(Type.Integer({ description: 'Fansly attempts only: 2 = email code, 0 = authenticator app.' }))),
  masked_email: Type.Optional(Nullable(Type.String({ description: 'Fansly attempts only (seed field).' }))),
};

const attemptExample = {
  attempt_id: 'auth_3Hn8QzL1vR6kW2pY9cT5mB',
  platform: 'onlyfans',
  auth_type: 'email_password',
  kind: 'connect',
  state: 'needs_otp',
  progress: 'Waiting for the SMS code',
  account_id: null,
  account: null,
  next_actions: ['submit_code'],
  otp_channel: 'sms',
  phone_last4: '4242',
  email_mask: null,
  face_verification_url: null,
  mobile_auth_session_deeplink: null,
  attempts_remaining: 5,
  email_sent_at: null,
  error: null,
  client_reference_id: 'creator-42',
  polling_url: 'http://localhost:8080/api/authenticate/auth_3Hn8QzL1vR6kW2pY9cT5mB',
  created_at: '2026-11-22T19:00:00.000Z',
  updated_at: '2026-11-22T19:00:01.000Z',
  expires_at: '2026-11-22T19:10:01.000Z',
  completed_at: null,
};

export const AttemptSchema = named('Attempt', Type.Object(AttemptProperties, { description: 'A login attempt (connect, re-authentication or credentials update) and what it waits for.', examples: [attemptExample] }));

export const SubmittedSchema = named(
  'SubmittedAttempt',
  Type.Object(
    { message: Type.String(), ...AttemptProperties },
    { description: 'The attempt after your input, with a `message`.', examples: [{ message: 'OTP submitted successfully', ...attemptExample, state: 'pending', progress: 'Verifying the code', next_actions: [] }] },
  ),
);

export const StartedSchema = named('AttemptStarted', Type.Object(
  {
    attempt_id: Type.String(),
    message: Type.String(),
    polling_url: Type.String(),
    state: Type.Optional(Type.String()),
    mobile_auth_session_deeplink: Type.Optional(Type.String({ description: 'mobile_app only: open on the phone (or render as a QR code).' })),
  },
  {
    examples: [
      {
        attempt_id: 'auth_3Hn8QzL1vR6kW2pY9cT5mB',
        message: 'Authentication process started. Query the polling_url to check the progress.',
        polling_url: 'http://localhost:8080/api/authenticate/auth_3Hn8QzL1vR6kW2pY9cT5mB',
        state: 'pending',
      },
    ],
  },
));

export const SubmitBodySchema = Body(
  {
    code: Type.Optional(Type.String({ minLength: 4, maxLength: 16, description: 'The SMS, authenticator or email code.', examples: ['123456'] })),
    selfie_verification_completed: Type.Optional(Type.Literal(true, { description: 'The creator finished the selfie check.' })),
  },
  { examples: [{ code: '123456' }, { selfie_verification_completed: true }] },
);

export const ReauthenticatedSchema = named('ReauthenticationStarted', Type.Object(
  { success: Type.Boolean(), message: Type.String(), attempt_id: Type.String(), polling_url: Type.String() },
  {
    examples: [
      { success: true, message: 'Re-authentication started.', attempt_id: 'auth_9Xv2Lq7Tn4Bc1Rk8Wm3Hs6', polling_url: 'http://localhost:8080/api/authenticate/auth_9Xv2Lq7Tn4Bc1Rk8Wm3Hs6' },
    ],
  },
));
