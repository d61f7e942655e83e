/** The console's one stylesheet, served from FanGate's own origin (the CSP allows nothing else). */
export const CONSOLE_CSS = `
:root { --bg: #f4f5f7; --card: #fff; --text: #1b1d21; --muted: #4a4f57; --border: #c4c8cf; --primary: #0b57d0; --on-primary: #fff;
  --ok: #146c2e; --warn: #7a4f00; --bad: #b3261e; --focus: #0b57d0; color-scheme: light; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #0f1115; --card: #1a1d23; --text: #eceef1; --muted: #b8bec7; --border: #4a4f57; --primary: #8ab4f8; --on-primary: #0b1a33;
    --ok: #7ddc8f; --warn: #f5c86b; --bad: #f2b8b5; --focus: #8ab4f8; color-scheme: dark; }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text); font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; }
a { color: var(--primary); }
a:focus-visible, button:focus-visible, input:focus-visible, select:focus-visible { outline: 2px solid var(--focus); outline-offset: 2px; }
.skip { position: absolute; left: -9999px; top: 0; background: var(--card); padding: 8px; }
.skip:focus { left: 8px; }
header { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 24px; padding: 12px 24px; background: var(--card); border-bottom: 1px solid var(--border); }
header .brand { font-weight: 700; margin: 0; font-size: 1.05rem; }
header nav ul { list-style: none; display: flex; flex-wrap: wrap; gap: 4px 16px; margin: 0; padding: 0; }
header nav a[aria-current="page"] { font-weight: 700; text-decoration: none; color: var(--text); }
header .who { margin-left: auto; display: flex; gap: 12px; align-items: center; color: var(--muted); }
main { padding: 16px 24px 48px; max-width: 1400px; }
h1 { font-size: 1.5rem; margin: 8px 0 16px; }
h2 { font-size: 1.15rem; margin: 24px 0 8px; }
.card { background: var(--card); border: 1px solid var(--border); border-radius: 8px; padding: 16px; max-width: 420px; margin: 48px auto; }
.table-wrap { overflow-x: auto; background: var(--card); border: 1px solid var(--border); border-radius: 8px; }
table { border-collapse: collapse; width: 100%; }
caption { text-align: left; padding: 8px 12px; color: var(--muted); }
th, td { text-align: left; padding: 6px 12px; border-top: 1px solid var(--border); vertical-align: top; }
thead th { border-top: 0; font-weight: 600; white-space: nowrap; }
td code, dd code { font-size: .85em; overflow-wrap: anywhere; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; background: var(--card); border: 1px solid var(--border); border-radius: 8px; padding: 12px 16px; margin: 0; }
dt { font-weight: 600; }
dd { margin: 0; overflow-wrap: anywhere; }
.status { font-weight: 600; }
.status-active, .status-succeeded, .status-completed, .status-completed_success { color: var(--ok); }
.status-reauthenticating, .status-awaiting_2fa, .status-pending, .status-initialized, .status-needs_otp, .status-needs_app_otp, .status-needs_email, .status-needs_face_otp { color: var(--warn); }
.status-expired, .status-failed, .status-completed_failed, .status-cancelled, .status-disabled { color: var(--bad); }
.muted { color: var(--muted); }
.notice { border: 1px solid var(--border); border-left: 4px solid var(--ok); background: var(--card); padding: 8px 12px; border-radius: 4px; }
.error { border: 1px solid var(--border); border-left: 4px solid var(--bad); background: var(--card); padding: 8px 12px; border-radius: 4px; }
label { display: block; font-weight: 600; margin: 0 0 4px; }
input[type="password"], input[type="text"], select { width: 100%; font: inherit; padding: 8px; border: 1px solid var(--muted); border-radius: 6px; background: var(--card); color: var(--text); }
.field { margin: 0 0 12px; }
button { font: inherit; padding: 6px 14px; border-radius: 6px; border: 1px solid var(--primary); background: var(--primary); color: var(--on-primary); cursor: pointer; }
button.quiet { background: transparent; color: var(--primary); }
form.inline { display: inline; margin: 0; }
.pager { margin: 12px 0; }
pre { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; font-size: .85em; }
`;
