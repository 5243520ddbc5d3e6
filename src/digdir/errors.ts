/**
 * What can go wrong talking to Digdir: the API (or Maskinporten) refused a request — a fact about the request,
 * reported as the API worded it — or it could not be asked at all (unreachable, an answer that makes no sense).
 */
export class DigdirRefused extends Error {
  constructor(
    readonly what: string,
    readonly status: number,
    readonly error: string | undefined,
    readonly description: string,
  ) {
    super(`${what}: ${status}${error ? ` ${error}` : ''}${description ? `: ${description}` : ''}`);
  }

  /** Whether the vendor's admin client itself was refused (no token, or the API will not take it): nothing about a tenant. */
  get aboutAdminClient(): boolean {
    return this.what.startsWith('Maskinporten') || this.status === 401 || this.status === 403;
  }
}

export class DigdirUnavailable extends Error {}

/** fetch with a deadline; a network failure or timeout becomes DigdirUnavailable naming what was asked. */
export async function request(what: string, url: string, init: RequestInit & { timeoutMs?: number } = {}): Promise<Response> {
  try {
    return await fetch(url, { ...init, signal: AbortSignal.timeout(init.timeoutMs ?? 10_000) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
    throw new DigdirUnavailable(`${what}: ${url} could not be reached (${cause})`);
  }
}

/** The body of a refusal as `{ error, error_description }` (RFC 6749 / RFC 7591), else its text. */
export async function refusal(what: string, response: Response): Promise<DigdirRefused> {
  const text = await response.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { error?: unknown; error_description?: unknown };
    return new DigdirRefused(what, response.status, typeof body.error === 'string' ? body.error : undefined, typeof body.error_description === 'string' ? body.error_description : '');
  } catch {
    return new DigdirRefused(what, response.status, undefined, text.slice(0, 500));
  }
}
