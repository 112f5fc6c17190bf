import t from 'tap';
import { startServer } from '../helpers/server.js';
import { parseConfig } from '../../src/server/config.js';
import { freePort } from '../../bench/lib/proc.js';
import { ProcessCluster } from '../../bench/lib/cluster.js';
import { waitForLeadership } from '../../bench/lib/leaders.js';
import { callOnce } from '../../bench/lib/resp-client.js';
import { sleep } from '../helpers/locks.js';

interface Scrape {
  status: number;
  contentType: string | null;
  /** Sample values by `name{labels}` exactly as exposed. */
  samples: Map<string, number>;
  text: string;
}

async function scrape(port: number, path = '/metrics', method = 'GET'): Promise<Scrape> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { method });
  const text = await response.text();
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m !== null) samples.set(m[1]!, Number(m[2]));
  }
  return { status: response.status, contentType: response.headers.get('content-type'), samples, text };
}

t.test('--metrics-port defaults to 0 (off) and RAFTLOCK_METRICS_PORT sets it', async (t) => {
  t.equal(parseConfig([]).metricsPort, 0);
  t.equal(parseConfig(['--metrics-port', '9121']).metricsPort, 9121);
  process.env['RAFTLOCK_METRICS_PORT'] = '9122';
  try {
    t.equal(parseConfig([]).metricsPort, 9122);
  } finally {
    delete process.env['RAFTLOCK_METRICS_PORT'];
  }
  t.equal(parseConfig(['--slowlog-log-slower-than', '-1', '--slowlog-max-len', '5']).slowlogLogSlowerThanUs, -1);
  const s = await startServer();
  t.teardown(s.close);
  t.equal(s.server.metricsPort, undefined, 'no metrics listener by default');
});

t.test('GET /metrics exposes the command counters and latency after known traffic', async (t) => {
  const s = await startServer({ metricsPort: await freePort() });
  t.teardown(s.close);
  const port = s.server.metricsPort!;
  const c = await s.connect();
  for (let i = 0; i < 3; i++) t.equal(await c.call('KLOCK', 'r', 'o', 60000), 0);
  t.match(await c.call('KLOCK', 'r'), { err: /wrong number/ });
  t.match(await c.call('KLOCK', 'r', 'o', 0), { err: /invalid expire time/ });
  t.match(await c.call('NOSUCH'), { err: /unknown command/ });
  t.equal(await c.call('KLOCK', 'e', 'o', 60000, 'EPHEMERAL'), await c.call('KGETLOCK', 'e', 'EPHEMERAL').then((r) => (r as unknown[])[1]));

  const m = await scrape(port);
  t.equal(m.status, 200);
  t.equal(m.contentType, 'text/plain; version=0.0.4; charset=utf-8');
  const v = (key: string): number | undefined => m.samples.get(key);
  t.equal(v('raftlock_commands_total{command="klock",result="ok"}'), 4);
  t.equal(v('raftlock_commands_total{command="klock",result="error"}'), 1);
  t.equal(v('raftlock_commands_total{command="klock",result="rejected"}'), 1);
  t.equal(v('raftlock_commands_total{command="kgetlock",result="ok"}'), 1);
  t.equal(v('raftlock_rejected_commands_total{reason="arity"}'), 1);
  t.equal(v('raftlock_rejected_commands_total{reason="unknown_command"}'), 1);
  t.equal(v('raftlock_command_duration_seconds_count{command="klock"}'), 5, 'runs, failed ones included');
  t.equal(v('raftlock_command_duration_seconds_bucket{command="klock",le="+Inf"}'), 5);
  const buckets = [...m.samples].filter(([k]) => k.startsWith('raftlock_command_duration_seconds_bucket{command="klock"')).map(([, n]) => n);
  t.ok(buckets.length > 10 && buckets.every((n, i) => i === 0 || n >= buckets[i - 1]!), 'cumulative buckets');
  t.ok(v('raftlock_command_duration_seconds_sum{command="klock"}')! > 0);
  t.match(m.text, /# TYPE raftlock_command_duration_seconds histogram/);

  t.equal(v('raftlock_connected_clients'), 1);
  t.equal(v('raftlock_connections_received_total'), 1);
  t.equal(v('raftlock_raft_is_leader{partition="0"}'), 1);
  t.ok(v('raftlock_raft_term{partition="0"}')! >= 1);
  t.equal(v('raftlock_raft_leader_changes_total{partition="0"}'), 1, 'a single node elected itself once');
  t.equal(v('raftlock_raft_applied_index{partition="0"}'), v('raftlock_raft_commit_index{partition="0"}'));
  t.equal(v('raftlock_locks{partition="0",durability="persistent"}'), 1);
  t.equal(v('raftlock_locks{partition="0",durability="ephemeral"}'), 1);
  t.equal(v('raftlock_lock_waiters{partition="0"}'), 0);
  t.ok(v('raftlock_wal_batches_total')! >= 1, 'the PERSISTENT grant went through the WAL');
  t.equal(v('raftlock_wal_fsync_duration_seconds_count'), v('raftlock_wal_batches_total'), 'one fdatasync per batch');
  t.equal(v('raftlock_wal_batch_records_count'), v('raftlock_wal_batches_total'));
  // Writes this leader proposed: the grant of r, and the raise of the EPHEMERAL horizon before e's grant.
  t.equal(v('raftlock_raft_commit_duration_seconds_count{partition="0"}'), 2, 'propose → commit of each write proposed');
  t.ok(v('raftlock_raft_commit_duration_seconds_sum{partition="0"}')! > 0);
  t.ok(v('raftlock_raft_batch_entries_count{partition="0"}')! >= 2, 'log writes: the election\'s entry, then each write');
  t.equal(v(`raftlock_info{version="${s.server.info.version}",node_id="n1"}`), 1);

  t.same(await c.call('CONFIG', 'RESETSTAT'), { ok: 'OK' });
  const after = await scrape(port);
  t.equal(after.samples.get('raftlock_commands_total{command="klock",result="ok"}'), undefined, 'CONFIG RESETSTAT resets the counters');
  t.equal(after.samples.get('raftlock_locks{partition="0",durability="persistent"}'), 1, 'but not the state');
});

t.test('lock expirations are counted', async (t) => {
  const s = await startServer({ metricsPort: await freePort() });
  t.teardown(s.close);
  const c = await s.connect();
  await c.call('KLOCK', 'short', 'o', 50, 'EPHEMERAL');
  await c.call('KLOCK', 'short', 'o', 50);
  await sleep(300);
  const m = await scrape(s.server.metricsPort!);
  t.equal(m.samples.get('raftlock_lock_expirations_total{partition="0",durability="ephemeral"}'), 1);
  t.equal(m.samples.get('raftlock_lock_expirations_total{partition="0",durability="persistent"}'), 1);
});

t.test('the metrics endpoint answers only GET /metrics', async (t) => {
  const s = await startServer({ metricsPort: await freePort() });
  t.teardown(s.close);
  const port = s.server.metricsPort!;
  t.equal((await scrape(port, '/')).status, 404);
  t.equal((await scrape(port, '/metrics', 'POST')).status, 405);
  t.equal((await scrape(port, '/metrics', 'HEAD')).status, 200);
});

t.test('a 3-node cluster: every node serves its own metrics, and they agree on the leaders', async (t) => {
  const ids = ['n1', 'n2', 'n3'];
  const metricsPorts = new Map<string, number>();
  for (const id of ids) metricsPorts.set(id, await freePort());
  const cluster = await ProcessCluster.start({ nodes: 3, partitions: 3, nodeArgs: (id) => ['--metrics-port', String(metricsPorts.get(id))] });
  t.teardown(() => cluster.close());
  const leadership = await waitForLeadership(cluster, { balanced: true, stableMs: 500, timeoutMs: 60_000 });
  const n1 = cluster.node('n1').port;
  for (let i = 0; i < 6; i++) t.equal(await callOnce(n1, ['KLOCK', `key${i}`, 'o', '60000']), 0);
  // Followers apply the last entries a heartbeat later.
  let scrapes: Map<string, number>[] = [];
  for (let attempt = 0; attempt < 50; attempt++) {
    scrapes = await Promise.all(ids.map((id) => scrape(metricsPorts.get(id)!).then((m) => m.samples)));
    const applied = (p: number): (number | undefined)[] => scrapes.map((m) => m.get(`raftlock_raft_applied_index{partition="${p}"}`));
    if ([0, 1, 2].every((p) => new Set(applied(p)).size === 1)) break;
    await sleep(100);
  }
  for (let p = 0; p < 3; p++) {
    const label = `{partition="${p}"}`;
    t.same(scrapes.map((m) => m.get(`raftlock_raft_is_leader${label}`)), ids.map((id) => (id === leadership.leaders[p] ? 1 : 0)), `partition ${p}: led by ${leadership.leaders[p]}`);
    t.same(scrapes.map((m) => m.get(`raftlock_raft_term${label}`)), ids.map(() => leadership.terms[p]), `partition ${p}: one term`);
    t.equal(new Set(scrapes.map((m) => m.get(`raftlock_raft_applied_index${label}`))).size, 1, `partition ${p}: every node applied the same entries`);
    t.ok(scrapes.every((m) => m.get(`raftlock_raft_leader_changes_total${label}`)! >= 1), `partition ${p}: each node saw a leader elected`);
  }
  t.equal(scrapes[0]!.get('raftlock_commands_total{command="klock",result="ok"}'), 6, 'the node the client talked to counts its commands');
  t.equal(scrapes[1]!.get('raftlock_commands_total{command="klock",result="ok"}'), undefined, 'forwarded commands are not counted again on the leader');
  const locks = (m: Map<string, number>): number => [0, 1, 2].reduce((n, p) => n + (m.get(`raftlock_locks{partition="${p}",durability="persistent"}`) ?? 0), 0);
  t.same(scrapes.map(locks), [6, 6, 6], 'PERSISTENT locks are replicated to every node');
});
