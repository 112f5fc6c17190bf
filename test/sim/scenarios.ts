/**
 * Named scenarios: short scripts over the same simulator, each forcing one
 * classic hazard instead of waiting for the dice to find it. Every scenario
 * ends like a random run (heal, liveness, convergence, all checkers), and adds
 * its own expectations as violations, so a failure reads like any other.
 */
import type { LockInput } from './lin/history.js';
import { baseOptions, type SimOptions } from './options.js';
import { commandBytes, type ClientOp, type SimClient } from './clients.js';
import { finish, livenessPhase, type SimResult } from './run.js';
import { Simulator, type SimNode } from './simulator.js';
import type { Message } from '../../raft/types.js';

export type ScenarioName =
  | 'partitioned-mid-append' | 'crash-before-fsync' | 'figure-8' | 'figure-8-exact' | 'crash-after-vote'
  | 'stale-leader-partitioned' | 'stale-leader-paused' | 'snapshot-catch-up';

export const SCENARIOS: readonly ScenarioName[] = [
  'partitioned-mid-append', 'crash-before-fsync', 'figure-8', 'figure-8-exact', 'crash-after-vote',
  'stale-leader-partitioned', 'stale-leader-paused', 'snapshot-catch-up',
];

export async function runScenario(name: ScenarioName, seed: number, overrides: Partial<SimOptions> = {}): Promise<SimResult> {
  switch (name) {
    case 'partitioned-mid-append':
      return partitionedMidAppend(seed, overrides);
    case 'crash-before-fsync':
      return crashBeforeFsync(seed, overrides);
    case 'figure-8':
      return figure8(seed, overrides);
    case 'figure-8-exact':
      return figure8Exact(seed, overrides);
    case 'crash-after-vote':
      return crashAfterVote(seed, overrides);
    case 'stale-leader-partitioned':
      return staleLeader(seed, 'partition', overrides);
    case 'stale-leader-paused':
      return staleLeader(seed, 'pause', overrides);
    case 'snapshot-catch-up':
      return snapshotCatchUp(seed, overrides);
  }
}

function lockInput(owner: string, resource = 'r0'): LockInput {
  return { kind: 'lock', resource, owner, ttlMs: 60_000, durability: 'persistent' };
}

async function bootWithLeader(sim: Simulator): Promise<SimNode | undefined> {
  await sim.boot();
  await sim.runUntilTrue(() => sim.leader() !== undefined, 5_000, 'a first leader');
  return sim.leader();
}

/** Runs until the op has an outcome; a violation if it does not within maxMs. */
async function settleOp(sim: Simulator, op: ClientOp, maxMs: number): Promise<void> {
  await sim.runUntilTrue(() => op.finished, maxMs, `an answer to op #${op.id}`);
}

async function conclude(sim: Simulator, started: number): Promise<SimResult> {
  await livenessPhase(sim);
  return finish(sim, started);
}

/**
 * The leader appends an entry and reaches exactly one follower, then is cut
 * off before it learns the entry committed. The follower holding the entry is
 * the only node that can win the next election (the other lacks the entry and
 * the old leader is unreachable), so the entry commits in the new term: the
 * client saw no answer, but the write survives and every node applies it.
 */
export async function partitionedMidAppend(seed: number, overrides: Partial<SimOptions> = {}): Promise<SimResult> {
  const sim = new Simulator({ ...baseOptions(seed), ...overrides });
  const started = performance.now();
  const leader = await bootWithLeader(sim);
  if (leader === undefined) return finish(sim, started);
  const [f1, f2] = sim.nodes.filter((n) => n !== leader) as [SimNode, SimNode];
  const client = sim.clients.list[0]!;
  await settleOp(sim, sim.clients.request(client, lockInput('warmup', 'r1'), leader), 1_000);
  const before = leader.replica!.raw.status().lastIndex;
  sim.cut([[leader.id, f2.id]], null);
  const op = sim.clients.request(client, lockInput(client.name), leader);
  await sim.runUntilTrue(() => (f1.log.length - 1) > before, 1_000, `${f1.id} receiving the entry`);
  sim.isolate(leader.id, null);
  sim.trace(`scenario: ${leader.id} isolated after ${f1.id} appended index ${before + 1}`);
  await settleOp(sim, op, 5_000);
  if (op.outcome === 'reply') sim.violation(`op #${op.id} was acknowledged although its leader never heard a quorum`);
  await sim.runUntilTrue(() => f1.replica?.isLeader === true, 5_000, `${f1.id} (the only node with the entry) winning`);
  const result = await conclude(sim, started);
  const data = commandBytes(op);
  if (result.ok && (data === undefined || sim.checks.appliedIndexOf(data) === undefined)) {
    sim.violation(`the entry ${f1.id} held was lost although ${f1.id} won the election`);
    return finish(sim, started);
  }
  return result;
}

/**
 * Crashes while a write sits in the page cache with its fsync in flight
 * (every disk is slow). First the leader alone loses power before its own
 * fsync completes (it sends nothing before it): the write must not be
 * acknowledged and the cluster goes on without it. Then a write reaches the
 * followers' page caches and the whole cluster loses power before their
 * fsyncs complete. Every WAL must reopen (truncating torn tails), every
 * acknowledged write must still be there, and the in-flight writes may
 * survive or not, but identically everywhere.
 */
export async function crashBeforeFsync(seed: number, overrides: Partial<SimOptions> = {}): Promise<SimResult> {
  const sim = new Simulator({ ...baseOptions(seed), ...overrides });
  const started = performance.now();
  const first = await bootWithLeader(sim);
  if (first === undefined) return finish(sim, started);
  const client = sim.clients.list[0]!;
  for (let i = 0; i < 5; i++) await settleOp(sim, sim.clients.request(client, lockInput(`w${i}`, `r${i}`), first), 1_000);
  const slow = (ms: number | null) => {
    for (const node of sim.nodes) node.syncMsOverride = ms;
  };
  // 1. The leader crashes between its WAL write and its fsync.
  slow(50);
  let before = first.replica!.raw.status().lastIndex;
  const op1 = sim.clients.request(client, lockInput(client.name, 'r8'), first);
  await sim.runUntilTrue(() => first.log.length - 1 > before, 10, `${first.id} writing the entry`);
  await sim.runFor(20);
  slow(null);
  sim.crash(first, 300);
  if (op1.outcome !== 'unknown') sim.violation(`op #${op1.id} should be unknown after its leader crashed before fsync, is ${op1.outcome}`);
  await sim.runUntilTrue(() => sim.leader() !== undefined && sim.leader() !== first, 2_000, 'a new leader');
  const second = sim.leader();
  if (second === undefined) return finish(sim, started);
  await settleOp(sim, sim.clients.request(client, lockInput('after', 'r7'), second), 1_000);
  // 2. The followers have the entry in their page caches when the power goes.
  slow(50);
  before = second.replica!.raw.status().lastIndex;
  const op2 = sim.clients.request(client, lockInput(client.name, 'r9'), second);
  const followersWrote = () => sim.nodes.every((n) => n === second || n.status !== 'up' || n.log.length - 1 > before);
  await sim.runUntilTrue(followersWrote, 200, 'the entry reaching the followers\' page caches');
  slow(null);
  for (const node of sim.nodes) sim.crash(node, sim.options.tickMs * (1 + node.index));
  if (op2.outcome !== 'unknown') sim.violation(`op #${op2.id} should be unknown after the power loss, is ${op2.outcome}`);
  return conclude(sim, started);
}

/**
 * Figure 8 of the Raft paper, replayed with the dice: five nodes; a leader
 * appends an entry, reaches a random subset of followers (maybe a majority,
 * maybe not), and crashes before it can commit; another node takes over and
 * does the same. Entries of older terms that sit on a majority must not be
 * committed by counting replicas; the agreement and completeness checkers
 * catch an entry that was applied and later overwritten.
 */
export async function figure8(seed: number, overrides: Partial<SimOptions> = {}): Promise<SimResult> {
  const sim = new Simulator({ ...baseOptions(seed), nodes: 5, clients: 1, ...overrides });
  const started = performance.now();
  const r = sim.clients.list[0]!.rng;
  if ((await bootWithLeader(sim)) === undefined) return finish(sim, started);
  const client = sim.clients.list[0]!;
  for (let round = 0; round < 8 && sim.violations.length === 0; round++) {
    await sim.runUntilTrue(() => sim.leader() !== undefined, 5_000, `a leader in round ${round}`);
    const leader = sim.leader();
    if (leader === undefined) break;
    const followers = sim.nodes.filter((n) => n !== leader);
    const reached = r.shuffle([...followers]).slice(0, r.int(0, followers.length - 1));
    const cut = followers.filter((n) => !reached.includes(n)).map((n): [string, string] => [leader.id, n.id]);
    if (cut.length > 0) sim.cut(cut, sim.options.tickMs * 3);
    const op = sim.clients.request(client, lockInput(`o${round}`, `r${round % 3}`), leader);
    await sim.runFor(r.real(2, 8));
    sim.trace(`scenario: round ${round}, ${leader.id} reached ${reached.map((n) => n.id).join(',') || 'nobody'}`);
    sim.crash(leader, r.real(50, 400));
    await sim.runFor(1);
    if (!op.finished && sim.violations.length === 0) sim.violation(`op #${op.id} still pending after its leader crashed`);
  }
  return conclude(sim, started);
}

/**
 * Figure 8 of the Raft paper, step by step, the network scripted so that each
 * step happens as drawn (s1..s5 are n1..n5; each new leader also appends its
 * term's no-op, one index past the contested one):
 *  (a) s1 leads and appends an entry that reaches s2 only, then crashes;
 *  (b) s5 wins the next term with the votes of s3 and s4 and appends its own
 *      entry at that index, which reaches nobody, then crashes;
 *  (c) s1 restarts, wins a later term with s2 and s3, and copies its old
 *      entry to s3: it now sits on a majority, but being of an older term it
 *      is not committed by that; s1 crashes before its no-op gets as far;
 *  (d) s5 restarts, wins with s3 and s4 and overwrites the entry everywhere.
 * A leader that commits by counting replicas applies the entry in (c) that
 * (d) overwrites: leader completeness catches s5 winning without it.
 */
export async function figure8Exact(seed: number, overrides: Partial<SimOptions> = {}): Promise<SimResult> {
  // One entry per MsgApp: in (c) s3 can hold s1's old entry without s1's no-op.
  const sim = new Simulator({ ...baseOptions(seed), nodes: 5, clients: 1, msgBytesMax: 1, ...overrides });
  const started = performance.now();
  const [s1, s2, s3, s4, s5] = sim.nodes as [SimNode, SimNode, SimNode, SimNode, SimNode];
  const client = sim.clients.list[0]!;
  sim.onlyCampaigner(s1.id);
  if ((await bootWithLeader(sim)) === undefined) return finish(sim, started);
  await settleOp(sim, sim.clients.request(client, lockInput('warmup', 'r1'), s1), 1_000);
  const index = s1.replica!.raw.status().lastIndex + 1;
  await sim.runUntilTrue(() => sim.nodes.every((n) => n.replica!.appliedIndex === index - 1), 1_000, 'every node applying the warm-up');
  // (a)
  sim.dropWhen((m) => m.from === s1.id && m.to !== s2.id, 's1 reaches s2 only');
  sim.clients.request(client, lockInput(client.name), s1);
  await sim.runUntilTrue(() => s2.log[index] !== undefined, 1_000, `s2 appending index ${index}`);
  sim.crash(s1, null);
  // (b)
  sim.onlyCampaigner(s5.id);
  sim.dropWhen((m) => m.from === s5.id && !isVoteRequest(m), 's5 is heard only asking for votes');
  await sim.runUntilTrue(() => s5.replica?.isLeader === true && s5.log[index]?.term === s5.leaderTerm, 5_000, 's5 winning and appending');
  await sim.runFor(sim.options.tickMs);
  sim.crash(s5, null);
  // (c)
  sim.restart(s1);
  sim.onlyCampaigner(s1.id);
  sim.dropWhen((m) => m.from === s1.id && (m.to === s4.id || m.to === s5.id || (m.to === s3.id && s3.log[index] !== undefined)),
    's1 reaches s2, and s3 until s3 holds the old entry');
  const match = (node: SimNode) => s1.replica?.raw.status().progress?.[node.id]?.match ?? 0;
  await sim.runUntilTrue(() => s1.replica?.isLeader === true && match(s2) >= index && match(s3) >= index, 5_000,
    `s1 learning that s2 and s3 hold index ${index}`);
  await sim.runFor(sim.options.tickMs);
  sim.crash(s1, null);
  // (d)
  sim.restart(s5);
  sim.onlyCampaigner(s5.id);
  sim.dropWhen(null);
  await sim.runUntilTrue(() => s5.replica?.isLeader === true && s5.replica.raw.committedIndex() > index, 5_000,
    `s5 winning and committing past index ${index}`);
  return conclude(sim, started);
}

/**
 * A vote must survive a crash. n1 wins a term with n3's vote while n2, cut
 * off from n1, stays a term behind. n3 restarts, then n2 campaigns for that
 * same term: n3 already voted in it, and only its WAL remembers. A node that
 * forgot its vote elects a second leader in the term (election safety).
 */
export async function crashAfterVote(seed: number, overrides: Partial<SimOptions> = {}): Promise<SimResult> {
  const sim = new Simulator({ ...baseOptions(seed), ...overrides });
  const started = performance.now();
  const [n1, n2, n3] = sim.nodes as [SimNode, SimNode, SimNode];
  sim.onlyCampaigner(n1.id);
  sim.partition([n1.id], [n2.id], null);
  if ((await bootWithLeader(sim)) === undefined) return finish(sim, started);
  // n3 hears nothing more from n1: a live leader, not the vote, would then make it refuse n2.
  sim.isolate(n1.id, null);
  sim.crash(n3, sim.options.tickMs * 5);
  sim.onlyCampaigner(n2.id);
  await sim.runUntilTrue(() => n2.replica?.isLeader === true, 5_000, 'n2 winning an election');
  return conclude(sim, started);
}

function isVoteRequest(m: Message): boolean {
  return m.type === 'MsgVote' || m.type === 'MsgPreVote';
}

/**
 * The leader lease under its worst legal clocks: the leader's clock runs
 * slow and the followers' fast, by the configured drift bound. The leader
 * holding a lock's owner is cut off (partition) or stopped (pause) while a
 * reader keeps sending it gets; the others elect a new leader, which releases
 * the lock. A get the old leader answers from its lease after that release
 * showed the lock still held: a stale read the linearizability checker
 * rejects. The lease must end before any follower may vote (leaseDriftTicks),
 * and after a pause the tick driver must catch up before input is served.
 */
export async function staleLeader(seed: number, how: 'partition' | 'pause', overrides: Partial<SimOptions> = {}): Promise<SimResult> {
  const sim = new Simulator({ ...baseOptions(seed), clients: 3, ...overrides });
  const started = performance.now();
  const d = sim.options.driftMax;
  const old = await bootWithLeader(sim);
  if (old === undefined) return finish(sim, started);
  for (const node of sim.nodes) sim.setRate(node, node === old ? 1 - d : 1 + d);
  const [writer, early, late] = sim.clients.list as [SimClient, SimClient, SimClient];
  await settleOp(sim, sim.clients.request(writer, lockInput(writer.name), old), 1_000);
  const r = early.rng;
  await sim.runFor(r.real(0, 50));
  const others = sim.nodes.filter((n) => n !== old).map((n) => n.id);
  if (how === 'partition') {
    sim.isolate(old.id, null);
  } else {
    // Stopped, and nothing from the others reaches it for a while after it wakes.
    const ms = r.real(200, 600);
    sim.pause(old, ms);
    sim.cut(others.map((id): [string, string] => [id, old.id]), ms + 300);
  }
  let unlock: ClientOp | undefined;
  const get = (): LockInput => ({ kind: 'get', resource: 'r0', durability: 'persistent' });
  // Readers poll the old leader (the late one only once the release is acknowledged); the writer releases at the new leader.
  for (let step = 0; step < 500 && sim.violations.length === 0; step++) {
    if (early.current === null) sim.clients.request(early, get(), old);
    if (unlock?.outcome === 'reply' && late.current === null) sim.clients.request(late, get(), old);
    const leader = sim.leader();
    if (unlock === undefined && leader !== undefined && leader !== old && writer.current === null) {
      unlock = sim.clients.request(writer, { kind: 'unlock', resource: 'r0', owner: writer.name, durability: 'persistent' }, leader);
    }
    await sim.runFor(2);
  }
  if (unlock === undefined && sim.violations.length === 0) sim.violation('no new leader took over from the stale one');
  return conclude(sim, started);
}

/**
 * A follower is down while the others take enough writes to snapshot and
 * compact their logs past everything it has: when it returns, the leader
 * must send it the snapshot (InstallSnapshot) rather than entries. It then
 * crashes again, restarts from the installed snapshot plus its log, and
 * must end with the same lock table as the others.
 */
export async function snapshotCatchUp(seed: number, overrides: Partial<SimOptions> = {}): Promise<SimResult> {
  const sim = new Simulator({ ...baseOptions(seed), snapshotEvery: 20, ...overrides });
  const started = performance.now();
  const leader = await bootWithLeader(sim);
  if (leader === undefined) return finish(sim, started);
  const laggard = sim.nodes.find((n) => n !== leader)!;
  const client = sim.clients.list[0]!;
  await settleOp(sim, sim.clients.request(client, lockInput(client.name, 'r1'), leader), 1_000);
  sim.crash(laggard, null);
  const behind = laggard.log.length - 1;
  // Real writes (grants and releases), so that every one is a log entry.
  for (let i = 0; i < 30; i++) {
    await settleOp(sim, sim.clients.request(client, lockInput(client.name, `r${i % 2}`), leader), 1_000);
    await settleOp(sim, sim.clients.request(client, { kind: 'unlock', resource: `r${i % 2}`, owner: client.name, durability: 'persistent' }, leader), 1_000);
  }
  const snapshotAt = leader.replica?.snapshotIndex ?? 0;
  if (snapshotAt <= behind + 5) sim.violation(`the leader's snapshot is at ${snapshotAt}, not past ${laggard.id}'s log (${behind})`);
  sim.trace(`scenario: ${leader.id} snapshotted at ${snapshotAt}; ${laggard.id} has ${behind} entries`);
  sim.restart(laggard);
  await sim.runUntilTrue(() => laggard.covered >= snapshotAt, 5_000, `${laggard.id} installing the snapshot`);
  await settleOp(sim, sim.clients.request(client, lockInput(client.name, 'r2'), leader), 1_000);
  await sim.runUntilTrue(() => laggard.replica !== null && laggard.replica.appliedIndex === leader.replica?.appliedIndex, 1_000,
    `${laggard.id} applying the entries after the snapshot`);
  // Before a restart reloads it from disk: the installed table itself must be the leader's.
  sim.checks.checkStates();
  sim.crash(laggard, sim.options.tickMs * 5);
  const result = await conclude(sim, started);
  if (result.ok && laggard.replica !== null && laggard.replica.snapshotIndex < snapshotAt) {
    sim.violation(`${laggard.id} restarted without the snapshot it installed`);
    return finish(sim, started);
  }
  return result;
}

