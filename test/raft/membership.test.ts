import t from 'tap';
import { applyToConf, confChangeProblem, decodeConfChange, encodeConfChange, type ConfChange } from '../../raft/confchange.js';
import { ErrProposalDropped, RaftInvariantError } from '../../raft/errors.js';
import { MemoryStorage } from '../../raft/storage.js';
import type { ConfState, Entry } from '../../raft/types.js';
import { Network, drain, loneNode } from './network.js';

const dropReason = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (e) {
    if (e instanceof ErrProposalDropped) return e.reason;
    throw e;
  }
  return undefined;
};

/** Proposes a change on the leader and runs until every live node applied it. */
function change(net: Network, leader: string, cc: ConfChange): void {
  net.node(leader).raw.proposeConfChange(cc);
  net.tick(3);
}

t.test('a new voter joins through the bootstrap snapshot and then counts toward the quorum', async (t) => {
  const net = new Network(['n1', 'n2', 'n3'], {}, 1);
  const leader = net.elect();
  net.propose(leader, 'before');
  net.addNode('n4', new MemoryStorage());
  change(net, leader, { type: 'addVoter', node: 'n4' });
  net.propose(leader, 'after');
  net.tick(3);
  const n4 = net.node('n4');
  t.same(n4.conf, { voters: ['n1', 'n2', 'n3', 'n4'], learners: [] }, 'the joiner applied its own addition');
  t.same(n4.applied, ['before', 'after'], 'and has the whole history');
  t.ok(n4.readies.some((rd) => rd.snapshot?.meta.index === 1), 'starting from the bootstrap snapshot');
  const others = ['n1', 'n2', 'n3'].filter((id) => id !== leader);
  net.isolate(others[0]!);
  net.propose(leader, 'three of four');
  net.tick(1);
  t.equal(net.node(leader).applied.at(-1), 'three of four', 'commits with three of four voters');
  net.isolate('n4');
  net.propose(leader, 'two of four');
  net.tick(1);
  t.equal(net.node(leader).applied.at(-1), 'three of four', 'two of four is no quorum');
});

t.test('a removed voter no longer counts and cannot disrupt the cluster', async (t) => {
  const net = new Network(['n1', 'n2', 'n3'], {}, 2);
  const leader = net.elect();
  const term = net.node(leader).raw.status().term;
  const [gone, stays] = ['n1', 'n2', 'n3'].filter((id) => id !== leader);
  change(net, leader, { type: 'removeVoter', node: gone! });
  t.same(net.node(leader).conf.voters, [leader, stays].sort());
  net.tick(100);
  t.equal(net.stableLeader(), leader, 'the removed node never took over');
  t.equal(net.node(leader).raw.status().term, term);
  net.isolate(gone!);
  net.propose(leader, 'x');
  net.tick(1);
  t.same(net.node(stays!).applied, ['x'], 'two of two voters commit');
});

t.test('a learner receives the log but neither votes nor counts toward the quorum', async (t) => {
  const net = new Network(['n1', 'n2', 'n3'], {}, 3, ['l']);
  const leader = net.elect();
  net.propose(leader, 'x');
  net.tick(1);
  t.same(net.node('l').applied, ['x']);
  t.equal(net.delivered.filter((m) => m.type === 'MsgVote' && m.to === 'l').length, 0, 'never asked to vote');
  for (const id of ['n1', 'n2', 'n3'].filter((x) => x !== leader)) net.isolate(id);
  net.propose(leader, 'y');
  net.tick(2);
  t.same(net.node(leader).applied, ['x'], 'leader and learner are no quorum');
  t.match(net.node(leader).raw.status().progress!.l, { isLearner: true });
});

t.test('a learner is added, catches up, and is promoted to voter', async (t) => {
  const net = new Network(['n1', 'n2', 'n3'], {}, 4);
  const leader = net.elect();
  for (let i = 0; i < 5; i++) net.propose(leader, `w${i}`);
  net.addNode('n4', new MemoryStorage());
  change(net, leader, { type: 'addLearner', node: 'n4' });
  t.same(net.node(leader).conf, { voters: ['n1', 'n2', 'n3'], learners: ['n4'] });
  t.equal(net.node('n4').applied.length, 5);
  change(net, leader, { type: 'addVoter', node: 'n4' });
  t.same(net.node('n4').conf, { voters: ['n1', 'n2', 'n3', 'n4'], learners: [] });
  change(net, leader, { type: 'addLearner', node: 'n4' });
  t.same(net.node('n2').conf, { voters: ['n1', 'n2', 'n3'], learners: ['n4'] }, 'and demoted again');
});

t.test('one membership change at a time', async (t) => {
  const net = new Network(['n1', 'n2', 'n3'], {}, 5);
  const leader = net.elect();
  net.addNode('n4', new MemoryStorage());
  net.node(leader).raw.proposeConfChange({ type: 'addLearner', node: 'n4' });
  t.equal(dropReason(() => net.node(leader).raw.proposeConfChange({ type: 'addVoter', node: 'n4' })), 'conf-change-pending');
  net.tick(2);
  t.equal(dropReason(() => net.node(leader).raw.proposeConfChange({ type: 'addVoter', node: 'n4' })), undefined, 'allowed once applied');
});

t.test('a new leader changes membership only after committing in its term', async (t) => {
  const { raw, storage } = loneNode('a', ['a', 'b', 'c'], { preVote: false });
  raw.campaign();
  raw.step({ type: 'MsgVoteResp', from: 'b', to: 'a', term: 2, reject: false });
  drain(raw, storage);
  t.equal(dropReason(() => raw.proposeConfChange({ type: 'addVoter', node: 'd' })), 'conf-change-pending');
  t.equal(dropReason(() => loneNode('z', ['z', 'y']).raw.proposeConfChange({ type: 'addVoter', node: 'x' })), 'not-leader');
});

t.test('invalid membership changes are refused', async (t) => {
  const conf: ConfState = { voters: ['a', 'b'], learners: ['l'] };
  const cases: [string, ConfChange, ConfState, string | null][] = [
    ['add an existing voter', { type: 'addVoter', node: 'a' }, conf, 'a is already a voter'],
    ['add an existing learner', { type: 'addLearner', node: 'l' }, conf, 'l is already a learner'],
    ['remove a stranger', { type: 'removeVoter', node: 'x' }, conf, 'x is not a member'],
    ['remove the last voter', { type: 'removeVoter', node: 'a' }, { voters: ['a'], learners: [] }, 'removing a would leave no voter'],
    ['demote the last voter', { type: 'addLearner', node: 'a' }, { voters: ['a'], learners: [] }, 'demoting a would leave no voter'],
    ['empty node id', { type: 'addVoter', node: '' }, conf, 'node id must be a non-empty string'],
    ['unknown type', { type: 'promote' as 'addVoter', node: 'x' }, conf, 'unknown conf change type promote'],
    ['promote a learner', { type: 'addVoter', node: 'l' }, conf, null],
    ['remove a learner', { type: 'removeVoter', node: 'l' }, conf, null],
  ];
  for (const [name, cc, base, want] of cases) t.equal(confChangeProblem(base, cc), want, name);
  const net = new Network(['n1', 'n2', 'n3'], {}, 6);
  const leader = net.elect();
  t.equal(dropReason(() => net.node(leader).raw.proposeConfChange({ type: 'addVoter', node: leader })), 'conf-change-invalid');
});

t.test('conf changes round-trip through their wire form; malformed ones are corruption', async (t) => {
  for (const cc of [{ type: 'addVoter', node: 'n1' }, { type: 'removeVoter', node: 'näme' }, { type: 'addLearner', node: 'x' }] as ConfChange[]) {
    t.same(decodeConfChange(encodeConfChange(cc)), cc);
  }
  for (const bad of [new Uint8Array(), new Uint8Array([9, 65]), new Uint8Array([1]), new Uint8Array([1, 0xff, 0xfe])]) {
    t.throws(() => decodeConfChange(bad), RaftInvariantError);
  }
  t.throws(() => applyToConf({ voters: ['a'], learners: [] }, { type: 'removeVoter', node: 'a' }), RaftInvariantError);
});

t.test('a leader that removes itself steps down and the others elect a new leader', async (t) => {
  const net = new Network(['n1', 'n2', 'n3'], {}, 7);
  const leader = net.elect();
  change(net, leader, { type: 'removeVoter', node: leader });
  t.not(net.node(leader).raw.status().role, 'leader');
  const rest = ['n1', 'n2', 'n3'].filter((id) => id !== leader);
  net.tick(40, rest);
  const next = rest.find((id) => net.node(id).raw.status().role === 'leader');
  t.ok(next !== undefined, 'a remaining voter leads');
  t.same(net.node(next!).conf.voters, rest);
});

t.test('removing the transfer target abandons the transfer', async (t) => {
  const net = new Network(['n1', 'n2', 'n3'], {}, 8);
  const leader = net.elect();
  const target = ['n1', 'n2', 'n3'].find((id) => id !== leader)!;
  net.node(leader).raw.proposeConfChange({ type: 'removeVoter', node: target });
  net.cutLink(leader, target);
  net.node(leader).raw.transferLeader(target);
  net.stabilize();
  t.equal(net.node(leader).raw.status().leadTransferee, null);
  t.equal(net.node(leader).raw.status().role, 'leader');
});

t.test('a node does not campaign while a committed conf change is unapplied', async (t) => {
  const { raw, storage } = loneNode('a', ['a', 'b', 'c'], { preVote: false });
  const cc: Entry = { index: 2, term: 2, type: 'conf', data: encodeConfChange({ type: 'addVoter', node: 'd' }) };
  raw.step({ type: 'MsgApp', from: 'b', to: 'a', term: 2, index: 1, logTerm: 1, entries: [cc], commit: 2 });
  const rd = raw.ready();
  storage.append(rd.entries);
  t.equal(rd.committedEntries.length, 1);
  raw.campaign();
  t.equal(raw.status().role, 'follower', 'not before applying it');
  raw.applyConfChange(decodeConfChange(rd.committedEntries[0]!.data));
  raw.advance(rd);
  raw.campaign();
  t.equal(raw.status().role, 'candidate');
  t.same(raw.status().conf.voters, ['a', 'b', 'c', 'd']);
});
