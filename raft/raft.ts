/**
 * The Raft state machine shared by all roles: terms and votes, role changes,
 * elections (with PreVote), the follower side of replication, and membership.
 * Role-specific message handling is a swapped step function (stepLeader in
 * leader.ts, stepFollower / stepCandidate in follower.ts), not a subclass.
 *
 * Nothing here performs I/O: outgoing messages collect in `msgs`, and RawNode
 * hands them to the caller in a Ready together with what must be persisted first.
 */
import { validateConfig, type RaftConfig, type ValidConfig } from './config.js';
import { applyToConf, type ConfChange } from './confchange.js';
import { ErrConfigInvalid, assert } from './errors.js';
import { stepCandidate, stepFollower } from './follower.js';
import { maybeCommit, onLeaderConfChange, startLeadership, tickLeader, stepLeader } from './leader.js';
import { RaftLog } from './log.js';
import { ReadOnlyQueue } from './readonly.js';
import type { Clock } from './progress.js';
import { ProgressTracker } from './tracker.js';
import type {
  ConfState, HardState, Message, MsgApp, MsgHeartbeat, MsgPreVote, MsgSnap, MsgVote, NodeId, ReadState, Role, Snapshot,
  SoftState,
} from './types.js';

export type StepFn = (r: Raft, m: Message) => void;

type CampaignKind = 'preVote' | 'election' | 'transfer';

export class Raft {
  readonly id: NodeId;
  readonly cfg: ValidConfig;
  readonly log: RaftLog;
  readonly tracker: ProgressTracker;
  readonly readOnly = new ReadOnlyQueue();

  term = 0;
  vote: NodeId | null = null;
  lead: NodeId | null = null;
  role: Role = 'follower';
  stepRole: StepFn = stepFollower;

  /** Outgoing messages and answered reads, drained by RawNode.ready(). */
  msgs: Message[] = [];
  readStates: ReadState[] = [];
  droppedMessages = 0;
  droppedReadStates = 0;

  /** Total ticks since construction: the leader lease is measured on this clock. */
  ticks = 0;
  electionElapsed = 0;
  heartbeatElapsed = 0;
  randomizedElectionTimeout = 0;
  /**
   * Ticks since a leader last contacted us. While below electionTicks (and
   * CheckQuorum is on) we refuse to help elect anyone else: that promise is
   * what makes the leader lease safe. It starts at 0 so that a restarted node
   * keeps any promise it made before the crash.
   */
  leaderContactElapsed = 0;

  leadTransferee: NodeId | null = null;
  transferElapsed = 0;
  /** A MsgTimeoutNow went out this term: its target may win without waiting, so no lease may be trusted. */
  timeoutNowSent = false;
  /** Index of the latest conf entry the leader appended; another may not be proposed until it is applied. */
  pendingConfIndex = 0;
  /** Payload bytes appended by this leader and not yet applied. */
  uncommittedBytes = 0;
  /** Number of the latest heartbeat broadcast (ReadIndex rounds). */
  heartbeatRound = 0;
  /** Work deferred to the next ready() so that many proposals or reads share one broadcast. */
  readRoundPending = false;
  appendPending = false;

  constructor(config: RaftConfig) {
    this.cfg = validateConfig(config);
    this.id = this.cfg.id;
    const { hardState, conf } = this.cfg.storage.initialState();
    this.log = new RaftLog(this.cfg.storage, this.cfg.maxCommittedBytesPerReady);
    this.tracker = new ProgressTracker(this.cfg.maxInflightMsgs, this.cfg.maxInflightBytes);
    this.tracker.setConf(conf, this.log.lastIndex() + 1, this.clock());
    this.loadHardState(hardState);
    const applied = this.cfg.applied ?? Math.max(this.log.applied, this.cfg.storage.snapshot().meta.index);
    if (applied !== this.log.applied) {
      if (applied < this.log.applied || applied > this.log.committed) {
        throw new ErrConfigInvalid(`applied (${applied}) must be within [${this.log.applied}, ${this.log.committed}] (snapshot index, commit index)`);
      }
      this.log.appliedTo(applied);
    }
    this.becomeFollower(this.term, null);
    this.leaderContactElapsed = 0;
  }

  private loadHardState(hs: HardState): void {
    assert(hs.commit >= this.log.committed && hs.commit <= this.log.lastIndex(),
      () => `hard state commit ${hs.commit} outside the log [${this.log.committed}, ${this.log.lastIndex()}]`);
    assert(hs.term >= this.log.lastTerm(), () => `hard state term ${hs.term} below the last log term ${this.log.lastTerm()}`);
    this.log.committed = hs.commit;
    this.term = hs.term;
    this.vote = hs.vote;
  }

  clock(): Clock {
    return { tick: this.ticks, round: this.heartbeatRound };
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  softState(): SoftState {
    return { leader: this.lead, role: this.role };
  }

  promotable(): boolean {
    return this.tracker.isVoter(this.id);
  }

  /** Queues a message; past the limit it is dropped, which Raft tolerates like network loss. */
  send(m: Message): void {
    if (this.msgs.length >= this.cfg.maxPendingMessages) {
      this.droppedMessages++;
      return;
    }
    this.msgs.push(m);
  }

  pushReadState(rs: ReadState): void {
    if (this.readStates.length >= this.cfg.maxPendingReadIndex) {
      this.droppedReadStates++;
      return;
    }
    this.readStates.push(rs);
  }

  // ---- roles ---------------------------------------------------------------

  private reset(term: number): void {
    assert(term >= this.term, () => `term going backwards: ${this.term} -> ${term}`);
    if (term !== this.term) {
      this.term = term;
      this.vote = null;
    }
    this.lead = null;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.abortLeaderTransfer();
    this.timeoutNowSent = false;
    this.tracker.resetVotes();
    this.tracker.resetProgress(this.log.lastIndex() + 1, this.clock());
    this.pendingConfIndex = 0;
    this.uncommittedBytes = 0;
    this.readOnly.reset();
    this.readRoundPending = false;
    this.appendPending = false;
  }

  private resetRandomizedElectionTimeout(): void {
    const x = this.cfg.rng();
    assert(x >= 0 && x < 1, () => `rng returned ${x}, outside [0, 1)`);
    this.randomizedElectionTimeout = this.cfg.electionTicks + Math.floor(x * this.cfg.electionTicks);
  }

  becomeFollower(term: number, lead: NodeId | null): void {
    const wasLeader = this.role === 'leader';
    this.stepRole = stepFollower;
    this.reset(term);
    this.lead = lead;
    this.role = 'follower';
    // A deposed leader owes no lease to anyone: it may vote at once.
    if (wasLeader) this.leaderContactElapsed = this.cfg.electionTicks;
  }

  private becomePreCandidate(): void {
    assert(this.role !== 'leader', 'leader cannot become a pre-candidate');
    // PreVote changes neither term nor vote: a failed pre-campaign leaves no trace.
    this.stepRole = stepCandidate;
    this.tracker.resetVotes();
    this.lead = null;
    this.role = 'precandidate';
    this.electionElapsed = 0;
    this.resetRandomizedElectionTimeout();
  }

  private becomeCandidate(): void {
    assert(this.role !== 'leader', 'leader cannot become a candidate');
    this.stepRole = stepCandidate;
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = 'candidate';
  }

  private becomeLeader(): void {
    assert(this.role === 'candidate', () => `${this.role} cannot become leader`);
    this.stepRole = stepLeader;
    this.reset(this.term);
    this.lead = this.id;
    this.role = 'leader';
    startLeadership(this);
  }

  abortLeaderTransfer(): void {
    this.leadTransferee = null;
    this.transferElapsed = 0;
  }

  // ---- time ----------------------------------------------------------------

  tick(): void {
    this.ticks++;
    this.leaderContactElapsed++;
    if (this.role === 'leader') {
      tickLeader(this);
      return;
    }
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(false);
    }
  }

  /** Under CheckQuorum, a node that heard from a leader within an election timeout helps no one else win. */
  inLease(): boolean {
    return this.cfg.checkQuorum && (this.role === 'leader' || this.leaderContactElapsed < this.cfg.electionTicks);
  }

  // ---- elections -----------------------------------------------------------

  /** Starts an election, unless this node cannot or should not lead. */
  hup(transfer: boolean): void {
    if (this.role === 'leader' || !this.promotable()) return;
    // A node must apply committed membership changes before it leads, or it would count the wrong quorum.
    if (this.hasUnappliedConfChanges()) return;
    this.campaign(transfer ? 'transfer' : this.cfg.preVote ? 'preVote' : 'election');
  }

  private campaign(kind: CampaignKind): void {
    let voteTerm: number;
    if (kind === 'preVote') {
      this.becomePreCandidate();
      voteTerm = this.term + 1;
    } else {
      this.becomeCandidate();
      voteTerm = this.term;
    }
    if (this.tracker.recordVote(this.id, true) === 'won') {
      this.onElectionWon();
      return;
    }
    const lastLogIndex = this.log.lastIndex();
    const lastLogTerm = this.log.lastTerm();
    for (const to of this.tracker.voters) {
      if (to === this.id) continue;
      if (kind === 'preVote') {
        this.send({ type: 'MsgPreVote', from: this.id, to, term: voteTerm, lastLogIndex, lastLogTerm });
      } else {
        this.send({ type: 'MsgVote', from: this.id, to, term: voteTerm, lastLogIndex, lastLogTerm, transfer: kind === 'transfer' });
      }
    }
  }

  /** A quorum granted our (pre-)vote. */
  onElectionWon(): void {
    if (this.role === 'precandidate') {
      this.campaign('election');
    } else {
      this.becomeLeader();
    }
  }

  private hasUnappliedConfChanges(): boolean {
    if (this.log.hasPendingSnapshot()) return false;
    let lo = Math.max(this.log.applied + 1, this.log.firstIndex());
    const hi = this.log.committed + 1;
    while (lo < hi) {
      const entries = this.log.slice(lo, hi, this.cfg.maxCommittedBytesPerReady);
      if (entries.some((e) => e.type === 'conf')) return true;
      lo += entries.length;
    }
    return false;
  }

  // ---- messages ------------------------------------------------------------

  step(m: Message): void {
    if (m.to !== this.id) return;
    if (m.term > this.term) {
      if (!this.stepHigherTerm(m)) return;
    } else if (m.term < this.term) {
      this.stepLowerTerm(m);
      return;
    }
    if (m.type === 'MsgVote' || m.type === 'MsgPreVote') {
      this.handleVoteRequest(m);
      return;
    }
    this.stepRole(this, m);
  }

  /** A message from a newer term. Returns false if it is to be ignored. */
  private stepHigherTerm(m: Message): boolean {
    if (m.type === 'MsgVote' || m.type === 'MsgPreVote') {
      const forced = m.type === 'MsgVote' && m.transfer;
      // Our leader is alive as far as we know: a disrupting candidate gets no answer (and no term bump).
      if (!forced && this.inLease()) return false;
    }
    // PreVote traffic never moves terms: the pre-candidate has not really started an election.
    if (m.type === 'MsgPreVote') return true;
    if (m.type === 'MsgPreVoteResp' && !m.reject) return true;
    const fromLeader = m.type === 'MsgApp' || m.type === 'MsgHeartbeat' || m.type === 'MsgSnap';
    this.becomeFollower(m.term, fromLeader ? m.from : null);
    return true;
  }

  private stepLowerTerm(m: Message): void {
    if ((this.cfg.checkQuorum || this.cfg.preVote) && (m.type === 'MsgHeartbeat' || m.type === 'MsgApp')) {
      // A stale leader (e.g. just back from a partition). With PreVote we will not raise terms to depose it,
      // so tell it our term directly.
      this.send({ type: 'MsgAppResp', from: this.id, to: m.from, term: this.term, index: 0, reject: false, rejectHint: 0, logTerm: 0 });
    } else if (m.type === 'MsgPreVote') {
      this.send({ type: 'MsgPreVoteResp', from: this.id, to: m.from, term: this.term, reject: true });
    }
  }

  private handleVoteRequest(m: MsgVote | MsgPreVote): void {
    const canVote =
      this.vote === m.from ||
      (this.vote === null && this.lead === null) ||
      (m.type === 'MsgPreVote' && m.term > this.term);
    const grant = canVote && this.log.isUpToDate(m.lastLogIndex, m.lastLogTerm);
    const type = m.type === 'MsgVote' ? 'MsgVoteResp' : 'MsgPreVoteResp';
    // A granted pre-vote carries the future term the pre-candidate asked about.
    this.send({ type, from: this.id, to: m.from, term: grant ? m.term : this.term, reject: !grant });
    if (grant && m.type === 'MsgVote') {
      this.electionElapsed = 0;
      this.vote = m.from;
    }
  }

  /** Any message from the current leader: it is alive, so stay a follower and keep the lease promise. */
  heardFromLeader(from: NodeId): void {
    this.electionElapsed = 0;
    this.leaderContactElapsed = 0;
    this.lead = from;
  }

  handleAppendEntries(m: MsgApp): void {
    const reply = { type: 'MsgAppResp', from: this.id, to: m.from, term: this.term, rejectHint: 0, logTerm: 0 } as const;
    if (m.index < this.log.committed) {
      this.send({ ...reply, index: this.log.committed, reject: false });
      return;
    }
    const last = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (last !== null) {
      this.send({ ...reply, index: last, reject: false });
      return;
    }
    // Name our last entry whose term could still match, so the leader skips whole conflicting terms.
    const hint = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    this.send({ ...reply, index: m.index, reject: true, rejectHint: hint.index, logTerm: hint.term });
  }

  handleHeartbeat(m: MsgHeartbeat): void {
    // The leader sends min(our match, its commit), so every index up to it is in our log.
    this.log.commitTo(m.commit);
    this.send({ type: 'MsgHeartbeatResp', from: this.id, to: m.from, term: this.term, round: m.round, tick: m.tick });
  }

  handleSnapshot(m: MsgSnap): void {
    const restored = this.restore(m.snapshot);
    const index = restored ? this.log.lastIndex() : this.log.committed;
    this.send({ type: 'MsgAppResp', from: this.id, to: m.from, term: this.term, index, reject: false, rejectHint: 0, logTerm: 0 });
  }

  /** Installs a leader's snapshot unless our log already covers it. */
  private restore(snapshot: Snapshot): boolean {
    const { index, term, conf } = snapshot.meta;
    if (index <= this.log.committed) return false;
    assert(this.role === 'follower', () => `${this.role} asked to restore a snapshot`);
    if (this.log.matchTerm(index, term)) {
      // Our log already holds the snapshot's last entry: just commit up to it.
      this.log.commitTo(index);
      return false;
    }
    this.log.restore(snapshot);
    this.tracker.setConf(conf, this.log.lastIndex() + 1, this.clock());
    return true;
  }

  // ---- membership ----------------------------------------------------------

  /** Applies a committed membership change; returns the new membership. */
  applyConfChange(cc: ConfChange): ConfState {
    const conf = applyToConf(this.tracker.conf(), cc);
    this.tracker.setConf(conf, this.log.lastIndex() + 1, this.clock());
    if (this.role === 'leader') onLeaderConfChange(this);
    return conf;
  }

  /** The caller persisted everything below the unstable tail: a leader counts its own copy only now. */
  onPersisted(): void {
    if (this.role !== 'leader') return;
    const pr = this.tracker.progress.get(this.id);
    if (pr !== undefined && pr.maybeUpdate(this.log.persistedIndex(), this.clock()) && maybeCommit(this)) {
      this.appendPending = true;
    }
  }
}
