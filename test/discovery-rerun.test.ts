import t from 'tap';
import type { Provider } from '../src/idporten/provider.js';
import { Discovery } from '../src/tenant/discovery.js';
import type { Tenants } from '../src/tenant/tenant.js';

// A reload that adds tenants of another provider while the first discovery pass is still waiting for a slow
// provider: the new provider gets a pass of its own right after, instead of waiting for a pass that never comes.
t.test('a run called during a pass is followed by a pass over the providers added meanwhile', async (t) => {
  let releaseSlow!: () => void;
  const fake = (issuer: string, wait?: Promise<void>) => {
    const provider = { ready: false, issuer, load: async () => { await wait; provider.ready = true; } };
    return provider as unknown as Provider;
  };
  const list: Provider[] = [fake('https://slow.invalid', new Promise<void>((r) => (releaseSlow = r)))];
  const tenants = { get providers() { return list; }, tenantsOf: () => 1 } as unknown as Tenants;
  const discovery = new Discovery(tenants, { info() {}, warn() {} });
  const first = discovery.run();
  list.push(fake('https://added.invalid'));
  const second = discovery.run();
  releaseSlow();
  await first;
  await second;
  t.ok(list.every((provider) => provider.ready), 'both providers are loaded');
  discovery.stop();
});
