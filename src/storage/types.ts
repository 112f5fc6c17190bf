/** Shapes the WAL stores; the same shapes the raft/ core hands to storage. */

export type EntryType = 'normal' | 'noop' | 'conf';

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  data: Uint8Array;
}

export interface HardState {
  term: number;
  /** The node this one voted for in `term`, or null. */
  vote: string | null;
  commit: number;
}

/** A durable snapshot of a group's state machine exists at (index, term). */
export interface SnapshotMarker {
  index: number;
  term: number;
}

/** What a caller appends. Every record belongs to one Raft group (a partition), tagged with its u32 id. */
export type WalRecord =
  | { type: 'entries'; group: number; entries: Entry[] }
  | { type: 'hardState'; group: number; hardState: HardState }
  | { type: 'snapshot'; group: number; index: number; term: number };

/**
 * A snapshot marker as stored: the WAL records whether the group's log still
 * held the snapshot's (index, term) when the marker was appended, so that
 * replay knows whether entries after the index survive (local compaction) or
 * were discarded (a snapshot installed from the leader over a conflicting log).
 */
export interface StoredSnapshotRecord {
  type: 'snapshot';
  group: number;
  index: number;
  term: number;
  keepsLog: boolean;
}

export type StoredRecord = Exclude<WalRecord, { type: 'snapshot' }> | StoredSnapshotRecord;

/** One group's durable state as recovered by replay. */
export interface GroupReplay {
  /**
   * The live log after `snapshot.index` (or from index 1 without a snapshot):
   * contiguous, ascending, with every Raft truncation already applied.
   */
  entries: Entry[];
  hardState: HardState | null;
  snapshot: SnapshotMarker | null;
}
