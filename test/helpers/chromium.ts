import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type CDPSession, type Page, type Response } from 'playwright-core';
import type { Test } from 'tap';

/** Debian's Chromium package; .ci/run installs it when it is missing. */
export const CHROMIUM_PATH = '/usr/bin/chromium';

/** Headless, no sandbox (containers), and nothing that talks to the network on its own. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
] as const;

const MISSING = `Chromium is not installed at ${CHROMIUM_PATH} (Debian: apt-get install chromium).`;

/**
 * tap options for a browser test. On a developer machine without Chromium the test is skipped with a
 * message; under CI (CI=true) it always runs, so a missing browser fails it instead of hiding it.
 */
export function browserTestOptions(): { skip?: string } {
  if (existsSync(CHROMIUM_PATH) || process.env.CI === 'true') return {};
  return { skip: `${MISSING} Browser tests are skipped locally; CI fails without it.` };
}

/**
 * Starts Chromium with a fresh, empty profile (its own temporary user-data dir) and returns its only
 * browser context. The browser is closed and the profile removed at teardown.
 */
export async function launchChromium(t: Test): Promise<BrowserContext> {
  if (!existsSync(CHROMIUM_PATH)) throw new Error(`${MISSING} Browser tests cannot run without it.`);
  const userDataDir = await mkdtemp(join(tmpdir(), 'bff-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM_PATH,
      args: [...CHROMIUM_ARGS],
      viewport: { width: 1100, height: 900 },
    });
  } catch (err) {
    await rm(userDataDir, { recursive: true, force: true });
    throw err;
  }
  t.teardown(async () => {
    await context.close();
    await rm(userDataDir, { recursive: true, force: true });
  });
  // Fail a step within seconds rather than at tap's file timeout.
  context.setDefaultTimeout(15_000);
  return context;
}

/** One response as the browser received it. Redirects have no body. */
export interface SeenResponse {
  /** `event`: Playwright's response event (all headers); `wire`: read off the wire before the page got it (with the body). */
  source: 'event' | 'wire';
  method: string;
  url: string;
  status: number;
  /** Lower-case names; repeated headers (Set-Cookie) joined with newlines. */
  headers: Record<string, string>;
  body?: string;
  bodyError?: string;
}

/**
 * Records every response the browser receives, in two ways: Playwright's context-wide response event
 * (URL, status, all headers, redirects included), and, for pages handed to `watch`, an interception at
 * the response stage (Chrome DevTools Protocol `Fetch` domain) that copies the body before the browser
 * processes it. The second exists because a body cannot be fetched afterwards once its page has
 * navigated on, as auto-posting forms do at once. The request itself stays the browser's own: same
 * cookies, same SameSite and CORS decisions.
 */
export class ResponseRecorder {
  readonly seen: SeenResponse[] = [];
  readonly #pending: Promise<void>[] = [];
  readonly #context: BrowserContext;

  constructor(context: BrowserContext) {
    this.#context = context;
    context.on('response', (response) => {
      this.#pending.push(fromEvent(response).then((r) => void this.seen.push(r)));
    });
  }

  /** Starts copying the bodies of this page's responses; call before the page loads anything. */
  async watch(page: Page): Promise<void> {
    const cdp = await this.#context.newCDPSession(page);
    cdp.on('Fetch.requestPaused', (paused) => {
      this.#pending.push(fromWire(cdp, paused).then((r) => void this.seen.push(r)));
    });
    await cdp.send('Fetch.enable', { patterns: [{ urlPattern: '*', requestStage: 'Response' }] });
  }

  /** Waits until every response seen so far is recorded. */
  async settled(): Promise<void> {
    await Promise.all(this.#pending);
  }
}

function joinHeaders(entries: { name: string; value: string }[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const { name, value } of entries) {
    const key = name.toLowerCase();
    headers[key] = headers[key] === undefined ? value : `${headers[key]}\n${value}`;
  }
  return headers;
}

async function fromEvent(response: Response): Promise<SeenResponse> {
  return {
    source: 'event',
    method: response.request().method(),
    url: response.url(),
    status: response.status(),
    headers: joinHeaders(await response.headersArray().catch(() => Object.entries(response.headers()).map(([name, value]) => ({ name, value })))),
  };
}

/** The fields of the protocol's `Fetch.requestPaused` event used here (playwright-core does not export its protocol types). */
interface PausedResponse {
  requestId: string;
  request: { method: string; url: string };
  responseStatusCode?: number;
  responseErrorReason?: string;
  responseHeaders?: { name: string; value: string }[];
}

async function fromWire(cdp: CDPSession, paused: PausedResponse): Promise<SeenResponse> {
  const status = paused.responseStatusCode ?? 0;
  const seen: SeenResponse = {
    source: 'wire',
    method: paused.request.method,
    url: paused.request.url,
    status,
    headers: joinHeaders(paused.responseHeaders ?? []),
  };
  try {
    if (paused.responseErrorReason) return { ...seen, bodyError: paused.responseErrorReason };
    if (status >= 300 && status < 400) return { ...seen, bodyError: 'redirect' };
    const { body, base64Encoded } = await cdp.send('Fetch.getResponseBody', { requestId: paused.requestId });
    return { ...seen, body: base64Encoded ? Buffer.from(body, 'base64').toString('utf8') : body };
  } catch (err) {
    return { ...seen, bodyError: (err as Error).message };
  } finally {
    // The page may be gone already; then there is nothing left to continue.
    await cdp.send('Fetch.continueRequest', { requestId: paused.requestId }).catch(() => undefined);
  }
}
