/**
 * The log storage the Raft core reads from, and MemoryStorage, its in-memory
 * reference implementation. The durable WAL implements the same interface with
 * the same semantics; tests of one apply to the other.
 *
 * The core only reads storage. The caller writes to it while handling a Ready
 * (append, setHardState, applySnapshot) and compacts it on its own schedule
 * (createSnapshot, compact).
 */
import { ErrCompacted, ErrSnapOutOfDate, ErrUnavailable, assert } from './errors.js';
import type { ConfState, Entry, HardState, Snapshot } from './types.js';
import { cloneConf, limitBytes } from './util.js';

export { ErrCompacted, ErrSnapOutOfDate, ErrSnapshotTemporarilyUnavailable, ErrUnavailable } from './errors.js';

export interface LogStorage {
  /**
   * The persisted hard state, and the membership after every conf entry up to
   * the node's applied index (for MemoryStorage: the snapshot's membership, with
   * later conf entries re-applied by the caller as they are re-delivered).
   */
  initialState(): { hardState: HardState; conf: ConfState };
  /**
   * Entries [lo, hi), the longest prefix within `maxBytes` but at least one.
   * Throws ErrCompacted if lo < firstIndex(); hi > lastIndex() + 1 is a bug.
   */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  /**
   * Term of the entry at `index`, for firstIndex() - 1 (the snapshot's index)
   * through lastIndex(). Throws ErrCompacted below, ErrUnavailable above.
   */
  term(index: number): number;
  /** Index of the first retained entry: the snapshot's index + 1. */
  firstIndex(): number;
  /** Index of the last entry, or the snapshot's index when no entry follows it. */
  lastIndex(): number;
  /** The most recent snapshot. May throw ErrSnapshotTemporarilyUnavailable. */
  snapshot(): Snapshot;
}

/**
 * A brand-new cluster starts from this snapshot (index 1, term 1, empty data,
 * the initial members) so that a node added later, whose log is empty, is
 * sent a snapshot carrying the initial membership rather than a log that lacks it.
 */
export const BOOTSTRAP_INDEX = 1;
export const BOOTSTRAP_TERM = 1;

export function bootstrapState(conf: ConfState): { snapshot: Snapshot; hardState: HardState } {
  assert(conf.voters.length > 0, 'a cluster bootstraps with at least one voter');
  return {
    snapshot: { meta: { index: BOOTSTRAP_INDEX, term: BOOTSTRAP_TERM, conf: cloneConf(conf) }, data: new Uint8Array(0) },
    hardState: { term: BOOTSTRAP_TERM, vote: null, commit: BOOTSTRAP_INDEX },
  };
}

const EMPTY_CONF: ConfState = Object.freeze({ voters: [], learners: [] }) as ConfState;

export class MemoryStorage implements LogStorage {
  private hardState: HardState = { term: 0, vote: null, commit: 0 };
  /** The latest snapshot (a subclass may keep its data elsewhere and override snapshot()). */
  protected snap: Snapshot = { meta: { index: 0, term: 0, conf: cloneConf(EMPTY_CONF) }, data: new Uint8Array(0) };
  /** ents[0] is a placeholder at the snapshot's index and term; real entries follow it. */
  private ents: Entry[] = [dummy(0, 0)];

  /**
   * With `conf`, a founding member of a new cluster (see bootstrapState).
   * Without, an empty node that waits to be added and sent a snapshot.
   */
  constructor(conf?: ConfState) {
    if (conf !== undefined) {
      const boot = bootstrapState(conf);
      this.applySnapshot(boot.snapshot);
      this.hardState = boot.hardState;
    }
  }

  initialState(): { hardState: HardState; conf: ConfState } {
    return { hardState: { ...this.hardState }, conf: cloneConf(this.snap.meta.conf) };
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const offset = this.ents[0]!.index;
    if (lo <= offset) throw new ErrCompacted(lo, offset + 1);
    assert(hi <= this.lastIndex() + 1, () => `entries [${lo}, ${hi}) out of bound (last index ${this.lastIndex()})`);
    assert(lo <= hi, () => `entries: lo ${lo} > hi ${hi}`);
    return limitBytes(this.ents.slice(lo - offset, hi - offset), maxBytes);
  }

  term(index: number): number {
    const offset = this.ents[0]!.index;
    if (index < offset) throw new ErrCompacted(index, offset + 1);
    if (index - offset >= this.ents.length) throw new ErrUnavailable(index, this.lastIndex());
    return this.ents[index - offset]!.term;
  }

  firstIndex(): number {
    return this.ents[0]!.index + 1;
  }

  lastIndex(): number {
    return this.ents[0]!.index + this.ents.length - 1;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  setHardState(hardState: HardState): void {
    this.hardState = { ...hardState };
  }

  /**
   * Appends entries, first dropping stored entries at the same and later
   * indexes (a follower's conflicting tail). Entries already compacted are
   * skipped. A gap after the last entry is a bug.
   */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    assertContiguous(entries);
    const first = this.firstIndex();
    const last = entries[entries.length - 1]!.index;
    if (last < first) return;
    const fresh = first > entries[0]!.index ? entries.slice(first - entries[0]!.index) : entries;
    const at = fresh[0]!.index - this.ents[0]!.index;
    assert(at <= this.ents.length, () => `append leaves a gap: last index ${this.lastIndex()}, next entry ${fresh[0]!.index}`);
    this.ents.length = at;
    for (const e of fresh) this.ents.push(e);
  }

  /** Replaces the whole log with `snapshot` (a follower installing the leader's snapshot). */
  applySnapshot(snapshot: Snapshot): void {
    if (snapshot.meta.index <= this.snap.meta.index) throw new ErrSnapOutOfDate(snapshot.meta.index, this.snap.meta.index);
    this.snap = { meta: { ...snapshot.meta, conf: cloneConf(snapshot.meta.conf) }, data: snapshot.data };
    this.ents = [dummy(snapshot.meta.index, snapshot.meta.term)];
  }

  /**
   * Records a snapshot of the state machine as of `index` (which must be
   * applied), with the membership as of `index`. Entries are kept until compact().
   */
  createSnapshot(index: number, conf: ConfState, data: Uint8Array): Snapshot {
    if (index <= this.snap.meta.index) throw new ErrSnapOutOfDate(index, this.snap.meta.index);
    assert(index <= this.lastIndex(), () => `snapshot index ${index} is past the last index ${this.lastIndex()}`);
    this.snap = { meta: { index, term: this.term(index), conf: cloneConf(conf) }, data };
    return this.snap;
  }

  /** Discards entries up to and including `index`, which a snapshot must cover. */
  compact(index: number): void {
    const offset = this.ents[0]!.index;
    if (index <= offset) throw new ErrCompacted(index, offset + 1);
    assert(index <= this.lastIndex(), () => `compact ${index} is past the last index ${this.lastIndex()}`);
    assert(index <= this.snap.meta.index, () => `compact ${index} is past the snapshot index ${this.snap.meta.index}`);
    const kept = this.ents.slice(index - offset + 1);
    this.ents = [dummy(index, this.term(index)), ...kept];
  }
}

function dummy(index: number, term: number): Entry {
  return { index, term, type: 'noop', data: new Uint8Array(0) };
}

function assertContiguous(entries: readonly Entry[]): void {
  for (let i = 1; i < entries.length; i++) {
    const prev = entries[i - 1]!;
    const e = entries[i]!;
    assert(e.index === prev.index + 1 && e.term >= prev.term, () => `entries not contiguous at index ${e.index}`);
  }
}
