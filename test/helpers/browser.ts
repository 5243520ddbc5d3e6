/**
 * A small cookie-keeping HTTP "browser" for tests. It behaves like a browser where tests
 * depend on it — cookies scoped by host (not port) and path, expiry, Secure only over https,
 * SameSite on cross-site requests, redirects per Fetch (302/303 → GET, 307/308 keep method
 * and body), `Sec-Fetch-*` headers — and records everything it receives for leak checks.
 */
import { lookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { Agent, request, type Dispatcher } from 'undici';

export interface BrowserResponse {
  url: string;
  status: number;
  headers: Headers;
  body: string;
}

export interface StoredCookie {
  name: string;
  value: string;
  domain: string;
  hostOnly: boolean;
  path: string;
  expiresAt: number | undefined;
  secure: boolean;
  httpOnly: boolean;
  sameSite: 'strict' | 'lax' | 'none';
}

export interface NavigateInit {
  method?: string;
  body?: string;
  headers?: Record<string, string>;
  /** Origin of the page that started the navigation (a form or link); omitted = typed in the address bar. */
  initiator?: string;
}

export interface FetchInit {
  method?: string;
  body?: string | Uint8Array;
  headers?: Record<string, string>;
  /** Origin of the page running the script; defaults to the target's origin (a same-origin SPA). */
  origin?: string;
}

const MAX_REDIRECTS = 20;
const SAFE_METHODS = new Set(['GET', 'HEAD']);

export interface BrowserOptions {
  /** Extra CA certificate(s) to trust for https, e.g. a test CA. */
  ca?: string | Buffer;
  /** Resolve `NAME.localhost` to 127.0.0.1, as browsers do (RFC 6761 section 6.3); the system resolver may not. */
  localhostNames?: boolean;
}

/** A DNS lookup that answers loopback for `localhost` and every `NAME.localhost`, and asks the system otherwise. */
function loopbackLookup(hostname: string, options: LookupOptions, callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void): void {
  if (hostname === 'localhost' || hostname.endsWith('.localhost')) {
    if (options.all) callback(null, [{ address: '127.0.0.1', family: 4 }]);
    else callback(null, '127.0.0.1', 4);
    return;
  }
  lookup(hostname, options, callback as never);
}

export class Browser {
  readonly history: BrowserResponse[] = [];
  #jar: StoredCookie[] = [];
  readonly #dispatcher: Agent | undefined;

  constructor(options: BrowserOptions = {}) {
    const connect = { ...(options.ca ? { ca: options.ca } : {}), ...(options.localhostNames ? { lookup: loopbackLookup } : {}) };
    this.#dispatcher = Object.keys(connect).length > 0 ? new Agent({ connect }) : undefined;
  }

  /** Releases the connection pool of a browser created with its own CA. */
  async close(): Promise<void> {
    await this.#dispatcher?.close();
  }

  /** A top-level navigation: sends cookies, follows redirects, returns the final response. */
  async navigate(url: string, init: NavigateInit = {}): Promise<BrowserResponse> {
    let current = new URL(url);
    let method = (init.method ?? 'GET').toUpperCase();
    let body = init.body;
    let extraHeaders = init.headers ?? {};
    const initiatorSite = init.initiator ? siteOf(new URL(init.initiator)) : undefined;
    // A chain is cross-site once any hop leaves the initiator's site (first URL when typed).
    const chainSite = initiatorSite ?? siteOf(current);
    let crossSite = initiatorSite !== undefined && initiatorSite !== siteOf(current);
    // Fetch's Origin for unsafe methods; a cross-origin redirect taints it to "null".
    let originHeader = init.initiator ?? 'null';

    for (let hop = 0; hop <= MAX_REDIRECTS; hop += 1) {
      crossSite ||= siteOf(current) !== chainSite;
      const headers: Record<string, string> = {
        'sec-fetch-mode': 'navigate',
        'sec-fetch-dest': 'document',
        'sec-fetch-site': fetchSite(init.initiator, current, crossSite),
        accept: 'text/html,application/xhtml+xml,*/*;q=0.8',
        ...extraHeaders,
      };
      if (!SAFE_METHODS.has(method)) {
        headers.origin = originHeader;
        headers['content-type'] ??= 'application/x-www-form-urlencoded';
      }
      const cookie = this.#cookieHeader(current, { topLevel: true, method, crossSite });
      if (cookie) headers.cookie = cookie;

      const response = await this.#send(current, method, headers, body);
      const location = response.headers.get('location');
      if (![301, 302, 303, 307, 308].includes(response.status) || !location) return response;

      const next = new URL(location, current);
      if (next.origin !== current.origin && originHeader !== current.origin) originHeader = 'null';
      current = next;
      if (response.status === 303 || ((response.status === 301 || response.status === 302) && method === 'POST')) {
        method = 'GET';
        body = undefined;
        extraHeaders = {};
      }
    }
    throw new Error(`too many redirects starting at ${url}`);
  }

  /** Like an SPA's `fetch(url, { credentials: 'include', redirect: 'manual' })`: one request, no redirects followed. */
  async fetch(url: string, init: FetchInit = {}): Promise<BrowserResponse> {
    const target = new URL(url);
    const method = (init.method ?? 'GET').toUpperCase();
    const origin = init.origin ?? target.origin;
    const crossSite = siteOf(new URL(origin)) !== siteOf(target);
    const headers: Record<string, string> = {
      'sec-fetch-mode': 'cors',
      'sec-fetch-dest': 'empty',
      'sec-fetch-site': fetchSite(origin, target, crossSite),
      ...(init.headers ?? {}),
    };
    if (!SAFE_METHODS.has(method) || origin !== target.origin) headers.origin ??= origin;
    const cookie = this.#cookieHeader(target, { topLevel: false, method, crossSite });
    if (cookie) headers.cookie = cookie;
    return this.#send(target, method, headers, init.body);
  }

  /**
   * Fills and submits an HTML form like a user pressing its submit button. `form` is the form's
   * id (with or without '#') or its index in the page; `overrides` replace or add fields.
   */
  async submitForm(
    html: string,
    baseUrl: string,
    form: string | number = 0,
    overrides: Record<string, string> = {},
  ): Promise<BrowserResponse> {
    const parsed = parseForm(html, form);
    const fields = new URLSearchParams();
    const overridden = new Set(Object.keys(overrides));
    for (const [name, value] of parsed.fields) if (!overridden.has(name)) fields.append(name, value);
    for (const [name, value] of Object.entries(overrides)) fields.append(name, value);

    const action = new URL(parsed.action || baseUrl, baseUrl);
    const initiator = new URL(baseUrl).origin;
    if (parsed.method === 'GET') {
      action.search = fields.toString();
      return this.navigate(action.href, { initiator });
    }
    return this.navigate(action.href, { method: 'POST', body: fields.toString(), initiator });
  }

  /**
   * Submits pages that a real browser would submit by script as soon as they load (a form
   * plus `.submit()`), repeatedly, and returns the first response that is not such a page.
   */
  async followAutoSubmit(response: BrowserResponse, limit = 5): Promise<BrowserResponse> {
    let current = response;
    for (let i = 0; i < limit && isAutoSubmitPage(current); i += 1) {
      await this.loadFrames(current);
      current = await this.submitForm(current.body, current.url, 0);
    }
    return current;
  }

  /**
   * Loads the page's iframes (`<iframe src>`, such as a provider's front-channel logout frames) as a browser
   * would: a GET from the page's origin, cookies by the SameSite rules. Returns their responses.
   */
  async loadFrames(page: BrowserResponse): Promise<BrowserResponse[]> {
    const frames: BrowserResponse[] = [];
    for (const match of page.body.matchAll(/<iframe\b([^>]*)>/gi)) {
      const src = attributes(match[1] ?? '').src;
      if (!src) continue;
      frames.push(await this.fetch(new URL(src, page.url).toString(), { origin: new URL(page.url).origin, headers: { 'sec-fetch-dest': 'iframe', accept: 'text/html' } }));
    }
    return frames;
  }

  /** Cookies that would be visible to `host` (a hostname, or a URL), expired ones removed. */
  cookies(host: string): StoredCookie[] {
    const hostname = host.includes('://') ? new URL(host).hostname : host;
    this.#dropExpired();
    return this.#jar.filter((c) => domainMatches(c, hostname)).map((c) => ({ ...c }));
  }

  /** Drops every cookie visible to `host` (for example the provider's, as if its login session had ended). */
  forgetCookies(host: string): void {
    const hostname = host.includes('://') ? new URL(host).hostname : host;
    this.#jar = this.#jar.filter((c) => !domainMatches(c, hostname));
  }

  cookie(host: string, name: string): StoredCookie | undefined {
    return this.cookies(host).find((c) => c.name === name);
  }

  /**
   * Every URL, header and body this browser received, as one string (for token-leak checks);
   * `fromOrigin` keeps only responses from one origin, e.g. the gateway's.
   */
  allRecordedText(fromOrigin?: string): string {
    return this.history
      .filter((r) => fromOrigin === undefined || new URL(r.url).origin === fromOrigin)
      .map((r) => {
        const headerLines: string[] = [];
        r.headers.forEach((value, key) => headerLines.push(`${key}: ${value}`));
        return [r.url, String(r.status), ...headerLines, r.body].join('\n');
      })
      .join('\n\n');
  }

  async #send(url: URL, method: string, headers: Record<string, string>, body: string | Uint8Array | undefined): Promise<BrowserResponse> {
    // undici's request, not fetch: fetch overwrites Sec-Fetch-Mode with "cors" on every request.
    const res = await request(url, {
      method: method as Dispatcher.HttpMethod,
      headers,
      body: SAFE_METHODS.has(method) ? undefined : body,
      ...(this.#dispatcher ? { dispatcher: this.#dispatcher } : {}),
    });
    const received = new Headers();
    for (const [name, value] of Object.entries(res.headers)) {
      for (const item of Array.isArray(value) ? value : [value ?? '']) received.append(name, item);
    }
    for (const line of received.getSetCookie()) this.#storeCookie(line, url);
    const recorded: BrowserResponse = { url: url.href, status: res.statusCode, headers: received, body: await res.body.text() };
    this.history.push(recorded);
    return recorded;
  }

  #storeCookie(line: string, url: URL): void {
    const [pair = '', ...attributes] = line.split(';');
    const eq = pair.indexOf('=');
    if (eq < 1) return;
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    const cookie: StoredCookie = {
      name,
      value,
      domain: url.hostname,
      hostOnly: true,
      path: defaultPath(url),
      expiresAt: undefined,
      secure: false,
      httpOnly: false,
      sameSite: 'lax', // browsers' default when the attribute is missing
    };
    let maxAgeSeen = false;
    for (const attribute of attributes) {
      const [rawKey = '', ...rest] = attribute.split('=');
      const key = rawKey.trim().toLowerCase();
      const attrValue = rest.join('=').trim();
      if (key === 'path' && attrValue.startsWith('/')) cookie.path = attrValue;
      else if (key === 'domain' && attrValue) {
        const domain = attrValue.replace(/^\./, '').toLowerCase();
        if (url.hostname !== domain && !url.hostname.endsWith(`.${domain}`)) return; // foreign domain: rejected
        cookie.domain = domain;
        cookie.hostOnly = false;
      } else if (key === 'max-age' && /^-?\d+$/.test(attrValue)) {
        maxAgeSeen = true;
        cookie.expiresAt = Date.now() + Number(attrValue) * 1000;
      } else if (key === 'expires' && !maxAgeSeen) {
        const time = Date.parse(attrValue);
        if (!Number.isNaN(time)) cookie.expiresAt = time;
      } else if (key === 'secure') cookie.secure = true;
      else if (key === 'httponly') cookie.httpOnly = true;
      else if (key === 'samesite') {
        const mode = attrValue.toLowerCase();
        if (mode === 'strict' || mode === 'lax' || mode === 'none') cookie.sameSite = mode;
      }
    }
    const https = url.protocol === 'https:';
    if (cookie.secure && !https) return; // RFC 6265bis: insecure origins cannot set Secure cookies
    if (name.startsWith('__Secure-') && !cookie.secure) return;
    if (name.startsWith('__Host-') && (!cookie.secure || !cookie.hostOnly || cookie.path !== '/')) return;
    if (cookie.sameSite === 'none' && !cookie.secure) return;

    this.#jar = this.#jar.filter((c) => !(c.name === name && c.domain === cookie.domain && c.path === cookie.path));
    if (cookie.expiresAt === undefined || cookie.expiresAt > Date.now()) this.#jar.push(cookie);
  }

  #cookieHeader(url: URL, context: { topLevel: boolean; method: string; crossSite: boolean }): string {
    this.#dropExpired();
    return this.#jar
      .filter((c) => domainMatches(c, url.hostname) && pathMatches(c.path, url.pathname))
      .filter((c) => !c.secure || url.protocol === 'https:')
      .filter((c) => {
        if (!context.crossSite || c.sameSite === 'none') return true;
        // Lax cookies go along on cross-site top-level navigations with safe methods only.
        return c.sameSite === 'lax' && context.topLevel && SAFE_METHODS.has(context.method);
      })
      .sort((a, b) => b.path.length - a.path.length)
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }

  #dropExpired(): void {
    const now = Date.now();
    this.#jar = this.#jar.filter((c) => c.expiresAt === undefined || c.expiresAt > now);
  }
}

/**
 * Drives a login through the ID-porten look-alike: opens `startUrl` (for example the
 * gateway's /auth/login), fills the OP's login form when it is shown (it is not when the
 * OP already has a session), and follows everything back. Returns the final response.
 */
export async function loginAtLookalike(
  browser: Browser,
  startUrl: string,
  user: { pid: string; acr?: string },
): Promise<BrowserResponse> {
  let response = await browser.navigate(startUrl);
  if (/id="login-form"/.test(response.body)) {
    response = await browser.submitForm(response.body, response.url, 'login-form', {
      pid: user.pid,
      ...(user.acr ? { acr: user.acr } : {}),
    });
  }
  return browser.followAutoSubmit(response);
}

// ---------------------------------------------------------------- cookie rules (RFC 6265)

function domainMatches(cookie: StoredCookie, hostname: string): boolean {
  if (cookie.hostOnly) return hostname === cookie.domain;
  return hostname === cookie.domain || hostname.endsWith(`.${cookie.domain}`);
}

function pathMatches(cookiePath: string, requestPath: string): boolean {
  if (requestPath === cookiePath) return true;
  if (!requestPath.startsWith(cookiePath)) return false;
  return cookiePath.endsWith('/') || requestPath.charAt(cookiePath.length) === '/';
}

function defaultPath(url: URL): string {
  const path = url.pathname;
  if (!path.startsWith('/') || path.lastIndexOf('/') === 0) return '/';
  return path.slice(0, path.lastIndexOf('/'));
}

/** Scheme plus registrable domain (approximated as the last two labels); IPs and single labels stand alone. */
function siteOf(url: URL): string {
  const host = url.hostname;
  const isIp = /^[\d.]+$/.test(host) || host.startsWith('[');
  const labels = host.split('.');
  const registrable = isIp || labels.length <= 2 ? host : labels.slice(-2).join('.');
  return `${url.protocol}//${registrable}`;
}

function fetchSite(initiatorOrigin: string | undefined, target: URL, crossSite: boolean): string {
  if (crossSite) return 'cross-site';
  if (initiatorOrigin === undefined) return 'none';
  return initiatorOrigin === target.origin ? 'same-origin' : 'same-site';
}

// ---------------------------------------------------------------- a tiny HTML form reader

interface ParsedForm {
  action: string;
  method: 'GET' | 'POST';
  fields: [string, string][];
}

function isAutoSubmitPage(response: BrowserResponse): boolean {
  return response.status === 200
    && /<form[\s>]/i.test(response.body)
    && /\.submit\(\)/.test(response.body);
}

function parseForm(html: string, selector: string | number): ParsedForm {
  const forms = [...html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)];
  const match = typeof selector === 'number'
    ? forms[selector]
    : forms.find((f) => attributes(f[1] ?? '').id === selector.replace(/^#/, ''));
  if (!match) throw new Error(`form ${String(selector)} not found in page`);
  const formAttributes = attributes(match[1] ?? '');
  const inner = match[2] ?? '';
  const fields: [string, string][] = [];

  for (const tag of inner.matchAll(/<(input|select|textarea)\b([^>]*)>/gi)) {
    const kind = (tag[1] ?? '').toLowerCase();
    const attrs = attributes(tag[2] ?? '');
    const name = attrs.name;
    if (!name || 'disabled' in attrs) continue;
    if (kind === 'input') {
      const type = (attrs.type ?? 'text').toLowerCase();
      if (['submit', 'button', 'image', 'reset', 'file'].includes(type)) continue;
      if ((type === 'checkbox' || type === 'radio') && !('checked' in attrs)) continue;
      fields.push([name, attrs.value ?? (type === 'checkbox' || type === 'radio' ? 'on' : '')]);
    } else if (kind === 'select') {
      const end = inner.indexOf('</select>', tag.index ?? 0);
      const options = [...inner.slice(tag.index ?? 0, end === -1 ? undefined : end).matchAll(/<option\b([^>]*)>([^<]*)/gi)];
      const chosen = options.find((o) => 'selected' in attributes(o[1] ?? '')) ?? options[0];
      if (chosen) fields.push([name, attributes(chosen[1] ?? '').value ?? decodeEntities((chosen[2] ?? '').trim())]);
    } else {
      const end = inner.indexOf('</textarea>', tag.index ?? 0);
      const start = (tag.index ?? 0) + tag[0].length;
      fields.push([name, decodeEntities(inner.slice(start, end === -1 ? undefined : end))]);
    }
  }
  return {
    action: formAttributes.action ?? '',
    method: (formAttributes.method ?? 'get').toUpperCase() === 'POST' ? 'POST' : 'GET',
    fields,
  };
}

function attributes(source: string): Record<string, string> {
  const result: Record<string, string> = {};
  for (const m of source.matchAll(/([^\s=/>"']+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?/g)) {
    const key = (m[1] ?? '').toLowerCase();
    result[key] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return result;
}

function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos|#39);/gi, (_all, entity: string) => {
    const lower = entity.toLowerCase();
    if (lower.startsWith('#x')) return String.fromCodePoint(parseInt(lower.slice(2), 16));
    if (lower.startsWith('#')) return String.fromCodePoint(parseInt(lower.slice(1), 10));
    return ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" } as Record<string, string>)[lower] ?? '';
  });
}
