import t from 'tap';
import { ProcessCluster } from '../../bench/lib/cluster.js';
import { RawClient } from '../helpers/raw-client.js';
import { partitionOfKey } from '../../src/cluster/slots.js';
import { sha1Hex } from '../../src/script/sha1.js';
import { KNOWN_SCRIPTS } from '../../src/script/known.js';

// Real node processes: slower than tap's default per-file limit on a loaded machine.
t.setTimeout(300_000);

/** Retries while the reply is -TRYAGAIN (no leader yet), as clients do. */
async function retrying(c: RawClient, ...args: (string | number)[]): Promise<unknown> {
  for (let attempt = 0; ; attempt++) {
    const reply = await c.call(...args);
    const err = (reply as { err?: string } | null)?.err;
    if (err === undefined || !err.startsWith('TRYAGAIN') || attempt > 200) return reply;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The leader of each partition as node n1 sees it, once every partition has one. */
async function leaders(c: RawClient): Promise<string[]> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const text = (await c.call('INFO', 'raft')) as string;
    const found = [...text.matchAll(/partition\d+:role=\w+,term=\d+,leader=([^,]*),/g)].map((m) => m[1]!);
    if (found.length > 0 && found.every((l) => l !== '')) return found;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('no leaders');
}

t.test('in a 3-node cluster scripts run on the partition leader, EVALSHA goes as EVAL when the receiving node has the script', async (t) => {
  const partitions = 3;
  const cluster = await ProcessCluster.start({ nodes: 3, partitions });
  t.teardown(() => cluster.close());
  const clients = new Map<string, RawClient>();
  for (const node of cluster.nodes) clients.set(node.id, await RawClient.connect(node.port));
  t.teardown(() => {
    for (const c of clients.values()) c.close();
  });
  await retrying(clients.get('n1')!, 'SET', 'warmup', 'x');
  const led = await leaders(clients.get('n1')!);
  // One node may lead every partition: pick the receiving node by the key's leader, so that
  // commands sent to it are forwarded whichever way the elections went.
  const key = 'lock:0';
  const leaderId = led[partitionOfKey(key, partitions)]!;
  const others = ['n1', 'n2', 'n3'].filter((id) => id !== leaderId);
  const leader = clients.get(leaderId)!;
  const follower = clients.get(others[0]!)!;
  const third = clients.get(others[1]!)!;

  const acquire = KNOWN_SCRIPTS.find((s) => s.name === 'redlock v4 acquire')!;
  t.equal(await retrying(follower, 'EVAL', acquire.body, 1, key, 'owner-1', 30000), 1, 'EVAL sent to a follower runs on the leader');
  t.equal(await retrying(third, 'GET', key), 'owner-1', 'its write is replicated like any write');
  t.equal(await retrying(follower, 'EVAL', acquire.body, 1, key, 'owner-2', 30000), 0);

  const body = 'return redis.call("pttl", KEYS[1]) > 0 and ARGV[1] or false';
  const sha = sha1Hex(body);
  t.equal(await follower.call('SCRIPT', 'LOAD', body), sha);
  t.same(await leader.call('SCRIPT', 'EXISTS', sha), [0], 'SCRIPT LOAD is node-local');
  t.equal(await retrying(follower, 'EVALSHA', sha, 1, key, 'held'), 'held', 'the follower has the script: it forwards an EVAL');
  t.same(await leader.call('SCRIPT', 'EXISTS', sha), [1], 'the leader cached it as EVAL does');
  t.equal(await retrying(third, 'EVALSHA', sha, 1, key, 'held'), 'held', 'a node without it forwards EVALSHA; the leader answers from its cache');
  t.same(await retrying(third, 'EVALSHA', sha1Hex('return 0'), 1, key), { err: 'NOSCRIPT No matching script. Please use EVAL.' });
  t.same(await retrying(third, 'EVAL_RO', 'return redis.call("get", KEYS[1])', 1, key), 'owner-1', 'EVAL_RO is forwarded to the leader too');
});
