/**
 * RawNode configuration: identity, timing (in ticks), limits on every queue,
 * and the injected storage and randomness. validateConfig() fills defaults and
 * rejects bad values with a message that names the field and its value.
 */
import { ErrConfigInvalid } from './errors.js';
import type { LogStorage } from './storage.js';
import type { NodeId } from './types.js';

export type ReadOnlyOption = 'safe' | 'lease';

export interface RaftConfig {
  id: NodeId;
  storage: LogStorage;
  /** Uniform in [0, 1); the only source of randomness (election timeouts). */
  rng: () => number;
  /**
   * A follower campaigns after a random timeout in [electionTicks,
   * 2 * electionTicks) without hearing from a leader. Default 10.
   */
  electionTicks?: number;
  /** The leader heartbeats every heartbeatTicks. Default 1. */
  heartbeatTicks?: number;
  /** Largest MsgApp payload in bytes (a single larger entry is still sent alone). Default 1 MiB. */
  maxSizePerMsg?: number;
  /** Most MsgApp in flight to one follower while replicating. Default 256. */
  maxInflightMsgs?: number;
  /** Most bytes in flight to one follower. Default 16 MiB; at least maxSizePerMsg. */
  maxInflightBytes?: number;
  /** Payload bytes the leader holds uncommitted before refusing proposals. Default 64 MiB. */
  maxUncommittedEntriesBytes?: number;
  /** Entries the leader holds uncommitted before refusing proposals. Default 16384. */
  maxProposalQueue?: number;
  /** Read requests waiting for a heartbeat quorum or the term's first commit, plus unread ReadStates. Default 4096. */
  maxPendingReadIndex?: number;
  /** Outgoing messages buffered until the next ready(); beyond it messages are dropped (Raft tolerates loss). Default 65536. */
  maxPendingMessages?: number;
  /** Bytes of committed entries handed out in one Ready. Default 64 MiB. */
  maxCommittedBytesPerReady?: number;
  /** PreVote: a node campaigns only if a quorum would vote for it, so rejoining nodes do not inflate terms. Default true. */
  preVote?: boolean;
  /**
   * CheckQuorum: a leader steps down when it has not heard from a quorum for
   * an election timeout, and followers ignore votes while they hear from a
   * leader. Required by the leader lease. Default true.
   */
  checkQuorum?: boolean;
  /**
   * The largest number of ticks by which the leader's tick count may run behind
   * a follower's over one election timeout (clock rate drift plus tick
   * scheduling jitter). The lease is shortened by this much. Default 2.
   */
  leaseDriftTicks?: number;
  /** 'lease' answers ReadIndex from the leader lease while it is valid (else a heartbeat round). Default 'safe'. */
  readOnlyOption?: ReadOnlyOption;
  /** Ticks a follower may stay in snapshot state before the leader assumes the snapshot was lost (reportSnapshot() ends the wait early). Default 5 * electionTicks. */
  snapshotRetryTicks?: number;
  /**
   * Index already applied by the state machine at start-up. Default: the index
   * of storage.snapshot(), which the caller restores before starting the node.
   */
  applied?: number;
}

export type ValidConfig = Required<Omit<RaftConfig, 'applied'>> & { applied: number | undefined };

const MIB = 1024 * 1024;

export function validateConfig(config: RaftConfig): ValidConfig {
  if (typeof config.id !== 'string' || config.id.length === 0) throw new ErrConfigInvalid('id must be a non-empty string');
  if (typeof config.rng !== 'function') throw new ErrConfigInvalid('rng must be a function returning numbers in [0, 1)');
  if (config.storage === undefined || config.storage === null) throw new ErrConfigInvalid('storage is required');
  const electionTicks = config.electionTicks ?? 10;
  const maxSizePerMsg = config.maxSizePerMsg ?? MIB;
  const c: ValidConfig = {
    id: config.id,
    storage: config.storage,
    rng: config.rng,
    electionTicks,
    heartbeatTicks: config.heartbeatTicks ?? 1,
    maxSizePerMsg,
    maxInflightMsgs: config.maxInflightMsgs ?? 256,
    maxInflightBytes: config.maxInflightBytes ?? Math.max(16 * MIB, maxSizePerMsg),
    maxUncommittedEntriesBytes: config.maxUncommittedEntriesBytes ?? 64 * MIB,
    maxProposalQueue: config.maxProposalQueue ?? 16384,
    maxPendingReadIndex: config.maxPendingReadIndex ?? 4096,
    maxPendingMessages: config.maxPendingMessages ?? 65536,
    maxCommittedBytesPerReady: config.maxCommittedBytesPerReady ?? 64 * MIB,
    preVote: config.preVote ?? true,
    checkQuorum: config.checkQuorum ?? true,
    leaseDriftTicks: config.leaseDriftTicks ?? Math.min(2, electionTicks - 1),
    readOnlyOption: config.readOnlyOption ?? 'safe',
    snapshotRetryTicks: config.snapshotRetryTicks ?? 5 * electionTicks,
    applied: config.applied,
  };
  checkIntegers(c);
  checkRelations(c);
  return c;
}

function checkIntegers(c: ValidConfig): void {
  const atLeastOne = [
    'electionTicks', 'heartbeatTicks', 'maxSizePerMsg', 'maxInflightMsgs', 'maxInflightBytes',
    'maxUncommittedEntriesBytes', 'maxProposalQueue', 'maxPendingReadIndex', 'maxPendingMessages',
    'maxCommittedBytesPerReady', 'snapshotRetryTicks',
  ] as const;
  for (const field of atLeastOne) {
    const v = c[field];
    if (!Number.isSafeInteger(v) || v < 1) throw new ErrConfigInvalid(`${field} (${v}) must be an integer >= 1`);
  }
  if (!Number.isSafeInteger(c.leaseDriftTicks) || c.leaseDriftTicks < 0) {
    throw new ErrConfigInvalid(`leaseDriftTicks (${c.leaseDriftTicks}) must be an integer >= 0`);
  }
  if (c.applied !== undefined && (!Number.isSafeInteger(c.applied) || c.applied < 0)) {
    throw new ErrConfigInvalid(`applied (${c.applied}) must be an integer >= 0`);
  }
}

function checkRelations(c: ValidConfig): void {
  if (c.electionTicks <= c.heartbeatTicks) {
    throw new ErrConfigInvalid(`electionTicks (${c.electionTicks}) must be greater than heartbeatTicks (${c.heartbeatTicks})`);
  }
  if (c.leaseDriftTicks >= c.electionTicks) {
    throw new ErrConfigInvalid(`leaseDriftTicks (${c.leaseDriftTicks}) must be less than electionTicks (${c.electionTicks}), or no lease is ever valid`);
  }
  if (c.maxInflightBytes < c.maxSizePerMsg) {
    throw new ErrConfigInvalid(`maxInflightBytes (${c.maxInflightBytes}) must be at least maxSizePerMsg (${c.maxSizePerMsg})`);
  }
  if (c.readOnlyOption !== 'safe' && c.readOnlyOption !== 'lease') {
    throw new ErrConfigInvalid(`readOnlyOption (${String(c.readOnlyOption)}) must be 'safe' or 'lease'`);
  }
  if (c.readOnlyOption === 'lease' && !c.checkQuorum) {
    throw new ErrConfigInvalid("readOnlyOption 'lease' requires checkQuorum: without it no leader lease exists");
  }
}
