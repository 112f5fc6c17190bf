import t from 'tap';
import { LockStateMachine } from '../../src/lock/machine.js';
import { LockTable } from '../../src/lock/table.js';

t.test('klock grants token 0 first, nil to another owner, same token to the holder', async (t) => {
  const m = new LockStateMachine();
  t.equal(m.lock('persistent', 'r', 'a', 1000, 0), 0n);
  t.equal(m.lock('persistent', 'r', 'b', 1000, 10), null);
  t.equal(m.lock('persistent', 'r', 'a', 5000, 20), 0n, 're-acquire by the holder returns the same token');
  t.equal(m.info('persistent', 'r', 20)?.remainingMs, 980, 'expiry unchanged by re-acquire');
});

t.test('a lease is held for its whole ttl and expires right after', async (t) => {
  const m = new LockStateMachine();
  m.lock('persistent', 'r', 'a', 100, 1000);
  t.equal(m.lock('persistent', 'r', 'b', 100, 1100), null, 'still held at exactly grant + ttl');
  t.equal(m.lock('persistent', 'r', 'b', 100, 1101), 1n, 'free one ms later; next holder gets token 1');
});

t.test('tokens increase on every new holder and survive unlock', async (t) => {
  const m = new LockStateMachine();
  const tokens: (bigint | null)[] = [];
  for (let i = 0; i < 5; i++) {
    tokens.push(m.lock('persistent', 'r', `o${i}`, 1000, i));
    t.ok(m.unlock('persistent', 'r', `o${i}`, i));
  }
  t.same(tokens, [0n, 1n, 2n, 3n, 4n]);
});

t.test('unlock and extend only by the owner', async (t) => {
  const m = new LockStateMachine();
  m.lock('ephemeral', 'r', 'a', 1000, 0);
  t.equal(m.unlock('ephemeral', 'r', 'b', 1), false);
  t.equal(m.extend('ephemeral', 'r', 'b', 1000, 1), null);
  t.equal(m.extend('ephemeral', 'r', 'a', 5000, 500), 0n);
  t.equal(m.info('ephemeral', 'r', 600)?.remainingMs, 4900, 'new expiry is now + ttl');
  t.equal(m.unlock('ephemeral', 'r', 'a', 700), true);
  t.equal(m.unlock('ephemeral', 'r', 'a', 700), false, 'second unlock is a no-op');
  t.equal(m.extend('ephemeral', 'r', 'a', 1000, 700), null, 'extend after unlock fails');
});

t.test('durabilities are separate namespaces', async (t) => {
  const m = new LockStateMachine();
  t.equal(m.lock('persistent', 'r', 'a', 1000, 0), 0n);
  t.equal(m.lock('ephemeral', 'r', 'b', 1000, 0), 0n);
  t.equal(m.info('persistent', 'r', 0)?.owner, 'a');
  t.equal(m.info('ephemeral', 'r', 0)?.owner, 'b');
  t.equal(m.get('r', 0), 'a', 'the keyspace is the PERSISTENT table');
});

t.test('SET NX PX acquires with a fencing token visible through KGETLOCK', async (t) => {
  const m = new LockStateMachine();
  t.same(m.set('k', 'v1', { mode: 'nx', expiry: { kind: 'ttl', ttlMs: 1000 } }, 0), { written: true, previous: undefined });
  t.same(m.set('k', 'v2', { mode: 'nx', expiry: { kind: 'ttl', ttlMs: 1000 } }, 1), { written: false, previous: 'v1' });
  t.same(m.info('persistent', 'k', 1), { owner: 'v1', token: 0n, remainingMs: 999 });
  t.equal(m.del(['k'], 2), 1);
  m.set('k', 'v2', { mode: 'nx', expiry: { kind: 'ttl', ttlMs: 1000 } }, 3);
  t.equal(m.info('persistent', 'k', 3)?.token, 1n, 'the next SET NX holder gets a larger token');
});

t.test('SET overwrite: a new owner gets a new token, the same owner keeps it', async (t) => {
  const m = new LockStateMachine();
  m.set('k', 'a', { mode: 'always', expiry: { kind: 'none' } }, 0);
  m.set('k', 'a', { mode: 'always', expiry: { kind: 'ttl', ttlMs: 50 } }, 1);
  t.equal(m.info('persistent', 'k', 1)?.token, 0n);
  t.equal(m.pttl('k', 1), 50);
  m.set('k', 'b', { mode: 'always', expiry: { kind: 'keep' } }, 2);
  t.same(m.info('persistent', 'k', 2), { owner: 'b', token: 1n, remainingMs: 49 }, 'KEEPTTL keeps the expiry');
  m.set('k', 'c', { mode: 'xx', expiry: { kind: 'none' } }, 3);
  t.equal(m.pttl('k', 3), -1, 'plain SET removes the expiry');
  t.same(m.set('missing', 'x', { mode: 'xx', expiry: { kind: 'none' } }, 3), { written: false, previous: undefined });
});

t.test('EXPIRE conditions follow Redis (no expiry counts as infinite)', async (t) => {
  const m = new LockStateMachine();
  m.set('k', 'v', { mode: 'always', expiry: { kind: 'none' } }, 0);
  t.equal(m.expire('k', 1000, 'xx', 0), 0, 'XX needs an existing expiry');
  t.equal(m.expire('k', 1000, 'gt', 0), 0, 'GT never beats infinite');
  t.equal(m.expire('k', 1000, 'lt', 0), 1, 'LT beats infinite');
  t.equal(m.expire('k', 2000, 'nx', 0), 0, 'NX needs no expiry');
  t.equal(m.expire('k', 2000, 'gt', 0), 1);
  t.equal(m.expire('k', 500, 'gt', 0), 0);
  t.equal(m.expire('k', 500, 'lt', 0), 1);
  t.equal(m.pttl('k', 0), 500);
  t.equal(m.persist('k', 0), 1);
  t.equal(m.persist('k', 0), 0);
  t.equal(m.expire('k', 0, 'always', 0), 1, 'a ttl <= 0 deletes');
  t.equal(m.exists(['k'], 0), 0);
  t.equal(m.expire('k', 10, 'always', 0), 0, 'missing key');
});

t.test('EXISTS counts repeats; DEL counts only existing keys', async (t) => {
  const m = new LockStateMachine();
  m.set('a', '1', { mode: 'always', expiry: { kind: 'none' } }, 0);
  t.equal(m.exists(['a', 'a', 'b'], 0), 2);
  t.equal(m.del(['a', 'a', 'b'], 0), 1);
  t.equal(m.dbsize(), 0);
});

t.test('expired locks are invisible at once and reclaimed by the bounded cycle', async (t) => {
  const m = new LockStateMachine();
  for (let i = 0; i < 1000; i++) m.lock('ephemeral', `r${i}`, 'o', 10, 0);
  for (let i = 0; i < 10; i++) m.set(`k${i}`, 'o', { mode: 'always', expiry: { kind: 'ttl', ttlMs: 10 } }, 0);
  t.equal(m.info('ephemeral', 'r5', 11), null, 'invisible at once');
  t.equal(m.get('k1', 11), undefined, 'GET does not see an expired key');
  t.equal(m.dbsize(), 10, 'like Redis, DBSIZE counts expired keys until they are reclaimed');
  t.equal(m.ephemeral.sizeIncludingExpired, 1000, 'reads do not change state');
  t.equal(m.expireDue(11, 100), 110, 'one cycle releases at most its budget per namespace');
  let total = 110;
  while (true) {
    const n = m.expireDue(11, 100);
    if (n === 0) break;
    total += n;
  }
  t.equal(total, 1010);
  t.equal(m.ephemeral.sizeIncludingExpired, 0, 'memory of expired holders reclaimed');
  t.equal(m.lock('ephemeral', 'r7', 'x', 10, 12), 1n, 'token still remembered after reclaim');
});

t.test('extends do not let stale expiry entries grow without bound', async (t) => {
  const m = new LockStateMachine();
  m.lock('persistent', 'r', 'a', 10, 0);
  for (let i = 0; i < 100_000; i++) m.extend('persistent', 'r', 'a', 10, i);
  t.ok(m.persistent.nextExpiryMs() < Infinity);
  t.equal(m.expireDue(100_011, 10_000), 1);
  t.equal(m.info('persistent', 'r', 100_011), null);
});

t.test('forgotten tokens fold into a floor so tokens never go backwards', async (t) => {
  const table = new LockTable({ tombstonesMax: 2 });
  for (const r of ['a', 'b', 'c']) {
    for (let i = 0; i < 3; i++) table.release(r, table.grant(r, 'o', Infinity));
  }
  // Some tombstones (a's among them) were forgotten when c's arrived.
  t.ok(table.tombstoneCount <= 2, 'tombstones stay within the limit');
  const again = table.tokenOf(table.grant('a', 'o', Infinity));
  t.ok(again > 2n, `a restarts above its last token (got ${again})`);
  t.equal(table.tokenOf(table.grant('fresh', 'o', Infinity)), 3n, 'new resources start at the floor');
  t.throws(() => new LockTable({ tombstonesMax: -1 }), RangeError);
});

t.test('random operations keep the counters equal to a scan of the table', async (t) => {
  let seed = 7;
  const random = () => ((seed = (seed * 48271) % 2147483647) / 2147483647);
  const m = new LockStateMachine({ tombstonesMax: 50 });
  let now = 0;
  const lastToken = new Map<string, bigint>();
  for (let i = 0; i < 20_000; i++) {
    now += Math.floor(random() * 5);
    const key = `k${Math.floor(random() * 100)}`;
    const owner = `o${Math.floor(random() * 3)}`;
    const ttl = 1 + Math.floor(random() * 200);
    switch (Math.floor(random() * 8)) {
      case 0: {
        const token = m.lock('persistent', key, owner, ttl, now);
        const last = lastToken.get(key);
        if (token !== null && last !== undefined && token < last) t.fail(`token went back on ${key}: ${last} -> ${token}`);
        if (token !== null) lastToken.set(key, token);
        break;
      }
      case 1: m.unlock('persistent', key, owner, now); break;
      case 2: m.extend('persistent', key, owner, ttl, now); break;
      case 3: m.set(key, owner, { mode: random() < 0.5 ? 'nx' : 'always', expiry: random() < 0.3 ? { kind: 'none' } : { kind: 'ttl', ttlMs: ttl } }, now); break;
      case 4: m.expire(key, ttl - 20, 'always', now); break;
      case 5: m.persist(key, now); break;
      case 6: m.del([key], now); break;
      default: m.expireDue(now, 3);
    }
    if (i % 97 === 0) {
      const live = [...m.persistent.entries(now)];
      t.equal(m.persistent.liveCount(now), live.length);
      const expiring = live.filter(([, h]) => h.expiresAtMs !== Infinity).length;
      if (m.persistent.expiringCount !== expiring) {
        t.fail(`expiring count ${m.persistent.expiringCount} != ${expiring} at step ${i}`);
        break;
      }
    }
  }
  t.pass('counters consistent, tokens never went back');
});
