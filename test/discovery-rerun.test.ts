import t from 'tap';
import { Discovery } from '../src/tenant/discovery.js';
import type { Tenant, Tenants } from '../src/tenant/tenant.js';

// A reload that adds tenants while the first discovery pass is still waiting for a slow provider: the new
// tenants get a pass of their own right after, instead of waiting for a pass that never comes.
t.test('a run called during a pass is followed by a pass over the tenants added meanwhile', async (t) => {
  let releaseSlow!: () => void;
  const fake = (id: string, wait?: Promise<void>) => {
    const idporten = { ready: false, issuer: `https://${id}.invalid`, configuration: async () => { await wait; idporten.ready = true; } };
    return { id, idporten } as unknown as Tenant;
  };
  const list: Tenant[] = [fake('slow', new Promise<void>((r) => (releaseSlow = r)))];
  const discovery = new Discovery({ get all() { return list; } } as unknown as Tenants, { info() {}, warn() {} });
  const first = discovery.run();
  list.push(fake('added'));
  const second = discovery.run();
  releaseSlow();
  await first;
  await second;
  t.ok(list.every((tenant) => tenant.idporten.ready), 'both tenants are ready');
  discovery.stop();
});
