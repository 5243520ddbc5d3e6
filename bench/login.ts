/**
 * Logs a synthetic user in through the gateway and the ID-porten look-alike, the way a browser would
 * (redirects followed, cookies kept per origin, the look-alike's login form submitted), and returns the
 * gateway's session cookie value. Just enough browser for the benchmarks to get real sessions.
 */

const MAX_STEPS = 20;
const LOGIN_FORM = /<form id="login-form" method="post" action="([^"]+)"/;

/** `fetchImpl`: another fetch (one that resolves the tenants' host names, say). */
export async function loginSession(publicUrl: string, pid: string, cookieName: string, fetchImpl: typeof fetch = fetch): Promise<string> {
  const jar = new Map<string, Map<string, string>>();
  let url = new URL('/auth/login', publicUrl);
  let method = 'GET';
  let body: string | undefined;

  for (let step = 0; step < MAX_STEPS; step += 1) {
    const cookies = jar.get(url.origin);
    const headers: Record<string, string> = { accept: 'text/html', 'sec-fetch-mode': 'navigate', 'sec-fetch-site': 'none' };
    if (cookies?.size) headers.cookie = [...cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    if (body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
    const res = await fetchImpl(url, { method, headers, ...(body !== undefined ? { body } : {}), redirect: 'manual' });
    keepCookies(jar, url.origin, res.headers.getSetCookie());

    const session = jar.get(new URL(publicUrl).origin)?.get(cookieName);
    if (session) {
      await res.body?.cancel();
      return session;
    }
    const location = res.headers.get('location');
    if (location) {
      await res.body?.cancel();
      url = new URL(location, url);
      method = 'GET';
      body = undefined;
      continue;
    }
    const page = await res.text();
    const form = LOGIN_FORM.exec(page);
    if (!form?.[1]) throw new Error(`login stopped at ${url.pathname} with ${res.status}`);
    url = new URL(form[1], url);
    method = 'POST';
    body = new URLSearchParams({ pid }).toString();
  }
  throw new Error('login did not finish');
}

function keepCookies(jar: Map<string, Map<string, string>>, origin: string, lines: string[]): void {
  let cookies = jar.get(origin);
  if (!cookies) jar.set(origin, (cookies = new Map()));
  for (const line of lines) {
    const [pair = ''] = line.split(';');
    const eq = pair.indexOf('=');
    if (eq < 1) continue;
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    if (value === '' || /;\s*max-age=0/i.test(line)) cookies.delete(name);
    else cookies.set(name, value);
  }
}
