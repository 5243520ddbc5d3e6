/**
 * A Skatteetaten VAT-validation look-alike. Like the real API it takes the ID-porten access
 * token as bearer (scope `skatteetaten:mvameldingvalidering`) and answers 200 with a
 * `valideringsresultat` document even when the return is invalid (mva-meldingen API page,
 * "Valider skattemelding"). `/echo/*` reflects what arrived (headers, query, a digest of the
 * streamed body) so proxy tests can inspect it.
 *
 * Content negotiation follows the error table of skatteetaten.github.io/api-dokumentasjon
 * (api/mvameldingvalidering, "Feilkoder"): 406 "Kun json eller xml er støttet". XML is the
 * default (`Accept` missing, `*\/*`, `application/xml`, `text/xml`); `application/json` gets the
 * same result as JSON with the schema's element names as keys (the JSON form is not published;
 * this is the look-alike's reading). The XML shape is the schema's unless `resultFormat` says
 * `api-eksempel` (see mva-validation.ts for where the sources disagree).
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { fingerprint } from '../src/audit/fingerprint.js';
import { createBearerVerifier, refuseBearer, type BearerResult } from './bearer.js';
import { BodyTooLargeError, digestBody, readBody, sendJson, serve } from './http-server.js';
import { renderValideringsresultat, validateMvaMelding, type ResultFormat } from './mva-validation.js';

export const VALIDATION_PATH = '/api/mva/grensesnittstoette/mva-melding/valider';
export const VALIDATION_SCOPE = 'skatteetaten:mvameldingvalidering';
const ECHO_PREFIX = '/echo/';
const MAX_XML_BYTES = 10 * 1024 * 1024;
const REALM = 'skatteetaten-lookalike';

export interface SkatteetatenLookalikeOptions {
  host?: string;
  port?: number;
  /** The ID-porten issuer whose access tokens are accepted. */
  issuer: string;
  jwksUri: string;
  /** Which published XML shape to answer with; default `xsd`. */
  resultFormat?: ResultFormat;
  /**
   * The `aud` every bearer must carry (RFC 8707: the gateway route's `resource`); tokens for another audience, or
   * without one, get 401 invalid_token. Absent: any audience.
   */
  audience?: string;
}

export interface RecordedRequest {
  method: string;
  /** Path and query as received. */
  path: string;
  headers: IncomingHttpHeaders;
  /** Bytes of request body read so far (final once the response is sent). */
  bodySize: number;
}

export interface SkatteetatenLookalike {
  url: string;
  /** Full URL of the validation endpoint. */
  validationUrl: string;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

export async function startSkatteetatenLookalike(opts: SkatteetatenLookalikeOptions): Promise<SkatteetatenLookalike> {
  const audience = opts.audience === undefined ? {} : { audience: opts.audience };
  const verifyValidation = createBearerVerifier({ issuer: opts.issuer, jwksUri: opts.jwksUri, requiredScope: VALIDATION_SCOPE, ...audience });
  const verifyAny = createBearerVerifier({ issuer: opts.issuer, jwksUri: opts.jwksUri, ...audience });
  const requests: RecordedRequest[] = [];

  const running = await serve(opts.host ?? '127.0.0.1', opts.port ?? 0, async (req, res, url) => {
    const record: RecordedRequest = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, bodySize: 0 };
    requests.push(record);

    if (url.pathname === VALIDATION_PATH) {
      await validate(req, res, record);
    } else if (url.pathname.startsWith(ECHO_PREFIX)) {
      await echo(req, res, url, record);
    } else {
      req.resume();
      sendJson(res, 404, { error: 'not_found' });
    }
  });

  async function validate(req: IncomingMessage, res: ServerResponse, record: RecordedRequest): Promise<void> {
    if (req.method !== 'POST') {
      req.resume();
      sendJson(res, 405, { error: 'method_not_allowed' }, { allow: 'POST' });
      return;
    }
    const auth = await verifyValidation(req.headers.authorization);
    if (!auth.ok) {
      refuse(req, res, auth);
      return;
    }
    const answer = negotiate(req.headers.accept);
    if (!answer) {
      req.resume();
      sendJson(res, 406, { error: 'not_acceptable', error_description: 'Kun json eller xml er støttet.' });
      return;
    }
    // The error table's 406 is the only documented format error, so it covers the body's type too:
    // the body is an mva-melding "iht. XSD" with Content-Type: application/xml (API page).
    const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
    if (type !== 'application/xml' && type !== 'text/xml') {
      req.resume();
      sendJson(res, 406, { error: 'not_acceptable', error_description: 'Kun json eller xml er støttet. Send mva-meldingen som application/xml.' });
      return;
    }
    let xml: Buffer;
    try {
      xml = await readBody(req, MAX_XML_BYTES);
    } catch (err) {
      if (!(err instanceof BodyTooLargeError)) throw err;
      sendJson(res, 413, { error: 'payload_too_large' }, { connection: 'close' });
      return;
    }
    record.bodySize = xml.length;
    const result = validateMvaMelding(xml.toString('utf8'));
    if (answer === 'json') {
      sendJson(res, 200, result);
      return;
    }
    const document = renderValideringsresultat(result, opts.resultFormat);
    res.writeHead(200, { 'content-type': 'application/xml; charset=utf-8', 'content-length': Buffer.byteLength(document) });
    res.end(document);
  }

  async function echo(req: IncomingMessage, res: ServerResponse, url: URL, record: RecordedRequest): Promise<void> {
    const auth = await verifyAny(req.headers.authorization);
    if (!auth.ok) {
      refuse(req, res, auth);
      return;
    }
    const body = await digestBody(req, {
      onChunk: (_chunk, size) => {
        record.bodySize = size;
      },
    });
    sendJson(res, 200, {
      method: req.method,
      path: url.pathname,
      query: url.search.replace(/^\?/, ''),
      // The bearer is shown as its fingerprint: a reflected token would itself be a leak.
      headers: { ...req.headers, authorization: `Bearer fingerprint:${fingerprint(bearerValue(req)) ?? ''}` },
      body: { sha256: body.sha256, length: body.size },
      tokenClaims: { sub: auth.claims.sub, scope: auth.claims.scope, exp: auth.claims.exp, jti: auth.claims.jti },
    });
  }

  return {
    url: running.url,
    validationUrl: `${running.url}${VALIDATION_PATH}`,
    requests,
    close: running.close,
  };
}

function refuse(req: IncomingMessage, res: ServerResponse, result: Extract<BearerResult, { ok: false }>): void {
  refuseBearer(req, res, result, REALM, VALIDATION_SCOPE);
}

function bearerValue(req: IncomingMessage): string | undefined {
  return /^Bearer +(.+)$/i.exec(req.headers.authorization ?? '')?.[1]?.trim();
}

/** XML unless the client asks for JSON only; undefined when it accepts neither (406). */
function negotiate(accept: string | undefined): 'xml' | 'json' | undefined {
  if (!accept?.trim()) return 'xml';
  const ranges = accept.split(',').map((part) => {
    const [range = '', ...params] = part.split(';').map((p) => p.trim().toLowerCase());
    const q = Number(params.find((p) => p.startsWith('q='))?.slice(2) ?? 1);
    return { range, q: Number.isFinite(q) ? q : 0 };
  }).filter((r) => r.q > 0);
  const quality = (type: string, wildcards: boolean) => Math.max(0, ...ranges
    .filter((r) => r.range === type || (wildcards && (r.range === '*/*' || r.range === `${type.split('/')[0]}/*`)))
    .map((r) => r.q));
  const xml = Math.max(quality('application/xml', true), quality('text/xml', true));
  const json = quality('application/json', true);
  if (xml === 0 && json === 0) return undefined;
  // A JSON range named outright wins over XML reached only through a wildcard.
  const namedXml = Math.max(quality('application/xml', false), quality('text/xml', false));
  const namedJson = quality('application/json', false);
  return namedJson > namedXml || (namedJson === 0 && namedXml === 0 && json > xml) ? 'json' : 'xml';
}
