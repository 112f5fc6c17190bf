/**
 * Randomized runs under message loss, duplication, reordering, partitions,
 * restarts, compaction and skewed tick rates, checking after every step:
 * election safety, state-machine agreement, that applied entries never change,
 * and that a read index covers every write acknowledged before the read began.
 * Then the cluster heals and must converge.
 */
import t from 'tap';
import { ErrProposalDropped, ErrReadIndexDropped, ErrTransferInvalid } from '../../raft/errors.js';
import type { Message } from '../../raft/types.js';
import { Network, bytes, compact, text } from './network.js';

interface Checker {
  leaderOfTerm: Map<number, string>;
  appliedAt: Map<number, string>;
  pendingReads: Map<string, number>;
  failures: string[];
}

function check(net: Network, c: Checker): void {
  for (const n of net.nodes.values()) {
    const s = n.raw.status();
    if (s.role === 'leader') {
      const prev = c.leaderOfTerm.get(s.term);
      if (prev !== undefined && prev !== n.id) c.failures.push(`two leaders in term ${s.term}: ${prev} and ${n.id}`);
      c.leaderOfTerm.set(s.term, n.id);
    }
  }
  const nodes = [...net.nodes.values()];
  for (const a of nodes) {
    for (const b of nodes) {
      const k = Math.min(a.applied.length, b.applied.length);
      for (let i = 0; i < k; i++) {
        if (a.applied[i] !== b.applied[i]) {
          c.failures.push(`state machines diverge at ${i}: ${a.id}=${a.applied[i]} ${b.id}=${b.applied[i]}`);
          return;
        }
      }
    }
  }
}

/** Readies are handled as in production; read states are checked against writes acknowledged earlier. */
function collectReads(net: Network, c: Checker): void {
  for (const n of net.nodes.values()) {
    for (const rs of n.readStates.splice(0)) {
      const key = `${n.id}/${text(rs.ctx)}`;
      const mustCover = c.pendingReads.get(key);
      if (mustCover !== undefined && rs.index < mustCover) {
        c.failures.push(`read ${key} at index ${rs.index} misses a write acknowledged at ${mustCover}`);
      }
      c.pendingReads.delete(key);
    }
  }
}

function maxAppliedIndex(net: Network): number {
  return Math.max(...[...net.nodes.values()].map((n) => n.appliedIndex));
}

function chaosStep(net: Network, rng: () => number, step: number, c: Checker): void {
  const ids = [...net.nodes.keys()];
  const pick = () => ids[Math.floor(rng() * ids.length)]!;
  const x = rng();
  if (x < 0.3) {
    // Skewed clocks: some nodes tick, some do not.
    for (const id of ids) if (rng() < 0.9) net.node(id).raw.tick();
  } else if (x < 0.38) {
    const leader = net.leaders()[0];
    if (leader !== undefined) {
      try {
        net.propose(leader, `v${step}`);
      } catch (e) {
        if (!(e instanceof ErrProposalDropped)) throw e;
      }
    }
  } else if (x < 0.42) {
    const id = pick();
    try {
      c.pendingReads.set(`${id}/r${step}`, maxAppliedIndex(net));
      net.node(id).raw.readIndex(bytes(`r${step}`));
    } catch (e) {
      c.pendingReads.delete(`${id}/r${step}`);
      if (!(e instanceof ErrReadIndexDropped)) throw e;
    }
  } else if (x < 0.425) {
    net.heal();
    if (rng() < 0.5) net.isolate(pick());
    else net.partition([pick(), pick()]);
  } else if (x < 0.43) {
    net.heal();
  } else if (x < 0.433) {
    net.restart(pick());
  } else if (x < 0.44) {
    const n = net.node(pick());
    if (n.appliedIndex > n.storage.snapshot().meta.index) compact(n, Math.floor(rng() * 3));
  } else if (x < 0.443) {
    const leader = net.leaders()[0];
    if (leader !== undefined) tryTransfer(net, leader, pick());
  } else if (x < 0.446) {
    const leader = net.leaders()[0];
    if (leader !== undefined) tryConfChange(net, leader, pick());
  } else {
    deliverSome(net, rng);
  }
  net.flush();
  collectReads(net, c);
  check(net, c);
}

function tryTransfer(net: Network, leader: string, to: string): void {
  try {
    net.node(leader).raw.transferLeader(to);
  } catch (e) {
    if (!(e instanceof ErrTransferInvalid)) throw e;
  }
}

/** Demotes a voter to learner while more than three voters remain, else promotes a learner. */
function tryConfChange(net: Network, leader: string, node: string): void {
  const conf = net.node(leader).raw.status().conf;
  const demote = conf.voters.includes(node);
  if (demote && conf.voters.length <= 3) return;
  try {
    net.node(leader).raw.proposeConfChange({ type: demote ? 'addLearner' : 'addVoter', node });
  } catch (e) {
    if (!(e instanceof ErrProposalDropped)) throw e;
  }
}

/** Delivers a random part of the queue, in random order, dropping and duplicating some. */
function deliverSome(net: Network, rng: () => number): void {
  const batch = net.queue;
  net.queue = [];
  const later: Message[] = [];
  for (let i = batch.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [batch[i], batch[j]] = [batch[j]!, batch[i]!];
  }
  for (const m of batch) {
    const y = rng();
    if (y < 0.1) continue;
    if (y < 0.3) {
      later.push(m);
      continue;
    }
    net.deliverOne(m);
    if (y > 0.97) net.deliverOne(structuredClone(m));
  }
  net.queue.push(...later);
}

const seeds = Array.from({ length: 24 }, (_, i) => i + 1);

for (const size of [3, 5]) {
  t.test(`${size} nodes stay safe under faults and converge after healing`, async (t) => {
    for (const seed of seeds) {
      const ids = ['n1', 'n2', 'n3', 'n4', 'n5'].slice(0, size);
      const net = new Network(ids, { electionTicks: 10, maxSizePerMsg: 256, maxInflightMsgs: 4, readOnlyOption: seed % 2 ? 'lease' : 'safe' }, seed);
      const c: Checker = { leaderOfTerm: new Map(), appliedAt: new Map(), pendingReads: new Map(), failures: [] };
      const rng = net.rng;
      for (let step = 0; step < 3000 && c.failures.length === 0; step++) chaosStep(net, rng, step, c);
      if (c.failures.length > 0) {
        t.fail(`seed ${seed}: ${c.failures[0]}`);
        continue;
      }
      net.heal();
      // Liveness: like a client, retry the proposal on whoever leads until every node applied it.
      let converged = false;
      for (let attempt = 0; attempt < 40 && !converged; attempt++) {
        const leader = net.stableLeader();
        if (leader !== null) {
          try {
            net.propose(leader, `final${attempt}`);
          } catch (e) {
            if (!(e instanceof ErrProposalDropped)) throw e;
          }
        }
        net.tick(10);
        check(net, c);
        const all = [...net.nodes.values()].map((n) => n.applied);
        converged = all.every((a) => a.join() === all[0]!.join()) && all[0]!.some((v) => v.startsWith('final'));
      }
      t.ok(converged && c.failures.length === 0, `seed ${seed} converges after healing`);
    }
  });
}
