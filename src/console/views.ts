/**
 * The operator console's HTML (DESIGN 11): plain server-rendered pages, no script at all, one stylesheet
 * from FanGate's own origin. Everything shown is escaped; nothing secret is ever handed to these views
 * (they render the API's own objects, which hold none).
 */

export const esc = (value: unknown): string => String(value ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** Who is signed in, as the pages show it. */
export interface ConsoleViewer {
  label: string;
  admin: boolean;
  csrf: string;
}

export interface OrgRef {
  id: string;
  name: string;
}

type Section = 'orgs' | 'accounts' | 'attempts' | 'webhooks' | 'links' | 'audit';

export interface Frame {
  viewer: ConsoleViewer;
  org?: OrgRef;
  section: Section;
  title: string;
}

const when = (iso: string | null | undefined) => (iso ? `<time datetime="${esc(iso)}">${esc(iso.replace('T', ' ').replace(/\.\d{3}Z$/, ' UTC'))}</time>` : '<span class="muted">—</span>');
const status = (value: string) => `<span class="status status-${esc(value.replace(/[^a-z0-9_]/g, ''))}">${esc(value)}</span>`;
const code = (value: string | null | undefined) => (value ? `<code>${esc(value)}</code>` : '<span class="muted">—</span>');
const text = (value: string | null | undefined) => (value ? esc(value) : '<span class="muted">—</span>');

export const orgPath = (org: OrgRef, rest = '') => `/console/orgs/${encodeURIComponent(org.id)}${rest}`;

function layout(frame: Frame, body: string): string {
  const { viewer, org } = frame;
  const items: Array<[Section, string, string]> = [];
  if (viewer.admin) items.push(['orgs', 'Organisations', '/console/orgs']);
  if (org) {
    items.push(['accounts', 'Accounts', orgPath(org, '/accounts')]);
    items.push(['attempts', 'Attempts', orgPath(org, '/attempts')]);
    items.push(['webhooks', 'Webhooks', orgPath(org, '/webhooks')]);
    items.push(['links', 'Link sessions', orgPath(org, '/links')]);
    items.push(['audit', 'Audit log', orgPath(org, '/audit')]);
  }
  const nav = items
    .map(([section, label, href]) => `<li><a href="${esc(href)}"${section === frame.section ? ' aria-current="page"' : ''}>${esc(label)}</a></li>`)
    .join('');
  return page(
    `${frame.title}${org ? ` · ${org.name}` : ''}`,
    `<a class="skip" href="#main">Skip to content</a>
<header>
  <p class="brand">FanGate console${org ? ` <span class="muted">· ${esc(org.name)}</span>` : ''}</p>
  <nav aria-label="Console"><ul>${nav}</ul></nav>
  <div class="who"><span>Signed in as ${esc(viewer.label)}</span>
    <form class="inline" method="post" action="/console/sign-out"><input type="hidden" name="csrf" value="${esc(viewer.csrf)}"><button type="submit" class="quiet">Sign out</button></form>
  </div>
</header>
<main id="main" tabindex="-1">
<h1>${esc(frame.title)}</h1>
${body}
</main>`,
  );
}

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)} · FanGate console</title>
<link rel="stylesheet" href="/console/assets/console.css">
</head>
<body>
${body}
</body>
</html>
`;
}

function table(caption: string, headers: string[], rows: string[][], empty: string): string {
  if (rows.length === 0) return `<p class="muted">${esc(empty)}</p>`;
  return `<div class="table-wrap"><table>
<caption>${esc(caption)}</caption>
<thead><tr>${headers.map((h) => `<th scope="col">${esc(h)}</th>`).join('')}</tr></thead>
<tbody>
${rows.map((cells) => `<tr>${cells.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('\n')}
</tbody>
</table></div>`;
}

const pager = (basePath: string, nextCursor: string | null, extra = '') =>
  nextCursor ? `<p class="pager"><a href="${esc(`${basePath}?cursor=${encodeURIComponent(nextCursor)}${extra}`)}">Next page</a></p>` : '';

const details = (pairs: Array<[string, string]>) => `<dl>${pairs.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${v}</dd>`).join('')}</dl>`;

// ---------------------------------------------------------------------------------------------------- pages

export function signInPage(options: { error?: string; notice?: string } = {}): string {
  return page(
    'Sign in',
    `<main id="main" class="card">
<h1>Sign in to the FanGate console</h1>
${options.error ? `<p class="error" role="alert">${esc(options.error)}</p>` : ''}${options.notice ? `<p class="notice" role="status">${esc(options.notice)}</p>` : ''}
<form method="post" action="/console/sign-in">
  <div class="field">
    <label for="token">Admin token or API key</label>
    <input id="token" name="token" type="password" autocomplete="current-password" required aria-describedby="token-help">
    <p id="token-help" class="muted">The admin token (<code>FANGATE_ADMIN_TOKEN</code>) shows every organisation; an API key with the <code>console</code> scope shows its own.</p>
  </div>
  <button type="submit">Sign in</button>
</form>
</main>`,
  );
}

export function errorPage(statusCode: number, message: string, signedIn: boolean): string {
  return page(
    `Error ${statusCode}`,
    `<main id="main" class="card">
<h1>${esc(statusCode === 404 ? 'Not found' : `Error ${statusCode}`)}</h1>
<p class="error" role="alert">${esc(message)}</p>
<p><a href="${signedIn ? '/console' : '/console/sign-in'}">${signedIn ? 'Back to the console' : 'Sign in'}</a></p>
</main>`,
  );
}

export function orgsPage(frame: Omit<Frame, 'section' | 'title'>, orgs: OrgRef[]): string {
  const rows = orgs.map((o) => [`<a href="${esc(orgPath(o, '/accounts'))}">${esc(o.name)}</a>`, code(o.id)]);
  return layout({ ...frame, section: 'orgs', title: 'Organisations' }, table('Every organisation', ['Name', 'Id'], rows, 'No organisation yet.'));
}

export interface AccountItem {
  id: string;
  platform: string;
  display_name: string;
  status: string;
  platform_user: { username: string };
  client_reference_id: string | null;
  imported: boolean;
  can_reauth: boolean;
  health_check_interval_sec: number;
  last_checked_at: string | null;
  next_check_at: string | null;
  expired_at: string | null;
  created_at: string;
}

export function accountsPage(frame: Omit<Frame, 'section' | 'title'> & { org: OrgRef }, accounts: AccountItem[], nextCursor: string | null): string {
  const rows = accounts.map((a) => [
    `<a href="${esc(orgPath(frame.org, `/accounts/${encodeURIComponent(a.id)}`))}">${esc(a.display_name)}</a>`,
    esc(a.platform),
    `@${esc(a.platform_user.username)}`,
    status(a.status),
    when(a.last_checked_at),
    when(a.next_check_at),
    text(a.client_reference_id),
    when(a.created_at),
  ]);
  return layout(
    { ...frame, section: 'accounts', title: 'Accounts' },
    table('Connected accounts, newest first, with their health', ['Account', 'Platform', 'User', 'Status', 'Last check', 'Next check', 'Client reference', 'Connected'], rows, 'No account connected yet.') +
      pager(orgPath(frame.org, '/accounts'), nextCursor),
  );
}

export interface AttemptItem {
  attempt_id: string;
  platform: string;
  auth_type: string;
  kind: string;
  state: string;
  account_id: string | null;
  error: { code: string; message: string } | null;
  client_reference_id: string | null;
  created_at: string;
  completed_at: string | null;
}

function attemptRows(org: OrgRef, attempts: AttemptItem[]): string[][] {
  return attempts.map((a) => [
    `<a href="${esc(orgPath(org, `/attempts/${encodeURIComponent(a.attempt_id)}`))}"><code>${esc(a.attempt_id)}</code></a>`,
    esc(a.platform),
    esc(a.kind),
    esc(a.auth_type),
    status(a.state),
    a.error ? code(a.error.code) : '<span class="muted">—</span>',
    a.account_id ? `<a href="${esc(orgPath(org, `/accounts/${encodeURIComponent(a.account_id)}`))}"><code>${esc(a.account_id)}</code></a>` : '<span class="muted">—</span>',
    when(a.created_at),
  ]);
}
const ATTEMPT_HEADERS = ['Attempt', 'Platform', 'Kind', 'Method', 'State', 'Error', 'Account', 'Started'];

export function accountPage(frame: Omit<Frame, 'section' | 'title'> & { org: OrgRef }, account: AccountItem & { auth_type: string; proxy: { type: string; country?: string; host?: string } }, attempts: AttemptItem[]): string {
  const proxy = account.proxy.type === 'country' ? `country ${esc(account.proxy.country)}` : account.proxy.type === 'custom' ? `custom ${esc(account.proxy.host)}` : 'none';
  return layout(
    { ...frame, section: 'accounts', title: `Account ${account.display_name}` },
    details([
      ['Id', code(account.id)],
      ['Platform', `${esc(account.platform)} · @${esc(account.platform_user.username)}`],
      ['Status', status(account.status)],
      ['Method', `${esc(account.auth_type)}${account.imported ? ' (imported)' : ''}`],
      ['Can re-authenticate alone', account.can_reauth ? 'yes' : 'no'],
      ['Health check every', `${esc(account.health_check_interval_sec)} s`],
      ['Last check', when(account.last_checked_at)],
      ['Next check', when(account.next_check_at)],
      ['Expired at', when(account.expired_at)],
      ['Proxy', proxy],
      ['Client reference', text(account.client_reference_id)],
      ['Connected', when(account.created_at)],
    ]) +
      `<h2>Attempts on this account</h2>` +
      table('Latest attempts on this account', ATTEMPT_HEADERS, attemptRows(frame.org, attempts), 'No attempt on this account.'),
  );
}

export function attemptsPage(frame: Omit<Frame, 'section' | 'title'> & { org: OrgRef }, attempts: AttemptItem[], nextCursor: string | null): string {
  return layout(
    { ...frame, section: 'attempts', title: 'Attempts' },
    table('Connect and re-authentication attempts, newest first', ATTEMPT_HEADERS, attemptRows(frame.org, attempts), 'No attempt yet.') + pager(orgPath(frame.org, '/attempts'), nextCursor),
  );
}

export interface TransitionItem {
  from: string | null;
  to: string;
  error_code: string | null;
  at: string;
}

export function attemptPage(frame: Omit<Frame, 'section' | 'title'> & { org: OrgRef }, attempt: AttemptItem & { progress: string; expires_at: string }, history: TransitionItem[]): string {
  const rows = history.map((t) => [when(t.at), t.from ? status(t.from) : '<span class="muted">(started)</span>', status(t.to), code(t.error_code)]);
  return layout(
    { ...frame, section: 'attempts', title: `Attempt ${attempt.attempt_id}` },
    details([
      ['Platform', esc(attempt.platform)],
      ['Kind', esc(attempt.kind)],
      ['Method', esc(attempt.auth_type)],
      ['State', status(attempt.state)],
      ['Progress', esc(attempt.progress)],
      ['Error', attempt.error ? `${code(attempt.error.code)} ${esc(attempt.error.message)}` : '<span class="muted">—</span>'],
      ['Account', attempt.account_id ? `<a href="${esc(orgPath(frame.org, `/accounts/${encodeURIComponent(attempt.account_id)}`))}"><code>${esc(attempt.account_id)}</code></a>` : '<span class="muted">—</span>'],
      ['Client reference', text(attempt.client_reference_id)],
      ['Started', when(attempt.created_at)],
      ['Completed', when(attempt.completed_at)],
      ['Expires', when(attempt.expires_at)],
    ]) +
      `<h2>State history</h2>` +
      table('Every state change of this attempt, oldest first', ['At', 'From', 'To', 'Error'], rows, 'No state change recorded.'),
  );
}

export interface EndpointItem {
  id: string;
  endpoint_url: string;
  events: string[];
  account_scope: string;
  enabled: boolean;
  disabled_reason: string | null;
  description: string | null;
  created_at: string;
}

const endpointState = (e: EndpointItem) => (e.enabled ? status('active') : `<span class="status status-disabled">disabled${e.disabled_reason ? ` (${esc(e.disabled_reason)})` : ''}</span>`);

export function webhooksPage(frame: Omit<Frame, 'section' | 'title'> & { org: OrgRef }, endpoints: EndpointItem[], nextCursor: string | null): string {
  const rows = endpoints.map((e) => [
    `<a href="${esc(orgPath(frame.org, `/webhooks/${encodeURIComponent(e.id)}`))}"><code>${esc(e.endpoint_url)}</code></a>`,
    e.events.length ? esc(e.events.join(', ')) : 'all events',
    esc(e.account_scope),
    endpointState(e),
    text(e.description),
    when(e.created_at),
  ]);
  return layout(
    { ...frame, section: 'webhooks', title: 'Webhook endpoints' },
    table('Webhook endpoints, newest first', ['Endpoint', 'Events', 'Accounts', 'State', 'Description', 'Created'], rows, 'No webhook endpoint yet.') +
      pager(orgPath(frame.org, '/webhooks'), nextCursor),
  );
}

export interface DeliveryItem {
  id: string;
  event_id: string;
  event: string;
  status: string;
  attempts: number;
  last_response_status: number | null;
  next_attempt_at: string | null;
  created_at: string;
  delivered_at: string | null;
}

export function endpointPage(
  frame: Omit<Frame, 'section' | 'title'> & { org: OrgRef },
  endpoint: EndpointItem,
  deliveries: DeliveryItem[],
  nextCursor: string | null,
  flash?: { notice?: string; error?: string },
): string {
  const retryPath = (d: DeliveryItem) => orgPath(frame.org, `/webhooks/${encodeURIComponent(endpoint.id)}/deliveries/${encodeURIComponent(d.id)}/retry`);
  const rows = deliveries.map((d) => [
    `<code>${esc(d.id)}</code>`,
    esc(d.event),
    status(d.status),
    esc(d.attempts),
    d.last_response_status === null ? '<span class="muted">—</span>' : esc(d.last_response_status),
    when(d.created_at),
    when(d.delivered_at ?? d.next_attempt_at),
    d.status === 'pending'
      ? '<span class="muted">queued</span>'
      : `<form class="inline" method="post" action="${esc(retryPath(d))}"><input type="hidden" name="csrf" value="${esc(frame.viewer.csrf)}"><button type="submit" aria-label="Retry delivery ${esc(d.id)}">Retry</button></form>`,
  ]);
  return layout(
    { ...frame, section: 'webhooks', title: 'Webhook endpoint' },
    (flash?.notice ? `<p class="notice" role="status">${esc(flash.notice)}</p>` : '') +
      (flash?.error ? `<p class="error" role="alert">${esc(flash.error)}</p>` : '') +
      details([
        ['Id', code(endpoint.id)],
        ['URL', code(endpoint.endpoint_url)],
        ['Events', endpoint.events.length ? esc(endpoint.events.join(', ')) : 'all events'],
        ['Accounts', esc(endpoint.account_scope)],
        ['State', endpointState(endpoint)],
        ['Description', text(endpoint.description)],
        ['Created', when(endpoint.created_at)],
      ]) +
      `<h2>Deliveries</h2>` +
      table('Deliveries to this endpoint, newest first', ['Delivery', 'Event', 'Status', 'Tries', 'Last answer', 'Created', 'Delivered / next try', 'Action'], rows, 'No delivery yet.') +
      pager(orgPath(frame.org, `/webhooks/${encodeURIComponent(endpoint.id)}`), nextCursor),
  );
}

export interface LinkItem {
  id: string;
  status: string;
  platform: string;
  client_reference_id: string | null;
  connection_id: string | null;
  attempt_id: string | null;
  error: { code: string } | null;
  created_at: string;
  expires_at: string;
  completed_at: string | null;
}

export function linksPage(frame: Omit<Frame, 'section' | 'title'> & { org: OrgRef }, links: LinkItem[], nextCursor: string | null): string {
  const rows = links.map((l) => [
    `<code>${esc(l.id)}</code>`,
    esc(l.platform),
    status(l.status),
    text(l.client_reference_id),
    l.attempt_id ? `<a href="${esc(orgPath(frame.org, `/attempts/${encodeURIComponent(l.attempt_id)}`))}"><code>${esc(l.attempt_id)}</code></a>` : '<span class="muted">—</span>',
    l.connection_id ? `<a href="${esc(orgPath(frame.org, `/accounts/${encodeURIComponent(l.connection_id)}`))}"><code>${esc(l.connection_id)}</code></a>` : '<span class="muted">—</span>',
    l.error ? code(l.error.code) : '<span class="muted">—</span>',
    when(l.created_at),
    when(l.completed_at ?? l.expires_at),
  ]);
  return layout(
    { ...frame, section: 'links', title: 'Link sessions' },
    table('Hosted Link sessions, newest first', ['Link', 'Platform', 'Status', 'Client reference', 'Attempt', 'Account', 'Error', 'Created', 'Completed / expires'], rows, 'No Link session yet.') +
      pager(orgPath(frame.org, '/links'), nextCursor),
  );
}

export interface AuditItem {
  id: string;
  actor: { type: string; id: string | null };
  action: string;
  target_type: string;
  target_id: string | null;
  created_at: string;
  details: Record<string, unknown>;
}

export function auditPage(frame: Omit<Frame, 'section' | 'title'> & { org: OrgRef }, events: AuditItem[], nextCursor: string | null): string {
  const rows = events.map((e) => [
    when(e.created_at),
    `${esc(e.actor.type)}${e.actor.id ? ` <code>${esc(e.actor.id)}</code>` : ''}`,
    `<code>${esc(e.action)}</code>`,
    `${esc(e.target_type)} ${code(e.target_id)}`,
    `<pre>${esc(JSON.stringify(e.details))}</pre>`,
  ]);
  return layout(
    { ...frame, section: 'audit', title: 'Audit log' },
    table('Who did what, newest first', ['At', 'Actor', 'Action', 'Target', 'Details'], rows, 'Nothing audited yet.') + pager(orgPath(frame.org, '/audit'), nextCursor),
  );
}
