/**
 * Data types of the Raft core: log entries, persistent state, snapshots, the
 * messages peers exchange, and the Ready batch that tells the caller what to
 * persist, send and apply.
 */

/** A node's stable name (the `--node-id` of the server). */
export type NodeId = string;

/**
 * One log entry. `noop` entries are appended by every new leader and carry no
 * data; `conf` entries carry an encoded ConfChange (see confchange.ts);
 * `normal` entries carry application commands.
 */
export interface Entry {
  term: number;
  index: number;
  type: 'normal' | 'noop' | 'conf';
  data: Uint8Array;
}

/** What must be on disk before any message that depends on it is sent. */
export interface HardState {
  term: number;
  /** The candidate voted for in `term`, if any. */
  vote: NodeId | null;
  commit: number;
}

/** Cluster membership. Learners receive the log but neither vote nor count toward a quorum. */
export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
}

export interface SnapshotMeta {
  /** Last log index the snapshot covers. */
  index: number;
  /** Term of the entry at `index`. */
  term: number;
  /** Membership as of `index`. */
  conf: ConfState;
}

export interface Snapshot {
  meta: SnapshotMeta;
  /** The state machine's image; empty data means the empty initial state. */
  data: Uint8Array;
}

export type Role = 'follower' | 'candidate' | 'precandidate' | 'leader';

/** Volatile state, reported in Ready only when it changes. */
export interface SoftState {
  leader: NodeId | null;
  role: Role;
}

interface MessageBase {
  from: NodeId;
  to: NodeId;
  /** Sender's term; for MsgPreVote, the term the sender would campaign in. */
  term: number;
}

/** Would you vote for me in `term`? Sent without raising the sender's term. */
export interface MsgPreVote extends MessageBase {
  type: 'MsgPreVote';
  lastLogIndex: number;
  lastLogTerm: number;
}

export interface MsgPreVoteResp extends MessageBase {
  type: 'MsgPreVoteResp';
  reject: boolean;
}

export interface MsgVote extends MessageBase {
  type: 'MsgVote';
  lastLogIndex: number;
  lastLogTerm: number;
  /** The campaign follows MsgTimeoutNow from the leader, so voters may ignore their leader lease. */
  transfer: boolean;
}

export interface MsgVoteResp extends MessageBase {
  type: 'MsgVoteResp';
  reject: boolean;
}

/** AppendEntries: `entries` follow the entry at (`index`, `logTerm`). */
export interface MsgApp extends MessageBase {
  type: 'MsgApp';
  index: number;
  logTerm: number;
  entries: Entry[];
  commit: number;
}

/**
 * Reply to MsgApp or MsgSnap. On success `index` is the follower's last index
 * known to match the leader. On rejection `index` echoes the probed index, and
 * (`rejectHint`, `logTerm`) name the follower's last entry whose term is at most
 * the probed term: the leader skips every entry of a conflicting term at once.
 */
export interface MsgAppResp extends MessageBase {
  type: 'MsgAppResp';
  index: number;
  reject: boolean;
  rejectHint: number;
  logTerm: number;
}

/**
 * Leader liveness and commit propagation. `round` numbers heartbeat
 * broadcasts (ReadIndex waits for a quorum to ack a round sent after the read
 * arrived); `tick` is the leader's tick count when sent (its lease starts there).
 */
export interface MsgHeartbeat extends MessageBase {
  type: 'MsgHeartbeat';
  commit: number;
  round: number;
  tick: number;
}

/** Echoes the heartbeat's `round` and `tick`. */
export interface MsgHeartbeatResp extends MessageBase {
  type: 'MsgHeartbeatResp';
  round: number;
  tick: number;
}

/** InstallSnapshot: sent when the follower needs entries the leader has compacted. */
export interface MsgSnap extends MessageBase {
  type: 'MsgSnap';
  snapshot: Snapshot;
}

/** Leadership transfer: campaign now, skipping PreVote and the voters' leases. */
export interface MsgTimeoutNow extends MessageBase {
  type: 'MsgTimeoutNow';
}

/** A follower forwards a linearizable read request to its leader. */
export interface MsgReadIndex extends MessageBase {
  type: 'MsgReadIndex';
  ctx: Uint8Array;
}

/** The leader's answer: reads for `ctx` may be served once `index` is applied. */
export interface MsgReadIndexResp extends MessageBase {
  type: 'MsgReadIndexResp';
  index: number;
  ctx: Uint8Array;
}

/** A follower forwards a request to transfer leadership to `transferee`. */
export interface MsgTransferLeader extends MessageBase {
  type: 'MsgTransferLeader';
  transferee: NodeId;
}

export type Message =
  | MsgPreVote
  | MsgPreVoteResp
  | MsgVote
  | MsgVoteResp
  | MsgApp
  | MsgAppResp
  | MsgHeartbeat
  | MsgHeartbeatResp
  | MsgSnap
  | MsgTimeoutNow
  | MsgReadIndex
  | MsgReadIndexResp
  | MsgTransferLeader;

export type MessageType = Message['type'];

/** A linearizable read may be served once the state machine has applied `index`. */
export interface ReadState {
  index: number;
  ctx: Uint8Array;
}

/**
 * One batch of work for the caller, in this order:
 *   1. persist `snapshot` (if any), then `entries` and `hardState`; fsync if `mustSync`;
 *   2. only then send `messages` (a vote or an append ack must never precede the
 *      write it promises);
 *   3. restore `snapshot` into the state machine, then apply `committedEntries`
 *      (calling RawNode.applyConfChange for each `conf` entry);
 *   4. serve `readStates` once the applied index reaches their index;
 *   5. call RawNode.advance(ready).
 */
export interface Ready {
  softState?: SoftState;
  hardState?: HardState;
  /** Entries to append to stable storage, replacing any stored entries at the same indexes. */
  entries: Entry[];
  snapshot?: Snapshot;
  committedEntries: Entry[];
  messages: Message[];
  readStates: ReadState[];
  /** True when entries, term or vote changed: the write must be fsync'd before step 2. */
  mustSync: boolean;
}
