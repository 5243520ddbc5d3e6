/**
 * An Altinn 3 look-alike for VAT submission: the platform's token exchange (ID-porten access
 * token in, Altinn JWT out, same expiry) and a tiny app API — instances, data elements,
 * `process/next` through data → confirm → feedback, and the feedback status. State lives in
 * memory. The app accepts only tokens this look-alike issued, never ID-porten's.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { createBearerVerifier, refuseBearer, type BearerResult } from './bearer.js';
import { BodyTooLargeError, digestBody, sendJson, serve } from './http-server.js';
import { findTestUser } from './test-users.js';

export const EXCHANGE_PATH = '/authentication/api/v1/exchange/id-porten';
export const ALTINN_JWKS_PATH = '/authentication/api/v1/openid/.well-known/openid-configuration/jwks';
const DEFAULT_APP_PATH = '/skd/mva-melding-innsending-test';
/** Per data element, as for VAT-return attachments. */
const MAX_DATA_BYTES = 25 * 1024 * 1024;
const MAX_ATTACHMENTS = 57;
/** Bodies up to this size are kept so they can be read back; larger ones only as a digest. */
const RETAIN_BYTES = 1024 * 1024;
const REALM = 'altinn-lookalike';

/** Newer scopes first; the older Skatteetaten scope still grants submission. */
const WRITE_SCOPES = ['altinn:instances.write', 'skatteetaten:mvameldinginnsending'];
const READ_SCOPES = ['altinn:instances.read', 'altinn:instances.write', 'skatteetaten:mvameldinginnsending'];

export interface AltinnLookalikeOptions {
  host?: string;
  port?: number;
  /** The ID-porten issuer whose access tokens may be exchanged. */
  issuer: string;
  jwksUri: string;
  appPath?: string;
}

export interface AltinnLookalike {
  url: string;
  exchangeUrl: string;
  /** Base URL of the app API, e.g. http://127.0.0.1:1234/skd/mva-melding-innsending-test */
  appUrl: string;
  /** Where the look-alike publishes the key its Altinn tokens are signed with. */
  jwksUri: string;
  stats: { exchanges: number };
  /** Every Altinn token handed out — for leak checks in tests. */
  issuedTokens: Set<string>;
  instances: Map<string, Instance>;
  close(): Promise<void>;
}

export type Task = 'data' | 'confirm' | 'feedback';
const TASKS: Task[] = ['data', 'confirm', 'feedback'];

export interface DataElement {
  id: string;
  instanceGuid: string;
  dataType: string;
  contentType: string;
  filename?: string;
  size: number;
  sha256: string;
  created: string;
  lastChanged: string;
}

export interface Instance {
  id: string;
  partyId: string;
  guid: string;
  task: Task;
  ended: boolean;
  created: string;
  lastChanged: string;
  data: DataElement[];
  content: Map<string, Buffer>;
}

export async function startAltinnLookalike(opts: AltinnLookalikeOptions): Promise<AltinnLookalike> {
  const appPath = (opts.appPath ?? DEFAULT_APP_PATH).replace(/\/$/, '');
  const { privateKey, publicJwk } = await signingKey();
  const verifyIdporten = createBearerVerifier({ issuer: opts.issuer, jwksUri: opts.jwksUri });
  let verifyAltinn: ReturnType<typeof createBearerVerifier> | undefined;
  const stats = { exchanges: 0 };
  const issuedTokens = new Set<string>();
  const instances = new Map<string, Instance>();

  const running = await serve(opts.host ?? '127.0.0.1', opts.port ?? 0, async (req, res, url) => {
    if (url.pathname === EXCHANGE_PATH && req.method === 'GET') {
      await exchange(req, res);
    } else if (url.pathname === ALTINN_JWKS_PATH && req.method === 'GET') {
      sendJson(res, 200, { keys: [publicJwk] });
    } else if (url.pathname === appPath || url.pathname.startsWith(`${appPath}/`)) {
      await app(req, res, url, url.pathname.slice(appPath.length).split('/').filter(Boolean));
    } else {
      req.resume();
      sendJson(res, 404, { error: 'not_found' });
    }
  });
  const altinnIssuer = running.url;
  verifyAltinn = createBearerVerifier({ issuer: altinnIssuer, jwks: { keys: [publicJwk] } });

  /** GET exchange/id-porten: a valid ID-porten access token buys an Altinn token with the same exp. */
  async function exchange(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const auth = await verifyIdporten(req.headers.authorization);
    if (!auth.ok) {
      refuse(req, res, auth);
      return;
    }
    const pid = typeof auth.claims.pid === 'string' ? auth.claims.pid : undefined;
    const user = pid ? findTestUser(pid) : undefined;
    if (!user) {
      sendJson(res, 403, { error: 'unknown_user', error_description: 'no Altinn profile for this person' });
      return;
    }
    const now = Math.floor(Date.now() / 1000);
    const claims: JWTPayload = {
      nameid: String(user.altinnUserId),
      'urn:altinn:userid': String(user.altinnUserId),
      'urn:altinn:partyid': user.altinnPartyId,
      'urn:altinn:authenticatemethod': 'IdportenTestId',
      'urn:altinn:authlevel': auth.claims.acr === 'idporten-loa-high' ? 4 : 3,
      pid: user.pid,
      acr: auth.claims.acr,
      client_id: auth.claims.client_id,
      scope: auth.claims.scope,
    };
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: publicJwk.kid! })
      .setIssuer(altinnIssuer)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(auth.claims.exp!)
      .sign(privateKey);
    stats.exchanges += 1;
    issuedTokens.add(token);
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
    res.end(token);
  }

  async function app(req: IncomingMessage, res: ServerResponse, url: URL, parts: string[]): Promise<void> {
    const method = req.method ?? 'GET';
    const auth = await verifyAltinn!(req.headers.authorization);
    if (!auth.ok) {
      refuse(req, res, auth);
      return;
    }
    const scopes = typeof auth.claims.scope === 'string' ? auth.claims.scope.split(' ') : [];
    const needed = method === 'GET' || method === 'HEAD' ? READ_SCOPES : WRITE_SCOPES;
    if (!needed.some((scope) => scopes.includes(scope))) {
      refuse(req, res, { ok: false, status: 403, error: 'insufficient_scope', description: `one of ${needed.join(', ')} required` });
      return;
    }
    const userParty = String(auth.claims['urn:altinn:partyid']);

    // POST {app}/instances
    if (parts.length === 1 && parts[0] === 'instances') {
      if (method !== 'POST') return notAllowed(req, res, 'POST');
      await createInstance(req, res, userParty);
      return;
    }
    if (parts[0] !== 'instances' || parts.length < 3) return notFound(req, res);
    const instance = instances.get(`${parts[1]}/${parts[2]}`);
    if (!instance) return notFound(req, res);
    if (instance.partyId !== userParty) {
      req.resume();
      sendJson(res, 403, { error: 'forbidden', error_description: 'instance belongs to another party' });
      return;
    }
    const rest = parts.slice(3);

    if (rest.length === 0) {
      if (method !== 'GET') return notAllowed(req, res, 'GET');
      sendJson(res, 200, instanceJson(instance));
    } else if (rest[0] === 'data' && rest.length === 1) {
      if (method !== 'POST') return notAllowed(req, res, 'POST');
      await storeData(req, res, instance, url.searchParams.get('dataType'));
    } else if (rest[0] === 'data' && rest.length === 2) {
      const element = instance.data.find((d) => d.id === rest[1]);
      if (!element) return notFound(req, res);
      if (method === 'PUT') await storeData(req, res, instance, element.dataType, element);
      else if (method === 'GET') readData(req, res, instance, element);
      else notAllowed(req, res, 'GET, PUT');
    } else if (rest[0] === 'process' && rest[1] === 'next' && rest.length === 2) {
      if (method !== 'PUT') return notAllowed(req, res, 'PUT');
      req.resume();
      advance(res, instance);
    } else if (rest[0] === 'feedback' && (rest.length === 1 || (rest.length === 2 && rest[1] === 'status'))) {
      if (method !== 'GET') return notAllowed(req, res, 'GET');
      sendJson(res, 200, feedbackJson(instance));
    } else {
      notFound(req, res);
    }
  }

  async function createInstance(req: IncomingMessage, res: ServerResponse, userParty: string): Promise<void> {
    let body: { instanceOwner?: { partyId?: string | number; organisationNumber?: string; personNumber?: string } };
    try {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as typeof body;
    } catch {
      sendJson(res, 400, { error: 'invalid_request', error_description: 'body must be JSON' });
      return;
    }
    const owner = body.instanceOwner ?? {};
    if (owner.partyId !== undefined && String(owner.partyId) !== userParty) {
      sendJson(res, 403, { error: 'forbidden', error_description: 'you cannot create instances for that party' });
      return;
    }
    const now = new Date().toISOString();
    const guid = randomUUID();
    const instance: Instance = {
      id: `${userParty}/${guid}`,
      partyId: userParty,
      guid,
      task: 'data',
      ended: false,
      created: now,
      lastChanged: now,
      data: [],
      content: new Map(),
    };
    instances.set(instance.id, instance);
    sendJson(res, 201, {
      ...instanceJson(instance),
      instanceOwner: {
        partyId: userParty,
        ...(owner.organisationNumber ? { organisationNumber: owner.organisationNumber } : {}),
        ...(owner.personNumber ? { personNumber: owner.personNumber } : {}),
      },
    });
  }

  async function storeData(
    req: IncomingMessage,
    res: ServerResponse,
    instance: Instance,
    dataType: string | null,
    existing?: DataElement,
  ): Promise<void> {
    if (!dataType || !/^[A-Za-z0-9_-]{1,64}$/.test(dataType)) {
      req.resume();
      sendJson(res, 400, { error: 'invalid_request', error_description: 'dataType query parameter required' });
      return;
    }
    if (instance.task !== 'data' || instance.ended) {
      req.resume();
      sendJson(res, 409, { error: 'conflict', error_description: 'data can only change in the data task' });
      return;
    }
    if (!existing && dataType === 'binaerVedlegg' && instance.data.filter((d) => d.dataType === dataType).length >= MAX_ATTACHMENTS) {
      req.resume();
      sendJson(res, 409, { error: 'conflict', error_description: `at most ${MAX_ATTACHMENTS} attachments` });
      return;
    }
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (declared > MAX_DATA_BYTES) {
      req.resume();
      sendJson(res, 413, { error: 'payload_too_large' }, { connection: 'close' });
      return;
    }
    const retained: Buffer[] = [];
    let digest: { sha256: string; size: number };
    try {
      digest = await digestBody(req, {
        limit: MAX_DATA_BYTES,
        onChunk: (chunk, size) => {
          if (size <= RETAIN_BYTES) retained.push(chunk);
          else retained.length = 0;
        },
      });
    } catch (err) {
      if (!(err instanceof BodyTooLargeError)) throw err;
      sendJson(res, 413, { error: 'payload_too_large' }, { connection: 'close' });
      return;
    }
    const now = new Date().toISOString();
    const element: DataElement = {
      id: existing?.id ?? randomUUID(),
      instanceGuid: instance.guid,
      dataType,
      contentType: (req.headers['content-type'] ?? 'application/octet-stream').split(';')[0]!.trim(),
      ...filename(req.headers['content-disposition']),
      size: digest.size,
      sha256: digest.sha256,
      created: existing?.created ?? now,
      lastChanged: now,
    };
    if (digest.size <= RETAIN_BYTES) instance.content.set(element.id, Buffer.concat(retained));
    else instance.content.delete(element.id);
    instance.data = existing ? instance.data.map((d) => (d.id === element.id ? element : d)) : [...instance.data, element];
    instance.lastChanged = now;
    sendJson(res, existing ? 200 : 201, element);
  }

  function readData(req: IncomingMessage, res: ServerResponse, instance: Instance, element: DataElement): void {
    req.resume();
    const content = instance.content.get(element.id);
    if (!content) {
      sendJson(res, 404, { error: 'not_retained', error_description: 'large elements are kept as a digest only' });
      return;
    }
    res.writeHead(200, { 'content-type': element.contentType, 'content-length': content.length });
    res.end(content);
  }

  /** data → confirm → feedback; reaching feedback, the tax office answers at once and the process ends. */
  function advance(res: ServerResponse, instance: Instance): void {
    if (instance.ended) {
      sendJson(res, 409, { error: 'conflict', error_description: 'process has ended' });
      return;
    }
    if (instance.task === 'data' && instance.data.length === 0) {
      sendJson(res, 409, { error: 'conflict', error_description: 'no data submitted' });
      return;
    }
    instance.task = TASKS[TASKS.indexOf(instance.task) + 1] ?? instance.task;
    if (instance.task === 'feedback') instance.ended = true;
    instance.lastChanged = new Date().toISOString();
    sendJson(res, 200, processJson(instance));
  }

  return {
    url: running.url,
    exchangeUrl: `${running.url}${EXCHANGE_PATH}`,
    appUrl: `${running.url}${appPath}`,
    jwksUri: `${running.url}${ALTINN_JWKS_PATH}`,
    stats,
    issuedTokens,
    instances,
    close: running.close,
  };
}

function instanceJson(instance: Instance): Record<string, unknown> {
  return {
    id: instance.id,
    instanceOwner: { partyId: instance.partyId },
    appId: 'skd/mva-melding-innsending',
    org: 'skd',
    created: instance.created,
    lastChanged: instance.lastChanged,
    process: processJson(instance),
    status: { isArchived: instance.ended },
    data: instance.data,
  };
}

function processJson(instance: Instance): Record<string, unknown> {
  const step = TASKS.indexOf(instance.task) + 1;
  return {
    started: instance.created,
    currentTask: instance.ended
      ? null
      : { elementId: `Task_${step}`, altinnTaskType: instance.task, flow: step + 1 },
    ended: instance.ended ? instance.lastChanged : null,
    endEvent: instance.ended ? 'EndEvent_1' : null,
  };
}

function feedbackJson(instance: Instance): Record<string, unknown> {
  return {
    status: instance.ended ? 'Avsluttet' : 'Venter',
    isFinal: instance.ended,
    currentTask: instance.ended ? null : instance.task,
  };
}

function filename(disposition: string | undefined): { filename?: string } {
  const match = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(disposition ?? '');
  return match?.[1] ? { filename: decodeURIComponent(match[1]) } : {};
}

function refuse(req: IncomingMessage, res: ServerResponse, result: Extract<BearerResult, { ok: false }>): void {
  refuseBearer(req, res, result, REALM);
}

function notFound(req: IncomingMessage, res: ServerResponse): void {
  req.resume();
  sendJson(res, 404, { error: 'not_found' });
}

function notAllowed(req: IncomingMessage, res: ServerResponse, allow: string): void {
  req.resume();
  sendJson(res, 405, { error: 'method_not_allowed' }, { allow });
}

async function signingKey(): Promise<{ privateKey: CryptoKey; publicJwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = await exportJWK(publicKey);
  return { privateKey, publicJwk: { ...jwk, alg: 'RS256', use: 'sig', kid: await calculateJwkThumbprint(jwk) } };
}
