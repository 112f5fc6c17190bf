/**
 * Typed errors of the Raft core. Each carries a stable `code` (listed in
 * raft/README.md) so callers branch on the code, not on message text.
 */

export class RaftError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** The requested index precedes the first retained entry: it was compacted into a snapshot. */
export class ErrCompacted extends RaftError {
  constructor(index: number, firstIndex: number) {
    super('RAFTLOCK_ERR_RAFT_COMPACTED', `index ${index} is compacted (first retained index is ${firstIndex})`);
  }
}

/** The requested index is past the last entry. */
export class ErrUnavailable extends RaftError {
  constructor(index: number, lastIndex: number) {
    super('RAFTLOCK_ERR_RAFT_UNAVAILABLE', `index ${index} is unavailable (last index is ${lastIndex})`);
  }
}

/** A snapshot older than the one already held was offered. */
export class ErrSnapOutOfDate extends RaftError {
  constructor(index: number, current: number) {
    super('RAFTLOCK_ERR_RAFT_SNAP_OUT_OF_DATE', `snapshot at index ${index} is not newer than the current one at ${current}`);
  }
}

/** Storage cannot produce a snapshot right now; the leader retries later. */
export class ErrSnapshotTemporarilyUnavailable extends RaftError {
  constructor() {
    super('RAFTLOCK_ERR_RAFT_SNAPSHOT_UNAVAILABLE', 'snapshot is temporarily unavailable');
  }
}

export type ProposalDropReason =
  | 'not-leader'
  | 'leadership-transfer'
  | 'uncommitted-bytes'
  | 'uncommitted-entries'
  | 'conf-change-pending'
  | 'conf-change-invalid';

/**
 * A proposal was not appended. Nothing was written: the caller may retry
 * (elsewhere, for 'not-leader') without risk of a duplicate.
 */
export class ErrProposalDropped extends RaftError {
  constructor(
    readonly reason: ProposalDropReason,
    detail: string,
  ) {
    super('RAFTLOCK_ERR_RAFT_PROPOSAL_DROPPED', `proposal dropped (${reason}): ${detail}`);
  }
}

/** A ReadIndex request was refused (no known leader, or the pending-read limit is reached). */
export class ErrReadIndexDropped extends RaftError {
  constructor(detail: string) {
    super('RAFTLOCK_ERR_RAFT_READ_INDEX_DROPPED', `read index dropped: ${detail}`);
  }
}

/** A leadership transfer request that cannot be honoured. */
export class ErrTransferInvalid extends RaftError {
  constructor(detail: string) {
    super('RAFTLOCK_ERR_RAFT_TRANSFER_INVALID', `leadership transfer refused: ${detail}`);
  }
}

/** The configuration given to the constructor is invalid; the message names the field. */
export class ErrConfigInvalid extends RaftError {
  constructor(detail: string) {
    super('RAFTLOCK_ERR_RAFT_CONFIG_INVALID', detail);
  }
}

/** The caller broke the RawNode contract (e.g. ready() twice without advance()). */
export class ErrUsage extends RaftError {
  constructor(detail: string) {
    super('RAFTLOCK_ERR_RAFT_USAGE', detail);
  }
}

/**
 * An invariant does not hold: the log or the persisted state is corrupt, or a
 * bug. Never caught inside raft/: continuing could break safety.
 */
export class RaftInvariantError extends RaftError {
  constructor(detail: string) {
    super('RAFTLOCK_ERR_RAFT_INVARIANT', `raft invariant violated: ${detail}`);
  }
}

/** Assertions stay on in production: a corrupt state must stop the node, not grant a lock twice. */
export function assert(condition: boolean, detail: string | (() => string)): asserts condition {
  if (!condition) throw new RaftInvariantError(typeof detail === 'string' ? detail : detail());
}
