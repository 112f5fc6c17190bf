import t from 'tap';
import type { Entry, Snapshot } from '../../raft/types.js';
import { Network, compact, drain, encodeState, loneNode } from './network.js';

const ids = (n: number): string[] => Array.from({ length: n }, (_, i) => `n${i + 1}`);

/** A 3-node cluster where `behind` missed 20 writes that every other node has compacted away. */
function fallenBehind(seed = 1) {
  const net = new Network(ids(3), { snapshotRetryTicks: 20 }, seed);
  const leader = net.elect();
  const behind = ids(3).find((id) => id !== leader)!;
  net.isolate(behind);
  for (let i = 0; i < 20; i++) net.propose(leader, `w${i}`);
  net.stabilize();
  for (const id of ids(3)) if (id !== behind) compact(net.node(id));
  net.heal();
  return { net, leader, behind };
}

t.test('a follower that fell behind compaction installs a snapshot and catches up', async (t) => {
  const { net, leader, behind } = fallenBehind();
  net.tick(3);
  net.propose(leader, 'after');
  net.stabilize();
  t.equal(net.delivered.filter((m) => m.type === 'MsgSnap').length, 1, 'one snapshot sent');
  t.same(net.node(behind).applied, net.node(leader).applied, 'state machines agree');
  t.equal(net.node(behind).applied.at(-1), 'after', 'and replication resumed after the snapshot');
  const snap = net.node(behind).readies.find((rd) => rd.snapshot !== undefined)!.snapshot!;
  t.equal(net.node(behind).storage.firstIndex(), snap.meta.index + 1, 'the follower\'s log starts after the snapshot');
  t.match(net.node(leader).raw.status().progress![behind], { state: 'replicate' });
});

t.test('a lost snapshot is sent again after snapshotRetryTicks', async (t) => {
  const { net, leader, behind } = fallenBehind(2);
  let dropped = 0;
  net.dropIf = (m) => m.type === 'MsgSnap' && dropped++ === 0;
  net.tick(3);
  t.match(net.node(leader).raw.status().progress![behind], { state: 'snapshot' });
  t.same(net.node(behind).applied, []);
  net.tick(25);
  t.equal(dropped, 2, 'sent twice');
  t.same(net.node(behind).applied, net.node(leader).applied);
});

t.test('reportSnapshot ends the wait for a snapshot early', async (t) => {
  for (const status of ['failure', 'finish'] as const) {
    const { net, leader, behind } = fallenBehind(3);
    let sent = 0;
    net.dropIf = (m) => m.type === 'MsgSnap' && sent++ === 0;
    net.tick(3);
    net.node(leader).raw.reportSnapshot(behind, status);
    t.match(net.node(leader).raw.status().progress![behind], { state: 'probe', paused: true }, `${status}: probing after a heartbeat`);
    net.tick(3);
    t.same(net.node(behind).applied, net.node(leader).applied, `${status}: caught up`);
  }
});

t.test('reportUnreachable stops pipelining to a follower until it answers a probe', async (t) => {
  const net = new Network(ids(3), {}, 1);
  const leader = net.elect();
  const f = ids(3).find((id) => id !== leader)!;
  t.match(net.node(leader).raw.status().progress![f], { state: 'replicate' });
  net.node(leader).raw.reportUnreachable(f);
  t.match(net.node(leader).raw.status().progress![f], { state: 'probe' });
  net.propose(leader, 'x');
  net.tick(1);
  t.match(net.node(leader).raw.status().progress![f], { state: 'replicate' });
});

const noop = (index: number, term: number): Entry => ({ index, term, type: 'noop', data: new Uint8Array() });
const snapshot = (index: number, term: number): Snapshot => ({
  meta: { index, term, conf: { voters: ['a', 'b', 'c'], learners: [] } }, data: encodeState(['s']),
});

t.test('snapshots the follower does not need are not installed', async (t) => {
  const cases: [string, Snapshot, number, boolean][] = [
    ['older than the commit index', snapshot(2, 2), 3, false],
    ['whose last entry the log already holds', snapshot(4, 2), 4, false],
    ['that conflicts with the log', snapshot(4, 3), 4, true],
    ['past the end of the log', snapshot(9, 2), 9, true],
  ];
  for (const [name, snap, wantIndex, installed] of cases) {
    const { raw, storage } = loneNode('a', ['a', 'b', 'c']);
    raw.step({ type: 'MsgApp', from: 'b', to: 'a', term: 2, index: 1, logTerm: 1, entries: [noop(2, 2), noop(3, 2), noop(4, 2)], commit: 3 });
    drain(raw, storage);
    raw.step({ type: 'MsgSnap', from: 'b', to: 'a', term: 2, snapshot: snap });
    const rd = raw.ready();
    t.equal(rd.snapshot !== undefined, installed, `${name}: installed=${installed}`);
    const resp = rd.messages.find((m) => m.type === 'MsgAppResp');
    t.match(resp, { index: wantIndex, reject: false }, `${name}: acknowledges ${wantIndex}`);
    t.equal(raw.status().commit, wantIndex);
  }
});
