// idporten-bff browser helper: an ES module without dependencies, served by the gateway at /auth/client.js
// and published as `idporten-bff/client`. Tokens never reach the page; it only ever holds the HttpOnly
// session cookie, which the browser sends on same-origin requests.

// step_up_required: the session is below a route's assurance level; its loginUrl asks for that level.
const LOGIN_CODES = new Set(['login_required', 'session_expired', 'step_up_required']);
const CHANNEL = 'idporten-bff';

const settings = {
  /** @type {((problem: object) => unknown) | undefined} */
  onLoginRequired: undefined,
};

/** @type {Set<() => void>} re-checks to run after activity (this tab's or another tab's) */
const activityListeners = new Set();
let channel;

function activityChannel() {
  if (channel === undefined) {
    channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel(CHANNEL) : null;
    if (channel) channel.onmessage = (event) => event.data === 'activity' && notifyActivity(false);
  }
  return channel;
}

function notifyActivity(broadcast) {
  for (const listener of activityListeners) listener();
  if (broadcast) activityChannel()?.postMessage('activity');
}

function currentPath() {
  return location.pathname + location.search + location.hash;
}

/** The URL resolved against the page; throws for any other origin, so the session cookie's requests stay at home. */
function sameOrigin(input) {
  const raw = typeof Request === 'function' && input instanceof Request ? input.url : String(input);
  const url = new URL(raw, location.href);
  if (url.origin !== location.origin) throw new TypeError(`bff.fetch only calls its own origin (${location.origin}), not ${url.origin}`);
  return url;
}

/** The problem's loginUrl (same origin only) with returnTo set to where the user is now. */
function loginUrlFor(problem) {
  let url;
  try {
    url = new URL(typeof problem?.loginUrl === 'string' ? problem.loginUrl : '/auth/login', location.href);
  } catch {
    url = new URL('/auth/login', location.href);
  }
  if (url.origin !== location.origin) url = new URL('/auth/login', location.href);
  url.searchParams.set('returnTo', currentPath());
  return url.toString();
}

async function problemOf(response) {
  if (!/^application\/(problem\+)?json/i.test(response.headers.get('content-type') ?? '')) return undefined;
  try {
    return await response.clone().json();
  } catch {
    return undefined;
  }
}

/** Sets defaults for every call: `onLoginRequired(problem)` replaces the navigation to the login. */
function configure(options = {}) {
  if ('onLoginRequired' in options) settings.onLoginRequired = options.onLoginRequired;
}

/**
 * fetch() for the gateway's own origin: adds `X-CSRF: 1` and `credentials: 'same-origin'`. A 401 problem
 * `login_required`, `session_expired` or `step_up_required` sends the browser to its `loginUrl` (its other
 * parameters, such as a step-up's `acr` and `prompt`, kept) with `returnTo` = the current
 * page, or calls `onLoginRequired(problem)` when one is given (per call, or with configure()). The
 * response is returned either way.
 */
async function bffFetch(input, init = {}) {
  sameOrigin(input);
  const { onLoginRequired = settings.onLoginRequired, ...rest } = init;
  const fromRequest = typeof Request === 'function' && input instanceof Request ? input.headers : undefined;
  const headers = new Headers(rest.headers ?? fromRequest);
  headers.set('X-CSRF', '1');
  const response = await fetch(input, { ...rest, headers, credentials: 'same-origin' });
  if (response.status === 401) {
    const problem = await problemOf(response);
    if (problem && LOGIN_CODES.has(problem.code)) {
      if (typeof onLoginRequired === 'function') await onLoginRequired(problem);
      else location.assign(loginUrlFor(problem));
      return response;
    }
  } else if (response.status < 500) {
    // The gateway saw the session: its idle deadline moved.
    notifyActivity(true);
  }
  return response;
}

async function getSession() {
  const response = await fetch('/auth/session', { headers: { accept: 'application/json', 'X-CSRF': '1' }, credentials: 'same-origin' });
  if (response.status === 401) return null;
  if (!response.ok) throw new Error(`GET /auth/session answered ${response.status}`);
  return response.json();
}

/** The /auth/session body, or null when there is no live session. */
async function session() {
  return getSession();
}

/** Refreshes the tokens now (POST /auth/session/refresh); the new session view, or null when the session has ended. */
async function refresh() {
  const response = await fetch('/auth/session/refresh', {
    method: 'POST',
    headers: { accept: 'application/json', 'X-CSRF': '1' },
    credentials: 'same-origin',
  });
  if (response.status === 401) return null;
  if (!response.ok) throw new Error(`POST /auth/session/refresh answered ${response.status}`);
  notifyActivity(true);
  return response.json();
}

/** Navigates to the gateway's login; back to `returnTo` (default: the current page) afterwards. */
function login(returnTo = currentPath()) {
  location.assign(`/auth/login?returnTo=${encodeURIComponent(returnTo)}`);
}

/** Logs out with a real form POST to /auth/logout (a top-level navigation, so ID-porten's logout page is reached). */
function logout() {
  const form = document.createElement('form');
  form.method = 'POST';
  form.action = '/auth/logout';
  form.style.display = 'none';
  document.body.appendChild(form);
  form.submit();
}

/**
 * Calls `cb(info)` once the session (the earlier of its absolute end and its idle deadline) will end within
 * `seconds`. Deadlines come from the gateway's clock (`endsIn`, `idleExpiresIn`) and are followed with
 * `performance.now()`, so a wrong clock in the browser does not matter. The session view is fetched again
 * after activity through bff.fetch/refresh in any tab of this origin (it moves the idle deadline); never by
 * polling on a timer, which would itself keep an idle session alive. Returns a function that unsubscribes.
 *
 * info: { secondsLeft, reason: 'idle' | 'absolute' | 'ended', session } (session is null once it has ended).
 */
function onExpiring(seconds, cb) {
  const windowMs = Math.max(0, Number(seconds) || 0) * 1000;
  let stopped = false;
  let timer;
  let recheck;
  let deadline; // performance.now() time the session ends
  let reason;
  let view;
  let fired = false;
  let generation = 0;

  const fire = () => {
    if (stopped || fired) return;
    fired = true;
    const secondsLeft = view ? Math.max(0, Math.round((deadline - performance.now()) / 1000)) : 0;
    cb({ secondsLeft, reason: view ? reason : 'ended', session: view ?? null });
  };

  const arm = () => {
    clearTimeout(timer);
    if (stopped) return;
    const wait = deadline - windowMs - performance.now();
    if (wait <= 0) fire();
    else timer = setTimeout(arm, Math.min(wait, 2 ** 31 - 1));
  };

  const check = async () => {
    const mine = ++generation;
    const sent = performance.now();
    let next;
    try {
      next = await getSession();
    } catch {
      return; // keep the deadline already known; the next activity checks again
    }
    if (stopped || mine !== generation) return;
    view = next;
    if (!view) {
      fire();
      return;
    }
    const { endsIn, idleExpiresIn } = view.session;
    reason = idleExpiresIn < endsIn ? 'idle' : 'absolute';
    // The gateway counted from a moment after `sent`: measuring from `sent` warns a little early, never late.
    deadline = sent + Math.min(endsIn, idleExpiresIn) * 1000;
    if (deadline - windowMs > performance.now()) fired = false;
    arm();
  };

  const onActivity = () => {
    clearTimeout(recheck);
    recheck = setTimeout(check, 1000);
  };
  // Timers in hidden tabs are throttled: look again when the tab is shown.
  const onVisible = () => document.visibilityState === 'visible' && deadline !== undefined && arm();

  activityListeners.add(onActivity);
  activityChannel();
  document.addEventListener('visibilitychange', onVisible);
  void check();

  return () => {
    stopped = true;
    clearTimeout(timer);
    clearTimeout(recheck);
    activityListeners.delete(onActivity);
    document.removeEventListener('visibilitychange', onVisible);
  };
}

export const bff = Object.freeze({ configure, fetch: bffFetch, session, refresh, login, logout, onExpiring });
export default bff;
