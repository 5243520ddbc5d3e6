/**
 * Minimal typings for the parts of oidc-provider 9 the ID-porten look-alike uses.
 * The package ships no declarations; these describe only what src/demo relies on.
 */
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  export interface ClientMetadata {
    client_id: string;
    client_secret?: string;
    redirect_uris?: string[];
    post_logout_redirect_uris?: string[];
    grant_types?: string[];
    response_types?: string[];
    token_endpoint_auth_method?: string;
    jwks?: { keys: Record<string, unknown>[] };
    backchannel_logout_uri?: string;
    backchannel_logout_session_required?: boolean;
    sector_identifier_uri?: string;
    subject_type?: string;
    [key: string]: unknown;
  }

  /** The Koa context oidc-provider hands to configuration helpers. Kept loose on purpose. */
  export type KoaContextWithOIDC = any;

  export interface InteractionDetails {
    uid: string;
    prompt: { name: string; reasons: string[]; details: Record<string, unknown> };
    params: Record<string, unknown>;
    session?: { accountId?: string };
    lastSubmission?: Record<string, unknown>;
  }

  export interface AdapterPayload {
    [key: string]: unknown;
    grantId?: string;
    userCode?: string;
    uid?: string;
    consumed?: number;
  }

  export interface Adapter {
    upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void>;
    find(id: string): Promise<AdapterPayload | undefined>;
    findByUserCode(userCode: string): Promise<AdapterPayload | undefined>;
    findByUid(uid: string): Promise<AdapterPayload | undefined>;
    consume(id: string): Promise<void>;
    destroy(id: string): Promise<void>;
    revokeByGrantId(grantId: string): Promise<void>;
  }

  export interface RefreshTokenModel {
    consumed?: number;
    isExpired: boolean;
    isValid: boolean;
    grantId?: string;
    clientId?: string;
  }

  export interface GrantModel {
    jti: string;
    addOIDCScope(scope: string): void;
    addOIDCClaims(claims: string[]): void;
    addResourceScope(resource: string, scope: string): void;
    save(): Promise<string>;
  }

  export default class Provider {
    constructor(issuer: string, configuration: Record<string, unknown>);
    issuer: string;
    proxy: boolean;
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
    interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<InteractionDetails>;
    interactionFinished(
      req: IncomingMessage,
      res: ServerResponse,
      result: Record<string, unknown>,
      options?: { mergeWithLastSubmission?: boolean },
    ): Promise<void>;
    on(event: string, listener: (...args: any[]) => void): this;
    Grant: {
      new (init: { accountId: string; clientId: string }): GrantModel;
      find(id: string): Promise<GrantModel | undefined>;
    };
    RefreshToken: { find(value: string): Promise<RefreshTokenModel | undefined> };
    Client: { find(id: string): Promise<Record<string, unknown> | undefined> };
  }

  export const interactionPolicy: {
    base(): any;
    Check: new (
      reason: string,
      description: string,
      check: (ctx: KoaContextWithOIDC) => boolean | Promise<boolean>,
    ) => unknown;
    Prompt: new (options: { name: string; requestable: boolean }, ...checks: unknown[]) => unknown;
  };

  export const errors: Record<string, new (...args: any[]) => Error>;
}
