import type { NodeId } from '../../raft/types.js';
import type { SnapshotReport } from '../cluster/replica.js';
import type { Logger } from './log.js';

export interface RaftLogOptions {
  log: Logger;
  nodeId: NodeId;
  partition: number;
  /** Whether this node is still a voter of the partition (a leader that was removed steps down). */
  isVoter: () => boolean;
}

/**
 * Turns one partition's role changes and snapshots into log lines, each with
 * the partition and term: a campaign and why, a leader elected, a new leader
 * seen, a leader stepping down and why, leadership transfers, snapshots. One
 * line per event; a failed pre-vote (a node cut off retries it every
 * election timeout) is logged at debug only.
 */
export class RaftEventLog {
  /** What explains this partition's next campaign, if not an election timeout. */
  campaignCause: string | null = null;
  private role = 'follower';
  private leader: NodeId | null = null;
  private term = 0;
  /** The last leader known, and the term it was known in. */
  private lastLeader: NodeId | null = null;
  private lastLeaderTerm = 0;
  /** A leadership transfer started here and not yet finished. */
  private transferTo: NodeId | null = null;

  constructor(private readonly options: RaftLogOptions) {}

  roleChanged(role: string, leader: NodeId | null, term: number): void {
    const cause = this.campaignCause ?? 'election timeout';
    // A campaign's cause holds through its pre-vote.
    if (role !== 'precandidate') this.campaignCause = null;
    if (this.role === 'leader' && role !== 'leader') this.steppedDown(term);
    if (role === 'precandidate' && this.role !== 'precandidate') {
      this.emit('debug', 'pre-vote campaign', term, { reason: cause, previousLeader: this.lastLeader });
    } else if (role === 'candidate' && this.role !== 'candidate') {
      this.emit('info', 'campaigning for leadership', term, { reason: cause, previousLeader: this.lastLeader });
    } else if (role === 'leader' && this.role !== 'leader') {
      this.emit('info', 'became leader', term, { previousLeader: this.lastLeader });
    } else if (leader !== null && leader !== this.options.nodeId && (leader !== this.lastLeader || term !== this.lastLeaderTerm)) {
      this.newLeader(leader, term);
    }
    this.role = role;
    this.leader = leader;
    this.term = term;
    if (leader !== null) {
      this.lastLeader = leader;
      this.lastLeaderTerm = term;
    }
  }

  /**
   * This node, leading, asked the Raft core to hand leadership to `to`. Each attempt is logged:
   * proposals stop while one is under way.
   */
  transferStarted(to: NodeId, reason: string, term: number): void {
    this.transferTo = to;
    this.emit('info', 'leadership transfer started', term, { to, reason });
  }

  snapshot(report: SnapshotReport, term: number): void {
    const fields = { index: report.index, indexTerm: report.term, bytes: report.bytes, durationMs: report.durationMs };
    if (report.origin === 'taken') this.emit('info', 'snapshot taken', term, fields);
    else this.emit('info', 'snapshot installed from the leader', term, { ...fields, leader: this.leader });
  }

  private newLeader(leader: NodeId, term: number): void {
    const transfer = this.transferTo;
    this.transferTo = null;
    if (transfer === leader) this.emit('info', 'leadership transfer finished', term, { to: leader });
    else this.emit('info', 'new leader', term, { leader, previousLeader: this.lastLeader });
  }

  private steppedDown(term: number): void {
    let reason = 'lost contact with a quorum of voters';
    if (!this.options.isVoter()) reason = 'removed from the voters';
    else if (term > this.term) reason = this.transferTo === null ? 'saw a newer term' : `leadership transfer to ${this.transferTo}`;
    this.emit('info', 'stepped down', term, { reason });
  }

  private emit(level: 'debug' | 'info', msg: string, term: number, fields: Record<string, unknown>): void {
    this.options.log[level](msg, { partition: this.options.partition, term, ...fields });
  }
}
