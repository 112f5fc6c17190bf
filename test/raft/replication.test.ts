import t from 'tap';
import { ErrProposalDropped, ErrUsage, RaftInvariantError } from '../../raft/errors.js';
import type { Message, MsgApp } from '../../raft/types.js';
import { Network, bytes, drain, loneNode } from './network.js';

const ids = (n: number): string[] => Array.from({ length: n }, (_, i) => `n${i + 1}`);
const dropReason = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (e) {
    if (e instanceof ErrProposalDropped) return e.reason;
    throw e;
  }
  return undefined;
};

for (const size of [3, 5]) {
  t.test(`${size} nodes commit and apply proposals in order everywhere`, async (t) => {
    const net = new Network(ids(size), {}, size);
    const leader = net.elect();
    const want: string[] = [];
    for (let i = 0; i < 30; i++) {
      want.push(`cmd${i}`);
      const at = net.propose(leader, `cmd${i}`);
      t.equal(at.term, net.node(leader).raw.status().term);
      if (i % 7 === 0) net.stabilize();
    }
    net.stabilize();
    for (const n of net.nodes.values()) t.same(n.applied, want, `${n.id} applied everything in order`);
    const commits = [...net.nodes.values()].map((n) => n.raw.status().commit);
    t.ok(commits.every((c) => c === commits[0]));
  });
}

t.test('followers and candidates refuse proposals', async (t) => {
  const net = new Network(ids(3), {}, 1);
  const leader = net.elect();
  const follower = ids(3).find((id) => id !== leader)!;
  t.equal(dropReason(() => net.propose(follower, 'x')), 'not-leader');
  const { raw } = loneNode('a', ['a', 'b', 'c']);
  raw.campaign();
  t.equal(dropReason(() => raw.propose(bytes('x'))), 'not-leader');
});

t.test('proposals between two readies share one MsgApp per follower', async (t) => {
  const net = new Network(ids(3), {}, 1);
  const leader = net.elect();
  for (let i = 0; i < 50; i++) net.propose(leader, `p${i}`);
  const rd = net.node(leader).raw.ready();
  const apps = rd.messages.filter((m): m is MsgApp => m.type === 'MsgApp');
  t.equal(apps.length, 2, 'one per follower');
  t.ok(apps.every((m) => m.entries.length === 50));
  t.equal(rd.entries.length, 50, 'persisted in the same Ready, before the messages go out');
});

t.test('maxSizePerMsg splits batches and maxInflightMsgs bounds the pipeline', async (t) => {
  const net = new Network(ids(3), { maxSizePerMsg: 64, maxInflightMsgs: 3 }, 1);
  const leader = net.elect();
  for (let i = 0; i < 20; i++) net.node(leader).raw.propose(new Uint8Array(40));
  const rd = net.node(leader).raw.ready();
  const apps = rd.messages.filter((m): m is MsgApp => m.type === 'MsgApp');
  t.equal(apps.length, 6, 'three messages in flight to each follower');
  t.ok(apps.every((m) => m.entries.length === 1), 'one 56-byte entry per 64-byte message');
  const progress = net.node(leader).raw.status().progress!;
  const follower = apps[0]!.to;
  t.match(progress[follower], { state: 'replicate', paused: true, inflightMsgs: 3 });
  net.processReady(net.node(leader), rd);
  net.stabilize();
  for (const n of net.nodes.values()) t.equal(n.applied.length, 20, `${n.id} caught up as acks opened the window`);
});

t.test('maxInflightBytes bounds the pipeline by bytes', async (t) => {
  const net = new Network(ids(3), { maxSizePerMsg: 100, maxInflightBytes: 250, maxInflightMsgs: 100 }, 1);
  const leader = net.elect();
  for (let i = 0; i < 20; i++) net.node(leader).raw.propose(new Uint8Array(84));
  const rd = net.node(leader).raw.ready();
  t.equal(rd.messages.filter((m) => m.type === 'MsgApp').length, 6, 'three 100-byte messages reach 250 bytes per follower');
  net.processReady(net.node(leader), rd);
  net.stabilize();
  t.equal(net.node(leader).applied.length, 20);
});

t.test('a follower acknowledges entries in the Ready that persists them', async (t) => {
  const net = new Network(ids(3), {}, 1);
  const leader = net.elect();
  const follower = ids(3).find((id) => id !== leader)!;
  net.propose(leader, 'x');
  net.flush();
  for (const m of net.queue.splice(0)) net.deliverOne(m);
  const rd = net.node(follower).raw.ready();
  const ack = rd.messages.find((m) => m.type === 'MsgAppResp');
  t.ok(ack !== undefined && !('reject' in ack && ack.reject));
  t.equal(rd.entries.at(-1)?.index, (ack as { index: number }).index, 'the acknowledged entry is in this Ready');
  t.ok(rd.mustSync, 'and must be fsync\'d before the ack is sent');
});

/**
 * The Raft paper's Figure 8 with five servers. x (term 2) reaches s1 and s2;
 * s5 leads term 3 alone; s1 leads term 4 and copies x to s3, a majority, while
 * its own term-4 entry reaches only s2. x must not count as committed: s5 can
 * still win term 5 (with s3 and s4) and overwrite it. If s1's term-4 entry
 * reaches s3 too, x is committed with it and s5 cannot win.
 */
function figure8(ownEntryReachesMajority: boolean) {
  const s = ['s1', 's2', 's3', 's4', 's5'];
  const net = new Network(s, { checkQuorum: false, preVote: false, maxSizePerMsg: 1 }, 8);
  net.node('s1').raw.campaign();
  net.stabilize();
  net.partition(['s1', 's2'], ['s3', 's4', 's5']);
  net.propose('s1', 'x');
  net.stabilize();
  // s1 is down; s5 wins term 3 with s3 and s4, and its entries stay local.
  net.heal();
  net.isolate('s1');
  net.dropIf = (m) => m.from === 's5' && m.type === 'MsgApp';
  net.node('s5').raw.campaign();
  net.stabilize();
  net.propose('s5', 'y');
  net.stabilize();
  // s5 is down; s1 returns and wins term 4 (its first try, term 3, is refused by s3 and s4).
  net.heal();
  net.isolate('s5');
  net.restart('s1');
  const s3HasX = () => net.node('s3').storage.lastIndex() >= 3;
  net.dropIf = (m) => {
    if (m.type !== 'MsgApp' || m.from !== 's1' || !m.entries.some((e) => e.term === 4)) return false;
    // (e): the term-4 entry reaches s2 and s3. (c): it reaches s2 only, x reaches s3 (whose first probe must get through).
    if (m.to === 's4') return true;
    return m.to === 's3' && s3HasX() && !ownEntryReachesMajority;
  };
  net.node('s1').raw.campaign();
  net.stabilize();
  net.node('s1').raw.campaign();
  net.stabilize();
  return net;
}

t.test('Figure 8: an entry of an older term is not committed by counting replicas', async (t) => {
  const net = figure8(false);
  const s1 = net.node('s1').raw.status();
  t.same([s1.role, s1.term], ['leader', 4]);
  t.equal(s1.progress!.s3!.match, 3, 'x is on s1, s2 and s3');
  t.equal(s1.commit, 2, 'but is not committed: its term is 2, not 4');
  // s1 fails; s5 wins term 5 with s2, s3, s4 and overwrites x.
  net.heal();
  net.isolate('s1');
  net.restart('s5');
  net.node('s5').raw.campaign();
  net.stabilize();
  net.node('s5').raw.campaign();
  net.stabilize();
  t.same([net.node('s5').raw.status().role, net.node('s5').raw.status().term], ['leader', 5]);
  net.heal();
  net.restart('s1');
  net.propose('s5', 'z');
  net.tick(3);
  for (const n of net.nodes.values()) t.same(n.applied, ['y', 'z'], `${n.id}: x was never applied, y and z were`);
});

t.test('Figure 8: once the leader commits an entry of its term, older entries commit with it', async (t) => {
  const net = figure8(true);
  t.equal(net.node('s1').raw.status().commit, 4, 'x (index 3) and the term-4 no-op are committed');
  net.heal();
  net.isolate('s1');
  net.restart('s5');
  for (let i = 0; i < 3; i++) {
    net.node('s5').raw.campaign();
    net.stabilize();
  }
  t.not(net.node('s5').raw.status().role, 'leader', 's5 lacks a committed entry and cannot win');
  t.same(net.node('s2').applied, ['x']);
});

t.test('conflict back-off skips a whole divergent term in one round trip', async (t) => {
  const s = ids(5);
  const net = new Network(s, { preVote: false }, 11);
  const old = net.elect();
  const majority = s.filter((id) => id !== old).slice(0, 3);
  const minority = s.filter((id) => !majority.includes(id));
  net.partition(minority, majority);
  for (let i = 0; i < 60; i++) net.propose(old, `stale${i}`);
  net.stabilize();
  net.tick(40, majority);
  const leader = majority.find((id) => net.node(id).raw.status().role === 'leader')!;
  t.ok(leader !== undefined, 'the majority elected a leader');
  for (let i = 0; i < 60; i++) net.propose(leader, `fresh${i}`);
  net.stabilize();
  net.heal();
  net.delivered = [];
  net.tick(2);
  const rejections = net.delivered.filter((m: Message) => m.type === 'MsgAppResp' && m.reject && minority.includes(m.from));
  t.ok(rejections.length <= 2 * minority.length, `${rejections.length} rejections to repair ${minority.length} followers with 60 stale entries`);
  for (const id of minority) t.same(net.node(id).applied, net.node(leader).applied, `${id} repaired`);
});

t.test('a lost append is resent once the follower has been stuck for an election timeout', async (t) => {
  const net = new Network(ids(3), {}, 2);
  const leader = net.elect();
  const follower = ids(3).find((id) => id !== leader)!;
  net.dropIf = (m) => m.type === 'MsgApp' && m.to === follower && m.entries.length > 0;
  net.propose(leader, 'lost');
  net.stabilize();
  net.dropIf = null;
  t.same(net.node(follower).applied, []);
  let ticks = 0;
  while (net.node(follower).applied.length === 0 && ticks < 30) {
    net.tick(1);
    ticks++;
  }
  t.same(net.node(follower).applied, ['lost']);
  t.ok(ticks <= 12, `recovered after ${ticks} ticks`);
});

t.test('proposal limits: uncommitted entries and bytes', async (t) => {
  const net = new Network(ids(3), { maxProposalQueue: 3, maxUncommittedEntriesBytes: 100 }, 1);
  const leader = net.elect();
  net.isolate(leader);
  net.propose(leader, 'a');
  net.propose(leader, 'b');
  net.propose(leader, 'c');
  t.equal(dropReason(() => net.propose(leader, 'd')), 'uncommitted-entries');
  net.heal();
  net.stabilize();
  t.equal(net.node(leader).applied.length, 3);
  net.node(leader).raw.propose(new Uint8Array(60));
  t.equal(dropReason(() => net.node(leader).raw.propose(new Uint8Array(60))), 'uncommitted-bytes');
  net.stabilize();
  t.doesNotThrow(() => net.node(leader).raw.propose(new Uint8Array(500)), 'an empty queue takes one entry of any size');
  t.equal(dropReason(() => net.node(leader).raw.propose(new Uint8Array(1))), 'uncommitted-bytes');
  net.stabilize();
  t.doesNotThrow(() => net.node(leader).raw.propose(new Uint8Array(1)), 'applying frees the budget');
});

t.test('maxCommittedBytesPerReady splits committed entries across readies', async (t) => {
  const { raw, storage } = loneNode('a', ['a'], { maxCommittedBytesPerReady: 250 });
  raw.campaign();
  drain(raw, storage);
  for (let i = 0; i < 6; i++) raw.propose(new Uint8Array(100));
  const sizes: number[] = [];
  while (raw.hasReady()) {
    const rd = raw.ready();
    storage.append(rd.entries);
    if (rd.committedEntries.length > 0) sizes.push(rd.committedEntries.length);
    raw.advance(rd);
  }
  t.same(sizes, [2, 2, 2], '116-byte entries, two per 250 bytes');
});

t.test('maxPendingMessages drops outgoing messages beyond the limit', async (t) => {
  const net = new Network(ids(5), { maxPendingMessages: 3 }, 1);
  const leader = net.elect();
  net.node(leader).raw.tick();
  const rd = net.node(leader).raw.ready();
  t.equal(rd.messages.length, 3);
  t.ok(net.node(leader).raw.status().droppedMessages >= 1);
});

t.test('the Ready contract is enforced', async (t) => {
  const { raw } = loneNode('a', ['a']);
  raw.campaign();
  const rd = raw.ready();
  t.notOk(raw.hasReady(), 'nothing new while a Ready is outstanding');
  t.throws(() => raw.ready(), ErrUsage);
  t.throws(() => raw.advance({ ...rd }), ErrUsage);
  t.throws(() => raw.advance(rd), RaftInvariantError, 'advancing past entries that were not persisted');
  const { raw: other, storage: otherStorage } = loneNode('a', ['a']);
  other.campaign();
  const ok = other.ready();
  otherStorage.append(ok.entries);
  other.advance(ok);
});

t.test('messages for another node are ignored; two leaders in one term is an invariant violation', async (t) => {
  const { raw, storage } = loneNode('a', ['a', 'b', 'c'], { preVote: false });
  raw.step({ type: 'MsgHeartbeat', from: 'b', to: 'z', term: 9, commit: 0, round: 1, tick: 0 });
  t.equal(raw.status().term, 1);
  raw.campaign();
  raw.step({ type: 'MsgVoteResp', from: 'b', to: 'a', term: 2, reject: false });
  drain(raw, storage);
  t.equal(raw.status().role, 'leader');
  t.throws(
    () => raw.step({ type: 'MsgApp', from: 'c', to: 'a', term: 2, index: 1, logTerm: 1, entries: [], commit: 1 }),
    RaftInvariantError,
  );
});

t.test('a follower that is merely idle is not mistaken for a stalled one', async (t) => {
  const net = new Network(ids(3), {}, 3);
  const leader = net.elect();
  net.tick(20);
  const follower = ids(3).find((id) => id !== leader)!;
  net.node(leader).raw.tick();
  net.flush();
  for (const m of net.queue.splice(0)) net.deliverOne(m);
  net.flush();
  net.propose(leader, 'x');
  // Heartbeat answers arrive before the new entry went out: nothing is in flight, so nothing is lost.
  for (const m of net.queue.splice(0)) net.deliverOne(m);
  t.match(net.node(leader).raw.status().progress![follower], { state: 'replicate' }, 'still pipelining');
  net.stabilize();
  t.same(net.node(follower).applied, ['x']);
});
