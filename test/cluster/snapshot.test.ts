import t from 'tap';
import { Replica, type SnapshotPacing, type SnapshotPolicy } from '../../src/cluster/replica.js';
import { LockStateMachine } from '../../src/lock/machine.js';
import { encodeLockSnapshot } from '../../src/lock/snapshot.js';
import { MemoryFs, SnapshotStore, Wal } from '../../src/storage/index.js';
import type { Message } from '../../raft/types.js';
import { mulberry32 } from '../helpers/random.js';
import { settle, waitFor } from '../helpers/wait.js';
import { ReplicaNet } from './harness/replica-net.js';

const SMALL: Partial<SnapshotPolicy> = { minEntries: 20, tableRatio: 0, trailingEntries: 5 };

async function openReplica(
  fs: MemoryFs, id: string, voters: string[], clock: () => number, send: (m: Message[]) => void,
  options: { snapshots?: boolean; policy?: Partial<SnapshotPolicy>; pacing?: SnapshotPacing; onFatal?: (error: Error) => void } = {},
) {
  const { wal, groups, report } = await Wal.open({ fs, dir: `/${id}/wal`, segmentBytes: 4096 });
  const snapshots = options.snapshots === false ? undefined : await SnapshotStore.open({ fs, dir: `/${id}/snap` });
  const machine = new LockStateMachine();
  const replay = groups.get(0);
  const replayed = replay?.entries.length ?? 0;
  const replica = await Replica.open({
    id, group: 0, conf: { voters, learners: [] }, wal, replay, machine, clock, rng: mulberry32(id.charCodeAt(1)), send,
    snapshots, snapshotPolicy: options.policy ?? SMALL, snapshotPacing: options.pacing, onFatal: options.onFatal,
  });
  return { replica, machine, wal, snapshots, replayed, report };
}

async function leaderOf(node: { replica: Replica }): Promise<void> {
  node.replica.campaign();
  await waitFor(() => node.replica.isLeader, () => node.replica.tick(), 'leadership');
  // A read completes once the leader committed in its term: the whole log is applied.
  await node.replica.read(() => undefined);
}

/** The whole replicated state, comparable across replicas. */
function state(machine: LockStateMachine): string {
  return Buffer.from(encodeLockSnapshot(machine, 0)).toString('hex');
}

t.test('a single node snapshots, compacts its WAL, and restarts from the snapshot plus the log after it', async (t) => {
  const fs = new MemoryFs();
  let now = 1000;
  const first = await openReplica(fs, 'n1', ['n1'], () => now, () => undefined);
  await leaderOf(first);
  const tokens: bigint[] = [];
  for (let i = 0; i < 150; i++) {
    now += 3;
    const token = await first.replica.propose({ kind: 'lock', durability: 'persistent', resource: `r${i % 30}`, owner: `o${i}`, ttlMs: i % 2 === 0 ? 100_000 : 10 });
    if (token !== null) tokens.push(token as bigint);
    if (i % 3 === 0) await first.replica.propose({ kind: 'unlock', durability: 'persistent', resource: `r${i % 30}`, owner: `o${i}` });
  }
  await waitFor(async () => (await first.snapshots!.list(0)).some((s) => s.index > 150), () => undefined, 'a durable snapshot');
  t.ok(first.replica.snapshotIndex > 150, `snapshot at ${first.replica.snapshotIndex}`);
  t.equal((await first.snapshots!.list(0)).length, 1, 'older snapshot files are deleted');
  const segments = (await fs.readdir('/n1/wal')).filter((n) => n.endsWith('.log'));
  await waitFor(async () => (await fs.readdir('/n1/wal')).filter((n) => n.endsWith('.log')).length < segments.length || segments.length <= 2,
    () => undefined, 'WAL compaction');
  const expected = state(first.machine);
  const remaining = first.machine.info('persistent', 'r0', now);
  fs.crash(mulberry32(3));
  now += 50_000;
  const second = await openReplica(fs, 'n1', ['n1'], () => now, () => undefined);
  t.ok(second.replica.snapshotIndex > 150, 'restored from the snapshot');
  t.ok(second.replayed < 100, `replayed only the log after the snapshot (${second.replayed} entries)`);
  t.ok(second.report.segments.length < 20, `compaction deleted covered segments (${second.report.segments.length} left)`);
  await leaderOf(second);
  t.equal(state(second.machine), expected, 'the same lock table once the log after the snapshot is applied again');
  const info = await second.replica.read((logNow) => second.machine.info('persistent', 'r0', logNow));
  t.same(info, remaining, 'same owner, token and remaining lease (downtime does not count)');
  const next = await second.replica.propose({ kind: 'lock', durability: 'persistent', resource: 'r1', owner: 'new', ttlMs: 10 });
  t.ok(next === null || (next as bigint) > tokens.reduce((a, b) => (a > b ? a : b)), 'tokens never go back');
});

t.test('paced snapshots are encoded in slices between other work, one at a time, and restore the state they were taken at', async (t) => {
  const fs = new MemoryFs();
  let now = 1000;
  let slices = 0;
  let holders = 0;
  let maxHolders = 0;
  let acquired = 0;
  const pacing: SnapshotPacing = {
    sliceRecords: 4,
    nextSlice: () => {
      slices++;
      return new Promise((resolve) => setImmediate(resolve));
    },
    acquire: async () => {
      acquired++;
      holders++;
      maxHolders = Math.max(maxHolders, holders);
      return () => void holders--;
    },
  };
  const first = await openReplica(fs, 'n1', ['n1'], () => now, () => undefined, { pacing });
  await leaderOf(first);
  const writes: Promise<unknown>[] = [];
  for (let i = 0; i < 200; i++) {
    now += 3;
    // Not awaited one by one: writes keep being applied while a snapshot is encoded.
    writes.push(first.replica.propose({ kind: 'lock', durability: 'persistent', resource: `r${i}`, owner: `o${i}`, ttlMs: 100_000 }));
    if (i % 20 === 0) await Promise.all(writes.splice(0));
  }
  await Promise.all(writes);
  await waitFor(async () => (await first.snapshots!.list(0)).some((s) => s.index > 150), () => undefined, 'a durable snapshot');
  t.ok(acquired >= 1 && maxHolders === 1, `${acquired} paced snapshots, never two at once`);
  t.ok(slices >= 10, `encoded in ${slices} slices of 4 records`);
  await waitFor(() => holders === 0, () => undefined, 'the last snapshot released its turn');
  const expected = state(first.machine);
  fs.crash(mulberry32(4));
  const second = await openReplica(fs, 'n1', ['n1'], () => now, () => undefined, { pacing });
  t.ok(second.replica.snapshotIndex > 150, 'restored from a paced snapshot');
  await leaderOf(second);
  t.equal(state(second.machine), expected, 'the same lock table once the log after the snapshot is applied again');
});

t.test('a paced snapshot of a follower waits for the log to hold what the follower applied before its WAL write returned', async (t) => {
  const fs = new MemoryFs();
  const ids = ['n1', 'n2', 'n3'];
  type Node = Awaited<ReturnType<typeof openReplica>>;
  const net = new ReplicaNet<Node>(0);
  const { nodes, down, deliver, tickAll } = net;
  const policy = { minEntries: 20, tableRatio: 0, trailingEntries: 1000 };
  const fatal: Error[] = [];
  // The follower f's snapshots wait for a turn the test hands out; its WAL writes wait for a gate.
  let f = '';
  let turn: (() => void) | null = null;
  let gate: Promise<void> | null = null;
  let openGate = (): void => undefined;
  const pacingOf = (id: string): SnapshotPacing => ({
    sliceRecords: 4,
    nextSlice: () => new Promise((resolve) => setImmediate(resolve)),
    acquire: () => new Promise<() => void>((resolve) => {
      if (id === f) turn = () => resolve(() => undefined);
      else resolve(() => undefined);
    }),
  });
  for (const id of ids) {
    const node = await openReplica(fs, id, ids, net.clock, net.send, { policy, pacing: pacingOf(id), onFatal: (e) => fatal.push(e) });
    const append = node.wal.append.bind(node.wal);
    node.wal.append = async (records) => {
      if (id === f && gate !== null) await gate;
      return append(records);
    };
    nodes.set(id, node);
  }
  nodes.get('n1')!.replica.campaign();
  await waitFor(() => [...nodes.values()].some((n) => n.replica.isLeader), tickAll, 'a leader');
  const leader = [...nodes.values()].find((n) => n.replica.isLeader)!;
  f = ids.find((id) => nodes.get(id) !== leader)!;
  const follower = nodes.get(f)!;
  const write = async (i: number): Promise<void> => {
    let done = false;
    void leader.replica.propose({ kind: 'lock', durability: 'persistent', resource: `r${i}`, owner: 'o', ttlMs: 60_000 }).then(() => (done = true));
    await waitFor(() => done, deliver, `write ${i}`);
  };
  for (let i = 0; i < 30; i++) await write(i);
  await waitFor(() => follower.replica.appliedIndex >= leader.replica.appliedIndex && turn !== null, tickAll, 'the follower due for a snapshot, waiting for its turn');
  // The follower misses writes the others commit; when it hears of them, it gets them and their commit together.
  down.add(f);
  for (let i = 30; i < 60; i++) await write(i);
  gate = new Promise((resolve) => (openGate = resolve));
  down.delete(f);
  await waitFor(() => follower.replica.appliedIndex >= leader.replica.appliedIndex, tickAll, 'the follower to apply the writes it missed');
  turn!();
  for (let i = 0; i < 20; i++) await settle();
  t.same(fatal, [], 'no snapshot of entries its log does not hold yet');
  openGate();
  gate = null;
  await waitFor(async () => (await follower.snapshots!.list(0)).some((s) => s.index > 50), tickAll, 'the follower to take its snapshot');
  t.same(fatal, []);
  t.equal(state(follower.machine), state(leader.machine), 'the follower has the leader\'s table');
});

t.test('a leader reads a snapshot it no longer holds in memory back from its file for a lagging follower; without the file it encodes its table', async (t) => {
  for (const [withFile, paced] of [[true, false], [false, false], [true, true]]) {
    // Paced: snapshots are encoded, and the follower's install decoded, a few records at a time.
    let slices = 0;
    const pacing: SnapshotPacing | undefined = !paced ? undefined : {
      sliceRecords: 4,
      nextSlice: () => {
        slices++;
        return new Promise((resolve) => setImmediate(resolve));
      },
      acquire: async () => () => undefined,
    };
    const fs = new MemoryFs();
    const ids = ['n1', 'n2', 'n3'];
    type Node = Awaited<ReturnType<typeof openReplica>>;
    const net = new ReplicaNet<Node>(0);
    const { nodes, down, deliver, tickAll } = net;
    for (const id of ids) nodes.set(id, await openReplica(fs, id, ids, net.clock, net.send, { pacing }));
    nodes.get('n1')!.replica.campaign();
    await waitFor(() => [...nodes.values()].some((n) => n.replica.isLeader), tickAll, 'a leader');
    const leader = [...nodes.values()].find((n) => n.replica.isLeader)!;
    const laggard = ids.find((id) => nodes.get(id) !== leader)!;
    let loads = 0;
    const load = leader.snapshots!.load.bind(leader.snapshots!);
    leader.snapshots!.load = async (group) => {
      loads++;
      return withFile ? load(group) : null;
    };
    down.add(laggard);
    for (let i = 0; i < 60; i++) {
      let done = false;
      void leader.replica.propose({ kind: 'lock', durability: 'persistent', resource: `r${i}`, owner: 'o', ttlMs: 60_000 }).then(() => (done = true));
      await waitFor(() => done, deliver, `write ${i}`);
    }
    // Until no further snapshot is due (SMALL: every 20 entries) and the last one is durable.
    await waitFor(async () => leader.replica.appliedIndex - leader.replica.snapshotIndex < 20
      && (await leader.snapshots!.list(0)).at(-1)?.index === leader.replica.snapshotIndex, deliver, 'the leader\'s last snapshot to be durable');
    // Its bytes are dropped from memory once durable; what the follower gets must come from somewhere.
    const fileIndex = (await leader.snapshots!.list(0)).at(-1)!.index;
    down.delete(laggard);
    const follower = nodes.get(laggard)!;
    await waitFor(() => follower.replica.appliedIndex >= leader.replica.appliedIndex, tickAll, 'the follower to catch up');
    if (withFile) t.equal(follower.replica.snapshotIndex, fileIndex, 'it installed the snapshot of the file');
    else t.ok(follower.replica.snapshotIndex >= fileIndex, `it installed the table encoded again (${follower.replica.snapshotIndex}, file ${fileIndex})`);
    t.ok(loads >= 1, `${withFile ? 'file' : 'no file'}: the leader looked for the file`);
    if (paced) t.ok(slices > 20, `paced: ${slices} slices`);
    t.equal(state(follower.machine), state(leader.machine), `${withFile ? 'file' : 'no file'}: the follower has the leader's table`);
  }
});

t.test('a snapshot saved just before a crash, without its WAL marker, is used and its marker recorded', async (t) => {
  const fs = new MemoryFs();
  let now = 1000;
  // Without a store: the log holds every entry.
  const first = await openReplica(fs, 'n1', ['n1'], () => now, () => undefined, { snapshots: false });
  await leaderOf(first);
  for (let i = 0; i < 40; i++) {
    now += 1;
    await first.replica.propose({ kind: 'lock', durability: 'persistent', resource: `r${i % 7}`, owner: `o${i % 3}`, ttlMs: 1000 });
  }
  const index = first.replica.appliedIndex;
  const term = first.replica.raw.status().term;
  const store = await SnapshotStore.open({ fs, dir: '/n1/snap' });
  await store.save({ group: 0, index, term, conf: { voters: ['n1'], learners: [] }, data: encodeLockSnapshot(first.machine, now) });
  for (let i = 0; i < 5; i++) await first.replica.propose({ kind: 'lock', durability: 'persistent', resource: `s${i}`, owner: 'a', ttlMs: 1000 });
  const expected = state(first.machine);
  fs.crash(mulberry32(9));
  const second = await openReplica(fs, 'n1', ['n1'], () => now, () => undefined);
  t.equal(second.replica.snapshotIndex, index, 'restored from the file');
  await leaderOf(second);
  t.equal(state(second.machine), expected, 'file plus the log after it give the same table');
  fs.crash(mulberry32(10));
  const { groups } = await Wal.open({ fs, dir: '/n1/wal' });
  t.equal(groups.get(0)!.snapshot!.index, index, 'the marker was appended on open');
});

t.test('a marker without its snapshot file refuses to start', async (t) => {
  const fs = new MemoryFs();
  const first = await openReplica(fs, 'n1', ['n1'], () => 0, () => undefined, { policy: { minEntries: 5, tableRatio: 0, trailingEntries: 0 } });
  await leaderOf(first);
  for (let i = 0; i < 10; i++) await first.replica.propose({ kind: 'tick' });
  await waitFor(async () => (await first.snapshots!.list(0)).length > 0, () => undefined, 'a snapshot');
  await first.replica.propose({ kind: 'tick' });
  for (const s of await first.snapshots!.list(0)) await fs.unlink(s.file);
  await t.rejects(openReplica(fs, 'n1', ['n1'], () => 0, () => undefined), /snapshot marker is at index \d+ but the newest snapshot file is at none/);
});

t.test('a follower far behind is sent a snapshot, installs it, and survives a restart', async (t) => {
  const fs = new MemoryFs();
  const ids = ['n1', 'n2', 'n3'];
  type Node = Awaited<ReturnType<typeof openReplica>>;
  const net = new ReplicaNet<Node>(0);
  const { nodes, down, deliver, tickAll } = net;
  const open = (id: string) => openReplica(fs, id, ids, net.clock, net.send);
  for (const id of ids) nodes.set(id, await open(id));
  nodes.get('n1')!.replica.campaign();
  await waitFor(() => [...nodes.values()].some((n) => n.replica.isLeader), tickAll, 'a leader');
  const leader = [...nodes.values()].find((n) => n.replica.isLeader)!;
  const laggard = ids.find((id) => nodes.get(id) !== leader)!;
  down.add(laggard);
  for (let i = 0; i < 120; i++) {
    const write = leader.replica.propose({ kind: 'lock', durability: 'persistent', resource: `r${i % 25}`, owner: `o${i % 4}`, ttlMs: 60_000 });
    let done = false;
    void write.then(() => (done = true));
    await waitFor(() => done, deliver, `write ${i}`);
  }
  await waitFor(() => leader.replica.snapshotIndex > 100, deliver, 'a snapshot on the leader');
  down.delete(laggard);
  const n3 = nodes.get(laggard)!;
  t.ok(n3.replica.appliedIndex < 10, 'the follower is far behind');
  await waitFor(() => n3.replica.appliedIndex >= leader.replica.appliedIndex, tickAll, 'the follower to catch up');
  t.ok(n3.replica.snapshotIndex > 100, `it installed a snapshot (${n3.replica.snapshotIndex})`);
  t.equal(state(n3.machine), state(leader.machine), 'it has the leader\'s table');
  const after = leader.replica.propose({ kind: 'set', key: 'later', value: 'v', mode: 'always', expiry: { kind: 'none' } });
  let done = false;
  void after.then(() => (done = true));
  await waitFor(() => done && n3.machine.get('later', net.now) === 'v', tickAll, 'replication after the snapshot');
  await waitFor(async () => (await n3.snapshots!.list(0)).some((s) => s.index > 100), tickAll, 'its snapshot to be durable');
  const expected = state(n3.machine);
  // Restart n3 from its disk.
  down.add(laggard);
  fs.crash(mulberry32(4));
  const restarted = await open(laggard);
  nodes.set(laggard, restarted);
  t.ok(restarted.replica.snapshotIndex > 100, 'it restarts from the installed snapshot');
  down.delete(laggard);
  await waitFor(() => state(restarted.machine) === expected, tickAll, 'the restarted follower to apply its log again');
  t.pass('the restarted follower has the same table');
});
