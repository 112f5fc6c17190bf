import t from 'tap';
import { Replica } from '../../src/cluster/replica.js';
import { LockStateMachine } from '../../src/lock/machine.js';
import { MemoryFs, Wal } from '../../src/storage/index.js';
import type { ConfChange } from '../../raft/confchange.js';
import type { ConfState, Message } from '../../raft/types.js';
import { mulberry32 } from '../helpers/random.js';
import { waitFor } from '../helpers/wait.js';
import { ReplicaNet } from './harness/replica-net.js';


async function openReplica(fs: MemoryFs, id: string, voters: string[], clock: () => number, send: (m: Message[]) => void) {
  const { wal, groups } = await Wal.open({ fs, dir: `/${id}/wal` });
  const machine = new LockStateMachine();
  const replica = await Replica.open({
    id, group: 0, conf: { voters, learners: [] }, wal, replay: groups.get(0), machine, clock, rng: mulberry32(id.charCodeAt(1)), send,
  });
  return { replica, machine, wal };
}

t.test('single node: a PERSISTENT lock is acknowledged after the WAL append and survives a crash', async (t) => {
  const fs = new MemoryFs();
  let now = 1000;
  const first = await openReplica(fs, 'n1', ['n1'], () => now, () => undefined);
  first.replica.campaign();
  await waitFor(() => first.replica.isLeader, () => first.replica.tick(), 'leadership');
  const token = await first.replica.propose({ kind: 'lock', durability: 'persistent', resource: 'r', owner: 'a', ttlMs: 5000 });
  t.equal(token, 0n);
  now += 1000;
  t.equal(await first.replica.propose({ kind: 'lock', durability: 'persistent', resource: 'r', owner: 'b', ttlMs: 5000 }), null);
  const remaining = await first.replica.read((logNow) => first.machine.info('persistent', 'r', logNow)?.remainingMs);
  t.equal(remaining, 4000);
  fs.crash(mulberry32(1));
  now += 60_000;
  const second = await openReplica(fs, 'n1', ['n1'], () => now, () => undefined);
  second.replica.campaign();
  await waitFor(() => second.replica.isLeader, () => second.replica.tick(), 'leadership after restart');
  const info = await second.replica.read((logNow) => second.machine.info('persistent', 'r', logNow));
  t.same(info, { owner: 'a', token: 0n, remainingMs: 4000 }, 'same owner, token and remaining lease (downtime does not count)');
  t.equal(await second.replica.propose({ kind: 'lock', durability: 'persistent', resource: 'r', owner: 'b', ttlMs: 5000 }), null);
});

t.test('after a restart the committed membership is known before its entries are applied again', async (t) => {
  const fs = new MemoryFs();
  const now = 1000;
  const first = await openReplica(fs, 'n1', ['n1'], () => now, () => undefined);
  first.replica.campaign();
  await waitFor(() => first.replica.isServing, () => first.replica.tick(), 'leadership');
  // One change at a time: the next is refused until the Raft core has seen the last one applied.
  const change = async (cc: ConfChange): Promise<ConfState> => {
    for (;;) {
      try {
        return await first.replica.changeMembership(cc);
      } catch (error) {
        if (!String(error).includes('conf-change-pending')) throw error;
        await new Promise((r) => setTimeout(r, 1));
      }
    }
  };
  await change({ type: 'addLearner', node: 'n3' });
  await change({ type: 'removeVoter', node: 'n3' });
  const added = await change({ type: 'addLearner', node: 'n3' });
  t.same(added, { voters: ['n1'], learners: ['n3'] });
  t.same(first.replica.committedMembership, added, 'all applied: the applied membership');
  first.replica.stop();
  const second = await openReplica(fs, 'n1', ['n1'], () => now, () => undefined);
  t.same(second.replica.membership, { voters: ['n1'], learners: [] }, 'applied: the snapshot\'s only, until the log is applied again');
  t.same(second.replica.committedMembership, added, 'committed: n3 is a learner, not removed as it was halfway through the log');
  second.replica.campaign();
  await waitFor(() => second.replica.isLeader && second.replica.membership.learners.length === 1, () => second.replica.tick(), 'the log applied again');
  t.same(second.replica.committedMembership, added);
  second.replica.stop();
});

t.test('three nodes: writes replicate, a follower refuses proposals, the leader serves linearizable reads', async (t) => {
  const fs = new MemoryFs();
  const ids = ['n1', 'n2', 'n3'];
  let now = 0;
  const inbox: Message[] = [];
  const nodes = new Map<string, Awaited<ReturnType<typeof openReplica>>>();
  for (const id of ids) nodes.set(id, await openReplica(fs, id, ids, () => now, (m) => inbox.push(...m)));
  const deliver = () => {
    for (const m of inbox.splice(0)) nodes.get(m.to)!.replica.step(m);
  };
  const tickAll = () => {
    now += 10;
    for (const n of nodes.values()) n.replica.tick();
    deliver();
  };
  nodes.get('n1')!.replica.campaign();
  await waitFor(() => [...nodes.values()].some((n) => n.replica.isLeader), tickAll, 'a leader');
  const leader = [...nodes.values()].find((n) => n.replica.isLeader)!;
  const follower = [...nodes.values()].find((n) => !n.replica.isLeader)!;
  await t.rejects(follower.replica.propose({ kind: 'tick' }), { code: 'RAFTLOCK_ERR_NOT_LEADER' });
  const pending = leader.replica.propose({ kind: 'set', key: 'k', value: 'v', mode: 'nx', expiry: { kind: 'ttl', ttlMs: 60_000 } });
  await waitFor(() => leader.machine.get('k', now) !== undefined, deliver, 'commit');
  t.same(await pending, { written: true, previous: undefined });
  const read = leader.replica.read(() => leader.machine.get('k', now));
  let value: string | undefined;
  void read.then((v) => (value = v));
  await waitFor(() => value !== undefined, tickAll, 'read index');
  t.equal(value, 'v');
  await waitFor(() => [...nodes.values()].every((n) => n.machine.get('k', now) === 'v'), tickAll, 'replication to every node');
  t.pass('every replica applied the write');
});

t.test('a write that would change nothing is answered without a log entry, unless a write to its key is in flight', async (t) => {
  const fs = new MemoryFs();
  let now = 1000;
  const { replica } = await openReplica(fs, 'n1', ['n1'], () => now, () => undefined);
  replica.campaign();
  await waitFor(() => replica.isLeader, () => replica.tick(), 'leadership');
  await replica.read(() => undefined);
  const token = await replica.propose({ kind: 'lock', durability: 'persistent', resource: 'r', owner: 'a', ttlMs: 100 });
  await replica.propose({ kind: 'set', key: 'k', value: 'v', mode: 'always', expiry: { kind: 'none' } });
  const last = replica.raw.status().lastIndex;
  const lock = (owner: string) => ({ kind: 'lock' as const, durability: 'persistent' as const, resource: 'r', owner, ttlMs: 100 });
  t.equal(replica.answerNoop(lock('b')), null, 'held by another owner');
  t.equal(replica.answerNoop(lock('a')), token, 'the holder asking again gets its token');
  t.equal(replica.answerNoop({ kind: 'unlock', durability: 'persistent', resource: 'r', owner: 'b' }), false);
  t.equal(replica.answerNoop({ kind: 'extend', durability: 'persistent', resource: 'r', owner: 'b', ttlMs: 5 }), null);
  t.same(replica.answerNoop({ kind: 'set', key: 'k', value: 'w', mode: 'nx', expiry: { kind: 'none' } }), { written: false, previous: 'v' });
  t.same(replica.answerNoop({ kind: 'set', key: 'nope', value: 'w', mode: 'xx', expiry: { kind: 'none' } }), { written: false, previous: undefined });
  t.equal(replica.answerNoop({ kind: 'unlock', durability: 'persistent', resource: 'r', owner: 'a' }), undefined, 'a real unlock needs the log');
  t.equal(replica.answerNoop(lock2('free')), undefined, 'a free lock needs the log');
  t.equal(replica.answerNoop({ kind: 'set', key: 'k', value: 'w', mode: 'always', expiry: { kind: 'none' } }), undefined);
  t.equal(replica.raw.status().lastIndex, last, 'no log entry was written');
  // In flight: the unlock may land before a later command's reply; so that one goes to the log too.
  const unlock = replica.propose({ kind: 'unlock', durability: 'persistent', resource: 'r', owner: 'a' });
  t.equal(replica.answerNoop(lock('b')), undefined, 'a write to the key is in flight');
  t.same(replica.answerNoop({ kind: 'set', key: 'k', value: 'w', mode: 'nx', expiry: { kind: 'none' } }), { written: false, previous: 'v' },
    'other keys are still answered');
  t.equal(await unlock, true);
  t.equal(replica.answerNoop(lock('b')), undefined, 'once applied, the key is free');
  await replica.propose(lock('c'));
  now += 101;
  t.equal(replica.answerNoop(lock('b')), undefined, 'a lease that ran out by the log clock is not held');
  t.equal(replica.answerNoop({ kind: 'tick' }), undefined);
  function lock2(resource: string) {
    return { kind: 'lock' as const, durability: 'persistent' as const, resource, owner: 'a', ttlMs: 100 };
  }
});

t.test('a follower answers nothing without the log', async (t) => {
  const fs = new MemoryFs();
  const { replica } = await openReplica(fs, 'n2', ['n1', 'n2'], () => 0, () => undefined);
  t.equal(replica.answerNoop({ kind: 'unlock', durability: 'persistent', resource: 'r', owner: 'b' }), undefined);
});

t.test('EPHEMERAL access: leases reach only as far as the committed horizon; a new leader waits out the inherited one', async (t) => {
  const fs = new MemoryFs();
  const ids = ['n1', 'n2', 'n3'];
  const net = new ReplicaNet<Awaited<ReturnType<typeof openReplica>>>(1000);
  const { nodes, down, deliver, tickAll } = net;
  for (const id of ids) nodes.set(id, await openReplica(fs, id, ids, net.clock, net.send));
  nodes.get('n1')!.replica.campaign();
  await waitFor(() => [...nodes.values()].some((n) => n.replica.isServing), tickAll, 'a leader serving');
  const [leaderId, n1] = [...nodes].find(([, n]) => n.replica.isServing)!;
  const follower = [...nodes.values()].find((n) => !n.replica.isLeader)!;
  t.throws(() => follower.replica.ephemeralAccess(0), { code: 'RAFTLOCK_ERR_NOT_LEADER' }, 'a follower serves no EPHEMERAL lock');
  t.equal(n1.machine.ephemeralHorizonMs, 0);
  const reach = n1.replica.logNow() + 5000;
  const raised = n1.replica.ephemeralAccess(reach);
  t.ok(raised instanceof Promise, 'a lease past the horizon waits for the horizon to be raised through the log');
  let done = false;
  void raised!.then(() => (done = true));
  await waitFor(() => done, deliver, 'the horizon commit');
  t.ok(n1.machine.ephemeralHorizonMs >= reach + 1000, 'raised past the lease, with slack');
  t.equal(n1.replica.ephemeralAccess(reach), undefined, 'then granted at once');
  t.equal(n1.replica.ephemeralAccess(0), undefined, 'reads and unlocks need no horizon');
  await waitFor(() => [...nodes.values()].every((n) => n.machine.ephemeralHorizonMs === n1.machine.ephemeralHorizonMs), tickAll, 'horizon replicated');
  const horizon = n1.machine.ephemeralHorizonMs;

  // The leader dies; another takes over and must not serve EPHEMERAL locks before its log clock passes the horizon.
  down.add(leaderId);
  const alive = () => [...nodes].filter(([id]) => id !== leaderId).map(([, n]) => n);
  await waitFor(() => alive().some((n) => n.replica.isServing), tickAll, 'a new leader', 5000);
  const successor = alive().find((n) => n.replica.isServing)!;
  const lockDelay = () => successor.replica.ephemeralAccess(successor.replica.logNow() + 100);
  t.throws(lockDelay, { code: 'RAFTLOCK_ERR_LOCK_DELAY' }, 'the new leader waits out the inherited horizon');
  t.ok(horizon - successor.replica.logNow() <= 5000 + 1000, 'for at most the longest lease plus the slack');
  await waitFor(() => successor.replica.logNow() >= horizon, tickAll, 'the log clock passing the horizon', 5000);
  let granted = false;
  const access = lockDelay();
  if (access === undefined) granted = true;
  else void access.then(() => (granted = true));
  await waitFor(() => granted, tickAll, 'EPHEMERAL access after the horizon');
  t.pass('served once the inherited horizon has passed');
});
