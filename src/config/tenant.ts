/**
 * One customer's integration: its public origin, its ID-porten client, and its routes.
 * Environment presets fill what the tenant leaves out; whatever the tenant writes wins.
 */

import { normaliseApp } from './app.js';
import { normaliseClientAuth } from './client-auth.js';
import { parseDurationMs } from './duration.js';
import type { IssueList } from './errors.js';
import { normaliseHsts } from './hsts.js';
import { childPath } from './path.js';
import { readCertificates } from './pem.js';
import { PRESETS, defaultScopes, presetRoutes } from './presets.js';
import type { RawIdporten, RawTenant } from './schema.js';
import { normaliseRoutes } from './routes.js';
import { ACR_LEVELS as SCHEMA_ACR_LEVELS, LOCALES as SCHEMA_LOCALES } from './schema.js';
import type { AcrLevel, AltinnConfig, IdportenConfig, RouteConfig, TenantConfig, TenantSettings } from './types.js';
import { normaliseKeys } from './session-keys.js';
import { parseBaseUrl, parseIssuer, parseOrigin, parseWebUrl } from './urls.js';

/** Lowest to highest assurance. */
const ACR_LEVELS: readonly AcrLevel[] = SCHEMA_ACR_LEVELS;
const LOCALES: readonly string[] = SCHEMA_LOCALES;

/**
 * Returns undefined when the tenant has errors (they are in `issues`); a TenantSettings (no `clientId`) when the
 * tenant's client comes from an applied integration.
 */
export function normaliseTenant(raw: RawTenant, path: string, baseDir: string, issues: IssueList, hasDigdir: boolean): TenantConfig | TenantSettings | undefined {
  const before = issues.items.length;
  const publicUrl = issues.attempt(childPath(path, 'publicUrl'), () => parseOrigin(raw.publicUrl));
  const preset = raw.idporten.environment === undefined ? undefined : PRESETS[raw.idporten.environment];

  const exchangeUrl = raw.altinn?.exchangeUrl ?? preset?.altinnExchangeUrl;
  const altinn: AltinnConfig | undefined =
    exchangeUrl === undefined
      ? undefined
      : { exchangeUrl: issues.attempt(childPath(path, 'altinn.exchangeUrl'), () => parseBaseUrl(exchangeUrl)) ?? '' };
  const tenantDpop = raw.idporten.dpop === true;
  if (raw.altinn?.dpop === true) {
    if (!tenantDpop) issues.add(childPath(path, 'altinn.dpop'), `needs ${childPath(path, 'idporten.dpop')}: true (only a DPoP-bound token can be sent with a proof)`);
    else if (altinn) altinn.dpop = true;
  }

  const routes = tenantRoutes(raw, path, issues);
  routes.forEach((route, index) => {
    const rawDpop = raw.routes?.[index]?.dpop;
    if (rawDpop === true && (!tenantDpop || route.token !== 'idporten')) {
      issues.add(
        childPath(childPath(childPath(path, 'routes'), index), 'dpop'),
        `only a route with token idporten on a tenant with ${childPath(path, 'idporten.dpop')}: true carries a DPoP-bound token`,
      );
    }
    if (tenantDpop && route.token === 'idporten' && rawDpop !== false) route.dpop = true;
    if (route.token === 'altinn' && altinn === undefined) {
      issues.add(
        childPath(childPath(childPath(path, 'routes'), index), 'token'),
        `altinn needs ${childPath(path, 'altinn.exchangeUrl')} (Altinn's token exchange endpoint), or idporten.environment to preset it`,
      );
    }
  });

  const idporten = normaliseIdporten(raw.idporten, childPath(path, 'idporten'), publicUrl, routes, baseDir, issues);
  // A step-up login asks for the route's level; /auth/login grants only the levels the tenant allows.
  raw.routes?.forEach((route, index) => {
    if (route.acr !== undefined && idporten !== undefined && !idporten.allowedAcrValues.includes(route.acr)) {
      issues.add(
        childPath(childPath(childPath(path, 'routes'), index), 'acr'),
        `must be one of ${childPath(path, 'idporten.allowedAcrValues')} (${idporten.allowedAcrValues.join(', ')})`,
      );
    }
  });
  const client = normaliseClient(raw, path, hasDigdir, issues);
  const upstreamCaPem =
    raw.upstreamCaFile === undefined
      ? undefined
      : issues.attempt(childPath(path, 'upstreamCaFile'), () => readCertificates(raw.upstreamCaFile ?? '', baseDir));
  const app = raw.app === undefined ? undefined : normaliseApp(raw.app, childPath(path, 'app'), baseDir, issues);
  const hsts = normaliseHsts(raw.hsts, publicUrl, childPath(path, 'hsts'), issues);
  const sessionKeys = raw.sessionKeys === undefined ? undefined : normaliseKeys(raw.sessionKeys, issues, childPath(path, 'sessionKeys'));

  // Placeholders ('' or 0) stand in for values that failed; they never leave this function.
  if (issues.items.length > before || publicUrl === undefined || idporten === undefined || client === undefined) return undefined;
  const tenant: TenantSettings = { id: raw.id, publicUrl, idporten, routes, exposePid: raw.exposePid ?? false };
  if (altinn) tenant.altinn = altinn;
  if (upstreamCaPem !== undefined) tenant.upstreamCaPem = upstreamCaPem;
  if (app) tenant.app = app;
  if (hsts) tenant.hsts = hsts;
  if (sessionKeys) tenant.sessionKeys = sessionKeys;
  if (raw.orgno !== undefined) tenant.orgno = raw.orgno;
  if (client === 'applied') {
    if (raw.integration !== undefined) tenant.appliedIntegration = raw.integration;
    return tenant;
  }
  return { ...tenant, idporten: { ...tenant.idporten, ...client } };
}

/**
 * The tenant's ID-porten client as the file gives it, or 'applied': none in the file, for `integrations apply` to
 * make (the tenant has an orgno and the file a digdir block). Undefined on an error.
 */
function normaliseClient(raw: RawTenant, path: string, hasDigdir: boolean, issues: IssueList): Pick<IdportenConfig, 'clientId' | 'clientAuth'> | 'applied' | undefined {
  const at = (key: string) => childPath(childPath(path, 'idporten'), key);
  const { clientId, clientAuth } = raw.idporten;
  if (clientId !== undefined && clientAuth !== undefined) {
    const auth = issues.attempt(at('clientAuth.privateKeyJwk'), () => normaliseClientAuth(clientAuth));
    return auth === undefined ? undefined : { clientId, clientAuth: auth };
  }
  if (clientId !== undefined || clientAuth !== undefined) {
    // One without the other: the file means to give the client by hand.
    issues.add(at(clientId === undefined ? 'clientId' : 'clientAuth'), 'is required');
    return undefined;
  }
  if (raw.orgno === undefined || !hasDigdir) {
    issues.add(at('clientId'), 'is required (or give the tenant an orgno and the file a digdir block, and run idporten-bff integrations apply)');
    return undefined;
  }
  return 'applied';
}

function tenantRoutes(raw: RawTenant, path: string, issues: IssueList): RouteConfig[] {
  const at = childPath(path, 'routes');
  if (raw.routes) return normaliseRoutes(raw.routes, at, issues);
  if (raw.idporten.environment) return normaliseRoutes(presetRoutes(raw.idporten.environment), at, issues);
  issues.add(at, "is required (or set idporten.environment to test or prod to get Skatteetaten's default routes)");
  return [];
}

function normaliseIdporten(
  raw: RawIdporten,
  path: string,
  publicUrl: string | undefined,
  routes: RouteConfig[],
  baseDir: string,
  issues: IssueList,
): TenantSettings['idporten'] | undefined {
  const at = (key: string) => childPath(path, key);
  const issuerText = raw.issuer ?? (raw.environment ? PRESETS[raw.environment].issuer : undefined);
  if (issuerText === undefined) issues.add(at('issuer'), 'is required (or set idporten.environment to test or prod)');
  const issuer = issuerText === undefined ? '' : (issues.attempt(at('issuer'), () => parseIssuer(issuerText)) ?? '');

  const scopes = [...new Set(raw.scopes ?? defaultScopes(routes.some((route) => route.token === 'altinn')))];
  // OIDC Core 1.0 section 3.1.2.1: without openid the request is plain OAuth and yields no ID token.
  if (!scopes.includes('openid')) issues.add(at('scopes'), 'must include openid (OIDC Core 1.0 section 3.1.2.1)');

  const acrValues = raw.acrValues ?? 'idporten-loa-substantial';
  // A login may ask for the configured level or higher; the configured level itself is always allowed.
  const allowedAcrValues = ACR_LEVELS.filter(
    (level) => level === acrValues || (raw.allowedAcrValues ?? ACR_LEVELS.slice(ACR_LEVELS.indexOf(acrValues))).includes(level),
  );
  const uiLocales = raw.uiLocales ?? 'nb';
  const allowedLocales = LOCALES.filter((locale) => locale === uiLocales || (raw.allowedLocales ?? LOCALES).includes(locale));

  const postLogoutText = raw.postLogoutRedirectUri ?? (publicUrl === undefined ? undefined : `${publicUrl}/`);
  // Kept as written: ID-porten compares it character for character with the registered URI.
  const postLogoutRedirectUri =
    postLogoutText === undefined ? '' : (issues.attempt(at('postLogoutRedirectUri'), () => parseWebUrl(postLogoutText, 'browser') && postLogoutText) ?? '');

  const idporten: TenantSettings['idporten'] = {
    issuer,
    scopes,
    acrValues,
    allowedAcrValues,
    uiLocales,
    allowedLocales,
    postLogoutRedirectUri,
    logoutHint: raw.logoutHint ?? 'id_token',
    usePar: raw.usePar ?? true,
    dpop: raw.dpop ?? false,
    httpTimeoutMs: issues.attempt(at('httpTimeout'), () => parseDurationMs(raw.httpTimeout ?? '10s')) ?? 0,
  };
  // Part of the ID-porten settings (not read from the routes at login), so that a reload changing them gives the
  // tenant a client that names the new ones.
  const resources = [...new Set(routes.flatMap((route) => (route.resource === undefined ? [] : [route.resource])))];
  if (resources.length > 0) idporten.resources = resources;
  if (raw.caFile !== undefined) {
    const caFile = raw.caFile;
    const caPem = issues.attempt(at('caFile'), () => readCertificates(caFile, baseDir));
    if (caPem !== undefined) idporten.caPem = caPem;
  }
  return idporten;
}
