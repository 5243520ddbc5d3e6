import { randomBytes } from 'node:crypto';

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;', '`': '&#96;' };

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"'`]/g, (c) => HTML_ESCAPES[c]!);
}

/** The small page a browser sees when a login cannot finish. Shows a correlation id, reflects nothing else. */
export function errorPage(opts: { title: string; message: string; correlationId: string; retryUrl: string }): string {
  return `<!doctype html>
<html lang="nb"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(opts.title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#1a1a1a}code{background:#eee;padding:.1rem .3rem}</style>
</head><body>
<h1>${escapeHtml(opts.title)}</h1>
<p>${escapeHtml(opts.message)}</p>
<p><a href="${escapeHtml(opts.retryUrl)}">Try again</a></p>
<p>Correlation id: <code>${escapeHtml(opts.correlationId)}</code></p>
</body></html>`;
}

export const ERROR_PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; object-src 'none'; frame-ancestors 'none'; form-action 'none'; base-uri 'none'";

/**
 * The front-channel logout page: nothing to load or run. ID-porten shows it in an iframe, so it names no
 * frame-ancestors (and sends no X-Frame-Options).
 */
export const FRONTCHANNEL_PAGE_CSP = "default-src 'none'; object-src 'none'; form-action 'none'; base-uri 'none'";

/**
 * The page POST /auth/logout (HTML) and GET /auth/logout/continue (JSON clients) return: a form that posts itself to ID-porten's end-session endpoint
 * (ID-porten recommends POST so the ID token does not land in URLs and logs).
 */
export function autoPostPage(action: string, fields: Record<string, string>): { html: string; csp: string } {
  const nonce = randomBytes(16).toString('base64');
  const inputs = Object.entries(fields)
    .map(([name, value]) => `<input type="hidden" name="${escapeHtml(name)}" value="${escapeHtml(value)}">`)
    .join('\n');
  const html = `<!doctype html>
<html lang="nb"><head><meta charset="utf-8"><title>Logger ut …</title></head>
<body>
<form id="logout" method="post" action="${escapeHtml(action)}">
${inputs}
<noscript><button type="submit">Fortsett utlogging</button></noscript>
</form>
<script nonce="${nonce}">document.getElementById('logout').submit();</script>
</body></html>`;
  return { html, csp: `default-src 'none'; script-src 'nonce-${nonce}'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'` };
}

/**
 * CSP form-action also governs the redirects that follow the form post, so it must allow the end-session
 * endpoint and the origin ID-porten sends the user back to; otherwise the browser strands the user.
 */
export function logoutCsp(baseCsp: string, endSessionEndpoint: string, postLogoutRedirectUri: string): string {
  const origins = [...new Set([new URL(endSessionEndpoint).origin, new URL(postLogoutRedirectUri).origin])];
  return `${baseCsp}; form-action ${origins.join(' ')}`;
}
