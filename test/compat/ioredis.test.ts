import t from 'tap';
import { Cluster, Redis } from 'ioredis';
import { ephemeralTokenBase, startServer } from '../helpers/server.js';

for (const protocol of [3, 2] as const) {
  t.test(`ioredis 6 with protocol ${protocol}: ready check, locks and the string subset`, async (t) => {
    const s = await startServer();
    t.teardown(s.close);
    const redis = new Redis({ port: s.port, host: '127.0.0.1', protocol, lazyConnect: true, maxRetriesPerRequest: 0 });
    t.teardown(() => redis.disconnect());
    await redis.connect();
    t.equal(redis.status, 'ready', 'passes the ready check');
    const clients = await redis.client('LIST');
    t.match(clients, new RegExp(`resp=${protocol} lib-name=ioredis`), `connection runs RESP${protocol} and identified itself`);
    t.equal(await redis.call('KLOCK', 'res', 'alice', '30000'), 0);
    t.equal(await redis.call('KLOCK', 'res', 'bob', '30000'), null);
    t.equal(await redis.call('KEXTEND', 'res', 'alice', '60000'), 0);
    const info = (await redis.call('KGETLOCK', 'res')) as [string, number, number];
    t.equal(info[0], 'alice');
    t.equal(info[1], 0);
    t.ok(info[2] > 59000);
    t.equal(await redis.call('KUNLOCK', 'res', 'alice'), 1);
    t.equal(await redis.call('KLOCK', 'res', 'bob', '30000', 'EPHEMERAL'), ephemeralTokenBase(s.server), 'EPHEMERAL tokens start at term x 2^32');
    t.equal(await redis.set('lock:a', 'me', 'PX', 30000, 'NX'), 'OK');
    t.equal(await redis.set('lock:a', 'you', 'PX', 30000, 'NX'), null);
    t.equal(await redis.get('lock:a'), 'me');
    t.ok((await redis.pttl('lock:a')) > 29000);
    t.equal(await redis.expire('lock:a', 100, 'GT'), 1);
    t.equal(await redis.ttl('lock:a'), 100);
    t.equal(await redis.persist('lock:a'), 1);
    t.equal(await redis.exists('lock:a', 'nope'), 1);
    t.equal(await redis.dbsize(), 1);
    t.equal(await redis.del('lock:a'), 1);
    t.equal(await redis.ping(), 'PONG');
    await t.rejects(redis.call('NOPE'), /ERR unknown command 'NOPE'/);
    const pipeline = redis.pipeline();
    for (let i = 0; i < 100; i++) pipeline.call('KLOCK', `p${i}`, 'o', '1000', 'EPHEMERAL');
    const results = await pipeline.exec();
    t.same(results!.map(([err, v]) => [err, v]), Array.from({ length: 100 }, () => [null, ephemeralTokenBase(s.server)]), 'pipelined KLOCKs');
  });
}

t.test('ioredis Cluster discovers the partitions with CLUSTER SLOTS and routes every key', async (t) => {
  const s = await startServer({ partitions: 4 });
  t.teardown(s.close);
  const cluster = new Cluster([{ host: '127.0.0.1', port: s.port }], { enableReadyCheck: true, slotsRefreshTimeout: 2000 });
  t.teardown(() => cluster.disconnect());
  for (let i = 0; i < 20; i++) t.equal(await cluster.call('KLOCK', `lock:${i}`, 'me', 60_000), 0);
  t.equal(await cluster.set('plain', 'v', 'PX', 60_000, 'NX'), 'OK');
  t.equal(await cluster.get('plain'), 'v');
  t.equal(await cluster.call('KLOCK', 'lock:3', 'other', 60_000), null);
  t.equal(await cluster.del('{tag}a', '{tag}b'), 0, 'keys with one hash tag go together');
  const slots = await cluster.cluster('SLOTS');
  t.same(slots.map(([first, last]) => [first, last]), [[0, 4095], [4096, 8191], [8192, 12287], [12288, 16383]]);
  t.same(slots[0]![2], ['127.0.0.1', s.port, await cluster.cluster('MYID'), []], 'host, port, id and (empty) metadata, as Redis 7');
  t.match(await cluster.cluster('INFO'), /cluster_state:ok/);
  t.match(await cluster.cluster('MYID'), /^[0-9a-f]{40}$/);
  t.match(await cluster.cluster('NODES'), new RegExp(`^[0-9a-f]{40} 127\\.0\\.0\\.1:${s.port}@\\d+ myself,master - 0 0 0 connected 0-4095 4096-8191 8192-12287 12288-16383\\n$`));
});
