/**
 * An Altinn 3 look-alike for VAT submission: the platform's token exchange (ID-porten access
 * token in, the Altinn JWT out as plain text, same expiry) and Skatteetaten's submission app
 * (mva-melding-innsending) as its documentation describes it. State lives in memory. The app
 * accepts only tokens this look-alike issued, never ID-porten's.
 *
 * Sources, all in the Skatteetaten/mva-meldingen repository unless named otherwise:
 *  - API page (docs/documentation/api/, skatteetaten.github.io/mva-meldingen/documentation/api/):
 *    the steps — create the instance (which already holds the empty envelope element
 *    `no.skatteetaten.fastsetting.avgift.mva.mvameldinginnsending.v1.0`, filled with PUT), POST the
 *    return (`datatype=mvamelding`) and 0–57 attachments (`datatype=binaerVedlegg`, 25 MB each,
 *    the listed content types, unique file names), `process/next` twice (409 "Valideringsfeil: …"
 *    when the envelope and the return disagree, 409 with the valideringsresultat as XML when the
 *    return is invalid), `feedback/status` (`isFeedbackProvided`) and the blocking `feedback`, and
 *    the feedback files `betalingsinformasjon` (at once), `valideringsresultat` and `kvittering` (PDF).
 *  - Implementation guide (docs/documentation/implementasjonsguide/, steps 6–8): what is checked at
 *    the first `process/next` (organisation numbers, attachment list both ways, message category,
 *    validity) and that clients poll the status endpoint before fetching the instance.
 *  - skatteetaten.github.io/api-dokumentasjon (api/mvameldinginnsending): the task name
 *    "Tilbakemelding" while Skatteetaten processes, `currentTask` null and a `kvittering` when done.
 * Where they say nothing, the look-alike follows Altinn's app API: 400 for an unknown data type, a
 * missing file name or a content type the data type does not allow, 409 when the process is past
 * the data task or a data type is full, 413 for a body over the size limit.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { calculateJwkThumbprint, decodeJwt, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { createBearerVerifier, refuseBearer, type BearerResult } from './bearer.js';
import { DpopChecker, dpopRequestOf, type DpopCheckerOptions } from './dpop-check.js';
import { sendJson, serve } from './http-server.js';
import { amount, checkWellFormed, elements, escapeXml, isSubmittable, renderValideringsresultat, validateMvaMelding, type ResultFormat } from './mva-validation.js';
import { findTestUser } from './test-users.js';

export const EXCHANGE_PATH = '/authentication/api/v1/exchange/id-porten';
export const ALTINN_JWKS_PATH = '/authentication/api/v1/openid/.well-known/openid-configuration/jwks';
const DEFAULT_APP_PATH = '/skd/mva-melding-innsending-test';
/** "Det er mulig å laste opp fra 0 til 57 vedlegg, med en individuell størrelse på 25MB." (API page, Last Opp Vedlegg) */
export const MAX_ATTACHMENTS = 57;
export const MAX_DATA_BYTES = 25 * 1024 * 1024;
/** Past the limit a body is counted and dropped, not kept; a client that sends this much more is cut off. */
const DISCARD_BYTES = 64 * 1024 * 1024;
const REALM = 'altinn-lookalike';

export const ENVELOPE_TYPE = 'no.skatteetaten.fastsetting.avgift.mva.mvameldinginnsending.v1.0';
const XML_TYPES = ['application/xml', 'text/xml'];
/** The API page's list for binaerVedlegg (Last Opp Vedlegg, updated 2021.12.08). */
export const ATTACHMENT_CONTENT_TYPES = [
  'text/xml',
  'application/pdf',
  'application/vnd.oasis.opendocument.formula',
  'application/vnd.oasis.opendocument.text',
  'application/vnd.oasis.opendocument.spreadsheet',
  'application/vnd.oasis.opendocument.presentation',
  'application/vnd.oasis.opendocument.graphics',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  'application/msword',
  'application/vnd.ms-excel',
  'application/vnd.ms-powerpoint',
  'image/jpeg',
  'image/png',
] as const;

interface DataTypeRule {
  contentTypes: readonly string[];
  maxCount: number;
  /** Bodies up to this size are kept so they can be read back (and, for XML, checked); larger ones only as a digest. */
  retain: number;
  /** Written by the end user; the feedback types are written by Skatteetaten only. */
  byUser: boolean;
  filenameRequired: boolean;
}

const DATA_TYPES: Record<string, DataTypeRule> = {
  [ENVELOPE_TYPE]: { contentTypes: XML_TYPES, maxCount: 1, retain: MAX_DATA_BYTES, byUser: true, filenameRequired: false },
  mvamelding: { contentTypes: XML_TYPES, maxCount: 1, retain: MAX_DATA_BYTES, byUser: true, filenameRequired: false },
  binaerVedlegg: { contentTypes: ATTACHMENT_CONTENT_TYPES, maxCount: MAX_ATTACHMENTS, retain: 1024 * 1024, byUser: true, filenameRequired: true },
  betalingsinformasjon: { contentTypes: ['text/xml'], maxCount: 1, retain: Infinity, byUser: false, filenameRequired: false },
  valideringsresultat: { contentTypes: ['text/xml'], maxCount: 1, retain: Infinity, byUser: false, filenameRequired: false },
  kvittering: { contentTypes: ['application/pdf'], maxCount: 1, retain: Infinity, byUser: false, filenameRequired: false },
};

/** Newer scopes first; the older Skatteetaten scope still grants submission. */
const WRITE_SCOPES = ['altinn:instances.write', 'skatteetaten:mvameldinginnsending'];
const READ_SCOPES = ['altinn:instances.read', 'altinn:instances.write', 'skatteetaten:mvameldinginnsending'];

/** A dummy account number for the payment information (the documentation's example uses the same kind). */
const DEMO_KONTONUMMER = '12345678903';

export interface AltinnLookalikeOptions {
  host?: string;
  port?: number;
  /** The ID-porten issuer whose access tokens may be exchanged. */
  issuer: string;
  jwksUri: string;
  appPath?: string;
  /** How long "Skatteetaten" takes to give feedback after the submission; default 300 ms. */
  feedbackDelayMs?: number;
  /** How long the blocking `GET …/feedback` waits before it answers the unfinished instance; default 25 s. */
  feedbackWaitMs?: number;
  /** Shape of the valideringsresultat in a 409 and in the feedback file; default `xsd`. */
  resultFormat?: ResultFormat;
  /**
   * The exchange takes DPoP-bound ID-porten tokens with proofs (RFC 9449) and refuses them as Bearer. Without it
   * the exchange knows no DPoP and takes any valid token as Bearer, as Altinn does today.
   */
  exchangeDpop?: DpopCheckerOptions;
}

export interface ExchangeTry {
  status: number;
  nonce: string | undefined;
  offeredNonce: string | undefined;
}

export interface AltinnLookalike {
  url: string;
  exchangeUrl: string;
  /** Base URL of the app API, e.g. http://127.0.0.1:1234/skd/mva-melding-innsending-test */
  appUrl: string;
  /** Where the look-alike publishes the key its Altinn tokens are signed with. */
  jwksUri: string;
  stats: { exchanges: number };
  /** Every request to the exchange: its answer's status, the nonce its DPoP proof carried and the one the exchange wants. */
  exchangeTries: ExchangeTry[];
  /** Every Altinn token handed out — for leak checks in tests. */
  issuedTokens: Set<string>;
  instances: Map<string, Instance>;
  close(): Promise<void>;
}

export type Task = 'data' | 'confirm' | 'feedback';
const TASKS: Task[] = ['data', 'confirm', 'feedback'];
const TASK_NAMES: Record<Task, string> = { data: 'Utfylling', confirm: 'Bekreftelse', feedback: 'Tilbakemelding' };

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
  organisationNumber?: string;
  guid: string;
  task: Task;
  ended: boolean;
  feedbackProvided: boolean;
  created: string;
  lastChanged: string;
  data: DataElement[];
  content: Map<string, Buffer>;
}

export async function startAltinnLookalike(opts: AltinnLookalikeOptions): Promise<AltinnLookalike> {
  const appPath = (opts.appPath ?? DEFAULT_APP_PATH).replace(/\/$/, '');
  const { privateKey, publicJwk } = await signingKey();
  const exchangeChecker = opts.exchangeDpop && new DpopChecker(opts.exchangeDpop);
  const verifyIdporten = createBearerVerifier({ issuer: opts.issuer, jwksUri: opts.jwksUri, ...(exchangeChecker ? { dpop: exchangeChecker } : {}) });
  let verifyAltinn: ReturnType<typeof createBearerVerifier> | undefined;
  const stats = { exchanges: 0 };
  const exchangeTries: ExchangeTry[] = [];
  const issuedTokens = new Set<string>();
  const instances = new Map<string, Instance>();
  const timers = new Set<NodeJS.Timeout>();
  const waiters = new Map<string, Set<() => void>>();
  const feedbackDelayMs = opts.feedbackDelayMs ?? 300;
  const feedbackWaitMs = opts.feedbackWaitMs ?? 25_000;

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
  const appUrl = `${running.url}${appPath}`;
  verifyAltinn = createBearerVerifier({ issuer: altinnIssuer, jwks: { keys: [publicJwk] } });

  /** GET exchange/id-porten: a valid ID-porten access token buys an Altinn token with the same exp. */
  async function exchange(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const nonce = proofNonce(req.headers.dpop);
    res.on('finish', () => {
      exchangeTries.push({ status: res.statusCode, nonce, offeredNonce: exchangeChecker?.demandsNonce ? exchangeChecker.nonce : undefined });
    });
    const auth = await verifyIdporten(req.headers.authorization, dpopRequestOf(req));
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
      // The API page writes `datatype=`, Altinn's app API `dataType=`; both are accepted.
      const dataType = url.searchParams.get('dataType') ?? url.searchParams.get('datatype');
      await storeData(req, res, instance, dataType);
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
    } else if (rest[0] === 'feedback' && rest.length === 2 && rest[1] === 'status') {
      if (method !== 'GET') return notAllowed(req, res, 'GET');
      req.resume();
      // API page, Hent tilbakemelding: 200 and { "isFeedbackProvided": boolean }.
      sendJson(res, 200, { isFeedbackProvided: instance.feedbackProvided });
    } else if (rest[0] === 'feedback' && rest.length === 1) {
      if (method !== 'GET') return notAllowed(req, res, 'GET');
      req.resume();
      await awaitFeedback(req, res, instance);
    } else {
      notFound(req, res);
    }
  }

  function elementJson(instance: Instance, element: DataElement): Record<string, unknown> {
    return {
      ...element,
      filename: element.filename ?? null,
      selfLinks: { apps: `${appUrl}/instances/${instance.id}/data/${element.id}` },
      locked: instance.task !== 'data' || instance.ended,
      refs: [],
    };
  }

  function instanceJson(instance: Instance): Record<string, unknown> {
    return {
      id: instance.id,
      instanceOwner: {
        partyId: instance.partyId,
        ...(instance.organisationNumber ? { organisationNumber: instance.organisationNumber } : {}),
      },
      appId: `skd/${appPath.split('/').pop()}`,
      org: 'skd',
      selfLinks: { apps: `${appUrl}/instances/${instance.id}` },
      created: instance.created,
      lastChanged: instance.lastChanged,
      process: processJson(instance),
      status: {
        isArchived: instance.ended,
        ...(instance.ended ? { archived: instance.lastChanged, substatus: { label: 'Mottatt', description: 'Mva-meldingen er levert og mottatt av Skatteetaten.' } } : {}),
      },
      data: instance.data.map((element) => elementJson(instance, element)),
    };
  }

  async function createInstance(req: IncomingMessage, res: ServerResponse, userParty: string): Promise<void> {
    let body: { instanceOwner?: { partyId?: string | number; organisationNumber?: string; personNumber?: string } };
    try {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of req) {
        size += (chunk as Buffer).length;
        if (size <= 64 * 1024) chunks.push(chunk as Buffer);
      }
      if (size > 64 * 1024) throw new Error('too large');
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
    if (owner.organisationNumber !== undefined && !/^\d{9}$/.test(String(owner.organisationNumber))) {
      // API page, Opprett Instans: 404 "Cannot lookup party" for an organisation number that does not resolve.
      sendJson(res, 404, `Cannot lookup party: Failed to lookup party by organisationNumber: ${String(owner.organisationNumber).slice(0, 20)}.`);
      return;
    }
    const now = new Date().toISOString();
    const guid = randomUUID();
    const instance: Instance = {
      id: `${userParty}/${guid}`,
      partyId: userParty,
      ...(owner.organisationNumber ? { organisationNumber: String(owner.organisationNumber) } : {}),
      guid,
      task: 'data',
      ended: false,
      feedbackProvided: false,
      created: now,
      lastChanged: now,
      data: [],
      content: new Map(),
    };
    // The envelope element exists from the start; the client fills it with PUT (API page, Last Opp MvaMeldingInnsending).
    addElement(instance, ENVELOPE_TYPE, 'application/xml', Buffer.alloc(0));
    instances.set(instance.id, instance);
    const json = instanceJson(instance);
    sendJson(res, 201, owner.personNumber ? { ...json, instanceOwner: { ...(json.instanceOwner as object), personNumber: owner.personNumber } } : json);
  }

  async function storeData(
    req: IncomingMessage,
    res: ServerResponse,
    instance: Instance,
    dataType: string | null,
    existing?: DataElement,
  ): Promise<void> {
    const refuse = (status: number, body: unknown) => {
      req.resume();
      sendJson(res, status, body);
    };
    if (!dataType) return refuse(400, 'Element type must be provided.');
    const rule = DATA_TYPES[dataType];
    if (!rule) return refuse(400, `Element type ${dataType.slice(0, 64)} not allowed for instance ${instance.id}.`);
    if (!rule.byUser) return refuse(403, { error: 'forbidden', error_description: `${dataType} is written by Skatteetaten only` });
    if (instance.task !== 'data' || instance.ended) return refuse(409, { error: 'conflict', error_description: 'data can only change in the data task' });
    if (!existing && instance.data.filter((d) => d.dataType === dataType).length >= rule.maxCount) {
      return refuse(409, { error: 'conflict', error_description: `at most ${rule.maxCount} data elements of type ${dataType}` });
    }
    const contentType = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (!rule.contentTypes.includes(contentType)) {
      return refuse(400, `Invalid data provided. Error: Invalid content type: ${contentType.slice(0, 100) || '(none)'}. Permitted content types include: ${rule.contentTypes.join(', ')}`);
    }
    const name = filename(req.headers['content-disposition']);
    if (rule.filenameRequired && !name) {
      return refuse(400, 'Invalid data provided. Error: The request must include a Content-Disposition header with a file name');
    }
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (declared > MAX_DATA_BYTES) return tooLarge(req, res);

    const received = await receive(req, MAX_DATA_BYTES, rule.retain);
    if (received === 'too_large') return tooLarge(req, res);
    const now = new Date().toISOString();
    const element: DataElement = {
      id: existing?.id ?? randomUUID(),
      instanceGuid: instance.guid,
      dataType,
      contentType,
      ...(name ? { filename: name } : existing?.filename ? { filename: existing.filename } : {}),
      size: received.size,
      sha256: received.sha256,
      created: existing?.created ?? now,
      lastChanged: now,
    };
    if (received.content) instance.content.set(element.id, received.content);
    else instance.content.delete(element.id);
    instance.data = existing ? instance.data.map((d) => (d.id === element.id ? element : d)) : [...instance.data, element];
    instance.lastChanged = now;
    sendJson(res, existing ? 200 : 201, elementJson(instance, element));
  }

  function readData(req: IncomingMessage, res: ServerResponse, instance: Instance, element: DataElement): void {
    req.resume();
    const content = instance.content.get(element.id);
    if (!content) {
      sendJson(res, 404, { error: 'not_retained', error_description: 'large elements are kept as a digest only' });
      return;
    }
    res.writeHead(200, {
      'content-type': element.contentType,
      'content-length': content.length,
      ...(element.filename ? { 'content-disposition': `attachment; filename="${element.filename.replace(/[^\x20-\x7e]|"/g, '_')}"` } : {}),
    });
    res.end(content);
  }

  /**
   * `process/next`. data → confirm after the checks of the implementation guide (step 6);
   * confirm → feedback ("Tilbakemelding") with betalingsinformasjon at once; Skatteetaten's
   * valideringsresultat and kvittering follow after `feedbackDelayMs`, and the process ends.
   */
  function advance(res: ServerResponse, instance: Instance): void {
    if (instance.ended || instance.task === 'feedback') {
      sendJson(res, 409, { error: 'conflict', error_description: instance.ended ? 'process has ended' : 'the submission is with Skatteetaten' });
      return;
    }
    if (instance.task === 'data') {
      const problem = checkSubmission(instance);
      if (problem?.kind === 'invalid') {
        res.writeHead(409, { 'content-type': 'application/xml; charset=utf-8', 'content-length': Buffer.byteLength(problem.xml) });
        res.end(problem.xml);
        return;
      }
      if (problem) {
        sendJson(res, 409, problem.message);
        return;
      }
    } else {
      // API page, Fullfør MvaMeldingInnsending: the unique-name check can also fail here.
      const duplicate = duplicateName(instance);
      if (duplicate) {
        sendJson(res, 409, duplicate);
        return;
      }
    }
    instance.task = TASKS[TASKS.indexOf(instance.task) + 1] ?? instance.task;
    instance.lastChanged = new Date().toISOString();
    if (instance.task === 'feedback') {
      const melding = parseMelding(instance);
      addElement(instance, 'betalingsinformasjon', 'text/xml', Buffer.from(betalingsinformasjon(instance, melding)), 'betalingsinformasjon.xml');
      const timer = setTimeout(() => {
        timers.delete(timer);
        provideFeedback(instance, melding);
      }, feedbackDelayMs);
      timer.unref();
      timers.add(timer);
    }
    sendJson(res, 200, processJson(instance));
  }

  function provideFeedback(instance: Instance, melding: ParsedMelding): void {
    const result = validateMvaMelding(melding.xml);
    addElement(instance, 'valideringsresultat', 'text/xml', Buffer.from(renderValideringsresultat(result, opts.resultFormat)), 'valideringsresultat.xml');
    addElement(instance, 'kvittering', 'application/pdf', kvitteringPdf(instance, melding), 'kvittering.pdf');
    instance.feedbackProvided = true;
    instance.ended = true;
    instance.lastChanged = new Date().toISOString();
    for (const wake of waiters.get(instance.id) ?? []) wake();
    waiters.delete(instance.id);
  }

  /** The blocking `GET …/feedback`: answers the instance once feedback is provided (or after feedbackWaitMs). */
  async function awaitFeedback(req: IncomingMessage, res: ServerResponse, instance: Instance): Promise<void> {
    if (!instance.feedbackProvided) {
      if (instance.task !== 'feedback') {
        sendJson(res, 400, { error: 'invalid_request', error_description: 'the instance has not been submitted' });
        return;
      }
      await new Promise<void>((resolve) => {
        const set = waiters.get(instance.id) ?? new Set<() => void>();
        waiters.set(instance.id, set);
        const done = () => {
          clearTimeout(timer);
          set.delete(done);
          resolve();
        };
        const timer = setTimeout(done, feedbackWaitMs);
        timer.unref();
        set.add(done);
        req.socket.once('close', done);
      });
      if (res.destroyed) return;
    }
    sendJson(res, 200, instanceJson(instance));
  }

  return {
    url: running.url,
    exchangeUrl: `${running.url}${EXCHANGE_PATH}`,
    appUrl,
    jwksUri: `${running.url}${ALTINN_JWKS_PATH}`,
    stats,
    exchangeTries,
    issuedTokens,
    instances,
    close: async () => {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      for (const set of waiters.values()) for (const wake of set) wake();
      await running.close();
    },
  };
}

function addElement(instance: Instance, dataType: string, contentType: string, content: Buffer, name?: string): DataElement {
  const now = new Date().toISOString();
  const element: DataElement = {
    id: randomUUID(),
    instanceGuid: instance.guid,
    dataType,
    contentType,
    ...(name ? { filename: name } : {}),
    size: content.length,
    sha256: createHash('sha256').update(content).digest('hex'),
    created: now,
    lastChanged: now,
  };
  instance.data.push(element);
  instance.content.set(element.id, content);
  return element;
}

function processJson(instance: Instance): Record<string, unknown> {
  const step = TASKS.indexOf(instance.task) + 1;
  return {
    started: instance.created,
    startEvent: 'StartEvent_1',
    currentTask: instance.ended
      ? null
      : { elementId: `Task_${step}`, name: TASK_NAMES[instance.task], altinnTaskType: instance.task, flow: step + 1 },
    ended: instance.ended ? instance.lastChanged : null,
    endEvent: instance.ended ? 'EndEvent_1' : null,
  };
}

/**
 * Streams a body through SHA-256, keeping it only up to `retain` bytes. Past `limit` it stops
 * counting into the digest and drops what still arrives (never buffering it), so the 413 can be
 * read by the client; a client that sends DISCARD_BYTES more is cut off.
 */
function receive(req: IncomingMessage, limit: number, retain: number): Promise<{ sha256: string; size: number; content?: Buffer } | 'too_large'> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    const kept: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (over) {
        if (size > limit + DISCARD_BYTES) req.destroy();
        return;
      }
      if (size > limit) {
        over = true;
        kept.length = 0;
        resolve('too_large');
        return;
      }
      hash.update(chunk);
      if (size <= retain) kept.push(chunk);
      else kept.length = 0;
    });
    req.on('end', () => {
      if (!over) resolve({ sha256: hash.digest('hex'), size, ...(size <= retain ? { content: Buffer.concat(kept) } : {}) });
    });
    req.on('error', reject);
  });
}

function tooLarge(req: IncomingMessage, res: ServerResponse): void {
  // The rest of the body is drained and dropped (receive's handler, or resume() here) so the client reads the answer.
  if (req.listenerCount('data') === 0) req.resume();
  sendJson(res, 413, { error: 'payload_too_large', error_description: `at most ${MAX_DATA_BYTES} bytes per data element` });
}

interface ParsedMelding {
  xml: string;
  orgnr?: string;
  meldingskategori?: string;
  periode?: string;
  aar?: string;
  fastsatt?: number;
}

function parseMelding(instance: Instance): ParsedMelding {
  const element = instance.data.find((d) => d.dataType === 'mvamelding');
  const xml = element ? (instance.content.get(element.id)?.toString('utf8') ?? '') : '';
  const periode = elements(xml, 'skattleggingsperiode')[0] ?? '';
  return {
    xml,
    orgnr: elements(elements(xml, 'skattepliktig')[0] ?? '', 'organisasjonsnummer')[0]?.trim(),
    meldingskategori: elements(xml, 'meldingskategori')[0]?.trim(),
    periode: /<(?:[\w.-]+:)?(skattleggingsperiode\w+)>([^<]*)</.exec(periode)?.[2]?.trim(),
    aar: elements(periode, 'aar')[0]?.trim(),
    fastsatt: amount(elements(xml, 'fastsattMerverdiavgift')[0]),
  };
}

type SubmissionProblem = { kind: 'conflict'; message: string } | { kind: 'invalid'; xml: string };

/** The checks at the first process/next, in the order of the API page's list (Fullfør utfylling). */
function checkSubmission(instance: Instance): SubmissionProblem | undefined {
  const conflict = (message: string): SubmissionProblem => ({ kind: 'conflict', message: `Valideringsfeil: ${message}` });
  const envelopeElement = instance.data.find((d) => d.dataType === ENVELOPE_TYPE);
  const envelope = envelopeElement ? (instance.content.get(envelopeElement.id)?.toString('utf8') ?? '') : '';
  if (!envelope.trim()) return conflict('MvaMeldingInnsending ("konvolutt") er ikke lastet opp');
  const malformed = checkWellFormed(envelope, 'mvaMeldingInnsending');
  if (malformed) return conflict(`MvaMeldingInnsending ("konvolutt") er ugyldig: ${malformed}`);
  const meldingElement = instance.data.find((d) => d.dataType === 'mvamelding');
  if (!meldingElement) return conflict('mva-meldingen er ikke lastet opp');
  const melding = parseMelding(instance);
  const meldingName = meldingElement.filename ?? 'mva-meldingen';

  const envelopeOrgnr = elements(elements(envelope, 'norskIdentifikator')[0] ?? '', 'organisasjonsnummer')[0]?.trim();
  if (instance.organisationNumber && envelopeOrgnr !== instance.organisationNumber) {
    return conflict('Organisasjonsnummeret i instansen er forskjellig fra organisasjonsnummeret i MvaMeldingInnsending ("konvolutt")');
  }
  if (envelopeOrgnr !== melding.orgnr) {
    return conflict(`Organisasjonsnummeret i MvaMeldingInnsending ("konvolutt") er forskjellig fra organisasjonsnummeret i ${meldingName}`);
  }
  // Upload names are checked against the envelope's vedlegg list both ways (implementation guide, step 6).
  const declared = new Set(envelopeAttachments(envelope));
  const uploaded = new Set(instance.data.filter((d) => d.dataType === 'binaerVedlegg').map((d) => d.filename ?? ''));
  if (declared.size !== uploaded.size || [...declared].some((name) => !uploaded.has(name))) {
    return conflict('Vedleggene i MvaMeldingInnsending ("konvolutt") er forskjellige fra vedleggene lastet opp til instansen');
  }
  if (elements(envelope, 'meldingskategori')[0]?.trim() !== melding.meldingskategori) {
    return conflict(`Meldingskategorien i MvaMeldingInnsending ("konvolutt") er forsjellig fra Meldingskategorien i ${meldingName}`);
  }
  const periode = elements(envelope, 'skattleggingsperiode')[0];
  if (periode === undefined) {
    return conflict('skattleggingsperiode er påkrevd i MvaMeldingInnsending. Validation error: skattleggingsperiode is required in MvaMeldingInnsending');
  }
  if (!periode.trim()) return conflict('skattleggingsperiode må være utfylt. Validation error: skattleggingsperiode must be populated');
  // instansstatus: the API page lists a 409 when it is missing, but the XSD makes it optional (minOccurs="0")
  // and the field description on api-dokumentasjon says it is being phased out; the XSD wins here.
  const duplicate = duplicateName(instance);
  if (duplicate) return { kind: 'conflict', message: duplicate };

  const result = validateMvaMelding(melding.xml);
  if (!isSubmittable(result)) return { kind: 'invalid', xml: renderValideringsresultat(result) };
  return undefined;
}

function envelopeAttachments(envelope: string): string[] {
  return elements(envelope, 'vedlegg')
    .filter((v) => elements(v, 'vedleggstype')[0]?.trim() === 'binaerVedlegg')
    .map((v) => {
      const name = elements(v, 'filnavn')[0]?.trim() ?? '';
      const ext = elements(v, 'filekstensjon')[0]?.trim() ?? '';
      return ext && !name.toLowerCase().endsWith(`.${ext.toLowerCase()}`) ? `${name}.${ext}` : name;
    });
}

function duplicateName(instance: Instance): string | undefined {
  const names = instance.data.filter((d) => d.dataType === 'mvamelding' || d.dataType === 'binaerVedlegg').flatMap((d) => (d.filename ? [d.filename.toLowerCase()] : []));
  return new Set(names).size === names.length
    ? undefined
    : 'Valideringsfeil: filnavnene i innsendingen må være unike. Validation error: file names in the submission must be unique.';
}

/** Per no.skatteetaten.fastsetting.avgift.mva.skattemeldingformerverdiavgift.betalingsinformasjon.v1.0.xsd. */
function betalingsinformasjon(instance: Instance, melding: ParsedMelding): string {
  const periodeElement = /<(?:[\w.-]+:)?(skattleggingsperiode\w+)>/.exec(elements(melding.xml, 'skattleggingsperiode')[0] ?? '')?.[1] ?? 'skattleggingsperiodeToMaaneder';
  return `<?xml version="1.0" encoding="UTF-8"?>
<betalingsinformasjon xmlns="no:skatteetaten:fastsetting:avgift:mva:skattemeldingformerverdiavgift:betalingsinformasjon:v1.0">
  <innsendingsreferanse>${escapeXml(instance.id)}</innsendingsreferanse>
  <skattepliktig>
    <organisasjonsnummer>${escapeXml(melding.orgnr ?? '')}</organisasjonsnummer>
  </skattepliktig>
  <skattleggingsperiode>
    <periode>
      <${periodeElement}>${escapeXml(melding.periode ?? '')}</${periodeElement}>
    </periode>
    <aar>${escapeXml(melding.aar ?? '')}</aar>
  </skattleggingsperiode>
  <kundeidentifikasjonsnummer>${kid(melding)}</kundeidentifikasjonsnummer>
  <beloep>${melding.fastsatt ?? 0}</beloep>
  <betaleTil>Skatteetaten</betaleTil>
  <betalingsfrist>${betalingsfrist(melding)}</betalingsfrist>
  <betalesTilKonto>
    <norskKontonummer>${DEMO_KONTONUMMER}</norskKontonummer>
  </betalesTilKonto>
</betalingsinformasjon>
`;
}

/** A KID (MOD10 check digit) from the organisation number and the period. */
function kid(melding: ParsedMelding): string {
  const digits = `${melding.orgnr ?? '000000000'}${melding.aar ?? '0000'}${String(TO_MAANEDER.indexOf(melding.periode ?? '') + 1).padStart(2, '0')}`;
  let sum = 0;
  [...digits].reverse().forEach((d, i) => {
    const n = Number(d) * (i % 2 === 0 ? 2 : 1);
    sum += n > 9 ? n - 9 : n;
  });
  return `${digits}${(10 - (sum % 10)) % 10}`;
}

const TO_MAANEDER = ['januar-februar', 'mars-april', 'mai-juni', 'juli-august', 'september-oktober', 'november-desember'];

/** Two-month terms are due the 10th of the second month after the term; anything else 30 days from today. */
function betalingsfrist(melding: ParsedMelding): string {
  const term = TO_MAANEDER.indexOf(melding.periode ?? '');
  const year = Number(melding.aar);
  if (term < 0 || !Number.isInteger(year)) return new Date(Date.now() + 30 * 86_400_000).toISOString().slice(0, 10);
  return new Date(Date.UTC(year, term * 2 + 3, 10)).toISOString().slice(0, 10);
}

/** A one-page PDF receipt (standard Helvetica, WinAnsi text), written by hand: no dependency needed. */
function kvitteringPdf(instance: Instance, melding: ParsedMelding): Buffer {
  const lines = [
    'Kvittering for mottatt mva-melding',
    '',
    `Innsendingsreferanse: ${instance.id}`,
    `Organisasjonsnummer: ${melding.orgnr ?? ''}`,
    `Skattleggingsperiode: ${melding.periode ?? ''} ${melding.aar ?? ''}`,
    `Meldingskategori: ${melding.meldingskategori ?? ''}`,
    `Fastsatt merverdiavgift: ${melding.fastsatt ?? 0} kr`,
    `Mottatt: ${new Date().toISOString()}`,
    '',
    'Laget av Altinn-etterligningen i idporten-bff-demoen. Ikke en ekte kvittering.',
  ];
  const text = lines
    .map((line, i) => `BT /F1 ${i === 0 ? 16 : 11} Tf 56 ${780 - i * 20} Td (${line.replace(/[\\()]/g, (c) => `\\${c}`)}) Tj ET`)
    .join('\n');
  const stream = Buffer.from(text, 'latin1');
  const objects = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>',
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>',
    `<< /Length ${stream.length} >>\nstream\n${stream.toString('latin1')}\nendstream`,
  ];
  let pdf = '%PDF-1.4\n';
  const offsets: number[] = [];
  objects.forEach((body, i) => {
    offsets.push(Buffer.byteLength(pdf, 'latin1'));
    pdf += `${i + 1} 0 obj\n${body}\nendobj\n`;
  });
  const xref = Buffer.byteLength(pdf, 'latin1');
  pdf += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n${offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('')}`;
  pdf += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(pdf, 'latin1');
}

/** `filename*=UTF-8''…` (RFC 6266 / 8187) wins over a plain `filename=`. */
function filename(disposition: string | undefined): string | undefined {
  const header = disposition ?? '';
  const extended = /filename\*\s*=\s*UTF-8''([^;\s]+)/i.exec(header)?.[1];
  if (extended) {
    try {
      return decodeURIComponent(extended);
    } catch {
      return undefined;
    }
  }
  const plain = /filename\s*=\s*(?:"([^"]*)"|([^;\s]+))/i.exec(header);
  const name = (plain?.[1] ?? plain?.[2])?.trim();
  return name || undefined;
}

/** The `nonce` claim of a DPoP proof, read without checking it (the verifier checks). */
function proofNonce(proof: string | string[] | undefined): string | undefined {
  try {
    const nonce = typeof proof === 'string' ? (decodeJwt(proof).nonce as unknown) : undefined;
    return typeof nonce === 'string' ? nonce : undefined;
  } catch {
    return undefined;
  }
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
