/**
 * Step functions of the non-leader roles. Messages of another term, and vote
 * requests, were already handled by Raft.step; these see only the rest, at
 * the node's current term.
 */
import type { Raft } from './raft.js';
import type { Message } from './types.js';

export function stepFollower(r: Raft, m: Message): void {
  switch (m.type) {
    case 'MsgApp':
      r.heardFromLeader(m.from);
      r.handleAppendEntries(m);
      return;
    case 'MsgHeartbeat':
      r.heardFromLeader(m.from);
      r.handleHeartbeat(m);
      return;
    case 'MsgSnap':
      r.heardFromLeader(m.from);
      r.handleSnapshot(m);
      return;
    case 'MsgTimeoutNow':
      // Our leader hands over: campaign at once, skipping PreVote and the voters' leases.
      if (m.from === r.lead) r.hup(true);
      return;
    case 'MsgReadIndexResp':
      r.pushReadState({ index: m.index, ctx: m.ctx });
      return;
    default:
      // Requests meant for a leader, stale responses: nothing to do.
      return;
  }
}

/** Shared by candidates and pre-candidates. */
export function stepCandidate(r: Raft, m: Message): void {
  switch (m.type) {
    case 'MsgApp':
    case 'MsgHeartbeat':
    case 'MsgSnap':
      // A leader exists in our term (or, for a pre-candidate, the term we are in): follow it.
      r.becomeFollower(m.term, m.from);
      stepFollower(r, m);
      return;
    case 'MsgPreVoteResp':
    case 'MsgVoteResp': {
      const expected = r.role === 'precandidate' ? 'MsgPreVoteResp' : 'MsgVoteResp';
      if (m.type !== expected) return;
      const result = r.tracker.recordVote(m.from, !m.reject);
      if (result === 'won') r.onElectionWon();
      else if (result === 'lost') r.becomeFollower(r.term, null);
      return;
    }
    default:
      return;
  }
}
