import t from 'tap';
import { startServer } from '../helpers/server.js';

t.test('Redis string subset on the PERSISTENT lock table', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const c = await s.connect();
  const cases: [(string | number)[], unknown][] = [
    [['SET', 'k', 'v', 'NX', 'PX', 30000], { ok: 'OK' }],
    [['SET', 'k', 'w', 'NX', 'PX', 30000], null],
    [['GET', 'k'], 'v'],
    [['SET', 'k', 'w', 'XX', 'GET'], 'v'],
    [['GET', 'k'], 'w'],
    [['PTTL', 'k'], -1],
    [['SET', 'k', 'w', 'EX', 100], { ok: 'OK' }],
    [['TTL', 'k'], 100],
    [['SET', 'k', 'x', 'KEEPTTL'], { ok: 'OK' }],
    [['TTL', 'k'], 100],
    [['PERSIST', 'k'], 1],
    [['TTL', 'k'], -1],
    [['EXPIRE', 'k', 50, 'NX'], 1],
    [['EXPIRE', 'k', 40, 'GT'], 0],
    [['PEXPIRE', 'k', 40000, 'LT'], 1],
    [['EXPIRE', 'k', 10, 'NX', 'XX'], { err: 'ERR NX and XX, GT or LT options at the same time are not compatible' }],
    [['EXPIRE', 'k', 'ten'], { err: 'ERR value is not an integer or out of range' }],
    [['EXPIRE', 'k', '9223372036854775807'], { err: "ERR invalid expire time in 'expire' command" }],
    [['TTL', 'missing'], -2],
    [['EXISTS', 'k', 'k', 'missing'], 2],
    [['DBSIZE'], 1],
    [['DEL', 'k', 'missing'], 1],
    [['UNLINK', 'k'], 0],
    [['GET', 'k'], null],
    [['SET', 'k', 'v', 'EX', 0], { err: "ERR invalid expire time in 'set' command" }],
    [['SET', 'k', 'v', 'PX', -1], { err: "ERR invalid expire time in 'set' command" }],
    [['SET', 'k', 'v', 'EX', 'x'], { err: 'ERR value is not an integer or out of range' }],
    [['SET', 'k', 'v', 'NX', 'XX'], { err: 'ERR syntax error' }],
    [['SET', 'k', 'v', 'EX', 10, 'PX', 10], { err: 'ERR syntax error' }],
    [['SET', 'k', 'v', 'PX'], { err: 'ERR syntax error' }],
    [['SET', 'k', 'v', 'BOGUS'], { err: 'ERR syntax error' }],
    [['SET', 'k'], { err: "ERR wrong number of arguments for 'set' command" }],
    [['GET', 'a', 'b'], { err: "ERR wrong number of arguments for 'get' command" }],
    [['SET', 'k', 'v', 'PXAT', Date.now() + 60_000], { ok: 'OK' }],
    [['SET', 'k', 'v', 'EXAT', 1], { ok: 'OK' }],
    [['EXISTS', 'k'], 0],
  ];
  for (const [args, expected] of cases) t.same(await c.call(...args), expected, args.join(' '));
});

t.test('SET NX PX takes a lock whose fencing token KGETLOCK shows', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const c = await s.connect();
  t.same(await c.call('SET', 'lock:1', 'alice', 'NX', 'PX', 30000), { ok: 'OK' });
  t.match(await c.call('KGETLOCK', 'lock:1'), ['alice', 0, Number]);
  t.equal(await c.call('KLOCK', 'lock:1', 'alice', 1000), 0, 'KLOCK by the same owner sees the same lock');
  t.equal(await c.call('DEL', 'lock:1'), 1);
  t.same(await c.call('SET', 'lock:1', 'bob', 'NX', 'PX', 30000), { ok: 'OK' });
  t.match(await c.call('KGETLOCK', 'lock:1'), ['bob', 1, Number], 'next holder, next token');
  t.equal(await c.call('KUNLOCK', 'lock:1', 'bob'), 1);
  t.same(await c.call('GET', 'lock:1'), null);
});

t.test('binary-safe keys and values', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const c = await s.connect();
  const key = 'k\r\n\x00\xff';
  const value = '\x00\x01\r\n\xfe\xff é';
  t.same(await c.call('SET', key, value), { ok: 'OK' });
  t.equal(await c.call('GET', key), value);
});

t.test('expired keys disappear without being read', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const c = await s.connect();
  const started = Date.now();
  for (let i = 0; i < 500; i++) c.command('SET', `k${i}`, 'v', 'PX', 1000);
  for (let i = 0; i < 500; i++) await c.reply();
  if (Date.now() - started < 900) t.equal(s.server.services[0]!.machine.persistent.sizeIncludingExpired, 500);
  await new Promise((r) => setTimeout(r, 1500));
  t.equal(s.server.services[0]!.machine.persistent.sizeIncludingExpired, 0, 'reclaimed by the active expiry cycle');
  t.equal(s.server.services[0]!.machine.persistent.expiredTotal, 500);
});
