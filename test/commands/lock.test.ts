import t from 'tap';
import { ephemeralTokenBase, startServer } from '../helpers/server.js';

t.test('lock commands over a real socket', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const c = await s.connect();
  const cases: [(string | number)[], unknown][] = [
    [['KLOCK', 'r', 'a', 30000], 0],
    [['KLOCK', 'r', 'b', 30000], null],
    [['klock', 'r', 'a', 1], 0],
    [['KEXTEND', 'r', 'b', 1000], null],
    [['KEXTEND', 'r', 'a', 60000], 0],
    [['KUNLOCK', 'r', 'b'], 0],
    [['KUNLOCK', 'r', 'a'], 1],
    [['KGETLOCK', 'r'], null],
    [['KLOCK', 'r', 'b', 30000, 'PERSISTENT'], 1],
    [['KLOCK', 'r', 'c', 30000, 'EPHEMERAL'], ephemeralTokenBase(s.server)],
    [['KUNLOCK', 'r', 'c', 'persistent'], 0],
    [['KUNLOCK', 'r', 'c', 'ephemeral'], 1],
    [['KLOCK', 'r', 'x', 0], { err: "ERR invalid expire time in 'klock' command" }],
    [['KLOCK', 'r', 'x', -5], { err: "ERR invalid expire time in 'klock' command" }],
    [['KLOCK', 'r', 'x', 2 ** 31], { err: "ERR invalid expire time in 'klock' command" }],
    [['KLOCK', 'r', 'x', 'abc'], { err: "ERR invalid expire time in 'klock' command" }],
    [['KEXTEND', 'r', 'x', '1.5'], { err: "ERR invalid expire time in 'kextend' command" }],
    [['KLOCK', 'r', 'x', 100, 'FOREVER'], { err: 'ERR syntax error' }],
    [['KLOCK', 'r', 'x', 100, 'PERSISTENT', 'EPHEMERAL'], { err: 'ERR syntax error' }],
    [['KLOCK', 'r', 'x', 100, 'WAIT'], { err: 'ERR syntax error' }],
    [['KLOCK', 'r', 'x', 100, 'WAIT', 'soon'], { err: 'ERR timeout is not an integer or out of range' }],
    [['KLOCK', 'r', 'x', 100, 'WAIT', -1], { err: 'ERR timeout is negative' }],
    [['KLOCK', 'r', 'x'], { err: "ERR wrong number of arguments for 'klock' command" }],
    [['KGETLOCK'], { err: "ERR wrong number of arguments for 'kgetlock' command" }],
  ];
  for (const [args, expected] of cases) t.same(await c.call(...args), expected, args.join(' '));
  const info = await c.call('KGETLOCK', 'r');
  t.match(info, ['b', 1, Number], 'KGETLOCK: owner, token, remaining');
  t.ok((info as number[])[2]! > 29000 && (info as number[])[2]! <= 30000, 'remaining_ms within the lease');
});

t.test('KLOCK WAIT blocks in FIFO order and is woken by unlock and by expiry', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const holder = await s.connect();
  const w1 = await s.connect();
  const w2 = await s.connect();
  t.equal(await holder.call('KLOCK', 'q', 'h', 300), 0);
  w1.command('KLOCK', 'q', 'w1', 200, 'WAIT', 5000);
  await new Promise((r) => setTimeout(r, 20));
  w2.command('KLOCK', 'q', 'w2', 60000, 'WAIT', 5000);
  w2.command('PING');
  await new Promise((r) => setTimeout(r, 20));
  t.equal(await holder.call('KUNLOCK', 'q', 'h'), 1);
  t.equal(await w1.reply(), 1, 'first waiter granted on unlock');
  const started = Date.now();
  t.equal(await w2.reply(), 2, 'second waiter granted when the first lease expires');
  t.ok(Date.now() - started >= 150, 'not before the lease ran out');
  t.same(await w2.reply(), { ok: 'PONG' }, 'a pipelined command after the wait runs only after it');
});

t.test('KLOCK WAIT times out with nil; a closed waiter leaves the queue', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const holder = await s.connect();
  await holder.call('KLOCK', 'q', 'h', 60000, 'EPHEMERAL');
  const gone = await s.connect();
  gone.command('KLOCK', 'q', 'gone', 1000, 'EPHEMERAL', 'WAIT', 60000);
  const w = await s.connect();
  const before = Date.now();
  t.equal(await w.call('KLOCK', 'q', 'w', 1000, 'EPHEMERAL', 'WAIT', 100), null);
  t.ok(Date.now() - before >= 95, 'waited about the timeout');
  t.equal(s.server.services[0]!.waiters.size, 1);
  gone.close();
  await gone.closed;
  await new Promise((r) => setTimeout(r, 20));
  t.equal(s.server.services[0]!.waiters.size, 0, 'closed client left the queue');
  t.equal(await holder.call('KUNLOCK', 'q', 'h', 'EPHEMERAL'), 1);
  t.same(await holder.call('KGETLOCK', 'q', 'EPHEMERAL'), null, 'nobody was granted the lock on behalf of the closed client');
});

t.test('waiter limits answer with a clear error', async (t) => {
  const s = await startServer({ waitersPerLockMax: 1, waitersMax: 2 });
  t.teardown(s.close);
  const c = await s.connect();
  await c.call('KLOCK', 'a', 'h', 60000);
  await c.call('KLOCK', 'b', 'h', 60000);
  (await s.connect()).command('KLOCK', 'a', 'x', 100, 'WAIT', 60000);
  await new Promise((r) => setTimeout(r, 20));
  t.same(await c.call('KLOCK', 'a', 'y', 100, 'WAIT', 60000), { err: 'ERR max number of waiters per lock reached (1)' });
  (await s.connect()).command('KLOCK', 'b', 'x', 100, 'WAIT', 60000);
  await new Promise((r) => setTimeout(r, 20));
  t.same(await c.call('KLOCK', 'c', 'y', 100, 'WAIT', 60000), 0, 'a free lock is granted without waiting');
  await c.call('KLOCK', 'd', 'h', 60000);
  t.same(await c.call('KLOCK', 'd', 'y', 100, 'WAIT', 60000), { err: 'ERR max number of waiters reached (2)' });
});
