import t from 'tap';
import { ErrReadIndexDropped } from '../../raft/errors.js';
import type { MsgApp } from '../../raft/types.js';
import { Network, bytes, drain, loneNode, text } from './network.js';

const ids = (n: number): string[] => Array.from({ length: n }, (_, i) => `n${i + 1}`);
const reads = (net: Network, id: string) => net.node(id).readStates.map((rs) => `${text(rs.ctx)}@${rs.index}`);

t.test('ReadIndex on the leader is answered only after a quorum acknowledges a later heartbeat', async (t) => {
  const net = new Network(ids(3), {}, 1);
  const leader = net.elect();
  net.propose(leader, 'w');
  net.stabilize();
  const commit = net.node(leader).raw.status().commit;
  net.node(leader).raw.readIndex(bytes('r1'));
  const rd = net.node(leader).raw.ready();
  t.same(rd.readStates, [], 'not answered yet');
  const beats = rd.messages.filter((m) => m.type === 'MsgHeartbeat');
  t.equal(beats.length, 2, 'a heartbeat round goes out at once');
  net.processReady(net.node(leader), rd);
  const [toOne] = net.queue.splice(0);
  net.deliverOne(toOne!);
  net.flush();
  t.same(reads(net, leader), [], 'no acknowledgement yet');
  const [ack] = net.queue.splice(0);
  t.equal(ack?.type, 'MsgHeartbeatResp');
  net.deliverOne(ack!);
  net.flush();
  t.same(reads(net, leader), [`r1@${commit}`], 'one follower and the leader are a quorum');
});

t.test('reads that share a Ready share one heartbeat round', async (t) => {
  const net = new Network(ids(3), {}, 1);
  const leader = net.elect();
  for (let i = 0; i < 10; i++) net.node(leader).raw.readIndex(bytes(`r${i}`));
  const rd = net.node(leader).raw.ready();
  t.equal(rd.messages.filter((m) => m.type === 'MsgHeartbeat').length, 2);
  net.processReady(net.node(leader), rd);
  net.stabilize();
  t.equal(net.node(leader).readStates.length, 10);
});

t.test('a read waits until the new leader has committed an entry of its term', async (t) => {
  const { raw, storage } = loneNode('a', ['a', 'b', 'c'], { preVote: false });
  raw.campaign();
  raw.step({ type: 'MsgVoteResp', from: 'b', to: 'a', term: 2, reject: false });
  const out = drain(raw, storage);
  raw.readIndex(bytes('early'));
  t.equal(drain(raw, storage).filter((m) => m.type === 'MsgHeartbeat').length, 0, 'no round before the first commit');
  const app = out.find((m): m is MsgApp => m.type === 'MsgApp' && m.to === 'b')!;
  raw.step({ type: 'MsgAppResp', from: 'b', to: 'a', term: 2, index: app.index + app.entries.length, reject: false, rejectHint: 0, logTerm: 0 });
  const round = drain(raw, storage).filter((m) => m.type === 'MsgHeartbeat');
  t.equal(round.length, 2, 'the waiting read starts its round once the no-op commits');
  const hb = round[0]!;
  t.ok(hb.type === 'MsgHeartbeat');
  if (hb.type !== 'MsgHeartbeat') return;
  raw.step({ type: 'MsgHeartbeatResp', from: hb.to, to: 'a', term: 2, round: hb.round, tick: hb.tick });
  const rd = raw.ready();
  t.same(rd.readStates.map((rs) => [text(rs.ctx), rs.index]), [['early', 2]]);
});

t.test('a follower forwards its read to the leader and gets the leader\'s commit index', async (t) => {
  const net = new Network(ids(3), {}, 1);
  const leader = net.elect();
  for (let i = 0; i < 3; i++) net.propose(leader, `w${i}`);
  net.stabilize();
  const follower = ids(3).find((id) => id !== leader)!;
  net.node(follower).raw.readIndex(bytes('f1'));
  net.stabilize();
  t.same(reads(net, follower), [`f1@${net.node(leader).raw.status().commit}`]);
  t.same(reads(net, leader), []);
});

t.test('a deposed leader never answers a read', async (t) => {
  const net = new Network(ids(5), {}, 4);
  const leader = net.elect();
  net.isolate(leader);
  net.node(leader).raw.readIndex(bytes('stale'));
  const others = ids(5).filter((id) => id !== leader);
  net.tick(30, others);
  const next = net.leaders().find((id) => id !== leader)!;
  net.propose(next, 'newer');
  net.stabilize();
  net.tick(30);
  t.same(reads(net, leader), [], 'never answered');
  net.heal();
  net.tick(5);
  t.same(reads(net, leader), [], 'not even after rejoining');
  t.not(net.node(leader).raw.status().role, 'leader');
});

t.test('the lease lasts electionTicks - leaseDriftTicks from the last acknowledged heartbeat', async (t) => {
  const cases: [number, number][] = [[2, 8], [0, 10], [5, 5]];
  for (const [drift, want] of cases) {
    const net = new Network(ids(3), { leaseDriftTicks: drift }, 1);
    const leader = net.elect();
    net.tick(2);
    t.ok(net.node(leader).raw.leaseValid(), 'valid while a quorum acknowledges heartbeats');
    net.isolate(leader);
    let ticks = 0;
    while (net.node(leader).raw.leaseValid()) {
      net.tick(1);
      ticks++;
    }
    t.equal(ticks, want, `drift ${drift}: lease ends ${want} ticks after the last acknowledged heartbeat`);
    t.equal(net.node(leader).raw.status().role, 'leader', 'while the leader still believes it leads');
  }
});

t.test('lease reads are answered at once while the lease holds, by a heartbeat round after', async (t) => {
  const net = new Network(ids(3), { readOnlyOption: 'lease' }, 1);
  const leader = net.elect();
  net.tick(2);
  net.node(leader).raw.readIndex(bytes('fast'));
  const rd = net.node(leader).raw.ready();
  t.same(rd.readStates.map((rs) => text(rs.ctx)), ['fast'], 'answered from the lease');
  t.equal(rd.messages.filter((m) => m.type === 'MsgHeartbeat').length, 0);
  net.processReady(net.node(leader), rd);
  net.isolate(leader);
  net.tick(8);
  t.notOk(net.node(leader).raw.leaseValid());
  net.node(leader).raw.readIndex(bytes('slow'));
  net.stabilize();
  t.same(reads(net, leader), ['fast@2'], 'without the lease, the read needs a quorum');
});

t.test('there is no lease without CheckQuorum or during a leadership transfer', async (t) => {
  const noCq = new Network(ids(3), { checkQuorum: false }, 1);
  const l1 = noCq.elect();
  noCq.tick(2);
  t.notOk(noCq.node(l1).raw.leaseValid());
  const net = new Network(ids(3), {}, 1);
  const l2 = net.elect();
  net.tick(2);
  t.ok(net.node(l2).raw.leaseValid());
  const target = ids(3).find((id) => id !== l2)!;
  net.cutLink(l2, target);
  net.node(l2).raw.transferLeader(target);
  t.notOk(net.node(l2).raw.leaseValid(), 'not while transferring');
  net.tick(12);
  t.notOk(net.node(l2).raw.leaseValid(), 'nor after MsgTimeoutNow was sent, even if the transfer failed');
});

t.test('a new leader has no lease until it commits an entry of its own term', async (t) => {
  const net = new Network(ids(3), {}, 1);
  const first = net.elect();
  net.tick(2);
  const next = ids(3).find((id) => id !== first)!;
  // Append acknowledgements are lost from now on; heartbeats and their acks still arrive.
  const deliverable = net.deliverable.bind(net);
  net.deliverable = (m) => m.type !== 'MsgAppResp' && deliverable(m);
  net.node(first).raw.transferLeader(next);
  net.stabilize();
  t.equal(net.node(next).raw.status().role, 'leader');
  net.tick(3);
  t.notOk(net.node(next).raw.leaseValid(), 'heartbeats are acknowledged, but its no-op is not committed');
  net.deliverable = deliverable;
  net.tick(1);
  net.stabilize();
  t.ok(net.node(next).raw.leaseValid(), 'valid once an entry of its term commits');
});

t.test('a single voter answers reads at once', async (t) => {
  const { raw, storage } = loneNode('a', ['a']);
  raw.campaign();
  drain(raw, storage);
  raw.readIndex(bytes('solo'));
  t.same(raw.ready().readStates.map((rs) => text(rs.ctx)), ['solo']);
});

t.test('read requests that cannot be served throw ErrReadIndexDropped', async (t) => {
  const net = new Network(ids(3), { maxPendingReadIndex: 2 }, 1);
  const leader = net.elect();
  const raw = net.node(leader).raw;
  raw.readIndex(bytes('a'));
  t.throws(() => raw.readIndex(bytes('a')), ErrReadIndexDropped, 'duplicate ctx');
  raw.readIndex(bytes('b'));
  t.throws(() => raw.readIndex(bytes('c')), ErrReadIndexDropped, 'limit reached');
  net.stabilize();
  t.equal(net.node(leader).readStates.length, 2);
  const { raw: orphan } = loneNode('x', ['x', 'y', 'z']);
  t.throws(() => orphan.readIndex(bytes('r')), ErrReadIndexDropped, 'no leader known');
});
