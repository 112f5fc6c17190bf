/**
 * Membership, per-peer progress and election votes. Quorums are majorities
 * of the voters; learners get progress (the leader replicates to them) but
 * never count toward a quorum.
 */
import { assert, RaftInvariantError } from './errors.js';
import { Progress, type Clock } from './progress.js';
import type { ConfState, NodeId } from './types.js';

export type VoteResult = 'won' | 'lost' | 'pending';

export class ProgressTracker {
  voters = new Set<NodeId>();
  /** The voters as an array (the leader iterates them on every commit and lease check). */
  private voterList: NodeId[] = [];
  learners = new Set<NodeId>();
  readonly progress = new Map<NodeId, Progress>();
  private readonly votes = new Map<NodeId, boolean>();
  /** quorumValue's working array, kept between calls. */
  private readonly scratch: number[] = [];

  constructor(
    private readonly maxInflightMsgs: number,
    private readonly maxInflightBytes: number,
  ) {}

  conf(): ConfState {
    return { voters: [...this.voters].sort(), learners: [...this.learners].sort() };
  }

  isVoter(id: NodeId): boolean {
    return this.voters.has(id);
  }

  quorum(): number {
    return Math.floor(this.voters.size / 2) + 1;
  }

  /**
   * Installs a membership. Peers that stay keep their progress; new ones
   * start probing at `nextIndex` and count as active so that CheckQuorum does
   * not depose the leader before they had a chance to answer.
   */
  setConf(conf: ConfState, nextIndex: number, now: Clock): void {
    assert(conf.voters.every((v) => !conf.learners.includes(v)), 'a node is both voter and learner');
    this.voters = new Set(conf.voters);
    this.voterList = [...this.voters];
    this.learners = new Set(conf.learners);
    for (const id of [...this.progress.keys()]) {
      if (!this.voters.has(id) && !this.learners.has(id)) this.progress.delete(id);
    }
    for (const id of [...this.voters, ...this.learners]) {
      const pr = this.progress.get(id);
      if (pr !== undefined) {
        pr.isLearner = this.learners.has(id);
        continue;
      }
      const fresh = this.newProgress(id, nextIndex, now);
      fresh.recentActive = true;
      this.progress.set(id, fresh);
    }
  }

  /** Fresh progress for every member (a new term): nothing is known about followers. */
  resetProgress(nextIndex: number, now: Clock): void {
    this.progress.clear();
    for (const id of [...this.voters, ...this.learners]) this.progress.set(id, this.newProgress(id, nextIndex, now));
  }

  private newProgress(id: NodeId, nextIndex: number, now: Clock): Progress {
    return new Progress(nextIndex, this.learners.has(id), this.maxInflightMsgs, this.maxInflightBytes, now);
  }

  /**
   * The largest value that a quorum of voters has reached: each voter's value
   * from `valueOf`, sorted descending, the quorum-th. With values = match
   * indexes this is the commit point.
   */
  quorumValue<T>(valueOf: (id: NodeId, pr: Progress, arg: T) => number, arg: T): number {
    const voters = this.voterList;
    assert(voters.length > 0, 'no voters');
    // The leader asks on every commit and lease check: an insertion sort into
    // a reused array (a handful of voters) allocates nothing, unlike sort(),
    // and neither does valueOf when it is a function of its arguments only.
    const values = this.scratch;
    let n = 0;
    for (let v = 0; v < voters.length; v++) {
      const id = voters[v]!;
      const pr = this.progress.get(id);
      if (pr === undefined) throw new RaftInvariantError(`voter ${id} has no progress`);
      const value = valueOf(id, pr, arg);
      let i = n++;
      for (; i > 0 && values[i - 1]! < value; i--) values[i] = values[i - 1]!;
      values[i] = value;
    }
    return values[this.quorum() - 1]!;
  }

  /** Did a quorum of voters (counting `self` as always active) talk to us recently? */
  quorumActive(self: NodeId): boolean {
    let active = 0;
    for (const id of this.voters) {
      if (id === self || this.progress.get(id)!.recentActive) active++;
    }
    return active >= this.quorum();
  }

  resetRecentActive(self: NodeId): void {
    for (const [id, pr] of this.progress) pr.recentActive = id === self;
  }

  resetVotes(): void {
    this.votes.clear();
  }

  /** Records the first vote from a voter (later duplicates do not change it) and tallies. */
  recordVote(id: NodeId, granted: boolean): VoteResult {
    if (this.voters.has(id) && !this.votes.has(id)) this.votes.set(id, granted);
    let yes = 0;
    let no = 0;
    for (const v of this.votes.values()) {
      if (v) yes++;
      else no++;
    }
    const q = this.quorum();
    if (yes >= q) return 'won';
    if (no > this.voters.size - q) return 'lost';
    return 'pending';
  }
}
