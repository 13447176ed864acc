/**
 * The sign-in page: plain HTML, a form posting to `/login`, no script at all
 * (its CSP allows none), styles from `/login.css`.
 */
const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

export interface LoginPageOptions {
  /** Where to go after signing in (already checked to be a local path). */
  next: string;
  /** Users are configured: show the name/password form. */
  users: boolean;
  error?: string;
}

export function loginPage({ next, users, error }: LoginPageOptions): string {
  const hidden = `<input type="hidden" name="next" value="${escapeHtml(next)}">`;
  const passwordForm = users
    ? `<form method="post" action="/login" aria-labelledby="with-password">
  <h2 id="with-password">With your account</h2>
  ${hidden}
  <label for="user">User name</label>
  <input id="user" name="user" autocomplete="username" required autofocus>
  <label for="password">Password</label>
  <input id="password" name="password" type="password" autocomplete="current-password" required>
  <button type="submit">Sign in</button>
</form>`
    : '';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · kpi-live</title>
<link rel="stylesheet" href="/login.css">
</head>
<body>
<main>
<h1>kpi-live</h1>
${error ? `<p class="error" role="alert">${escapeHtml(error)}</p>` : ''}
${passwordForm}
<form method="post" action="/login" aria-labelledby="with-token">
  <h2 id="with-token">With an access token</h2>
  ${hidden}
  <label for="token">Token</label>
  <input id="token" name="token" type="password" autocomplete="off" required${users ? '' : ' autofocus'}>
  <button type="submit">Sign in</button>
  <p class="hint">An API token (kpi-live token), or, on a new installation, the one in the data directory's <code>access-token</code> file.</p>
</form>
</main>
</body>
</html>
`;
}

export const LOGIN_CSS = `:root { color-scheme: light dark; font-family: system-ui, sans-serif; }
body { margin: 0; min-height: 100vh; display: grid; place-items: center; background: Canvas; color: CanvasText; }
main { width: min(24rem, 92vw); }
h1 { font-size: 1.6rem; margin: 0 0 1rem; }
h2 { font-size: 1rem; margin: 1.5rem 0 0.5rem; }
form { display: grid; gap: 0.35rem; }
input { font: inherit; padding: 0.5rem; border: 1px solid GrayText; border-radius: 4px; }
input:focus-visible, button:focus-visible { outline: 3px solid #0072b2; outline-offset: 1px; }
button { font: inherit; margin-top: 0.5rem; padding: 0.55rem; border: 0; border-radius: 4px; background: #0072b2; color: #fff; cursor: pointer; }
.error { padding: 0.6rem; border-radius: 4px; background: #d55e00; color: #fff; }
.hint { font-size: 0.85rem; opacity: 0.8; }
`;
