/**
 * Invariant checkers. In the loop, after every event: election safety (one
 * leader per term), state-machine agreement (every node applies the same
 * entry at each index: term, type and command bytes) and leader completeness
 * (a new leader's log holds every entry applied anywhere). After the run: no
 * acknowledged write lost (every node applied it, at the index it committed
 * at), then linearizability and mutual exclusion / fencing of the client
 * history (test/sim/lin).
 */
import type { Entry } from '../../raft/types.js';
import { encodeLockSnapshot } from '../../src/lock/snapshot.js';
import { checkHistory } from './lin/checker.js';
import { checkMutex } from './lin/mutex.js';
import type { LockOp } from './lin/history.js';
import { checkHolds, type HoldOp } from '../cluster/harness/holds.js';
import { fnv1a } from './prng.js';
import type { SimNode, Simulator } from './simulator.js';

interface Committed {
  key: string;
  by: string;
  /** The entry was committed in a term no later than this (the highest term any node had led when it was first applied). */
  termBound: number;
}

export interface FinalReport {
  linOk: boolean | 'unknown';
  linSteps: number;
  grants: number;
}

export class Checks {
  /** Index → the entry first seen applied there (by which node). */
  private readonly committed: (Committed | undefined)[] = [];
  private readonly committedByKey = new Map<string, number>();
  private maxCommitted = 0;
  private readonly leaders = new Map<number, string>();
  private maxLeaderTerm = 0;
  elections = 0;

  constructor(private readonly sim: Simulator) {}

  get committedCount(): number {
    return this.maxCommitted;
  }

  observe(): void {
    for (const node of this.sim.nodes) {
      if (node.status !== 'up') continue;
      this.checkApplied(node);
      this.checkLeader(node);
    }
  }

  private checkApplied(node: SimNode): void {
    const applied = node.replica!.appliedIndex;
    // Entries a snapshot covers were not applied one by one here (checkStates compares the result).
    for (let i = Math.max(node.appliedSeen, node.covered) + 1; i <= applied; i++) {
      const entry = node.log[i];
      if (entry === undefined) {
        this.sim.violation(`${node.id} applied index ${i}, which its WAL never received`);
        return;
      }
      const key = entryKey(entry);
      const first = this.committed[i];
      if (first === undefined) {
        this.committed[i] = { key, by: node.id, termBound: this.maxLeaderTerm };
        if (entry.type === 'normal') this.committedByKey.set(dataKey(entry.data), i);
        if (i > this.maxCommitted) this.maxCommitted = i;
      } else if (first.key !== key) {
        this.sim.violation(`state-machine agreement: ${node.id} applied ${key} at index ${i}, ${first.by} applied ${first.key}`);
        return;
      }
    }
    node.appliedSeen = applied;
  }

  /**
   * Election safety, from the Raft core itself: called when a node's ready()
   * reports it became leader (the replica learns it only after persisting
   * that Ready, by when the core may have moved to a later term).
   */
  raftLeader(node: SimNode, term: number): void {
    this.elections++;
    node.leaderTerm = term;
    if (term > this.maxLeaderTerm) this.maxLeaderTerm = term;
    this.sim.trace(`${node.id} LEADER term ${term}`);
    const other = this.leaders.get(term);
    if (other !== undefined && other !== node.id) this.sim.violation(`election safety: ${node.id} and ${other} both led term ${term}`);
    this.leaders.set(term, node.id);
  }

  private checkLeader(node: SimNode): void {
    const isLeader = node.replica!.isLeader;
    if (isLeader && !node.wasLeader) {
      node.proposed.clear();
      this.checkCompleteness(node, node.leaderTerm);
    }
    node.wasLeader = isLeader;
  }

  /** Leader completeness: every entry applied anywhere is in the new leader's log, unchanged. */
  private checkCompleteness(node: SimNode, term: number): void {
    // A snapshot the leader holds covers committed entries, checked when they were applied.
    for (let i = Math.max(2, node.covered + 1); i <= this.maxCommitted; i++) {
      const want = this.committed[i];
      // Only entries surely committed before this term began bind its leader.
      if (want === undefined || want.termBound >= term) continue;
      const have = node.log[i];
      if (have === undefined || entryKey(have) !== want.key) {
        const got = have === undefined ? 'nothing' : entryKey(have);
        this.sim.violation(`leader completeness: ${node.id} leads term ${term} with ${got} at index ${i}, where ${want.by} applied ${want.key}`);
        return;
      }
    }
  }

  /** The index a command with these bytes was applied at anywhere, if it was. */
  appliedIndexOf(data: Uint8Array): number | undefined {
    return this.committedByKey.get(dataKey(data));
  }

  /** After convergence: every running node applied every acknowledged write at the index it committed at. */
  checkAckedWrites(): void {
    for (const ack of this.sim.clients.acked) {
      const index = this.committedByKey.get(dataKey(ack.data));
      if (index === undefined) {
        this.sim.violation(`no committed entry lost: acknowledged op #${ack.opId} was never applied anywhere`);
        return;
      }
      for (const node of this.sim.nodes) {
        if (node.status !== 'up') continue;
        const entry = node.log[index];
        const applied = node.replica!.appliedIndex;
        const covered = index <= node.covered;
        if (applied < index || (!covered && (entry === undefined || dataKey(entry.data) !== dataKey(ack.data)))) {
          this.sim.violation(`no committed entry lost: ${node.id} lacks acknowledged op #${ack.opId} at index ${index} (applied ${applied})`);
          return;
        }
      }
    }
  }

  /**
   * After convergence: nodes that applied the same prefix of the log hold
   * the same lock table, byte for byte, whether they applied every entry,
   * restarted from a snapshot or installed one from the leader.
   */
  checkStates(): void {
    const byIndex = new Map<number, { id: string; state: string }>();
    for (const node of this.sim.nodes) {
      if (node.status !== 'up') continue;
      const index = node.replica!.appliedIndex;
      const state = dataKey(encodeLockSnapshot(node.machine!, 0));
      const other = byIndex.get(index);
      if (other === undefined) byIndex.set(index, { id: node.id, state });
      else if (other.state !== state) {
        this.sim.violation(`state-machine agreement: ${node.id} and ${other.id} both applied up to ${index} but hold different lock tables`);
        return;
      }
    }
  }

  /** Linearizability and mutual exclusion / fencing of the client history. */
  checkHistory(): FinalReport {
    const history = this.sim.clients.recorder.history();
    const mutex = checkMutex(history);
    if (!mutex.ok) this.sim.violation(`mutex/fencing:\n${mutex.explanation}`);
    const holds = checkHolds(holdOps(history), { drift: this.sim.options.driftMax });
    if (!holds.ok) this.sim.violation(`real-time mutual exclusion:\n${holds.violations.join('\n')}`);
    // EPHEMERAL ops are checked for mutual exclusion and fencing above, not
    // for linearizability: each leader serves them at its own log clock, which
    // a new leader starts at the last log time in its log, behind the instants
    // its predecessor served EPHEMERAL ops at (those are not logged). Their
    // instants from different leaders are therefore not on one time line,
    // while every lease still ends no sooner than it would have (the lagging
    // clock only delays expiry, and the horizon keeps grants apart).
    const persistent = history.filter((op) => op.input.durability === 'persistent');
    const lin = checkHistory(persistent, { stepsMaxPerPartition: this.sim.options.linStepsMax });
    if (lin.ok === false) this.sim.violation(`linearizability:\n${lin.explanation}`);
    return {
      linOk: lin.ok,
      linSteps: lin.ok === true ? lin.steps : 0,
      grants: mutex.ok ? mutex.grants : 0,
    };
  }
}

function dataKey(data: Uint8Array): string {
  let h1 = 0x811c9dc5;
  let h2 = 0x1234567;
  for (let i = 0; i < data.length; i++) {
    h1 = Math.imul(h1 ^ data[i]!, 0x01000193) >>> 0;
    h2 = Math.imul(h2 ^ data[i]!, 0x5bd1e995) >>> 0;
  }
  return `${data.length}:${h1.toString(16)}:${h2.toString(16)}`;
}

function entryKey(entry: Entry): string {
  return `${entry.type}@t${entry.term}#${entry.type === 'normal' ? dataKey(entry.data) : fnv1a('')}`;
}

/**
 * The history as the real-time hold checker sees it (sim time: no server
 * clock), per durability. A grant answered at ret, asked at call, holds for
 * sure until call + ttl x (1 - drift) however the leaders' log clocks ran;
 * an unlock whose reply was lost may have released at its call, and an
 * extend whose reply was lost may have shortened the lease there. A second
 * lock by the holder does not renew the lease (same token, same expiry), nor
 * does one that may repeat a lock whose reply was lost.
 */
function holdOps(history: readonly LockOp[]): HoldOp[] {
  const ops: HoldOp[] = [];
  // A lock by the holder answers its token and leaves the expiry alone: only a
  // token's first grant starts a hold (extends do lengthen it).
  const granted = new Set<string>();
  // A lock whose reply was lost may have granted the token a later lock of the
  // same owner only repeats: such later replies start no window.
  const lostLock = new Set<string>();
  for (const op of [...history].sort((a, b) => a.call - b.call)) {
    const input = op.input;
    if (input.kind === 'get') continue;
    const resource = `${input.durability} ${input.resource}`;
    if (input.kind === 'unlock') {
      ops.push({ client: op.client, owner: input.owner, resource, kind: 'unlock', ttlMs: 0, call: op.call, ret: op.ret ?? op.call, result: op.output === undefined ? true : (op.output as boolean) });
      continue;
    }
    const holder = `${resource}\u0000${input.owner}`;
    if (op.ret === undefined && input.kind === 'lock') lostLock.add(holder);
    // An extend whose reply was lost may have set a sooner expiry at its call: it cuts the owner's hold there.
    if (op.ret === undefined && input.kind === 'extend') {
      ops.push({ client: op.client, owner: input.owner, resource, kind: 'extend', ttlMs: input.ttlMs, call: op.call, ret: op.call, result: null });
      continue;
    }
    if (op.ret === undefined || typeof op.output !== 'bigint') continue;
    const grant = `${holder}\u0000${op.output}`;
    if (input.kind === 'lock' && (granted.has(grant) || lostLock.has(holder))) continue;
    granted.add(grant);
    ops.push({ client: op.client, owner: input.owner, resource, kind: input.kind, ttlMs: input.ttlMs, call: op.call, ret: op.ret, result: op.output });
  }
  return ops;
}
