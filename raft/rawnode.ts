/**
 * RawNode: the Raft core's public face. The caller drives it (single-threaded):
 *
 *   tick()            every tick interval of the caller's monotonic clock
 *   step(msg)         for every message received from a peer
 *   propose(data)     on the leader, to replicate a command
 *   while (hasReady()) {
 *     const rd = ready();
 *     persist rd.snapshot, rd.entries and rd.hardState (fsync if rd.mustSync)
 *     send rd.messages                       -- only after the write above is durable
 *     restore rd.snapshot, apply rd.committedEntries (applyConfChange for `conf` entries)
 *     serve rd.readStates once applied >= their index
 *     advance(rd)
 *   }
 *
 * tick/step/propose may also be called between ready() and advance() (while a
 * write is in flight); what they produce goes into the next Ready. Exactly one
 * Ready may be outstanding.
 */
import type { RaftConfig } from './config.js';
import type { ConfChange } from './confchange.js';
import { ErrReadIndexDropped, ErrTransferInvalid, ErrUsage, assert } from './errors.js';
import {
  flushLeader, leaseValid, proposeConfChange, propose, reduceUncommitted, reportSnapshot, reportUnreachable, requestRead,
  transferLeader,
} from './leader.js';
import type { ProgressState } from './progress.js';
import { Raft } from './raft.js';
import type { ConfState, HardState, Message, NodeId, Ready, Role, SoftState } from './types.js';

export interface ProgressStatus {
  match: number;
  next: number;
  state: ProgressState;
  recentActive: boolean;
  paused: boolean;
  inflightMsgs: number;
  inflightBytes: number;
  isLearner: boolean;
}

export interface Status {
  id: NodeId;
  term: number;
  vote: NodeId | null;
  leader: NodeId | null;
  role: Role;
  commit: number;
  applied: number;
  firstIndex: number;
  lastIndex: number;
  conf: ConfState;
  leadTransferee: NodeId | null;
  leaseValid: boolean;
  /** Outgoing messages dropped because maxPendingMessages was reached. */
  droppedMessages: number;
  /** Read answers dropped because maxPendingReadIndex was reached. */
  droppedReadStates: number;
  /** Per-member replication state; leader only. */
  progress?: Record<NodeId, ProgressStatus>;
}

export class RawNode {
  private readonly r: Raft;
  private prevSoft: SoftState;
  private prevHard: HardState;
  private outstanding: Ready | null = null;

  constructor(config: RaftConfig) {
    this.r = new Raft(config);
    this.prevSoft = this.r.softState();
    this.prevHard = this.r.hardState();
  }

  /** Advances logical time by one tick (elections, heartbeats, CheckQuorum, the lease clock). */
  tick(): void {
    this.r.tick();
  }

  /** Handles a message from a peer. Messages addressed to another node are ignored. */
  step(msg: Message): void {
    this.r.step(msg);
  }

  /**
   * Appends a command on the leader; returns where it will be committed if it
   * is. The command is committed iff an entry at that index with that term
   * is later applied. Throws ErrProposalDropped (nothing appended) otherwise.
   */
  propose(data: Uint8Array): { index: number; term: number } {
    return propose(this.r, 'normal', data);
  }

  /** Proposes a membership change; one at a time. Throws ErrProposalDropped. */
  proposeConfChange(change: ConfChange): { index: number; term: number } {
    return proposeConfChange(this.r, change);
  }

  /** Applies a committed conf entry (call while applying it); returns the new membership. */
  applyConfChange(change: ConfChange): ConfState {
    return this.r.applyConfChange(change);
  }

  /**
   * Requests a linearizable read point. A ReadState with the same ctx appears
   * in a later Ready (or never, if leadership changes: time out and retry).
   * ctx must be unique among this node's pending reads.
   */
  readIndex(ctx: Uint8Array): void {
    const r = this.r;
    if (r.role === 'leader') {
      requestRead(r, r.id, ctx);
      return;
    }
    if (r.lead === null) throw new ErrReadIndexDropped('no leader known');
    if (r.readStates.length >= r.cfg.maxPendingReadIndex) {
      throw new ErrReadIndexDropped(`maxPendingReadIndex (${r.cfg.maxPendingReadIndex}) reads pending`);
    }
    r.send({ type: 'MsgReadIndex', from: r.id, to: r.lead, term: r.term, ctx });
  }

  /** Hands leadership to `to` once it has caught up; on a follower, forwards the request to the leader. */
  transferLeader(to: NodeId): void {
    const r = this.r;
    if (r.role === 'leader') {
      transferLeader(r, to);
      return;
    }
    if (r.lead === null) throw new ErrTransferInvalid('no leader known');
    r.send({ type: 'MsgTransferLeader', from: r.id, to: r.lead, term: r.term, transferee: to });
  }

  /** Starts an election now (with PreVote if configured). */
  campaign(): void {
    this.r.hup(false);
  }

  /** The transport failed to deliver to `to`. */
  reportUnreachable(to: NodeId): void {
    reportUnreachable(this.r, to);
  }

  /** The transport finished (or failed) sending a snapshot to `to`. */
  reportSnapshot(to: NodeId, status: 'finish' | 'failure'): void {
    reportSnapshot(this.r, to, status === 'finish');
  }

  /** True while the leader lease is valid: reads may be served locally without a heartbeat round. */
  leaseValid(): boolean {
    return leaseValid(this.r);
  }

  /** Is there anything to persist, send or apply? False while a Ready is outstanding. May queue deferred broadcasts. */
  hasReady(): boolean {
    if (this.outstanding !== null) return false;
    const r = this.r;
    flushLeader(r);
    return (
      r.msgs.length > 0 ||
      r.readStates.length > 0 ||
      r.log.unstable.entries.length > 0 ||
      r.log.hasPendingSnapshot() ||
      r.log.hasNextCommittedEntries() ||
      !sameSoft(r.softState(), this.prevSoft) ||
      !sameHard(r.hardState(), this.prevHard)
    );
  }

  ready(): Ready {
    if (this.outstanding !== null) throw new ErrUsage('ready() called again before advance()');
    const r = this.r;
    flushLeader(r);
    const soft = r.softState();
    const hard = r.hardState();
    const entries = r.log.unstableEntries();
    const rd: Ready = {
      entries,
      committedEntries: r.log.nextCommittedEntries(),
      messages: r.msgs,
      readStates: r.readStates,
      mustSync: entries.length > 0 || hard.term !== this.prevHard.term || hard.vote !== this.prevHard.vote,
    };
    if (!sameSoft(soft, this.prevSoft)) rd.softState = soft;
    if (!sameHard(hard, this.prevHard)) rd.hardState = hard;
    const snapshot = r.log.unstable.snapshot;
    if (snapshot !== null) rd.snapshot = snapshot;
    r.msgs = [];
    r.readStates = [];
    this.prevSoft = soft;
    this.prevHard = hard;
    this.outstanding = rd;
    return rd;
  }

  /** Everything in `rd` has been persisted and applied. */
  advance(rd: Ready): void {
    if (rd !== this.outstanding) throw new ErrUsage('advance() must be given the Ready returned by the last ready()');
    this.outstanding = null;
    const log = this.r.log;
    if (rd.snapshot !== undefined) {
      log.stableSnapTo(rd.snapshot.meta.index);
      log.appliedTo(Math.max(log.applied, rd.snapshot.meta.index));
    }
    const last = rd.entries[rd.entries.length - 1];
    if (last !== undefined) {
      assert(log.storage.lastIndex() >= last.index,
        () => `advance: storage ends at ${log.storage.lastIndex()} but the Ready's entries end at ${last.index}; persist them first`);
      log.stableTo(last.index, last.term);
      this.r.onPersisted();
    }
    const applied = rd.committedEntries[rd.committedEntries.length - 1];
    if (applied !== undefined) {
      log.appliedTo(applied.index);
      reduceUncommitted(this.r, rd.committedEntries);
    }
  }

  /** The commit index now (cheap; status() builds a full report). */
  committedIndex(): number {
    return this.r.log.committed;
  }

  status(): Status {
    const r = this.r;
    const status: Status = {
      id: r.id,
      term: r.term,
      vote: r.vote,
      leader: r.lead,
      role: r.role,
      commit: r.log.committed,
      applied: r.log.applied,
      firstIndex: r.log.firstIndex(),
      lastIndex: r.log.lastIndex(),
      conf: r.tracker.conf(),
      leadTransferee: r.leadTransferee,
      leaseValid: leaseValid(r),
      droppedMessages: r.droppedMessages,
      droppedReadStates: r.droppedReadStates,
    };
    if (r.role === 'leader') status.progress = progressStatus(r);
    return status;
  }
}

function progressStatus(r: Raft): Record<NodeId, ProgressStatus> {
  const out: Record<NodeId, ProgressStatus> = {};
  for (const [id, pr] of r.tracker.progress) {
    out[id] = {
      match: pr.match,
      next: pr.next,
      state: pr.state,
      recentActive: pr.recentActive,
      paused: pr.isPaused(),
      inflightMsgs: pr.inflights.count,
      inflightBytes: pr.inflights.bytes,
      isLearner: pr.isLearner,
    };
  }
  return out;
}

function sameSoft(a: SoftState, b: SoftState): boolean {
  return a.leader === b.leader && a.role === b.role;
}

function sameHard(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}
