import { escapeHtml } from '../src/http/html.js';
import { TEST_USERS } from './test-users.js';

const STYLE = 'body{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem}'
  + 'label{display:block;margin:.75rem 0 .25rem}select,input,button{font-size:1rem}'
  + '.error{color:#a00}';

function page(title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="nb">
<head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>${STYLE}</style></head>
<body>
${body}
</body>
</html>`;
}

export interface LoginPageInput {
  uid: string;
  clientName: string;
  /** Level of assurance the client asked for; the form preselects it. */
  requestedAcr: string;
  acrValues: readonly string[];
  error?: string;
}

/**
 * The TestID-style login page. Element ids and field names are stable because
 * browser-driven tests fill this form: form `login-form`, fields `pid` and `acr`,
 * submit `login-submit`, cancel `login-cancel`.
 */
export function renderLoginPage(input: LoginPageInput): string {
  const users = TEST_USERS.map(
    (user, i) => `<option value="${escapeHtml(user.pid)}"${i === 0 ? ' selected' : ''}>`
      + `${escapeHtml(user.name)} (${escapeHtml(user.pid)})</option>`,
  ).join('\n');
  const levels = input.acrValues.map(
    (acr) => `<label><input type="radio" name="acr" value="${escapeHtml(acr)}"`
      + `${acr === input.requestedAcr ? ' checked' : ''}> ${escapeHtml(acr)}</label>`,
  ).join('\n');
  const uid = encodeURIComponent(input.uid);
  return page('ID-porten look-alike: log in', `
<h1>Log in to ${escapeHtml(input.clientName)}</h1>
<p>Local ID-porten look-alike. Pick a synthetic test user.</p>
${input.error ? `<p class="error" id="login-error">${escapeHtml(input.error)}</p>` : ''}
<form id="login-form" method="post" action="/interaction/${uid}/login">
  <label for="pid">Test user</label>
  <select id="pid" name="pid">
${users}
  </select>
  <fieldset><legend>Level of assurance</legend>
${levels}
  </fieldset>
  <button id="login-submit" type="submit">Log in</button>
</form>
<p><a id="login-cancel" href="/interaction/${uid}/cancel">Cancel</a></p>`);
}

/**
 * RP-initiated logout without a confirmation click: the provider's own confirm form,
 * answered "yes" and submitted by script as soon as the page loads.
 */
/**
 * The logout page: it posts the provider's confirmation form at once, and carries an iframe for the front-channel
 * logout URI of each other client in the session (OIDC Front-Channel Logout 1.0 section 4), as ID-porten's does.
 */
export function renderAutoLogoutPage(providerForm: string, frontChannelUris: readonly string[] = []): string {
  const form = providerForm.replace('</form>', '<input type="hidden" name="logout" value="yes"/></form>');
  const frames = frontChannelUris.map((uri) => `<iframe src="${escapeHtml(uri)}" hidden></iframe>`).join('\n');
  return page('Logging out', `${frames}
${form}
<noscript><button type="submit" form="op.logoutForm">Continue logging out</button></noscript>
<script>document.forms[0].submit()</script>`);
}

export function renderLoggedOutPage(): string {
  return page('Logged out', '<h1>You are logged out</h1>');
}

export function renderErrorPage(fields: Record<string, unknown>): string {
  const rows = Object.entries(fields)
    .map(([key, value]) => `<p><strong>${escapeHtml(key)}</strong>: ${escapeHtml(String(value))}</p>`)
    .join('\n');
  return page('Error', `<h1>Something went wrong</h1>\n${rows}`);
}
