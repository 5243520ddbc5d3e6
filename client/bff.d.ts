/** The /auth/session body (see openapi.yaml, SessionView). */
export interface SessionView {
  authenticated: true;
  user: {
    sub: string;
    /** Only when the tenant sets `exposePid: true`. */
    pid?: string;
    acr: 'idporten-loa-substantial' | 'idporten-loa-high';
    amr: string[];
    locale?: string;
  };
  session: {
    createdAt: string;
    endsAt: string;
    /** Whole seconds until endsAt, by the gateway's clock. */
    endsIn: number;
    idleExpiresAt: string;
    /** Whole seconds until idleExpiresAt, by the gateway's clock. */
    idleExpiresIn: number;
  };
  accessToken: {
    expiresAt: string;
    /** Whole seconds until expiresAt, by the gateway's clock. */
    expiresIn: number;
    refreshable: boolean;
  };
}

/** An RFC 9457 problem as the gateway answers it. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  code: string;
  detail?: string;
  traceId?: string;
  /** With `login_required`, `session_expired` and `step_up_required`: where to start a login (a step-up's asks for a level). */
  loginUrl?: string;
  [key: string]: unknown;
}

export type LoginRequiredHandler = (problem: Problem) => unknown;

export interface BffOptions {
  /** Called instead of navigating to the login on a 401 `login_required` / `session_expired` / `step_up_required`. */
  onLoginRequired?: LoginRequiredHandler | undefined;
}

export interface BffRequestInit extends RequestInit {
  /** For this call only; overrides configure(). */
  onLoginRequired?: LoginRequiredHandler | undefined;
}

export interface ExpiringInfo {
  /** Seconds left when the callback runs (0 once the session has ended). */
  secondsLeft: number;
  /** Which deadline comes first, or `ended` when there is no live session. */
  reason: 'idle' | 'absolute' | 'ended';
  /** The last session view, or null once the session has ended. */
  session: SessionView | null;
}

export interface Bff {
  configure(options: BffOptions): void;
  /** Same-origin fetch with `X-CSRF: 1` and `credentials: 'same-origin'`; throws a TypeError for another origin. */
  fetch(input: RequestInfo | URL, init?: BffRequestInit): Promise<Response>;
  /** The session view, or null when there is no live session. */
  session(): Promise<SessionView | null>;
  /** Refreshes the tokens now; the new session view, or null when the session has ended. */
  refresh(): Promise<SessionView | null>;
  /** Navigates to /auth/login, returning to `returnTo` (default: the current page). */
  login(returnTo?: string): void;
  /** Logs out with a form POST to /auth/logout (navigates away). */
  logout(): void;
  /** Calls `cb` once when the session will end within `seconds`; returns an unsubscribe function. */
  onExpiring(seconds: number, cb: (info: ExpiringInfo) => void): () => void;
}

export declare const bff: Bff;
export default bff;
