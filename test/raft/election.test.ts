import t from 'tap';
import type { Message, MsgVote, MsgPreVote } from '../../raft/types.js';
import { RawNode } from '../../raft/rawnode.js';
import { MemoryStorage } from '../../raft/storage.js';
import { Network, drain, loneNode } from './network.js';

const ids = (n: number): string[] => Array.from({ length: n }, (_, i) => `n${i + 1}`);

for (const size of [3, 5]) {
  t.test(`${size} nodes elect exactly one leader that everyone follows`, async (t) => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const net = new Network(ids(size), {}, seed);
      const leader = net.elect();
      net.tick(3);
      t.same(net.leaders(), [leader], `seed ${seed}: one leader`);
      const statuses = [...net.nodes.values()].map((n) => n.raw.status());
      t.ok(statuses.every((s) => s.leader === leader && s.term === statuses[0]!.term), `seed ${seed}: all follow ${leader}`);
      t.equal(net.node(leader).applied.length, 0, 'the no-op is not an application command');
    }
  });
}

t.test('a single node elects itself and commits only what it has persisted', async (t) => {
  const { raw, storage } = loneNode('a', ['a']);
  raw.campaign();
  t.equal(raw.status().role, 'leader');
  let rd = raw.ready();
  t.same(rd.softState, { leader: 'a', role: 'leader' });
  t.equal(rd.entries.length, 1, 'the no-op');
  t.equal(rd.committedEntries.length, 0, 'not committed before it is persisted');
  t.ok(rd.mustSync);
  storage.append(rd.entries);
  storage.setHardState(rd.hardState!);
  raw.advance(rd);
  t.ok(raw.hasReady());
  rd = raw.ready();
  t.same(rd.committedEntries.map((e) => e.type), ['noop']);
  t.equal(rd.hardState?.commit, 2);
  t.notOk(rd.mustSync, 'a commit index change alone needs no fsync');
  raw.advance(rd);
  t.notOk(raw.hasReady());
});

t.test('the election timeout is drawn from [electionTicks, 2 * electionTicks)', async (t) => {
  const cases: [number, number][] = [[0, 10], [0.5, 15], [0.999, 19]];
  for (const [r, want] of cases) {
    const { raw, storage } = loneNode('a', ['a', 'b', 'c'], { rng: () => r });
    let ticks = 0;
    while (raw.status().role === 'follower' && ticks < 100) {
      raw.tick();
      ticks++;
    }
    drain(raw, storage);
    t.equal(ticks, want, `rng ${r}: campaigns after ${want} ticks`);
    t.equal(raw.status().role, 'precandidate');
    t.equal(raw.status().term, 1, 'PreVote does not raise the term');
  }
});

t.test('PreVote: a partitioned node does not inflate its term and rejoins without disrupting the leader', async (t) => {
  const net = new Network(ids(3), {}, 7);
  const leader = net.elect();
  const term = net.node(leader).raw.status().term;
  const loner = ids(3).find((id) => id !== leader)!;
  net.isolate(loner);
  net.tick(100);
  t.equal(net.node(loner).raw.status().term, term, 'no term inflation while partitioned');
  t.not(net.node(loner).raw.status().role, 'leader');
  net.heal();
  net.tick(20);
  t.equal(net.stableLeader(), leader, 'same leader');
  t.equal(net.node(leader).raw.status().term, term, 'same term');
  t.equal(net.node(loner).raw.status().leader, leader, 'the loner follows again');
});

t.test('without PreVote the rejoining node forces a new election', async (t) => {
  const net = new Network(ids(3), { preVote: false }, 7);
  const leader = net.elect();
  const term = net.node(leader).raw.status().term;
  const loner = ids(3).find((id) => id !== leader)!;
  net.isolate(loner);
  net.tick(100);
  t.ok(net.node(loner).raw.status().term > term + 3, 'the loner keeps raising its term');
  net.heal();
  net.tick(1);
  t.ok(net.node(leader).raw.status().term > term, 'the leader was deposed by the higher term');
});

t.test('CheckQuorum: an isolated leader steps down and the majority elects another', async (t) => {
  const net = new Network(ids(5), {}, 3);
  const leader = net.elect();
  net.isolate(leader);
  let ticks = 0;
  while (net.node(leader).raw.status().role === 'leader') {
    net.tick(1);
    ticks++;
  }
  t.ok(ticks <= 20, `stepped down after ${ticks} ticks (at most two election timeouts)`);
  t.equal(net.node(leader).raw.status().leader, null);
  const others = ids(5).filter((id) => id !== leader);
  net.tick(30, others);
  const newLeaders = net.leaders();
  t.equal(newLeaders.length, 1);
  t.not(newLeaders[0], leader);
});

t.test('without CheckQuorum an isolated leader keeps believing it leads', async (t) => {
  const net = new Network(ids(3), { checkQuorum: false }, 3);
  const leader = net.elect();
  net.isolate(leader);
  net.tick(50);
  t.equal(net.node(leader).raw.status().role, 'leader');
});

/** A node in a 3-node cluster whose log is entries 2..3 at term 2 (after the bootstrap entry). */
function voter(options: Record<string, unknown> = {}) {
  const storage = new MemoryStorage({ voters: ['a', 'b', 'c'], learners: [] });
  storage.append([
    { index: 2, term: 2, type: 'noop', data: new Uint8Array() },
    { index: 3, term: 2, type: 'normal', data: new Uint8Array() },
  ]);
  storage.setHardState({ term: 2, vote: null, commit: 1 });
  const raw = new RawNode({ id: 'a', storage, rng: () => 0, checkQuorum: false, ...options });
  return { raw, storage };
}

const vote = (from: string, term: number, lastLogIndex: number, lastLogTerm: number, transfer = false): MsgVote =>
  ({ type: 'MsgVote', from, to: 'a', term, lastLogIndex, lastLogTerm, transfer });
const preVote = (from: string, term: number, lastLogIndex: number, lastLogTerm: number): MsgPreVote =>
  ({ type: 'MsgPreVote', from, to: 'a', term, lastLogIndex, lastLogTerm });

function replies(msgs: Message[]): string[] {
  return msgs.map((m) => `${m.type} to ${m.to} term ${m.term} ${'reject' in m && m.reject ? 'reject' : 'grant'}`);
}

t.test('vote rules', async (t) => {
  const cases: [string, Message[], string[]][] = [
    ['grants an up-to-date candidate', [vote('b', 3, 3, 2)], ['MsgVoteResp to b term 3 grant']],
    ['grants a longer log of the same last term', [vote('b', 3, 9, 2)], ['MsgVoteResp to b term 3 grant']],
    ['rejects a shorter log', [vote('b', 3, 2, 2)], ['MsgVoteResp to b term 3 reject']],
    ['rejects an older last term', [vote('b', 3, 9, 1)], ['MsgVoteResp to b term 3 reject']],
    ['votes once per term', [vote('b', 3, 3, 2), vote('c', 3, 3, 2)], ['MsgVoteResp to b term 3 grant', 'MsgVoteResp to c term 3 reject']],
    ['repeats its vote to the same candidate', [vote('b', 3, 3, 2), vote('b', 3, 3, 2)], ['MsgVoteResp to b term 3 grant', 'MsgVoteResp to b term 3 grant']],
    ['ignores a stale term vote', [vote('b', 1, 9, 9)], []],
    ['rejects a stale pre-vote with its term', [preVote('b', 1, 9, 9)], ['MsgPreVoteResp to b term 2 reject']],
    ['grants a pre-vote for a future term without changing state', [preVote('b', 3, 3, 2), vote('c', 3, 3, 2)],
      ['MsgPreVoteResp to b term 3 grant', 'MsgVoteResp to c term 3 grant']],
    ['rejects a pre-vote with a stale log', [preVote('b', 3, 1, 1)], ['MsgPreVoteResp to b term 2 reject']],
  ];
  for (const [name, msgs, want] of cases) {
    const { raw, storage } = voter();
    const got: Message[] = [];
    for (const m of msgs) {
      raw.step(m);
      got.push(...drain(raw, storage));
    }
    t.same(replies(got), want, name);
  }
});

t.test('a vote is persisted before the reply that announces it', async (t) => {
  const { raw } = voter();
  raw.step(vote('b', 3, 3, 2));
  const rd = raw.ready();
  t.same(rd.hardState, { term: 3, vote: 'b', commit: 1 });
  t.ok(rd.mustSync);
  t.equal(rd.messages[0]?.type, 'MsgVoteResp', 'the reply is in the same Ready, sent after persisting');
});

t.test('CheckQuorum: a node that recently heard from a leader ignores other candidates unless transferring', async (t) => {
  const { raw, storage } = voter({ checkQuorum: true });
  raw.step({ type: 'MsgHeartbeat', from: 'b', to: 'a', term: 2, commit: 1, round: 1, tick: 0 });
  drain(raw, storage);
  raw.step(vote('c', 3, 9, 2));
  raw.step(preVote('c', 3, 9, 2));
  t.same(drain(raw, storage), [], 'no answer');
  t.equal(raw.status().term, 2, 'term unchanged');
  raw.step(vote('c', 3, 9, 2, true));
  t.same(replies(drain(raw, storage)), ['MsgVoteResp to c term 3 grant'], 'a transfer campaign is answered');
});

t.test('CheckQuorum: a restarted node keeps its lease promise for an election timeout', async (t) => {
  const { raw, storage } = voter({ checkQuorum: true });
  for (let i = 0; i < 9; i++) raw.tick();
  raw.step(vote('c', 3, 9, 2));
  t.same(drain(raw, storage), [], 'ignored right after start');
  raw.tick();
  raw.step(vote('c', 3, 9, 2));
  t.same(replies(drain(raw, storage)).slice(-1), ['MsgVoteResp to c term 3 grant'], 'answered after electionTicks');
});

t.test('learners never campaign', async (t) => {
  const net = new Network(['a', 'b'], {}, 1, ['l']);
  net.tick(100, ['l']);
  t.equal(net.node('l').raw.status().role, 'follower');
  net.node('l').raw.campaign();
  t.equal(net.node('l').raw.status().role, 'follower');
});

t.test('a candidate that loses becomes a follower; one that hears a leader follows it', async (t) => {
  const { raw, storage } = voter({ preVote: false });
  raw.campaign();
  t.equal(raw.status().role, 'candidate');
  t.equal(raw.status().term, 3);
  drain(raw, storage);
  raw.step({ type: 'MsgVoteResp', from: 'b', to: 'a', term: 3, reject: true });
  t.equal(raw.status().role, 'candidate', 'one rejection of three: still pending');
  raw.step({ type: 'MsgVoteResp', from: 'c', to: 'a', term: 3, reject: true });
  t.equal(raw.status().role, 'follower', 'a majority rejected');
  raw.campaign();
  raw.step({ type: 'MsgHeartbeat', from: 'b', to: 'a', term: 4, commit: 1, round: 1, tick: 0 });
  t.same([raw.status().role, raw.status().leader], ['follower', 'b']);
});

t.test('a pre-candidate rejected by a newer term adopts it; one granted by a quorum campaigns', async (t) => {
  const { raw, storage } = voter();
  raw.campaign();
  t.equal(raw.status().role, 'precandidate');
  const sent = drain(raw, storage);
  t.same(sent.map((m) => [m.type, m.term]), [['MsgPreVote', 3], ['MsgPreVote', 3]]);
  raw.step({ type: 'MsgPreVoteResp', from: 'b', to: 'a', term: 3, reject: false });
  t.equal(raw.status().role, 'candidate');
  t.equal(raw.status().term, 3);
  raw.step({ type: 'MsgVoteResp', from: 'c', to: 'a', term: 3, reject: false });
  t.equal(raw.status().role, 'leader');
  const { raw: other } = voter();
  other.campaign();
  other.step({ type: 'MsgPreVoteResp', from: 'b', to: 'a', term: 7, reject: true });
  t.same([other.status().role, other.status().term], ['follower', 7]);
});

t.test('a stale leader learns the newer term from a follower and steps down', async (t) => {
  const { raw, storage } = voter({ checkQuorum: true });
  raw.step({ type: 'MsgApp', from: 'b', to: 'a', term: 1, index: 1, logTerm: 1, entries: [], commit: 1 });
  const out = drain(raw, storage);
  t.same(out.map((m) => [m.type, m.to, m.term]), [['MsgAppResp', 'b', 2]]);
});
