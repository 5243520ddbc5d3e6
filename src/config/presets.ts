/**
 * Known addresses of ID-porten, Altinn and Skatteetaten per environment, so a tenant can say
 * `idporten.environment: test` instead of copying URLs. Explicit values in the file always win.
 * Sources: Skatteetaten's mva-meldingen documentation ("Url'er til testmiljøet/produksjonsmiljøet")
 * and ID-porten's integration guide.
 */

import type { Environment, RawRoute } from './schema.js';

export type { Environment } from './schema.js';

export interface EnvironmentPreset {
  issuer: string;
  altinnExchangeUrl: string;
  /** Skatteetaten's VAT return validation endpoint; the bearer is the ID-porten access token. */
  validationUrl: string;
  /** Skatteetaten's Altinn 3 app for submitting VAT returns; the bearer is an Altinn token. */
  submissionAppUrl: string;
}

export const PRESETS: Record<Environment, EnvironmentPreset> = {
  test: {
    issuer: 'https://test.idporten.no',
    altinnExchangeUrl: 'https://platform.tt02.altinn.no/authentication/api/v1/exchange/id-porten',
    validationUrl: 'https://idporten-api-sbstest.sits.no/api/mva/grensesnittstoette/mva-melding/valider',
    submissionAppUrl: 'https://skd.apps.tt02.altinn.no/skd/mva-melding-innsending-etm2',
  },
  prod: {
    issuer: 'https://idporten.no',
    altinnExchangeUrl: 'https://platform.altinn.no/authentication/api/v1/exchange/id-porten',
    validationUrl: 'https://idporten.api.skatteetaten.no/api/mva/grensesnittstoette/mva-melding/valider',
    submissionAppUrl: 'https://skd.apps.altinn.no/skd/mva-melding-innsending-v1',
  },
};

/** Raw route entries (the file's shape) used when a tenant with a preset lists no routes. */
export function presetRoutes(environment: Environment): RawRoute[] {
  const preset = PRESETS[environment];
  return [
    { path: '/mva/validering', upstream: preset.validationUrl, token: 'idporten', methods: ['POST'] },
    { path: '/mva/innsending', upstream: preset.submissionAppUrl, token: 'altinn' },
  ];
}

/** Scopes Skatteetaten's VAT APIs need; the Altinn ones only when the tenant exchanges for Altinn tokens. */
export function defaultScopes(usesAltinn: boolean): string[] {
  const scopes = ['openid', 'skatteetaten:mvameldingvalidering', 'skatteetaten:mvameldinginnsending'];
  return usesAltinn ? [...scopes, 'altinn:instances.read', 'altinn:instances.write'] : scopes;
}
