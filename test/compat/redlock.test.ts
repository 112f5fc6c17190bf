import t from 'tap';
import { Cluster, Redis } from 'ioredis';
import { createClient, defineScript } from 'redis';
import Redlock4 from 'redlock';
import Redlock5, { ExecutionError } from 'redlock5';
import { startServer } from '../helpers/server.js';
import { ProcessCluster } from '../../bench/lib/cluster.js';
import { settledCluster, sleep, tokenOf } from '../helpers/locks.js';

// A 3-node cluster of real processes is part of this file.
t.setTimeout(240_000);

type Client = Redis | Cluster;

/** Where the lock clients connect: a single node, or one node of a 3-node cluster (commands forwarded to the leaders). */
interface Target {
  name: string;
  /** The RESP port clients connect to. */
  port: number;
  client(): Client;
  close(): Promise<void>;
}

async function singleNode(): Promise<Target> {
  const s = await startServer({ partitions: 4 });
  return {
    name: 'a single node (4 partitions)',
    port: s.port,
    client: () => new Redis({ port: s.port, host: '127.0.0.1', maxRetriesPerRequest: 0 }),
    close: s.close,
  };
}

async function threeNodes(): Promise<Target> {
  const cluster = await ProcessCluster.start({ nodes: 3, partitions: 8 });
  const probe = new Redis({ port: cluster.node('n1').port, host: '127.0.0.1', maxRetriesPerRequest: 0 });
  try {
    await settledCluster(cluster, probe);
  } finally {
    probe.disconnect();
  }
  return {
    name: 'one node of a 3-node cluster',
    port: cluster.node('n1').port,
    client: () => new Redis({ port: cluster.node('n1').port, host: '127.0.0.1', maxRetriesPerRequest: 0 }),
    close: () => cluster.close(),
  };
}

for (const makeTarget of [singleNode, threeNodes]) {
  t.test(`redlock with ioredis against ${makeTarget === singleNode ? 'a single node' : 'a 3-node cluster'}`, async (t) => {
    const target = await makeTarget();
    t.teardown(target.close);
    const clients: Client[] = [];
    const client = (): Client => {
      const c = target.client();
      clients.push(c);
      return c;
    };
    t.teardown(() => clients.forEach((c) => c.disconnect()));

    t.test('redlock 4.2.0: lock, contention, extend, unlock, expiry', async (t) => {
      const a = new Redlock4([client()], { retryCount: 0 });
      const b = new Redlock4([client()], { retryCount: 0 });
      const lock = await a.lock('v4:res', 10_000);
      t.type(lock.value, 'string');
      const c = clients[0]!;
      t.equal(await c.get('v4:res'), lock.value, 'the key holds the lock value');
      const first = await tokenOf(c, 'v4:res');
      t.equal(first, 0, 'the first grant of a resource has fencing token 0');
      await t.rejects(b.lock('v4:res', 10_000), { name: 'LockError' }, 'a second client cannot take it');
      const extended = await lock.extend(20_000);
      t.ok((await c.pttl('v4:res')) > 15_000, 'extend moved the expiry');
      t.equal(await tokenOf(c, 'v4:res'), first, 'extending keeps the token');
      await extended.unlock();
      t.equal(await c.exists('v4:res'), 0, 'unlock removed the key');
      const next = await b.lock('v4:res', 300);
      t.equal(await tokenOf(c, 'v4:res'), 1, 'the next holder gets a larger token');
      await sleep(500);
      t.equal(await c.exists('v4:res'), 0, 'the lock expired after its TTL');
      await t.rejects(next.unlock(), { name: 'LockError' }, 'unlocking an expired lock reports the failure, as against Redis');
      const again = await a.lock('v4:res', 10_000);
      t.equal(await tokenOf(c, 'v4:res'), 2, 'tokens keep increasing across expiry');
      await again.unlock();
      const multi = await a.lock(['v4:{tag}a', 'v4:{tag}b'], 10_000);
      t.equal(await c.exists('v4:{tag}a', 'v4:{tag}b'), 2, 'a lock on several resources of one hash tag');
      await multi.unlock();
    });

    t.test('redlock 5.0.0-beta.2: acquire, release, extend, using with auto-extension', async (t) => {
      const redlock = new Redlock5([client()], { retryCount: 0 });
      const c = clients.at(-1)!;
      const lock = await redlock.acquire(['v5:res'], 5_000);
      t.equal(await c.get('v5:res'), lock.value);
      await t.rejects(new Redlock5([client()], { retryCount: 0 }).acquire(['v5:res'], 5_000), ExecutionError, 'held: another acquire fails');
      const extended = await lock.extend(10_000);
      t.ok((await c.pttl('v5:res')) > 8_000, 'extend moved the expiry');
      await extended.release();
      t.equal(await c.exists('v5:res'), 0, 'released');

      const seen: (number | null)[] = [];
      await redlock.using(['v5:long'], 1_000, { automaticExtensionThreshold: 500 }, async (signal) => {
        for (let i = 0; i < 6; i++) {
          await sleep(300);
          t.notOk(signal.aborted, `still held after ${(i + 1) * 300} ms`);
          seen.push(await tokenOf(c, 'v5:long'));
        }
      });
      t.ok(seen.every((token) => token === 0), 'held by the same grant for 1.8 s with a 1 s lease: auto-extension works');
      t.equal(await c.exists('v5:long'), 0, 'released when the routine ended');
    });

    t.test('ioredis defineCommand and node-redis scripts', async (t) => {
      const redis = client() as Redis & { takeLock(key: string, owner: string, ttl: number): Promise<number> };
      redis.defineCommand('takeLock', { numberOfKeys: 1, lua: 'if redis.call("set", KEYS[1], ARGV[1], "NX", "PX", ARGV[2]) then return 1 else return 0 end' });
      t.equal(await redis.takeLock('dc:lock', 'alice', 30_000), 1, 'ioredis defineCommand: EVALSHA, NOSCRIPT, then EVAL');
      t.equal(await redis.takeLock('dc:lock', 'bob', 30_000), 0, 'held: the script says so');
      t.equal(await tokenOf(redis, 'dc:lock'), 0, 'a lock a script took has a fencing token');
      const release = defineScript({
        NUMBER_OF_KEYS: 1,
        SCRIPT: 'if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end',
        parseCommand(parser, key: string, owner: string) {
          parser.pushKey(key);
          parser.push(owner);
        },
        transformReply: (reply: unknown) => reply as number,
      });
      const nodeRedis = createClient({ socket: { port: target.port, host: '127.0.0.1', reconnectStrategy: false }, scripts: { release } });
      await nodeRedis.connect();
      t.teardown(() => nodeRedis.destroy());
      t.equal(await nodeRedis.release('dc:lock', 'bob'), 0, 'node-redis defineScript: not the owner');
      t.equal(await nodeRedis.release('dc:lock', 'alice'), 1, 'the owner releases');
      t.equal(await nodeRedis.exists('dc:lock'), 0);
      const sha = await nodeRedis.scriptLoad('return redis.call("set", KEYS[1], ARGV[1], "NX", "PX", 30000)');
      t.equal(await nodeRedis.evalSha(sha, { keys: ['dc:other'], arguments: ['carol'] }), 'OK', 'node-redis SCRIPT LOAD + EVALSHA');
    });

    t.test('contention: many redlock clients, one holder at a time, tokens increase', async (t) => {
      const workers = 12;
      const rounds = 5;
      const holds: { start: number; end: number; token: number }[] = [];
      let inside = 0;
      let overlaps = 0;
      await Promise.all(Array.from({ length: workers }, async () => {
        const redlock = new Redlock5([client()], { retryCount: 400, retryDelay: 10, retryJitter: 10 });
        const c = clients.at(-1)!;
        for (let i = 0; i < rounds; i++) {
          await redlock.using(['hot'], 5_000, async () => {
            inside++;
            if (inside > 1) overlaps++;
            const start = Date.now();
            const token = (await tokenOf(c, 'hot'))!;
            await sleep(2);
            holds.push({ start, end: Date.now(), token });
            inside--;
          });
        }
      }));
      t.equal(holds.length, workers * rounds, 'every client got the lock every round');
      t.equal(overlaps, 0, 'never two holders at once');
      const tokens = holds.map((h) => h.token);
      t.same(tokens, [...tokens].sort((x, y) => x - y), 'tokens increase in the order the lock was held');
      t.equal(new Set(tokens).size, tokens.length, 'each grant has its own token');
    });
  });
}
