// A Redlock client configured with every node of one raftlock cluster as if they were independent
// Redis servers (the configuration a team moving from N Redis servers has), unchanged.
import t from 'tap';
import { Redis } from 'ioredis';
import Redlock4 from 'redlock';
import Redlock5, { ExecutionError } from 'redlock5';
import { ProcessCluster } from '../../bench/lib/cluster.js';
import { settledCluster, sleep, tokenOf } from '../helpers/locks.js';
import { startServer } from '../helpers/server.js';

t.setTimeout(240_000);

/** A 3-node cluster and one ioredis client per node: the N "servers" of a Redlock config. */
async function cluster(t: { teardown(fn: () => unknown): void }, args: string[] = []): Promise<Redis[]> {
  const c = await ProcessCluster.start({ nodes: 3, partitions: 8, args });
  t.teardown(() => c.close());
  const clients = c.nodes.map((n) => new Redis({ port: n.port, host: '127.0.0.1', maxRetriesPerRequest: 0 }));
  t.teardown(() => clients.forEach((r) => r.disconnect()));
  await settledCluster(c, clients[0]!);
  return clients;
}

t.test('redlock 5 and 4 given the 3 nodes of one cluster as 3 servers: acquire, extend, release reach quorum', async (t) => {
  const servers = await cluster(t);
  const redlock = new Redlock5(servers, { retryCount: 0 });
  const lock = await redlock.acquire(['orders:1'], 10_000);
  t.pass('acquire reached quorum');
  t.equal(await tokenOf(servers[1]!, 'orders:1'), 0, 'one lock, with one fencing token, whichever node is asked');
  await t.rejects(new Redlock5(servers, { retryCount: 0 }).acquire(['orders:1'], 10_000), ExecutionError, 'another client still cannot take it');
  const extended = await lock.extend(20_000);
  t.ok((await servers[2]!.pttl('orders:1')) > 15_000, 'extend reached quorum');
  await extended.release();
  t.pass('release reached quorum');
  t.equal(await servers[0]!.exists('orders:1'), 0, 'and freed the lock');
  const next = await new Redlock5(servers, { retryCount: 0 }).acquire(['orders:1'], 10_000);
  t.equal(await tokenOf(servers[0]!, 'orders:1'), 1, 'the next holder gets the next token');
  await next.release();

  let ticks = 0;
  await redlock.using(['orders:2'], 1_000, { automaticExtensionThreshold: 500 }, async (signal) => {
    for (let i = 0; i < 4; i++) {
      await sleep(300);
      if (!signal.aborted) ticks++;
    }
  });
  t.equal(ticks, 4, 'using() with automatic extension over 3 endpoints held the lock throughout');

  const v4 = new Redlock4(servers, { retryCount: 0 });
  const old = await v4.lock('orders:3', 10_000);
  await t.rejects(new Redlock4(servers, { retryCount: 0 }).lock('orders:3', 10_000), { name: 'LockError' });
  const longer = await old.extend(20_000);
  await longer.unlock();
  t.equal(await servers[1]!.exists('orders:3'), 0, 'redlock 4: lock, extend and unlock reached quorum');
});

t.test('contention through 3 endpoints: one holder at a time', async (t) => {
  const servers = await cluster(t);
  let inside = 0;
  let overlaps = 0;
  let held = 0;
  await Promise.all(Array.from({ length: 8 }, async () => {
    const redlock = new Redlock5(servers, { retryCount: 200, retryDelay: 10, retryJitter: 10 });
    for (let i = 0; i < 4; i++) {
      await redlock.using(['hot'], 5_000, async () => {
        if (++inside > 1) overlaps++;
        await sleep(2);
        inside--;
        held++;
      });
    }
  }));
  t.equal(held, 32, 'every client got the lock every round');
  t.equal(overlaps, 0, 'never two holders at once');
});

t.test('with --owner-repeats none, the same configuration gets Redis\'s replies and never reaches quorum', async (t) => {
  const servers = await cluster(t, ['--owner-repeats', 'none']);
  await t.rejects(new Redlock5(servers, { retryCount: 0 }).acquire(['orders:1'], 10_000), ExecutionError,
    'one node says yes, the other two find the key set');
});

t.test('SET NX by the holder\'s own value: nil by default, OK with --owner-repeats all', async (t) => {
  for (const [ownerRepeats, second] of [['scripts', null], ['all', 'OK'], ['none', null]] as const) {
    const s = await startServer({ ownerRepeats });
    const r = new Redis({ port: s.port, host: '127.0.0.1', maxRetriesPerRequest: 0 });
    t.equal(await r.set('job', 'worker-1', 'PX', 5000, 'NX'), 'OK', `${ownerRepeats}: first SET NX`);
    const pttl = await r.pttl('job');
    await sleep(20);
    t.equal(await r.set('job', 'worker-1', 'PX', 60000, 'NX'), second, `${ownerRepeats}: the holder's SET NX again`);
    t.ok((await r.pttl('job')) <= pttl, `${ownerRepeats}: the expiry is not moved`);
    t.equal(await r.set('job', 'worker-2', 'PX', 5000, 'NX'), null, `${ownerRepeats}: another value still gets nil`);
    t.equal(await tokenOf(r, 'job'), 0, `${ownerRepeats}: still the first grant`);
    r.disconnect();
    await s.close();
  }
});
