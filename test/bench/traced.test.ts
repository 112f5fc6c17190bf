// Smoke test of the tracing benchmark's path: a 3-node cluster tracing every command into the
// harness's OTLP receiver, driven by ioredis through one node. KLOCK PERSISTENT commands must
// arrive as server spans with raft.commit, wal.fsync, apply and reply.write in their traces, and a
// command for a partition led elsewhere must cross the peer hop in one trace.
import t from 'tap';
import { Redis } from 'ioredis';
import { OtlpReceiver, isForwardedServer, isServer, traceStructure, type ReceivedSpan } from '../../bench/lib/otlp-receiver.js';
import { spansOfWorkload, startTracedCluster, tracingProblem } from '../../bench/lib/tracing.js';
import { partitionTags, waitForLeadership } from '../../bench/lib/leaders.js';

const PARTITIONS = 3;
const PER_PARTITION = 4;

t.test('a traced 3-node cluster exports KLOCK traces with every stage, across the peer hop', async (t) => {
  const problem = tracingProblem();
  if (problem !== null) {
    t.fail(`the server cannot be traced: ${problem}`);
    return;
  }
  const receiver = await OtlpReceiver.start();
  t.teardown(() => receiver.close());
  const cluster = await startTracedCluster({ receiver, sampleRatio: 1, partitions: PARTITIONS });
  t.teardown(() => cluster.close());
  const leadership = await waitForLeadership(cluster, { balanced: true, preferred: true, stableMs: 500, timeoutMs: 60_000 });
  const n1 = cluster.node('n1');
  const tags = await partitionTags(n1.port, PARTITIONS, 'traced');
  const client = new Redis({ port: n1.port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0 });
  await client.connect();
  t.teardown(() => client.disconnect());

  // Fresh keys in every partition, so each KLOCK writes a log entry; n1 leads one partition and forwards the others.
  const { spans } = await spansOfWorkload(receiver, 'KLOCK', async () => {
    for (const tag of tags) {
      for (let i = 0; i < PER_PARTITION; i++) t.equal(await client.call('KLOCK', `{${tag}}:${i}`, 'o', '60000', 'PERSISTENT'), 0, `KLOCK {${tag}}:${i}`);
    }
  });
  const commands = PARTITIONS * PER_PARTITION;
  const roots = spans.filter((s) => isServer(s) && s.parentSpanId === '');
  t.equal(roots.length, commands, `every KLOCK arrives as a root server span at sample ratio 1 (spans received: ${spans.map((s) => s.name).join(', ') || 'none'})`);
  for (const root of roots) t.match(root, { name: 'KLOCK', node: 'n1', attributes: { 'db.system': 'redis', 'db.operation.name': 'KLOCK' } }, 'the entry node\'s server span');
  const withoutPartition = roots.filter((r) => typeof r.attributes['raftlock.partition'] !== 'number');
  t.same(withoutPartition.map((r) => r.attributes), [], 'every entry-node server span carries raftlock.partition (forwarded commands too)');
  const structure = traceStructure(spans);
  t.equal(structure.complete, commands, `every KLOCK trace holds raft.commit, wal.fsync, apply and reply.write: ${JSON.stringify(structure)}`);
  t.equal(structure.orphans, 0, 'every span\'s parent arrived');

  const forwardedPartitions = leadership.leaders.filter((leader) => leader !== 'n1').length;
  t.ok(forwardedPartitions > 0, 'some partition is led by another node');
  t.equal(structure.forwarded, forwardedPartitions * PER_PARTITION, 'the commands of partitions led elsewhere are forwarded');
  t.equal(structure.crossNode, forwardedPartitions * PER_PARTITION, 'each forwarded command\'s trace crosses to the leader');
  const leaderSpans = spans.filter(isForwardedServer);
  t.equal(leaderSpans.length, forwardedPartitions * PER_PARTITION, 'a server span with raftlock.forwarded on the leader per forwarded command');
  for (const s of leaderSpans) {
    const partition = s.attributes['raftlock.partition'] as number;
    t.equal(s.node, leadership.leaders[partition], `the forwarded span of partition ${partition} comes from its leader`);
  }
  const byId = new Map(spans.map((s): [string, ReceivedSpan] => [s.spanId, s]));
  const commitParents = spans.filter((s) => s.name === 'raft.commit').map((s) => byId.get(s.parentSpanId));
  t.ok(commitParents.every((p) => p !== undefined && p.node !== '' && (p.parentSpanId === '' || isForwardedServer(p) || p.name !== 'forward')), 'raft.commit hangs below a server span, not below forward');
  t.ok(spans.filter((s) => s.name === 'raft.commit').every((s) => typeof s.attributes['raftlock.raft.batch_entries'] === 'number'), 'raft.commit carries raftlock.raft.batch_entries');
});
