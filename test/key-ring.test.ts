import t from 'tap';
import { KeyRing } from '../src/session/key-ring.js';

const key = (id: string, fill: number) => ({ id, secret: Buffer.alloc(32, fill) });

t.test('seals with the first key and opens with any key in the ring (rotation without logging users out)', async (t) => {
  const old = new KeyRing([key('k1', 1)]);
  const sealed = old.seal('{"a":1}', 'session:abc');
  t.match(sealed, /^v1\.k1\./);
  const rotated = new KeyRing([key('k2', 2), key('k1', 1)]);
  t.equal(rotated.open(sealed, 'session:abc'), '{"a":1}', 'old sessions still open');
  t.match(rotated.seal('x', 'aad'), /^v1\.k2\./, 'new data uses the new key');
  const dropped = new KeyRing([key('k2', 2)]);
  t.equal(dropped.open(sealed, 'session:abc'), undefined, 'a removed key opens nothing');
});

t.test('anything tampered, truncated, re-bound or malformed does not open', async (t) => {
  const ring = new KeyRing([key('k1', 1)]);
  const sealed = ring.seal('secret tokens', 'session:abc');
  const [v, id, iv, ct] = sealed.split('.') as [string, string, string, string];
  const flip = (s: string) => s.slice(0, 5) + (s[5] === 'A' ? 'B' : 'A') + s.slice(6);
  const cases: Record<string, string> = {
    'flipped ciphertext': [v, id, iv, flip(ct)].join('.'),
    'flipped iv': [v, id, flip(iv), ct].join('.'),
    truncated: sealed.slice(0, sealed.length - 10),
    'unknown key id': [v, 'k9', iv, ct].join('.'),
    'wrong version': ['v2', id, iv, ct].join('.'),
    empty: '',
    garbage: '....',
  };
  for (const [name, value] of Object.entries(cases)) t.equal(ring.open(value, 'session:abc'), undefined, name);
  t.equal(ring.open(sealed, 'session:other'), undefined, 'a record copied to another session id does not open');
  t.equal(ring.open(sealed, 'session:abc'), 'secret tokens');
});
