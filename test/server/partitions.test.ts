import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RaftlockServer } from '../../src/server/server.js';
import { DEFAULT_CONFIG, parseConfig, parsePeers } from '../../src/server/config.js';
import { DataDirIncarnations, openDataDir } from '../../src/server/datadir.js';
import { partitionOfKey } from '../../src/cluster/slots.js';
import { RawClient } from '../helpers/raw-client.js';

const CROSSSLOT = { err: "CROSSSLOT Keys in request don't hash to the same slot" };

t.test('keys are spread over partitions, each its own Raft group on one WAL, and survive a restart', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'raftlock-partitions-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const config = { ...DEFAULT_CONFIG, port: 0, httpPort: 0, dataDir, logLevel: 'silent' as const, partitions: 4 };
  const first = new RaftlockServer(config);
  t.teardown(() => first.close());
  let c = await RawClient.connect(await first.listen());
  const keys = Array.from({ length: 40 }, (_, i) => `lock:${i}`);
  const used = new Set(keys.map((k) => partitionOfKey(k, 4)));
  t.equal(used.size, 4, 'the keys land in all four partitions');
  for (const [i, key] of keys.entries()) t.equal(await c.call('KLOCK', key, `o${i}`, 600_000), 0, `${key} granted`);
  t.equal(await c.call('KLOCK', keys[3]!, 'other', 600_000), null, 'held');
  t.equal(await c.call('KGETLOCK', keys[5]!).then((r) => (r as unknown[])[0]), 'o5');
  t.equal(await c.call('DBSIZE'), 40, 'DBSIZE sums every partition');
  const locks = String(await c.call('INFO', 'locks'));
  t.match(locks, /persistent_locks:40/);
  const raft = String(await c.call('INFO', 'raft'));
  t.match(raft, /raft_partitions:4/);
  for (let p = 0; p < 4; p++) t.match(raft, new RegExp(`partition${p}:role=leader,term=\\d+,leader=n1,`), `partition ${p} has a leader`);
  // Multi-key commands stay within one partition, as Redis Cluster's stay within one slot.
  const [a, b] = [keys.find((k) => partitionOfKey(k, 4) === 0)!, keys.find((k) => partitionOfKey(k, 4) === 1)!];
  t.same(await c.call('DEL', a, b), CROSSSLOT);
  t.same(await c.call('EXISTS', a, b), CROSSSLOT);
  t.same(await c.call('UNLINK', a, b), CROSSSLOT);
  t.same(await c.call('SET', '{user}:1', 'x'), { ok: 'OK' });
  t.same(await c.call('SET', '{user}:2', 'y'), { ok: 'OK' });
  t.equal(await c.call('EXISTS', '{user}:1', '{user}:2', '{user}:1'), 3, 'a hash tag keeps keys together');
  t.equal(await c.call('DEL', '{user}:1', '{user}:2'), 2);
  t.equal(await c.call('KUNLOCK', keys[7]!, 'o7'), 1);
  c.close();
  await first.close();

  const second = new RaftlockServer(config);
  t.teardown(() => second.close());
  c = await RawClient.connect(await second.listen());
  t.equal(await c.call('DBSIZE'), 39, 'every partition replayed its log');
  t.equal(await c.call('KLOCK', keys[7]!, 'new', 1000), 1, 'the released lock is granted with the next token');
  t.equal(await c.call('KLOCK', keys[8]!, 'new', 1000), null, 'the others are still held');
  c.close();
  await second.close();

  const fewer = new RaftlockServer({ ...config, partitions: 2 });
  await t.rejects(fewer.listen(), /the WAL holds partition [23], but this node has 2 partitions/);
  await fewer.close();
});

t.test('the partition count is fixed when the data directory is created', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'raftlock-partitions-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  t.equal(openDataDir(dataDir, 'n1', 8).partitions, 8);
  t.equal(openDataDir(dataDir, 'n1', 8).partitions, 8, 'reopened with the same count');
  t.throws(() => openDataDir(dataDir, 'n1', 4), /created with 8 partition\(s\), not 4: the partition count is fixed \(use --partitions 8/);
  t.equal(parseConfig(['--partitions', '16']).partitions, 16);
  t.equal(parseConfig([]).partitions, 1, 'one partition unless asked');
  const peers = ['--peers', 'n1=127.0.0.1:17001,n2=127.0.0.1:17002,n3=127.0.0.1:17003'];
  t.equal(parseConfig(peers).partitions, 8, 'a cluster defaults to eight');
  t.equal(parseConfig([...peers, '--partitions', '3']).partitions, 3);
  t.equal(parseConfig(peers).peers?.get('n2')?.port, 17002);
  t.throws(() => openDataDir(dataDir, 'n1', 8, ['n1', 'n2']), /founded by \[n1\], not \[n1,n2\]/, 'the founding voters are fixed too');
});

t.test('a data directory has an incarnation for life, and keeps its peers\' across reopening', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'raftlock-incarnation-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  t.equal(DataDirIncarnations.open(dataDir), undefined, 'none before the directory is opened');
  const voters = ['n1', 'n2', 'n3'];
  const created = openDataDir(dataDir, 'n1', 8, voters).incarnation!;
  t.match(created, /^[0-9a-f]{24}$/);
  t.equal(openDataDir(dataDir, 'n1', 8, voters).incarnation, created, 'reopening keeps it');
  const other = mkdtempSync(join(tmpdir(), 'raftlock-incarnation-'));
  t.teardown(() => rmSync(other, { recursive: true, force: true }));
  t.not(openDataDir(other, 'n1', 8, voters).incarnation, created, 'another directory of the same node gets another');

  const incarnations = DataDirIncarnations.open(dataDir)!;
  t.equal(incarnations.own, created);
  t.equal(incarnations.known('n2'), undefined);
  t.equal(incarnations.known('constructor'), undefined, 'only peers it was told of');
  incarnations.remember('n2', 'aaaa');
  incarnations.remember('n3', 'bbbb');
  const reopened = DataDirIncarnations.open(dataDir)!;
  t.same([reopened.known('n2'), reopened.known('n3')], ['aaaa', 'bbbb'], 'remembered on disk');
  reopened.forget('n2');
  t.equal(DataDirIncarnations.open(dataDir)!.known('n2'), undefined, 'forgetting is on disk too');
  t.equal(DataDirIncarnations.open(dataDir)!.known('n3'), 'bbbb');
  t.equal(openDataDir(dataDir, 'n1', 8, voters).incarnation, created, 'the identity checks still pass');

  // A directory from before incarnations gets one when first opened.
  const old = mkdtempSync(join(tmpdir(), 'raftlock-incarnation-'));
  t.teardown(() => rmSync(old, { recursive: true, force: true }));
  writeFileSync(join(old, 'node.json'), JSON.stringify({ nodeId: 'n1', createdAt: '2026-01-01T00:00:00.000Z', partitions: 8, voters }) + '\n');
  t.equal(DataDirIncarnations.open(old), undefined);
  const added = openDataDir(old, 'n1', 8, voters).incarnation;
  t.match(added, /^[0-9a-f]{24}$/);
  t.equal(DataDirIncarnations.open(old)!.own, added);
});

t.test('--peers must be well formed and list this node', async (t) => {
  t.throws(() => parsePeers('n1=127.0.0.1'), /expected id=host:port/);
  t.throws(() => parsePeers('n1=127.0.0.1:1,n1=127.0.0.1:2'), /listed twice/);
  t.throws(() => parsePeers('n1=h:70000'), /port out of range/);
  t.same(parsePeers('a=[::1]:7000').get('a'), { host: '::1', port: 7000 });
});
