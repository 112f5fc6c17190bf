import t, { type Test } from 'tap';
import { Cluster } from 'ioredis';
import { createCluster } from 'redis';
import { ProcessCluster } from '../../bench/lib/cluster.js';
import { rmSync } from 'node:fs';
import { RawClient } from '../helpers/raw-client.js';
import { partitionOfKey } from '../../src/cluster/slots.js';

// Real clusters of node processes: slower than tap's default per-file limit on a loaded machine.
t.setTimeout(300_000);

/** Per partition: role, term and leader, as one node's INFO raft reports them. */
async function raftInfo(port: number): Promise<{ role: string; term: number; leader: string }[]> {
  const c = await RawClient.connect(port);
  try {
    const text = (await c.call('INFO', 'raft')) as string;
    return [...text.matchAll(/partition\d+:role=(\w+),term=(\d+),leader=([^,]*),/g)].map((m) => ({ role: m[1]!, term: Number(m[2]), leader: m[3]! }));
  } finally {
    c.close();
  }
}

/** Waits until every running node sees the same leader, among the running nodes, for every partition. */
async function settled(cluster: ProcessCluster, timeoutMs = 20_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const running = cluster.running();
    const views = await Promise.all(running.map((id) => raftInfo(cluster.node(id).port).catch(() => [])));
    const leaders = views[0]?.map((p) => p.leader) ?? [];
    last = JSON.stringify(views.map((v) => v.map((p) => p.leader)));
    if (leaders.length > 0 && leaders.every((l) => running.includes(l)) && views.every((v) => JSON.stringify(v.map((p) => p.leader)) === JSON.stringify(leaders))) {
      return leaders;
    }
    if (Date.now() > deadline) throw new Error(`no agreed leaders within ${timeoutMs} ms: ${last}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits until leaders are spread evenly (every running node leads the same number of partitions, give or take one). */
async function balanced(cluster: ProcessCluster, timeoutMs = 30_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const leaders = await settled(cluster);
    const counts = cluster.running().map((id) => leaders.filter((l) => l === id).length);
    if (Math.max(...counts) - Math.min(...counts) <= 1) return leaders;
    if (Date.now() > deadline) throw new Error(`leaders not balanced within ${timeoutMs} ms: ${leaders.join(',')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Retries a command while it answers -TRYAGAIN (as the client library does). */
async function retrying(c: RawClient, ...args: (string | number)[]): Promise<unknown> {
  for (let attempt = 0; ; attempt++) {
    const reply = await c.call(...args);
    const err = (reply as { err?: string } | null)?.err;
    if (err === undefined || !err.startsWith('TRYAGAIN') || attempt > 100) return reply;
    await new Promise((r) => setTimeout(r, 100));
  }
}

t.test('three nodes: any node serves any key, leaders spread, CLUSTER commands agree', async (t) => {
  const cluster = await ProcessCluster.start({ nodes: 3, partitions: 6 });
  t.teardown(() => cluster.close());
  // Leaders spread: after balancing every node leads two partitions.
  const leaders = await balanced(cluster);
  t.same([...leaders].sort(), ['n1', 'n1', 'n2', 'n2', 'n3', 'n3'], 'every node leads two of the six partitions');

  const clients = await Promise.all(cluster.nodes.map((n) => RawClient.connect(n.port)));
  t.teardown(() => clients.forEach((c) => c.close()));
  const [a, b, c] = clients as [RawClient, RawClient, RawClient];
  for (let i = 0; i < 30; i++) {
    const key = `res:${i}`;
    t.equal(await a.call('KLOCK', key, 'alice', 60_000), 0, `${key}: granted through n1`);
    t.equal(await b.call('KLOCK', key, 'bob', 60_000), null, `${key}: refused through n2`);
    const info = (await c.call('KGETLOCK', key)) as [string, number, number];
    t.same(info.slice(0, 2), ['alice', 0], `${key}: visible through n3`);
  }
  t.same(await b.call('SET', 'plain', 'v', 'NX', 'PX', 60_000), { ok: 'OK' });
  t.equal(await c.call('GET', 'plain'), 'v');
  t.same(await a.call('DEL', 'x{1}', 'y{2}'), { err: "CROSSSLOT Keys in request don't hash to the same slot" });
  const sizes = await Promise.all(clients.map((cl) => cl.call('DBSIZE') as Promise<number>));
  t.equal(sizes.reduce((x, y) => x + y, 0), 31, 'each node counts the keys of the partitions it leads; together, all of them');

  // Every node describes the same owners: each slot range is served by its partition's leader.
  // Leaders read again: on a loaded machine an election may have moved one since (the balancer moves it back).
  const current = await balanced(cluster);
  const described = await Promise.all(clients.map((cl) => cl.call('CLUSTER', 'SLOTS') as Promise<[number, number, [string, number, string, unknown[]]][]>));
  const ports = new Map(cluster.nodes.map((n) => [n.id, n.port]));
  t.same(described[1], described[0], 'n2 agrees with n1');
  t.same(described[2], described[0], 'n3 agrees with n1');
  t.same(described[0]!.map(([, , at]) => at[1]), current.map((l) => ports.get(l)), 'each range points at its leader');
  t.match(await a.call('CLUSTER', 'INFO'), /cluster_state:ok\r\n[\s\S]*cluster_known_nodes:3\r\ncluster_size:3\r\n/);
  const nodesText = (await a.call('CLUSTER', 'NODES')) as string;
  t.equal(nodesText.trim().split('\n').length, 3, 'CLUSTER NODES lists three nodes');
  t.match(nodesText, /myself,master/);
  const infoCluster = (await a.call('INFO', 'cluster')) as string;
  t.match(infoCluster, /cluster_known_nodes:3\r\ncluster_partitions:6\r\ncluster_partitions_led:2\r\ncluster_partitions_without_leader:0\r\n/);
  t.match(infoCluster, new RegExp(`partition0:leader=${current[0]}\r\n`));
  t.match(await a.call('INFO', 'raft'), /partition5:role=\w+,term=\d+,leader=n\d,.*,log_entries=\d+,voters=n1\|n2\|n3\r\n/);

  // A pipeline whose commands run on all three leaders: n1 answers it with one socket write,
  // though the replies come back from n2 and n3 at different times.
  const keys = Array.from({ length: 60 }, (_, i) => `pipe:${i}`);
  const pipeline = ['n1', 'n2', 'n3'].flatMap((id) => keys.filter((k) => current[partitionOfKey(k, 6)] === id).slice(0, 4));
  t.equal(pipeline.length, 12, 'four keys of partitions each node leads');
  const writes = async (): Promise<number> => Number(/total_writes_processed:(\d+)\r\n/.exec((await a.call('INFO', 'stats')) as string)?.[1]);
  const p = await RawClient.connect(cluster.node('n1').port);
  t.teardown(() => p.close());
  const before = await writes();
  p.send(pipeline.map((k) => `*4\r\n$5\r\nKLOCK\r\n$${k.length}\r\n${k}\r\n$1\r\no\r\n$5\r\n60000\r\n`).join(''));
  const replies = [];
  for (let i = 0; i < pipeline.length; i++) replies.push(await p.reply());
  t.same(replies, pipeline.map(() => 0), 'every lock of the pipeline granted, in order');
  t.equal(await writes() - before, 2, "the pipeline's twelve replies left in one write (the other is INFO's reply)");

  // Forwarded commands of a RESP2 and a RESP3 client, interleaved: each reply comes in its own
  // client's protocol (a leader runs forwarded commands in a client it reuses, set per command).
  const resp2 = await RawClient.connect(cluster.node('n1').port);
  const resp3 = await RawClient.connect(cluster.node('n1').port);
  t.teardown(() => [resp2, resp3].forEach((cl) => cl.close()));
  t.match(await resp3.call('HELLO', 3), { proto: 3 });
  const remote = Array.from({ length: 60 }, (_, i) => `proto:${i}`).filter((k) => current[partitionOfKey(k, 6)] !== 'n1').slice(0, 10);
  const rawReply = async (cl: RawClient, ...args: (string | number)[]): Promise<string> => {
    cl.command(...args);
    await cl.waitBytes(1);
    await new Promise((r) => setTimeout(r, 20));
    return cl.takeRaw();
  };
  const seen: string[] = [];
  for (const k of remote) {
    seen.push(await rawReply(resp2, 'KLOCK', k, 'a', 60_000), await rawReply(resp3, 'KLOCK', k, 'b', 60_000), await rawReply(resp2, 'KLOCK', k, 'b', 60_000));
  }
  t.same(seen, remote.flatMap(() => [':0\r\n', '_\r\n', '$-1\r\n']), 'granted, then refused: null as `_` in RESP3 and `$-1` in RESP2');
});

t.test('kill -9 of a leader: the others elect, keep every acknowledged lock, and the node rejoins and takes its share back', async (t) => {
  const cluster = await ProcessCluster.start({ nodes: 3, partitions: 3 });
  t.teardown(() => cluster.close());
  const leaders = await settled(cluster);
  const victim = leaders[0]!;
  const survivor = cluster.nodes.find((n) => n.id !== victim)!;
  const c = await RawClient.connect(survivor.port);
  t.teardown(() => c.close());
  const tokens = new Map<string, unknown>();
  for (let i = 0; i < 40; i++) tokens.set(`k${i}`, await retrying(c, 'KLOCK', `k${i}`, 'holder', 600_000));
  t.ok([...tokens.values()].every((v) => v === 0), 'granted');
  await cluster.kill(victim);
  const started = Date.now();
  t.equal(await retrying(c, 'KLOCK', 'after-kill', 'me', 60_000), 0, 'writes resume after the kill');
  t.ok(Date.now() - started < 10_000, 'within seconds');
  await settled(cluster);
  for (const [key] of tokens) {
    const info = (await retrying(c, 'KGETLOCK', key)) as [string, number, number];
    t.same(info.slice(0, 2), ['holder', 0], `${key} kept its holder and token`);
  }
  await cluster.startNode(victim);
  // Balancing hands the returning node its partitions back once it has caught up.
  const deadline = Date.now() + 30_000;
  let now = await settled(cluster);
  while (!now.includes(victim) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    now = await settled(cluster);
  }
  t.ok(now.includes(victim), `the restarted node leads again (${now.join(',')})`);
  const back = await RawClient.connect(cluster.node(victim).port);
  t.teardown(() => back.close());
  t.same(((await retrying(back, 'KGETLOCK', 'k7')) as unknown[]).slice(0, 2), ['holder', 0], 'served through the returning node');
});

/**
 * A 3-node cluster with one partition, and two clients of a node that does not lead it: the
 * holder holds lock 'w' (token 0), the waiter is free to wait for it.
 */
async function lockAndWaitThroughFollower(t: Test): Promise<{ cluster: ProcessCluster; leader: string; holder: RawClient; waiter: RawClient }> {
  const cluster = await ProcessCluster.start({ nodes: 3, partitions: 1 });
  t.teardown(() => cluster.close());
  const [leader] = await settled(cluster);
  const other = cluster.nodes.find((n) => n.id !== leader)!;
  const holder = await RawClient.connect(other.port);
  const waiter = await RawClient.connect(other.port);
  t.teardown(() => {
    holder.close();
    waiter.close();
  });
  t.equal(await retrying(holder, 'KLOCK', 'w', 'h', 60_000), 0);
  return { cluster, leader: leader!, holder, waiter };
}

t.test('SIGTERM hands leadership off first; KLOCK ... WAIT waiters get -TRYAGAIN when their leader goes', async (t) => {
  const { cluster, leader, holder, waiter } = await lockAndWaitThroughFollower(t);
  const waiting = waiter.call('KLOCK', 'w', 'x', 60_000, 'WAIT', 30_000);
  await new Promise((r) => setTimeout(r, 300));
  const stopped = Date.now();
  await cluster.stop(leader);
  const reply = (await waiting) as { err?: string };
  t.match(reply.err, /^TRYAGAIN/, `the waiter is told to retry (${JSON.stringify(reply)})`);
  t.ok(cluster.node(leader).log.some((l) => l.includes('"msg":"handed off partition leadership"') && l.includes('"moved":1,')), 'the leader handed off before exiting');
  t.equal(await retrying(holder, 'KLOCK', 'after', 'h', 60_000), 0);
  t.ok(Date.now() - stopped < 5_000, 'a handed-off partition serves again at once');
  const [now] = await settled(cluster);
  t.not(now, leader);
});

t.test('a client that closes while its forwarded KLOCK ... WAIT waits: the wait is cancelled on the leader', async (t) => {
  const { holder, waiter } = await lockAndWaitThroughFollower(t);
  const waiting = waiter.call('KLOCK', 'w', 'gone', 60_000, 'WAIT', 30_000).catch(() => 'closed');
  await new Promise((r) => setTimeout(r, 300));
  waiter.close();
  await waiting;
  await new Promise((r) => setTimeout(r, 300));
  t.equal(await holder.call('KUNLOCK', 'w', 'h'), 1, 'the holder unlocks');
  await new Promise((r) => setTimeout(r, 300));
  t.equal(await holder.call('KGETLOCK', 'w'), null, 'nobody holds it: the closed client\'s wait was cancelled');
  t.equal(await holder.call('KLOCK', 'w', 'next', 60_000), 1, 'the next owner takes it (the next fencing token)');
});

t.test('EPHEMERAL locks: never granted twice across a leader kill; unavailable at most their lease plus the slack', async (t) => {
  const cluster = await ProcessCluster.start({ nodes: 3, partitions: 1 });
  t.teardown(() => cluster.close());
  const [leader] = await settled(cluster);
  const other = cluster.nodes.find((n) => n.id !== leader)!;
  const c = await RawClient.connect(other.port);
  t.teardown(() => c.close());
  const ttlMs = 3000;
  const token = (await retrying(c, 'KLOCK', 'e', 'first', ttlMs, 'EPHEMERAL')) as number;
  const granted = performance.now();
  t.type(token, 'number');
  await cluster.kill(leader!);
  let second: unknown;
  let delayed = 0;
  for (;;) {
    second = await c.call('KLOCK', 'e', 'second', ttlMs, 'EPHEMERAL');
    const err = (second as { err?: string } | null)?.err;
    if (err === undefined) break;
    t.match(err, /^TRYAGAIN/);
    if (/after a leader change/.test(err)) delayed += 1;
    await new Promise((r) => setTimeout(r, 50));
  }
  const waited = performance.now() - granted;
  t.type(second, 'number', 'granted to the second owner eventually');
  t.ok(waited >= ttlMs, `not before the first lease ran out (${Math.round(waited)} ms)`);
  t.ok(waited < ttlMs + 1000 + 5000, `within lease + slack + election (${Math.round(waited)} ms)`);
  t.ok(delayed > 0, 'the new leader answered with the lock-delay');
  t.ok((second as number) > token, 'the token is higher than the old leader\'s');
});

t.test('ioredis Cluster routes to leaders and keeps working through a leader failover', async (t) => {
  const cluster = await ProcessCluster.start({ nodes: 3, partitions: 3 });
  t.teardown(() => cluster.close());
  await settled(cluster);
  const client = new Cluster(cluster.nodes.map((n) => ({ host: '127.0.0.1', port: n.port })), {
    retryDelayOnTryAgain: 100, retryDelayOnClusterDown: 100, retryDelayOnFailover: 100, maxRedirections: 100, slotsRefreshTimeout: 2000,
    clusterRetryStrategy: () => 100,
  });
  client.on('error', () => undefined);
  t.teardown(() => client.disconnect());
  for (let i = 0; i < 30; i++) t.equal(await client.set(`key:${i}`, 'v', 'PX', 600_000, 'NX'), 'OK');
  const leaders = await settled(cluster);
  await cluster.kill(leaders[1]!);
  let ok = 0;
  const started = Date.now();
  for (let i = 0; i < 30; i++) {
    for (;;) {
      try {
        t.equal(await client.get(`key:${i}`), 'v');
        ok += 1;
        break;
      } catch (error) {
        if (Date.now() - started > 20_000) throw error;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
  t.equal(ok, 30, 'every key read back through the failover');
  t.equal(await client.set('after', 'v', 'NX'), 'OK');
});

t.test('peers with the wrong cluster secret are refused', async (t) => {
  const cluster = await ProcessCluster.start({ nodes: 3, partitions: 1, secret: 's3cret' });
  t.teardown(() => cluster.close());
  await settled(cluster);
  const n3 = cluster.node('n3');
  await cluster.kill('n3');
  await cluster.startNode('n3', ['--cluster-secret', 'wrong']);
  await new Promise((r) => setTimeout(r, 1500));
  const info = await raftInfo(n3.port);
  t.not(info[0]!.role, 'leader');
  const others = cluster.nodes.filter((n) => n.id !== 'n3').map((n) => n.log.join('\n')).join('\n') + n3.log.join('\n');
  t.match(others, /auth/i, 'the refusal is logged');
  const c = await RawClient.connect(n3.port);
  t.teardown(() => c.close());
  const reply = (await c.call('KLOCK', 'x', 'me', 1000)) as { err?: string };
  t.match(reply.err, /^TRYAGAIN/, 'the outsider cannot reach a leader');
});

t.test('a node whose data dir is lost rejoins as a new member (CLUSTER FORGET, then ADDNODE) without losing data', async (t) => {
  const cluster = await ProcessCluster.start({ nodes: 3, partitions: 3 });
  t.teardown(() => cluster.close());
  await settled(cluster);
  const n1 = await RawClient.connect(cluster.node('n1').port);
  t.teardown(() => n1.close());
  for (let i = 0; i < 30; i++) t.equal(await retrying(n1, 'KLOCK', `d${i}`, 'keeper', 600_000), 0);
  await cluster.kill('n3');
  rmSync(cluster.node('n3').dataDir, { recursive: true, force: true });
  // Back on an empty directory before the cluster forgot it: it would have forgotten its votes, so
  // n1 and n2 refuse its links, and say what to do.
  await cluster.startNode('n3');
  const refused = (id: string): boolean => cluster.node(id).log.some((line) => line.includes('"msg":"peer connection refused"') &&
    new RegExp(`node n3 runs on data directory [0-9a-f]+, but node ${id} knows n3 by data directory [0-9a-f]+.*CLUSTER FORGET n3`).test(line));
  const refusedBy = Date.now() + 10_000;
  while (!(refused('n1') && refused('n2')) && Date.now() < refusedBy) await new Promise((r) => setTimeout(r, 50));
  t.ok(refused('n1') && refused('n2'), 'n1 and n2 refuse the replaced n3, and log why');
  t.match(cluster.node('n3').log.join('\n'), /peer refused the connection/, 'n3 is told');
  t.ok((await raftInfo(cluster.node('n3').port)).every((p) => p.leader === ''), 'n3 hears from no leader');
  t.equal(await retrying(n1, 'KLOCK', 'meanwhile', 'keeper', 600_000), 0, 'n1 and n2 carry on');
  t.same(await retrying(n1, 'CLUSTER', 'FORGET', 'n3'), { ok: 'OK' }, 'n3 removed from every partition');
  t.same(await n1.call('CLUSTER', 'FORGET', 'nope'), { err: 'ERR Unknown node nope' });
  t.same(await retrying(n1, 'CLUSTER', 'ADDNODE', 'n3'), { ok: 'OK' }, 'n3 added back');
  t.same(await retrying(n1, 'CLUSTER', 'ADDNODE', 'n3'), { ok: 'OK' }, 'adding a member again changes nothing');
  // n3 now counts towards the quorum: with n1 gone, n2 and n3 must hold every lock.
  const n3 = await RawClient.connect(cluster.node('n3').port);
  t.teardown(() => n3.close());
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (cluster.node('n3').child === null) t.fail(`n3 exited:\n${cluster.node('n3').log.slice(-15).join('\n')}`);
    const info = await raftInfo(cluster.node('n3').port);
    const n1View = await raftInfo(cluster.node('n1').port);
    if (info.every((p, i) => p.leader !== '' && p.leader === n1View[i]!.leader) || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await new Promise((r) => setTimeout(r, 500));
  await cluster.kill('n1');
  for (let i = 0; i < 30; i++) {
    t.same(((await retrying(n3, 'KGETLOCK', `d${i}`)) as unknown[]).slice(0, 2), ['keeper', 0], `d${i} kept by n2 and the rejoined n3`);
  }
  t.equal(await retrying(n3, 'KLOCK', 'fresh', 'me', 60_000), 0, 'writes commit with n2 and n3');
});

t.test('node-redis createCluster discovers the leaders and routes every key', async (t) => {
  const cluster = await ProcessCluster.start({ nodes: 3, partitions: 3 });
  t.teardown(() => cluster.close());
  await balanced(cluster);
  const client = createCluster({ rootNodes: cluster.nodes.map((n) => ({ socket: { host: '127.0.0.1', port: n.port, reconnectStrategy: false as const } })) });
  client.on('error', () => undefined);
  await client.connect();
  t.teardown(() => client.destroy());
  for (let i = 0; i < 30; i++) t.equal(await client.set(`nr:${i}`, 'v', { condition: 'NX', expiration: { type: 'PX', value: 60_000 } }), 'OK');
  for (let i = 0; i < 30; i++) t.equal(await client.get(`nr:${i}`), 'v');
  const masters = new Set(client.masters.map((m) => m.port));
  t.equal(masters.size, 3, 'three masters: the partition leaders');
});
