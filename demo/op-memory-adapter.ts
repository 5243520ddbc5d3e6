import type { Adapter, AdapterPayload } from 'oidc-provider';

interface Entry {
  payload: AdapterPayload;
  expiresAt: number | undefined;
}

/**
 * In-memory storage for one ID-porten look-alike. oidc-provider's built-in memory
 * adapter is shared by every provider in the process; this one belongs to a single
 * look-alike, so several look-alikes in one test run never see each other's state and a
 * provider rebuilt for key rotation keeps its sessions, grants and refresh tokens.
 */
export class OpMemoryStore {
  readonly #entries = new Map<string, Entry>();
  /** grantId → keys of the artefacts issued under that grant. */
  readonly #byGrant = new Map<string, Set<string>>();

  adapterFor(model: string): Adapter {
    const key = (id: string): string => `${model}:${id}`;
    return {
      upsert: async (id, payload, expiresIn) => {
        const k = key(id);
        this.#entries.set(k, {
          payload: { ...payload },
          expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : undefined,
        });
        if (typeof payload.grantId === 'string') {
          const keys = this.#byGrant.get(payload.grantId) ?? new Set<string>();
          keys.add(k);
          this.#byGrant.set(payload.grantId, keys);
        }
      },
      find: async (id) => this.#read(key(id)),
      findByUid: async (uid) => this.#findWhere(model, (p) => p.uid === uid),
      findByUserCode: async (userCode) => this.#findWhere(model, (p) => p.userCode === userCode),
      consume: async (id) => {
        const entry = this.#entries.get(key(id));
        if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
      },
      destroy: async (id) => {
        this.#entries.delete(key(id));
      },
      revokeByGrantId: async (grantId) => {
        for (const k of this.#byGrant.get(grantId) ?? []) this.#entries.delete(k);
        this.#byGrant.delete(grantId);
      },
    };
  }

  #read(k: string): AdapterPayload | undefined {
    const entry = this.#entries.get(k);
    if (!entry) return undefined;
    if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
      this.#entries.delete(k);
      return undefined;
    }
    return { ...entry.payload };
  }

  #findWhere(model: string, match: (payload: AdapterPayload) => boolean): AdapterPayload | undefined {
    for (const k of this.#entries.keys()) {
      if (!k.startsWith(`${model}:`)) continue;
      const payload = this.#read(k);
      if (payload && match(payload)) return payload;
    }
    return undefined;
  }
}
