import t from 'tap';
import { ErrProposalDropped, ErrTransferInvalid } from '../../raft/errors.js';
import { Network } from './network.js';

const ids = (n: number): string[] => Array.from({ length: n }, (_, i) => `n${i + 1}`);

t.test('transfer to an up-to-date follower: it wins at once, despite the voters\' leases', async (t) => {
  const net = new Network(ids(3), {}, 1);
  const leader = net.elect();
  const term = net.node(leader).raw.status().term;
  const target = ids(3).find((id) => id !== leader)!;
  net.node(leader).raw.transferLeader(target);
  net.stabilize();
  t.same(net.leaders(), [target], 'no tick needed');
  t.equal(net.node(target).raw.status().term, term + 1);
  t.equal(net.node(leader).raw.status().leader, target);
});

t.test('transfer to a lagging follower catches it up before MsgTimeoutNow', async (t) => {
  const net = new Network(ids(3), {}, 1);
  const leader = net.elect();
  const target = ids(3).find((id) => id !== leader)!;
  net.cutLink(leader, target);
  for (let i = 0; i < 5; i++) net.propose(leader, `w${i}`);
  net.stabilize();
  net.heal();
  net.delivered = [];
  net.node(leader).raw.transferLeader(target);
  net.tick(2);
  const timeoutNow = net.delivered.findIndex((m) => m.type === 'MsgTimeoutNow');
  const lastApp = net.delivered.map((m) => m.type === 'MsgApp' && m.to === target && m.from === leader).lastIndexOf(true);
  t.ok(timeoutNow > lastApp && lastApp >= 0, 'the log is sent first');
  t.same(net.leaders(), [target]);
  t.same(net.node(target).applied, ['w0', 'w1', 'w2', 'w3', 'w4']);
});

t.test('a transfer to an unreachable target is abandoned after an election timeout', async (t) => {
  const net = new Network(ids(3), {}, 1);
  const leader = net.elect();
  const target = ids(3).find((id) => id !== leader)!;
  net.cutLink(leader, target);
  net.propose(leader, 'behind');
  net.stabilize();
  net.node(leader).raw.transferLeader(target);
  t.equal(net.node(leader).raw.status().leadTransferee, target);
  t.throws(() => net.propose(leader, 'x'), ErrProposalDropped, 'proposals pause during the transfer');
  net.tick(10);
  t.equal(net.node(leader).raw.status().leadTransferee, null, 'abandoned');
  t.equal(net.node(leader).raw.status().role, 'leader');
  t.doesNotThrow(() => net.propose(leader, 'y'));
});

t.test('transferring again to the same target is a no-op; to another restarts the transfer', async (t) => {
  const net = new Network(ids(3), {}, 1);
  const leader = net.elect();
  const [a, b] = ids(3).filter((id) => id !== leader);
  net.cutLink(leader, a!);
  net.cutLink(leader, b!);
  net.propose(leader, 'behind');
  net.stabilize();
  net.node(leader).raw.transferLeader(a!);
  net.node(leader).raw.transferLeader(a!);
  net.node(leader).raw.transferLeader(b!);
  t.equal(net.node(leader).raw.status().leadTransferee, b);
  net.heal();
  net.tick(2);
  t.same(net.leaders(), [b]);
});

t.test('invalid transfer targets are refused', async (t) => {
  const net = new Network(ids(3), {}, 1, ['l']);
  const leader = net.elect();
  const raw = net.node(leader).raw;
  for (const [name, target] of [['itself', leader], ['a learner', 'l'], ['a stranger', 'zz']] as const) {
    t.throws(() => raw.transferLeader(target), ErrTransferInvalid, name);
  }
});

t.test('a follower forwards a transfer request to its leader', async (t) => {
  const net = new Network(ids(3), {}, 1);
  const leader = net.elect();
  const [asker, target] = ids(3).filter((id) => id !== leader);
  net.node(asker!).raw.transferLeader(target!);
  net.stabilize();
  t.same(net.leaders(), [target]);
  net.node(asker!).raw.transferLeader('nobody');
  net.stabilize();
  t.same(net.leaders(), [target], 'an invalid forwarded request is dropped by the leader');
});
