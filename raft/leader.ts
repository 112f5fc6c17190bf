/**
 * The leader: proposals, replication with flow control, commitment, ReadIndex,
 * the leader lease, leadership transfer and snapshots for lagging followers.
 */
import { confChangeProblem, encodeConfChange, type ConfChange } from './confchange.js';
import {
  ErrCompacted, ErrProposalDropped, ErrReadIndexDropped, ErrSnapshotTemporarilyUnavailable, ErrTransferInvalid,
  RaftInvariantError, assert,
} from './errors.js';
import type { Progress } from './progress.js';
import type { Raft } from './raft.js';
import type { Entry, Message, MsgAppResp, MsgHeartbeatResp, NodeId } from './types.js';
import { entriesBytes } from './util.js';

export function stepLeader(r: Raft, m: Message): void {
  switch (m.type) {
    case 'MsgAppResp':
      handleAppResp(r, m);
      return;
    case 'MsgHeartbeatResp':
      handleHeartbeatResp(r, m);
      return;
    case 'MsgReadIndex':
      try {
        requestRead(r, m.from, m.ctx);
      } catch (e) {
        // The follower's caller times out and retries, as after any lost message.
        if (!(e instanceof ErrReadIndexDropped)) throw e;
      }
      return;
    case 'MsgTransferLeader':
      try {
        transferLeader(r, m.transferee);
      } catch (e) {
        if (!(e instanceof ErrTransferInvalid)) throw e;
      }
      return;
    case 'MsgApp':
    case 'MsgHeartbeat':
    case 'MsgSnap':
      throw new RaftInvariantError(`two leaders in term ${r.term}: ${r.id} and ${m.from}`);
    default:
      // Late vote responses, MsgTimeoutNow or read answers meant for a follower.
      return;
  }
}

/** Called once a candidate has won: set up progress and append the term's no-op. */
export function startLeadership(r: Raft): void {
  const self = r.tracker.progress.get(r.id);
  assert(self !== undefined, 'leader has no progress of its own');
  self.becomeReplicate(r.clock());
  self.match = r.log.persistedIndex();
  self.next = r.log.lastIndex() + 1;
  self.recentActive = true;
  // A conf entry from an earlier term may still be uncommitted: no new change until it is applied.
  r.pendingConfIndex = r.log.lastIndex();
  // Entries of earlier terms are committed only indirectly, by committing one of ours (Raft §5.4.2).
  r.log.append([{ term: r.term, index: r.log.lastIndex() + 1, type: 'noop', data: new Uint8Array(0) }]);
  r.appendPending = true;
}

export function tickLeader(r: Raft): void {
  r.heartbeatElapsed++;
  r.electionElapsed++;
  if (r.leadTransferee !== null && ++r.transferElapsed >= r.cfg.electionTicks) r.abortLeaderTransfer();
  if (r.electionElapsed >= r.cfg.electionTicks) {
    r.electionElapsed = 0;
    if (r.cfg.checkQuorum) {
      if (!r.tracker.quorumActive(r.id)) {
        r.becomeFollower(r.term, null);
        return;
      }
      r.tracker.resetRecentActive(r.id);
    }
  }
  if (r.heartbeatElapsed >= r.cfg.heartbeatTicks) {
    r.heartbeatElapsed = 0;
    bcastHeartbeat(r);
  }
}

// ---- proposals ---------------------------------------------------------------

function checkAcceptingProposals(r: Raft): void {
  if (r.role !== 'leader') throw new ErrProposalDropped('not-leader', `${r.id} is ${r.role}; leader is ${r.lead ?? 'unknown'}`);
  if (r.leadTransferee !== null) {
    throw new ErrProposalDropped('leadership-transfer', `leadership is moving to ${r.leadTransferee}`);
  }
}

export function propose(r: Raft, type: 'normal' | 'conf', data: Uint8Array): { index: number; term: number } {
  checkAcceptingProposals(r);
  const queued = r.log.lastIndex() - r.log.committed;
  if (queued >= r.cfg.maxProposalQueue) {
    throw new ErrProposalDropped('uncommitted-entries', `${queued} entries uncommitted (maxProposalQueue ${r.cfg.maxProposalQueue})`);
  }
  const bytes = data.byteLength;
  // An empty queue always accepts one entry, however large, so progress is always possible.
  if (r.uncommittedBytes > 0 && r.uncommittedBytes + bytes > r.cfg.maxUncommittedEntriesBytes) {
    throw new ErrProposalDropped('uncommitted-bytes',
      `${r.uncommittedBytes} + ${bytes} bytes exceed maxUncommittedEntriesBytes ${r.cfg.maxUncommittedEntriesBytes}`);
  }
  const entry: Entry = { term: r.term, index: r.log.lastIndex() + 1, type, data };
  r.log.append([entry]);
  r.uncommittedBytes += bytes;
  r.appendPending = true;
  return { index: entry.index, term: entry.term };
}

export function proposeConfChange(r: Raft, cc: ConfChange): { index: number; term: number } {
  checkAcceptingProposals(r);
  if (r.pendingConfIndex > r.log.applied) {
    throw new ErrProposalDropped('conf-change-pending', `conf change at index ${r.pendingConfIndex} is not applied yet`);
  }
  // Ongaro's fix for single-server changes: a leader changes membership only after committing in its term.
  if (!committedInTerm(r)) {
    throw new ErrProposalDropped('conf-change-pending', `leader has not yet committed an entry in term ${r.term}`);
  }
  const problem = confChangeProblem(r.tracker.conf(), cc);
  if (problem !== null) throw new ErrProposalDropped('conf-change-invalid', problem);
  const at = propose(r, 'conf', encodeConfChange(cc));
  r.pendingConfIndex = at.index;
  return at;
}

/** Entries were applied: they no longer count against the uncommitted limit. */
export function reduceUncommitted(r: Raft, entries: readonly Entry[]): void {
  if (r.role !== 'leader') return;
  for (const e of entries) {
    if (e.term === r.term) r.uncommittedBytes = Math.max(0, r.uncommittedBytes - e.data.byteLength);
  }
}

export function onLeaderConfChange(r: Raft): void {
  if (!r.tracker.isVoter(r.id)) {
    // Removed or demoted: a leader outside the voters would lead a group it cannot vote in.
    r.becomeFollower(r.term, null);
    return;
  }
  if (r.leadTransferee !== null && !r.tracker.isVoter(r.leadTransferee)) r.abortLeaderTransfer();
  // The quorum changed: the commit point may move, and new members need the log.
  maybeCommit(r);
  r.appendPending = true;
}

// ---- replication -------------------------------------------------------------

export function committedInTerm(r: Raft): boolean {
  return r.log.termOrZero(r.log.committed) === r.term;
}

// What quorumValue ranks for the commit index, ReadIndex rounds and the lease: plain functions, so
// that the leader's per-command checks allocate no closure.
const matchOf = (_id: NodeId, pr: Progress): number => pr.match;
const ackedRoundOf = (id: NodeId, pr: Progress, r: Raft): number => (id === r.id ? r.heartbeatRound : pr.ackedRound);
const ackedTickOf = (id: NodeId, pr: Progress, r: Raft): number => (id === r.id ? r.ticks : pr.ackedTick);

/** Advances the commit index to what a quorum holds, counting only entries of our term (Figure 8). */
export function maybeCommit(r: Raft): boolean {
  const index = r.tracker.quorumValue(matchOf, null);
  if (index <= r.log.committed || r.log.termOrZero(index) !== r.term) return false;
  r.log.commitTo(index);
  for (const w of r.readOnly.takeWaiting()) serveRead(r, w.from, w.ctx);
  return true;
}

export function bcastAppend(r: Raft): void {
  for (const id of r.tracker.progress.keys()) {
    if (id !== r.id) sendAppendLoop(r, id, true);
  }
}

/** Sends as much as flow control allows. */
function sendAppendLoop(r: Raft, to: NodeId, sendIfEmpty: boolean): void {
  if (!sendAppend(r, to, sendIfEmpty)) return;
  while (sendAppend(r, to, false));
}

/** One MsgApp (or MsgSnap) to `to` if flow control allows; false if nothing was sent. */
function sendAppend(r: Raft, to: NodeId, sendIfEmpty: boolean): boolean {
  const pr = r.tracker.progress.get(to);
  if (pr === undefined || pr.isPaused()) return false;
  const prevIndex = pr.next - 1;
  let prevTerm: number;
  let entries: Entry[];
  try {
    prevTerm = r.log.term(prevIndex);
    entries = r.log.entries(pr.next, r.cfg.maxSizePerMsg);
  } catch (e) {
    if (e instanceof ErrCompacted) return sendSnapshot(r, to, pr);
    throw e;
  }
  if (entries.length === 0 && !sendIfEmpty) return false;
  const bytes = entriesBytes(entries);
  r.send({ type: 'MsgApp', from: r.id, to, term: r.term, index: prevIndex, logTerm: prevTerm, entries, commit: r.log.committed });
  pr.sentEntries(entries.length, bytes, prevIndex + entries.length, r.clock());
  return true;
}

/** The follower needs entries we compacted: InstallSnapshot. */
function sendSnapshot(r: Raft, to: NodeId, pr: Progress): boolean {
  // Only to a follower that answers: snapshots are large.
  if (!pr.recentActive) return false;
  let snapshot;
  try {
    snapshot = r.log.snapshot();
  } catch (e) {
    if (e instanceof ErrSnapshotTemporarilyUnavailable) return false;
    throw e;
  }
  assert(snapshot.meta.index > 0, 'need a snapshot but storage has none');
  pr.becomeSnapshot(snapshot.meta.index, r.clock());
  r.send({ type: 'MsgSnap', from: r.id, to, term: r.term, snapshot });
  return true;
}

function handleAppResp(r: Raft, m: MsgAppResp): void {
  const pr = r.tracker.progress.get(m.from);
  if (pr === undefined) return;
  pr.recentActive = true;
  if (m.reject) {
    handleAppReject(r, m, pr);
    return;
  }
  assert(m.index <= r.log.lastIndex(), () => `${m.from} acknowledged ${m.index}, past our last index ${r.log.lastIndex()}`);
  const wasPaused = pr.isPaused();
  const updated = pr.maybeUpdate(m.index, r.clock());
  // A probe answered at the match we already knew still proves where the follower stands.
  if (!updated && !(pr.state === 'probe' && pr.match === m.index)) return;
  if (pr.state === 'probe') {
    pr.becomeReplicate(r.clock());
  } else if (pr.state === 'snapshot') {
    // Once the follower can be caught up from the log, replicate normally.
    if (pr.match + 1 >= r.log.firstIndex()) {
      pr.becomeProbe(r.clock());
      pr.becomeReplicate(r.clock());
    }
  } else {
    pr.inflights.freeLE(m.index);
  }
  if (maybeCommit(r)) r.appendPending = true;
  sendAppendLoop(r, m.from, wasPaused);
  if (m.from === r.leadTransferee && pr.match === r.log.lastIndex()) sendTimeoutNow(r, m.from);
}

function handleAppReject(r: Raft, m: MsgAppResp, pr: Progress): void {
  // Map the follower's hint onto our log: skip back past every entry whose term cannot match.
  const hint = m.logTerm > 0 ? r.log.findConflictByTerm(m.rejectHint, m.logTerm).index : m.rejectHint;
  if (!pr.maybeDecrTo(m.index, hint)) return;
  if (pr.state === 'replicate') pr.becomeProbe(r.clock());
  sendAppendLoop(r, m.from, true);
}

function handleHeartbeatResp(r: Raft, m: MsgHeartbeatResp): void {
  const pr = r.tracker.progress.get(m.from);
  if (pr === undefined) return;
  pr.recentActive = true;
  pr.probeSent = false;
  pr.ackedRound = Math.max(pr.ackedRound, m.round);
  pr.ackedTick = Math.max(pr.ackedTick, m.tick);
  if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirst();
  if (pr.match < r.log.lastIndex()) {
    retryIfStalled(r, pr);
    sendAppendLoop(r, m.from, pr.state === 'probe');
  }
  releaseReads(r);
}

/**
 * The follower answers heartbeats but its match does not move: an append (or
 * the snapshot) was lost. A replicating follower that acknowledged a
 * heartbeat sent two rounds after the last append it should have answered
 * (links are mostly FIFO) is probed again from its match point; a snapshot
 * is resent after snapshotRetryTicks.
 */
function retryIfStalled(r: Raft, pr: Progress): void {
  const inFlight = pr.next - 1 > pr.match;
  if (pr.state === 'replicate' && inFlight && pr.ackedRound >= pr.sinceRound + 2) pr.becomeProbe(r.clock());
  else if (pr.state === 'snapshot' && r.ticks - pr.sinceTick >= r.cfg.snapshotRetryTicks) pr.becomeProbe(r.clock());
}

export function bcastHeartbeat(r: Raft): void {
  r.heartbeatRound++;
  r.readRoundPending = false;
  for (const [to, pr] of r.tracker.progress) {
    if (to === r.id) continue;
    // Only what the follower is known to hold may be committed on its side.
    const commit = Math.min(pr.match, r.log.committed);
    r.send({ type: 'MsgHeartbeat', from: r.id, to, term: r.term, commit, round: r.heartbeatRound, tick: r.ticks });
  }
  releaseReads(r);
}

/** The caller reports the outcome of sending a snapshot (optional: a lost snapshot is retried anyway). */
export function reportSnapshot(r: Raft, to: NodeId, ok: boolean): void {
  const pr = r.tracker.progress.get(to);
  if (r.role !== 'leader' || pr === undefined || pr.state !== 'snapshot') return;
  if (!ok) pr.pendingSnapshot = 0;
  pr.becomeProbe(r.clock());
  // Wait for a heartbeat response before probing again.
  pr.probeSent = true;
}

/** The transport could not reach `to`: stop pipelining to it until it answers a probe. */
export function reportUnreachable(r: Raft, to: NodeId): void {
  const pr = r.tracker.progress.get(to);
  if (r.role === 'leader' && pr !== undefined && pr.state === 'replicate') pr.becomeProbe(r.clock());
}

// ---- reads -------------------------------------------------------------------

/** A ReadIndex request from `from` (this node or a follower). */
export function requestRead(r: Raft, from: NodeId, ctx: Uint8Array): void {
  if (r.readOnly.has(from, ctx)) throw new ErrReadIndexDropped('a read with this ctx is already pending');
  if (r.readOnly.size() + r.readStates.length >= r.cfg.maxPendingReadIndex) {
    throw new ErrReadIndexDropped(`maxPendingReadIndex (${r.cfg.maxPendingReadIndex}) reads pending`);
  }
  // Until the leader commits in its term, its commit index may lag what an older leader committed.
  if (!committedInTerm(r)) {
    r.readOnly.addWaiting({ from, ctx });
    return;
  }
  serveRead(r, from, ctx);
}

function serveRead(r: Raft, from: NodeId, ctx: Uint8Array): void {
  const index = r.log.committed;
  const alone = r.tracker.voters.size === 1 && r.tracker.isVoter(r.id);
  if (alone || (r.cfg.readOnlyOption === 'lease' && leaseValid(r))) {
    answerRead(r, from, ctx, index);
    return;
  }
  // Confirmed by a quorum acking a heartbeat round sent after this request arrived.
  r.readOnly.add({ from, ctx, index, round: r.heartbeatRound + 1 });
  r.readRoundPending = true;
}

function answerRead(r: Raft, from: NodeId, ctx: Uint8Array, index: number): void {
  if (from === r.id) r.pushReadState({ index, ctx });
  else r.send({ type: 'MsgReadIndexResp', from: r.id, to: from, term: r.term, index, ctx });
}

function releaseReads(r: Raft): void {
  if (r.readOnly.size() === 0) return;
  const round = r.tracker.quorumValue(ackedRoundOf, r);
  for (const req of r.readOnly.release(round)) answerRead(r, req.from, req.ctx, req.index);
}

/**
 * The leader lease: every voter that acknowledged a heartbeat sent at tick t
 * promised not to help elect anyone before its own t + electionTicks. Valid
 * until the quorum-th newest such t plus electionTicks minus the drift bound.
 */
export function leaseValid(r: Raft): boolean {
  if (r.role !== 'leader' || !r.cfg.checkQuorum || r.timeoutNowSent || r.leadTransferee !== null) return false;
  // A new leader may not yet know every entry its predecessor committed: no lease
  // (and so no local reads) until it has committed an entry of its own term.
  if (!committedInTerm(r)) return false;
  const since = r.tracker.quorumValue(ackedTickOf, r);
  return r.ticks < since + r.cfg.electionTicks - r.cfg.leaseDriftTicks;
}

// ---- leadership transfer -------------------------------------------------------

export function transferLeader(r: Raft, to: NodeId): void {
  if (to === r.id) throw new ErrTransferInvalid(`${to} is already the leader`);
  if (!r.tracker.isVoter(to)) throw new ErrTransferInvalid(`${to} is not a voter`);
  if (r.leadTransferee === to) return;
  r.abortLeaderTransfer();
  // Proposals stop until the transfer ends; it is abandoned after an election timeout.
  r.leadTransferee = to;
  r.transferElapsed = 0;
  const pr = r.tracker.progress.get(to)!;
  if (pr.match === r.log.lastIndex()) sendTimeoutNow(r, to);
  else sendAppendLoop(r, to, true);
}

function sendTimeoutNow(r: Raft, to: NodeId): void {
  r.timeoutNowSent = true;
  r.send({ type: 'MsgTimeoutNow', from: r.id, to, term: r.term });
}

/** Work deferred so that a batch of proposals or reads shares one message per follower. */
export function flushLeader(r: Raft): void {
  if (r.role !== 'leader') return;
  if (r.appendPending) {
    r.appendPending = false;
    bcastAppend(r);
  }
  if (r.readRoundPending) bcastHeartbeat(r);
}
