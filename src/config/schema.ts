/**
 * The configuration file's shape, written once: this TypeBox schema is what validate.ts checks a file
 * against, `Static<…>` of it is the raw type normalise.ts reads, and config/schema.json (for editors and
 * other tools) is generated from it by `npm run schema`; a test fails when that file is out of date.
 *
 * The schema checks shape, types and unknown keys. Rules that span several fields (lifetimes, URLs,
 * unique ids, key strength) are checked afterwards by normalise.ts and the modules it calls.
 *
 * This module imports nothing else from src/config, so every other config module may depend on it.
 */

import { Type, type SchemaOptions, type Static, type TObject, type TSchema, type TUnsafe } from '@sinclair/typebox';

// --- building blocks -----------------------------------------------------------------------------

/** Shared definitions, emitted under `$defs` and referred to as `#/$defs/NAME`. */
const definitions: Record<string, TSchema> = {};

/** Registers `schema` under `$defs/NAME` and returns a reference to it that keeps its static type. */
function define<T extends TSchema>(name: string, schema: T): TUnsafe<Static<T>> {
  definitions[name] = schema;
  return Type.Unsafe<Static<T>>({ $ref: `#/$defs/${name}` });
}

/** The same schema with more keywords beside it (a description next to a `$ref`, say). */
function annotate<T extends TSchema>(schema: T, options: SchemaOptions): TUnsafe<Static<T>> {
  return Type.Unsafe<Static<T>>({ ...schema, ...options });
}

/** `{ "enum": [...] }`: one error naming every allowed value, where a union of literals would give one per value. */
function Enum<const T extends readonly string[]>(values: T, options: SchemaOptions = {}): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ ...options, enum: [...values] });
}

/**
 * An object whose `key` picks one of several shapes. Written as `if`/`then` per shape rather than
 * `oneOf`, so a wrong value for `key` is one "must be one of" error and a wrong key inside the chosen
 * shape is reported against that shape alone.
 */
function Tagged<const T extends TObject[]>(key: string, shapes: [...T], options: SchemaOptions = {}): TUnsafe<Static<T[number]>> {
  const tagOf = (shape: TObject): TSchema => shape.properties[key] as TSchema;
  const values = shapes.flatMap((shape) => {
    const tag = tagOf(shape) as { const?: string; enum?: string[] };
    return tag.enum ?? (tag.const === undefined ? [] : [tag.const]);
  });
  return Type.Unsafe<Static<T[number]>>({
    ...options,
    type: 'object',
    required: [key],
    properties: { [key]: { enum: values } },
    allOf: shapes.map((shape) => ({ if: { properties: { [key]: tagOf(shape) } }, then: shape })),
  });
}

const closed = { additionalProperties: false } as const;

// --- shared definitions --------------------------------------------------------------------------

const Duration = define(
  'duration',
  Type.Unsafe<number | string>({
    title: 'duration',
    description: 'Seconds as a number, or a string like "500ms", "120s", "30m", "8h", "1d".',
    type: ['number', 'string'],
    exclusiveMinimum: 0,
    pattern: '^\\s*\\d+(\\.\\d+)?\\s*(ms|s|m|h|d)?\\s*$',
  }),
);

const Size = define(
  'size',
  Type.Unsafe<number | string>({
    title: 'size',
    description: 'Bytes as a number, or a string like "512KB", "30MB", "25MiB".',
    type: ['integer', 'string'],
    exclusiveMinimum: 0,
    pattern: '^\\s*\\d+(\\.\\d+)?\\s*(B|KB|MB|GB|KiB|MiB|GiB)?\\s*$',
  }),
);

const Url = define(
  'url',
  Type.String({
    description:
      'An absolute http(s) URL; plain http only for localhost, 127.0.0.1 and [::1], and for a browser-facing URL (publicUrl, postLogoutRedirectUri) also NAME.localhost.',
    minLength: 1,
  }),
);

const NonEmptyString = define('nonEmptyString', Type.String({ minLength: 1 }));
const Port = define('port', Type.Integer({ minimum: 0, maximum: 65535 }));

export const ACR_LEVELS = ['idporten-loa-substantial', 'idporten-loa-high'] as const;
const AcrLevel = define('acrLevel', Enum(ACR_LEVELS));
export const LOCALES = ['nb', 'nn', 'en', 'se'] as const;
const Locale = define('locale', Enum(LOCALES));

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export const SAME_SITE = ['strict', 'lax'] as const;
export const ENVIRONMENTS = ['test', 'prod'] as const;
export const TOKEN_KINDS = ['idporten', 'altinn', 'none'] as const;

/** An HTTP field name (RFC 9110 section 5.1); the gateway lower-cases it. */
const HeaderName = define(
  'headerName',
  Type.String({
    pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$",
    expected: 'must be an HTTP header name: letters, digits and !#$%&\'*+.^_`|~- (RFC 9110 section 5.1)',
  }),
);

// --- server --------------------------------------------------------------------------------------

const Server = define(
  'server',
  Type.Object(
    {
      host: Type.Optional(NonEmptyString),
      port: Type.Optional(Port),
      trustProxy: Type.Optional(
        Type.Unsafe<boolean | string[]>({
          description:
            'false, or the addresses/CIDRs of the proxies in front (or loopback, linklocal, uniquelocal); X-Forwarded-* is honoured only from them. true is refused: the client writes the left-most X-Forwarded-For entry.',
          type: ['boolean', 'array'],
          items: NonEmptyString,
        }),
      ),
      shutdownTimeout: Type.Optional(Duration),
      metricsPort: Type.Optional(Port),
      metricsHost: Type.Optional(
        annotate(NonEmptyString, {
          description:
            'The address the internal listener (server.metricsPort: /metrics, the detailed /readyz, /admin/) binds (default "127.0.0.1"), never server.host\'s. Where Prometheus scrapes from another host or pod: "0.0.0.0", with a NetworkPolicy or firewall that lets only the monitoring reach the port.',
        }),
      ),
      admin: Type.Optional(
        Type.Object(
          {
            credential: Type.String({
              minLength: 32,
              description: 'The bearer credential an operator sends as "Authorization: Bearer …"; at least 32 characters, e.g. "${BFF_ADMIN_TOKEN}".',
            }),
          },
          {
            ...closed,
            description:
              'Session administration on the internal listener (server.metricsPort): list and end a user\'s sessions by tenant and sub. Left out, those endpoints are not served.',
          },
        ),
      ),
      logLevel: Type.Optional(Enum(LOG_LEVELS)),
      requestTimeout: Type.Optional(
        annotate(Duration, { description: 'How long a client may take to send a whole request, headers and body (default "60s").' }),
      ),
      headersTimeout: Type.Optional(
        annotate(Duration, {
          description: 'How long a client may take to send the request headers (default "10s", or requestTimeout when shorter); at most requestTimeout.',
        }),
      ),
      rateLimit: Type.Optional(
        Type.Object(
          {
            login: Type.Optional(
              Type.Object(
                {
                  max: Type.Optional(Type.Integer({ minimum: 1, description: 'Requests allowed per window (default 30).' })),
                  window: Type.Optional(annotate(Duration, { description: 'The window the count runs over (default "1m").' })),
                },
                {
                  ...closed,
                  description:
                    '/auth/login and /auth/callback per client address and tenant; over the limit they answer 429 rate_limited with Retry-After.',
                },
              ),
            ),
          },
          { ...closed, description: 'Request rate limits.' },
        ),
      ),
    },
    closed,
  ),
);

// --- session -------------------------------------------------------------------------------------

const MemoryStore = Type.Object(
  {
    type: Type.Literal('memory'),
    maxSessions: Type.Optional(Type.Integer({ minimum: 1 })),
  },
  closed,
);

const RedisUrl = annotate(NonEmptyString, {
  description: 'redis://HOST:PORT or rediss://HOST:PORT (TLS), optionally with user, password and database.',
});
const RedisNodes = Type.Array(RedisUrl, { minItems: 1 });

const RedisStore = Type.Object(
  {
    type: Type.Literal('redis'),
    url: Type.Optional(annotate(RedisUrl, { description: 'A single Redis server. Give exactly one of url, cluster or sentinel.' })),
    cluster: Type.Optional(
      Type.Object(
        { nodes: annotate(RedisNodes, { description: 'Some of the cluster\'s nodes; the rest are discovered from them.' }) },
        { ...closed, description: 'A Redis Cluster. Give exactly one of url, cluster or sentinel.' },
      ),
    ),
    sentinel: Type.Optional(
      Type.Object(
        {
          nodes: annotate(RedisNodes, { description: 'The Sentinels to ask for the current primary.' }),
          name: annotate(NonEmptyString, { description: 'The monitored primary\'s name (the master name in the Sentinel configuration).' }),
          replicaAcks: Type.Optional(
            Type.Integer({
              minimum: 0,
              description:
                'How many replicas must confirm a session write (a login, a rotated refresh token, a logout) before it counts (default 1), so a failover cannot take it back. 0 turns confirmation off.',
            }),
          ),
          replicaAckTimeout: Type.Optional(
            annotate(Duration, {
              description:
                'How long a write waits for those confirmations (default "500ms"); unconfirmed, it counts as the store being unavailable and is repeated (a rotated refresh token is kept and written again).',
            }),
          ),
        },
        { ...closed, description: 'A primary found through Redis Sentinel. Give exactly one of url, cluster or sentinel.' },
      ),
    ),
    keyPrefix: Type.Optional(Type.String({ description: 'Prefix for every key the gateway writes (default "bff:").' })),
    allowPlaintext: Type.Optional(
      Type.Boolean({
        description:
          'Allow redis:// (no TLS) to a server off this machine (default false): sessions and tokens then cross the network unencrypted. Prefer rediss://.',
      }),
    ),
  },
  closed,
);

const Store = define('store', Tagged('type', [MemoryStore, RedisStore]));

const SessionKey = define(
  'sessionKey',
  Type.Object(
    {
      id: Type.String({
        description: 'Names the key inside every sealed value; sealed cookie values use "." as their separator, so an id holds no ".".',
        pattern: '^[A-Za-z0-9_-]{1,32}$',
        expected: 'must be 1-32 letters, digits, "_" or "-" (no "."; sealed cookie values use "." as their separator)',
      }),
      secret: annotate(NonEmptyString, { description: 'base64 or base64url of at least 32 random bytes.' }),
    },
    closed,
  ),
);

const Session = define(
  'session',
  Type.Object(
    {
      store: Type.Optional(Store),
      absoluteLifetime: Type.Optional(Duration),
      idleTimeout: Type.Optional(Duration),
      cookieName: Type.Optional(
        Type.String({
          pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$",
          expected: "must be a cookie name token (RFC 6265 section 4.1.1): letters, digits and !#$%&'*+.^_`|~-",
        }),
      ),
      sameSite: Type.Optional(Enum(SAME_SITE)),
      refreshLeeway: Type.Optional(Duration),
      journalDir: Type.Optional(
        Type.String({
          minLength: 1,
          description:
            "A directory (relative to this file) where this instance keeps the back-channel logouts it accepted while the session store was unreachable, so that they are still applied after a restart. Each instance needs its own, on a volume that survives a restart; made if missing. Without it, such a logout is lost when the instance restarts before the store answers.",
        }),
      ),
      keys: Type.Array(SessionKey, {
        description: 'The first key encrypts; every key decrypts, so keys can rotate without logging users out.',
        minItems: 1,
      }),
    },
    closed,
  ),
);

// --- tenants -------------------------------------------------------------------------------------

const PrivateKeyJwt = Type.Object(
  {
    method: Type.Literal('private_key_jwt'),
    privateKeyJwk: Type.Unsafe<string | Record<string, unknown>>({
      description: 'The private JWK (RSA or EC, with d) as JSON text or as an object.',
      type: ['string', 'object'],
      minLength: 1,
    }),
  },
  closed,
);

const ClientSecret = Type.Object(
  {
    method: Enum(['client_secret_post', 'client_secret_basic']),
    secret: NonEmptyString,
  },
  closed,
);

const ClientAuth = define('clientAuth', Tagged('method', [PrivateKeyJwt, ClientSecret]));

const Idporten = define(
  'idporten',
  Type.Object(
    {
      environment: Type.Optional(Enum(ENVIRONMENTS)),
      issuer: Type.Optional(Url),
      clientId: Type.Optional(
        annotate(NonEmptyString, {
          description: 'The integration\'s client id. Leave it and clientAuth out when the tenant has an orgno and `idporten-bff integrations apply` makes the integration.',
        }),
      ),
      clientAuth: Type.Optional(ClientAuth),
      scopes: Type.Optional(
        Type.Array(
          Type.String({
            pattern: '^[!#-\\[\\]-~]+$',
            expected: 'must be a scope token: printable ASCII without spaces, " or \\ (RFC 6749 section 3.3)',
          }),
          { minItems: 1 },
        ),
      ),
      acrValues: Type.Optional(AcrLevel),
      allowedAcrValues: Type.Optional(Type.Array(AcrLevel, { minItems: 1 })),
      uiLocales: Type.Optional(Locale),
      allowedLocales: Type.Optional(Type.Array(Locale, { minItems: 1 })),
      postLogoutRedirectUri: Type.Optional(Url),
      logoutHint: Type.Optional(Enum(['id_token', 'client_id'])),
      usePar: Type.Optional(Type.Boolean()),
      dpop: Type.Optional(
        Type.Boolean({
          description:
            'DPoP (RFC 9449): a key pair per session, dpop_jkt in PAR, proofs on the token and refresh requests, tokens bound to the key (cnf.jkt checked), and proofs to the upstreams that carry them.',
        }),
      ),
      httpTimeout: Type.Optional(Duration),
      caFile: Type.Optional(NonEmptyString),
    },
    closed,
  ),
);

const Altinn = define(
  'altinn',
  Type.Object(
    {
      exchangeUrl: Type.Optional(Url),
      dpop: Type.Optional(
        Type.Boolean({ description: 'Send the bound ID-porten token to the exchange as DPoP with a proof (needs idporten.dpop); Bearer otherwise.' }),
      ),
    },
    closed,
  ),
);

const Route = define(
  'route',
  Type.Object(
    {
      path: Type.String({ pattern: '^/', expected: 'must start with "/"' }),
      upstream: Url,
      token: Enum(TOKEN_KINDS, {
        description:
          'The bearer the upstream gets: the ID-porten access token, an Altinn token exchanged for it, or none (a public pass-through: no session needed, no bearer sent).',
      }),
      forwardHeaders: Type.Optional(
        Type.Array(HeaderName, {
          description:
            'Request headers passed to the upstream besides the built-in allow-list. Never authorization, cookie, host, X-Forwarded-* or hop-by-hop headers.',
        }),
      ),
      methods: Type.Optional(
        Type.Array(Type.String({ pattern: '^[A-Za-z]+$', expected: 'must be an HTTP method name such as GET or POST' }), {
          minItems: 1,
        }),
      ),
      timeout: Type.Optional(Duration),
      bodyLimit: Type.Optional(Size),
      dpop: Type.Optional(
        Type.Boolean({
          description:
            'On a tenant with idporten.dpop, a route with token idporten sends Authorization: DPoP and a proof per request; false sends the token as Bearer (an upstream that does not know DPoP).',
        }),
      ),
      acr: Type.Optional(
        annotate(AcrLevel, {
          description:
            'The assurance level a session needs for this route (one of idporten.allowedAcrValues). A session below it gets 401 step_up_required with a loginUrl that asks for this level.',
        }),
      ),
      resource: Type.Optional(
        Type.String({
          minLength: 1,
          description:
            'RFC 8707 resource indicator (an absolute URI without fragment): the route sends an access token issued for this resource (its aud), obtained for it alone and never sent to another upstream. Only with token: idporten.',
        }),
      ),
    },
    closed,
  ),
);

const App = define(
  'app',
  Type.Object(
    {
      static: Type.Optional(
        annotate(NonEmptyString, {
          description:
            "A built SPA's folder, relative to the configuration file's folder: files as they are, index.html for client-side routes.",
        }),
      ),
      upstream: Type.Optional(annotate(Url, { description: 'A dev server or frontend container to pass app requests to (WebSocket upgrades pass).' })),
      requireLogin: Type.Optional(
        Type.Boolean({
          description: 'A top-level navigation without a live session is sent to /auth/login?returnTo=<path> (default false).',
        }),
      ),
      publicPaths: Type.Optional(
        Type.Array(Type.String({ minLength: 1 }), {
          description:
            'Paths requireLogin lets through without a session (a landing page, a "you are logged out" page), as globs: * within a segment, ** for any number of segments (/info/** also matches /info). Matched against the decoded path, without its query or a trailing slash.',
        }),
      ),
      headers: Type.Optional(
        Type.Record(Type.String(), Type.String(), {
          description: 'Response headers added to every app answer, e.g. content-security-policy.',
        }),
      ),
    },
    {
      ...closed,
      description:
        'The SPA on the tenant\'s origin: every request not owned by /auth/*, the health endpoints or a route. Give exactly one of static or upstream.',
    },
  ),
);

const Hsts = define(
  'hsts',
  Type.Unsafe<boolean | { maxAge?: Static<typeof Duration>; includeSubDomains?: boolean }>({
    description:
      'Strict-Transport-Security on every answer for a tenant whose publicUrl is https (never over http): true or left out for max-age one year without includeSubDomains, false for none (when a proxy in front sets it), or the settings below.',
    type: ['boolean', 'object'],
    properties: {
      maxAge: annotate(Duration, { description: 'How long browsers keep to https for this host (default "365d"; at least "1s").' }),
      includeSubDomains: Type.Boolean({
        description: 'Whether the policy covers every host below the tenant\'s as well (default false): only when all of them are served over https.',
      }),
    },
    ...closed,
  }),
);

const AppliedIntegration = define(
  'appliedIntegration',
  Type.Object(
    {
      clientId: NonEmptyString,
      keys: Type.Array(
        Type.Object(
          {
            kid: NonEmptyString,
            sealedJwk: annotate(NonEmptyString, { description: 'The private JWK, sealed under session.keys.' }),
            retireAt: Type.Optional(Type.String({ description: 'When rotate-keys removes this (no longer signing) key from the registration.' })),
          },
          closed,
        ),
        { minItems: 1 },
      ),
    },
    {
      ...closed,
      description:
        'Written by `idporten-bff integrations apply` into a tenant\'s file in tenantsDir (when the session store is not Redis): the client id and the private keys, the first one signing. Not for hand editing.',
    },
  ),
);

const Tenant = define(
  'tenant',
  Type.Object(
    {
      id: Type.String({
        pattern: '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$',
        expected: 'must start with a letter or digit and hold at most 64 letters, digits, "_" or "-"',
      }),
      publicUrl: Url,
      upstreamCaFile: Type.Optional(NonEmptyString),
      idporten: Idporten,
      altinn: Type.Optional(Altinn),
      routes: Type.Optional(Type.Array(Route)),
      app: Type.Optional(App),
      hsts: Type.Optional(Hsts),
      exposePid: Type.Optional(
        Type.Boolean({ description: "Whether /auth/session includes the user's pid (national identity number) (default false)." }),
      ),
      orgno: Type.Optional(
        Type.String({
          pattern: '^[0-9]{9}$',
          expected: 'must be an organisation number: 9 digits',
          description: "The customer's organisation number: the client_orgno of the tenant's ID-porten integration, which `idporten-bff integrations` keeps through Digdir's self-service API (the digdir block).",
        }),
      ),
      integration: Type.Optional(AppliedIntegration),
      sessionKeys: Type.Optional(
        Type.Array(SessionKey, {
          description:
            "This tenant's own key ring for its sessions and login transactions, so one customer's key never opens another's sessions (default: session.keys). The first key encrypts; every key decrypts.",
          minItems: 1,
        }),
      ),
    },
    closed,
  ),
);

// --- digdir -------------------------------------------------------------------------------------

const Digdir = define(
  'digdir',
  Type.Object(
    {
      environment: annotate(Enum(ENVIRONMENTS), { description: "Picks Maskinporten's issuer and the self-service API's host." }),
      clientId: annotate(NonEmptyString, { description: "The vendor's admin client (Maskinporten) for Digdir's self-service API, with the scope idporten:dcr.supplier." }),
      key: Type.Object(
        {
          jwk: Type.Optional(
            Type.Unsafe<string | Record<string, unknown>>({
              description: "The admin client's private RSA JWK (JSON text or an object), its kid registered on the client.",
              type: ['string', 'object'],
              minLength: 1,
            }),
          ),
          certificateChain: Type.Optional(annotate(NonEmptyString, { description: 'The enterprise certificate and its chain (PEM), sent as x5c.' })),
          privateKey: Type.Optional(annotate(NonEmptyString, { description: "The enterprise certificate's private key (PEM)." })),
        },
        { ...closed, description: 'Either { jwk } or { certificateChain, privateKey }.' },
      ),
      adminApiUrl: Type.Optional(annotate(Url, { description: "The self-service API's address (default: the environment's)." })),
      maskinportenIssuer: Type.Optional(annotate(Url, { description: "Maskinporten's issuer (default: the environment's); its metadata names the token endpoint." })),
    },
    { ...closed, description: "The vendor's admin client for Digdir's self-service API, used by `idporten-bff integrations`." },
  ),
);

// --- the file ------------------------------------------------------------------------------------

export const ConfigSchema = Type.Object(
  {
    server: Type.Optional(Server),
    session: Session,
    tenants: Type.Optional(Type.Array(Tenant, { minItems: 1, description: 'The tenants (customers) this gateway serves; more may come from tenantsDir. At least one in all.' })),
    digdir: Type.Optional(Digdir),
    tenantsDir: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'A directory (relative to this file) with one tenant per file (.yaml, .yml or .json, the shape of an entry of tenants), read in name order after tenants.',
      }),
    ),
  },
  {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://idporten-bff.local/config.schema.json',
    title: 'idporten-bff configuration',
    description:
      'The file an operator writes (YAML or JSON). ${NAME} inside any string is replaced by that environment variable before validation. Rules that span several fields (lifetimes, URLs, unique ids, key strength) are checked after this schema by src/config/normalise.ts.',
    ...closed,
    $defs: definitions,
  },
);

/** The file's shape once it has passed the schema: optional keys may be missing, durations and sizes are as written. */
export type RawConfig = Static<typeof ConfigSchema>;
export type RawServer = NonNullable<RawConfig['server']>;
export type RawSession = RawConfig['session'];
export type RawStore = NonNullable<RawSession['store']>;
export type RawTenant = NonNullable<RawConfig['tenants']>[number];
export type RawIdporten = RawTenant['idporten'];
export type RawClientAuth = NonNullable<RawIdporten['clientAuth']>;
export type RawDigdir = NonNullable<RawConfig['digdir']>;
export type RawAppliedIntegration = NonNullable<RawTenant['integration']>;
export type RawRoute = NonNullable<RawTenant['routes']>[number];
export type RawDuration = Static<typeof Duration>;
export type Environment = (typeof ENVIRONMENTS)[number];

// --- config/schema.json --------------------------------------------------------------------------

/** Keywords in the order a reader expects them; anything else follows in the order it was written, `$defs` last. */
const KEYWORD_ORDER = [
  '$schema', '$id', '$ref', 'title', 'description', 'expected', 'type', 'const', 'enum', 'exclusiveMinimum', 'minimum', 'maximum',
  'minLength', 'pattern', 'minItems', 'additionalProperties', 'required', 'properties', 'patternProperties', 'items', 'allOf', 'if', 'then',
];
/** Keywords whose value maps names to schemas: the names keep their written order. */
const SCHEMA_MAPS = new Set(['properties', 'patternProperties', '$defs']);

function ordered(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(ordered);
  if (value === null || typeof value !== 'object') return value;
  const entries = Object.entries(value);
  const rank = (key: string) => (key === '$defs' ? Infinity : KEYWORD_ORDER.includes(key) ? KEYWORD_ORDER.indexOf(key) : KEYWORD_ORDER.length);
  entries.sort(([a], [b]) => rank(a) - rank(b));
  return Object.fromEntries(
    entries.map(([key, item]) => [
      key,
      SCHEMA_MAPS.has(key) && item !== null && typeof item === 'object'
        ? Object.fromEntries(Object.entries(item).map(([name, schema]) => [name, ordered(schema)]))
        : ordered(item),
    ]),
  );
}

/** The text of config/schema.json: the schema above as plain JSON Schema 2020-12. */
export function configSchemaJson(): string {
  return `${JSON.stringify(ordered(ConfigSchema), null, 2)}\n`;
}
