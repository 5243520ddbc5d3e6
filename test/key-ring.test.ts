import { createCipheriv } from 'node:crypto';
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
    'an extra part': `${sealed}.x`,
  };
  for (const [name, value] of Object.entries(cases)) t.equal(ring.open(value, 'session:abc'), undefined, name);
  t.equal(ring.open(sealed, 'session:other'), undefined, 'a record copied to another session id does not open');
  t.equal(ring.open(sealed, 'session:abc'), 'secret tokens');
  t.equal(ring.open(ring.seal('', 'session:abc'), 'session:abc'), '', 'an empty value: its ciphertext is the 16-byte tag alone');
});

t.test('a sealed value has a 96-bit IV and a 128-bit tag (NIST SP 800-38D 5.2.1.1, 5.2.1.2): made under the ring\'s own key with other lengths, it does not open', async (t) => {
  const k1 = key('k1', 1);
  const ring = new KeyRing([k1]);
  /** What seal() makes, with an IV and a tag of the given lengths: GCM itself takes any IV length and tags of 4 to 16 bytes. */
  const sealWith = (ivBytes: number, tagBytes: number, plaintext = 'secret tokens') => {
    const iv = Buffer.alloc(ivBytes, 7);
    const cipher = createCipheriv('aes-256-gcm', k1.secret, iv, { authTagLength: tagBytes });
    cipher.setAAD(Buffer.from('session:abc'));
    const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `v1.k1.${iv.toString('base64url')}.${ct.toString('base64url')}`;
  };
  t.equal(ring.open(sealWith(12, 16), 'session:abc'), 'secret tokens', 'the format itself opens: the cases below differ only in their lengths');
  for (const ivBytes of [8, 16, 32]) t.equal(ring.open(sealWith(ivBytes, 16), 'session:abc'), undefined, `a ${ivBytes}-byte IV`);
  // A short value with a short tag is shorter than a full tag: only the length checks stand between it and the decipher.
  for (const plaintext of ['secret tokens', '', 'ab']) {
    for (const tagBytes of [4, 8, 12]) t.equal(ring.open(sealWith(12, tagBytes, plaintext), 'session:abc'), undefined, `a ${tagBytes}-byte tag on ${JSON.stringify(plaintext)}`);
  }
});

t.test('session records seal to bytes: [0x02][keyId length][keyId][iv 12][ciphertext][tag 16]', async (t) => {
  const ring = new KeyRing([key('k1', 1)]);
  const sealed = ring.sealBytes('{"a":"ø"}', 'session:abc');
  t.ok(Buffer.isBuffer(sealed));
  t.equal(sealed[0], 0x02, 'version byte');
  t.equal(sealed[1], 2, 'key id length');
  t.equal(sealed.toString('utf8', 2, 4), 'k1');
  t.equal(sealed.length, 1 + 1 + 2 + 12 + Buffer.byteLength('{"a":"ø"}') + 16, 'no base64: the plaintext plus 34 bytes');
  t.equal(ring.openBytes(sealed, 'session:abc'), '{"a":"ø"}');
  t.not(ring.sealBytes('{"a":"ø"}', 'session:abc').equals(sealed), 'a fresh iv every time');
  t.equal(ring.openBytes(ring.sealBytes('', 'aad'), 'aad'), '', 'an empty plaintext round-trips');
});

t.test('bytes tampered, truncated, re-bound or malformed do not open, and never throw', async (t) => {
  const ring = new KeyRing([key('k1', 1)]);
  const sealed = ring.sealBytes('secret tokens', 'session:abc');
  const ivAt = 4;
  const tagAt = sealed.length - 16;
  const flipped = (at: number) => {
    const copy = Buffer.from(sealed);
    copy[at] = copy[at]! ^ 0x01;
    return copy;
  };
  const withByte = (at: number, value: number) => {
    const copy = Buffer.from(sealed);
    copy[at] = value;
    return copy;
  };
  const cases: Record<string, Buffer> = {
    'flipped iv': flipped(ivAt),
    'flipped ciphertext': flipped(ivAt + 12),
    'flipped tag': flipped(sealed.length - 1),
    'flipped key id': flipped(2),
    'truncated by one byte': sealed.subarray(0, sealed.length - 1),
    'truncated to the header': sealed.subarray(0, tagAt - 1),
    'just the version': sealed.subarray(0, 1),
    empty: Buffer.alloc(0),
    'unknown version': withByte(0, 0x03),
    'legacy prefix without the rest': Buffer.from('v1.'),
    'key id length past the end': withByte(1, 255),
    'key id length into the tag': withByte(1, sealed.length - 2 - 12 - 16 + 1),
    'unknown key id': new KeyRing([key('k9', 1)]).sealBytes('secret tokens', 'session:abc'),
  };
  for (const [name, value] of Object.entries(cases)) t.equal(ring.openBytes(value, 'session:abc'), undefined, name);
  t.equal(ring.openBytes(sealed, 'session:other'), undefined, 'a record copied to another session id does not open');
  t.equal(ring.openBytes('garbage', 'session:abc'), undefined, 'a string that is no seal() value');
  t.equal(ring.openBytes(sealed, 'session:abc'), 'secret tokens', 'the untouched record still opens');
});

t.test('openBytes opens the seal() text of records stored before the binary format, as text or as bytes', async (t) => {
  const ring = new KeyRing([key('k1', 1)]);
  const legacy = ring.seal('{"a":1}', 'session:abc');
  t.equal(ring.openBytes(legacy, 'session:abc'), '{"a":1}', 'as a string');
  t.equal(ring.openBytes(Buffer.from(legacy), 'session:abc'), '{"a":1}', 'as the bytes Redis returns');
  t.equal(ring.openBytes(Buffer.from(legacy), 'session:other'), undefined, 'still bound to its record');
  const tampered = Buffer.from(legacy);
  tampered[tampered.length - 3] = tampered[tampered.length - 3] === 0x41 ? 0x42 : 0x41;
  t.equal(ring.openBytes(tampered, 'session:abc'), undefined, 'a tampered legacy value does not open');
});

t.test('binary records rotate like the others: sealed with the first key, opened by any key in the ring', async (t) => {
  const old = new KeyRing([key('k1', 1)]);
  const sealed = old.sealBytes('{"a":1}', 'session:abc');
  const rotated = new KeyRing([key('k2', 2), key('k1', 1)]);
  t.equal(rotated.openBytes(sealed, 'session:abc'), '{"a":1}', 'old sessions still open');
  t.equal(rotated.sealBytes('x', 'aad').toString('utf8', 2, 4), 'k2', 'new data uses the new key');
  t.equal(old.openBytes(rotated.sealBytes('x', 'aad'), 'aad'), undefined, 'a ring without the new key does not open it');
  t.equal(new KeyRing([key('k2', 2)]).openBytes(sealed, 'session:abc'), undefined, 'a removed key opens nothing');
  t.equal(new KeyRing([key('k1', 9)]).openBytes(sealed, 'session:abc'), undefined, 'the same key id with another secret opens nothing');
});

t.test('a key ring needs a key, and a key id of at most 255 bytes (its length is one byte of the binary header)', async (t) => {
  t.throws(() => new KeyRing([]), /at least one key/);
  t.throws(() => new KeyRing([key('k'.repeat(256), 1)]), /longer than 255 bytes/);
  t.throws(() => new KeyRing([key('æ'.repeat(128), 1)]), /longer than 255 bytes/, 'counted in UTF-8 bytes');
  const longest = new KeyRing([key('k'.repeat(255), 1)]);
  t.equal(longest.openBytes(longest.sealBytes('x', 'aad'), 'aad'), 'x', 'a 255-byte key id seals and opens');
});

t.test('index MACs: one per ring key, the current key first, apart per purpose and from the sealing keys', async (t) => {
  const ring = new KeyRing([key('k2', 2), key('k1', 1)]);
  const macs = ring.macs('sub-1');
  t.equal(macs.length, 2, 'one per key, so rotation finds entries written under the older key');
  t.same(new KeyRing([key('k2', 2)]).macs('sub-1'), [macs[0]], 'the current key first');
  t.same(new KeyRing([key('k1', 1)]).macs('sub-1'), [macs[1]]);
  t.same(ring.macs('sub-1'), macs, 'the same value, the same names');
  t.notSame(ring.macs('sub-2'), macs, 'another value, other names');
  t.same(ring.macs('sub-1', 'idporten-bff index key v1'), macs, 'the default purpose is the index key purpose, which stored names depend on');
  t.notSame(ring.macs('sub-1', 'another purpose'), macs, 'another purpose derives other keys');
  t.same(new KeyRing([key('k1', 1), key('k1b', 1)]).macs('sub-1').length, 1, 'two keys with one secret give one name');
  for (const mac of macs) t.match(mac, /^[A-Za-z0-9_-]{43}$/, 'HMAC-SHA256, base64url');
});
