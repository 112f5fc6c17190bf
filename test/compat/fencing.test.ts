import t from 'tap';
import { Redis } from 'ioredis';
import Redlock from 'redlock5';
import { startServer } from '../helpers/server.js';
import { sleep } from '../helpers/locks.js';
import { FencedStore, StaleTokenError, fencingToken } from '../../examples/fenced-store.js';


t.test('a Redlock user reads the fencing token of its lock, and a fenced store rejects a paused holder', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const a = new Redis({ port: s.port, host: '127.0.0.1', maxRetriesPerRequest: 0 });
  const b = new Redis({ port: s.port, host: '127.0.0.1', maxRetriesPerRequest: 0 });
  t.teardown(() => {
    a.disconnect();
    b.disconnect();
  });
  const store = new FencedStore<string>();

  const first = await new Redlock([a], { retryCount: 0 }).acquire(['account:7'], 300);
  const firstToken = await fencingToken(a, 'account:7', first.value);
  t.equal(firstToken, 0, 'KGETLOCK gives the token of the lock just taken');
  store.write('account:7', firstToken!, 'written by A');

  // A pauses past its lease; B takes the lock and writes.
  await sleep(500);
  t.equal(await fencingToken(a, 'account:7', first.value), null, 'once the lease ran out the lock is no longer A\'s: no token');
  const second = await new Redlock([b], { retryCount: 0 }).acquire(['account:7'], 5_000);
  const secondToken = await fencingToken(b, 'account:7', second.value);
  t.equal(secondToken, 1, 'the next holder gets a larger token');
  store.write('account:7', secondToken!, 'written by B');

  // A wakes up and writes with the token it had: the store refuses.
  t.throws(() => store.write('account:7', firstToken!, 'late write by A'), StaleTokenError, 'the stale token is rejected');
  t.equal(store.read('account:7'), 'written by B', 'B\'s write stands');
  store.write('account:7', secondToken!, 'B again');
  t.equal(store.read('account:7'), 'B again', 'the current holder may write again with its token');
  await second.release();
});
