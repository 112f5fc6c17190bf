/**
 * The Raft log as the core sees it: the caller's stable storage followed by
 * the unstable tail (entries and possibly a snapshot that the caller has been
 * handed in a Ready but not yet confirmed as persisted via advance()).
 */
import { ErrCompacted, ErrUnavailable, assert } from './errors.js';
import type { LogStorage } from './storage.js';
import type { Entry, Snapshot } from './types.js';
import { limitBytes } from './util.js';

/** Entries and a snapshot not yet known to be persisted. */
export class Unstable {
  snapshot: Snapshot | null = null;
  entries: Entry[] = [];
  /** Index of entries[0] (or where it would be). */
  offset: number;

  constructor(offset: number) {
    this.offset = offset;
  }

  maybeFirstIndex(): number | null {
    return this.snapshot === null ? null : this.snapshot.meta.index + 1;
  }

  maybeLastIndex(): number | null {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    return this.snapshot === null ? null : this.snapshot.meta.index;
  }

  maybeTerm(index: number): number | null {
    if (index < this.offset) {
      return this.snapshot !== null && this.snapshot.meta.index === index ? this.snapshot.meta.term : null;
    }
    const last = this.maybeLastIndex();
    if (last === null || index > last) return null;
    return this.entries[index - this.offset]!.term;
  }

  /**
   * Entries through `index` are now stable, unless they were replaced since
   * they were handed out (the term no longer matches): then nothing changes.
   */
  stableTo(index: number, term: number): void {
    if (index < this.offset || this.maybeTerm(index) !== term) return;
    this.entries = this.entries.slice(index + 1 - this.offset);
    this.offset = index + 1;
  }

  stableSnapTo(index: number): void {
    if (this.snapshot !== null && this.snapshot.meta.index === index) this.snapshot = null;
  }

  restore(snapshot: Snapshot): void {
    this.offset = snapshot.meta.index + 1;
    this.entries = [];
    this.snapshot = snapshot;
  }

  /**
   * Appends, replacing any entries at the same or later indexes. `entries`
   * itself is never handed out (readers get copies), so appending in place
   * keeps a burst of proposals linear.
   */
  truncateAndAppend(entries: readonly Entry[]): void {
    const after = entries[0]!.index;
    if (after === this.offset + this.entries.length) {
      for (const e of entries) this.entries.push(e);
    } else if (after <= this.offset) {
      // The new entries replace some already in storage; the caller overwrites them there.
      this.offset = after;
      this.entries = entries.slice();
    } else {
      this.entries = this.entries.slice(0, after - this.offset).concat(entries);
    }
  }

  slice(lo: number, hi: number): Entry[] {
    assert(lo >= this.offset && hi <= this.offset + this.entries.length && lo <= hi,
      () => `unstable slice [${lo}, ${hi}) out of [${this.offset}, ${this.offset + this.entries.length})`);
    return this.entries.slice(lo - this.offset, hi - this.offset);
  }
}

export class RaftLog {
  readonly unstable: Unstable;
  /** Highest index known to be committed (replicated on a quorum in the same term). */
  committed: number;
  /** Highest index the caller has applied (confirmed through advance()). */
  applied: number;

  constructor(
    readonly storage: LogStorage,
    private readonly maxCommittedBytes: number,
  ) {
    const first = storage.firstIndex();
    this.unstable = new Unstable(storage.lastIndex() + 1);
    this.committed = first - 1;
    this.applied = first - 1;
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  /** Term at `index`; throws ErrCompacted / ErrUnavailable outside [firstIndex - 1, lastIndex]. */
  term(index: number): number {
    const first = this.firstIndex();
    if (index < first - 1) throw new ErrCompacted(index, first);
    const last = this.lastIndex();
    if (index > last) throw new ErrUnavailable(index, last);
    return this.unstable.maybeTerm(index) ?? this.storage.term(index);
  }

  /** Term at `index`, or 0 when it is compacted or past the end (no exception: this is a hot path). */
  termOrZero(index: number): number {
    if (index < this.firstIndex() - 1 || index > this.lastIndex()) return 0;
    try {
      return this.term(index);
    } catch (e) {
      if (e instanceof ErrCompacted || e instanceof ErrUnavailable) return 0;
      throw e;
    }
  }

  lastTerm(): number {
    return this.term(this.lastIndex());
  }

  /** Do we hold the entry at `index` with `term`? False when it is compacted or missing. */
  matchTerm(index: number, term: number): boolean {
    if (index < this.firstIndex() - 1 || index > this.lastIndex()) return false;
    try {
      return this.term(index) === term;
    } catch (e) {
      if (e instanceof ErrCompacted || e instanceof ErrUnavailable) return false;
      throw e;
    }
  }

  /** Raft §5.4.1: is a log ending at (lastIndex, term) at least as up to date as ours? */
  isUpToDate(lastIndex: number, term: number): boolean {
    const ourTerm = this.lastTerm();
    return term > ourTerm || (term === ourTerm && lastIndex >= this.lastIndex());
  }

  /**
   * Follower side of AppendEntries: if our entry at prevIndex has prevTerm,
   * append `entries` (dropping a conflicting tail) and advance the commit
   * index; returns the last index now known to match the leader, else null.
   */
  maybeAppend(prevIndex: number, prevTerm: number, commit: number, entries: Entry[]): number | null {
    if (!this.matchTerm(prevIndex, prevTerm)) return null;
    const lastNew = prevIndex + entries.length;
    const conflict = this.findConflict(entries);
    if (conflict !== 0) {
      assert(conflict > this.committed, () => `entry ${conflict} conflicts with committed entry (committed ${this.committed})`);
      this.append(entries.slice(conflict - (prevIndex + 1)));
    }
    this.commitTo(Math.min(commit, lastNew));
    return lastNew;
  }

  /** Index of the first entry whose term differs from ours (or that we lack); 0 if all match. */
  findConflict(entries: readonly Entry[]): number {
    for (const e of entries) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * The last entry at or before `index` whose term is at most `term` (term 0
   * when unknown). Used by both sides of the rejection hint: it skips every
   * entry of a term that cannot match in one step.
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    if (index > this.lastIndex()) return { index, term: 0 };
    for (let i = index; ; i--) {
      let t: number;
      try {
        t = this.term(i);
      } catch (e) {
        if (e instanceof ErrCompacted) return { index: i, term: 0 };
        throw e;
      }
      if (t <= term) return { index: i, term: t };
    }
  }

  append(entries: readonly Entry[]): number {
    if (entries.length === 0) return this.lastIndex();
    assert(entries[0]!.index - 1 >= this.committed,
      () => `append at ${entries[0]!.index} would overwrite committed entries (committed ${this.committed})`);
    assert(entries[0]!.index <= this.lastIndex() + 1, () => `append at ${entries[0]!.index} leaves a gap after ${this.lastIndex()}`);
    this.unstable.truncateAndAppend(entries);
    return this.lastIndex();
  }

  commitTo(index: number): void {
    if (index <= this.committed) return;
    assert(index <= this.lastIndex(), () => `commit ${index} is past the last index ${this.lastIndex()}: log lost or corrupt`);
    this.committed = index;
  }

  appliedTo(index: number): void {
    assert(index <= this.committed && index >= this.applied,
      () => `applied ${index} outside [applied ${this.applied}, committed ${this.committed}]`);
    this.applied = index;
  }

  stableTo(index: number, term: number): void {
    this.unstable.stableTo(index, term);
  }

  stableSnapTo(index: number): void {
    this.unstable.stableSnapTo(index);
  }

  /** Everything below this index is in stable storage. */
  persistedIndex(): number {
    return this.unstable.offset - 1;
  }

  hasPendingSnapshot(): boolean {
    return this.unstable.snapshot !== null;
  }

  unstableEntries(): Entry[] {
    return this.unstable.entries.slice();
  }

  /** Committed entries not yet applied, up to the per-Ready byte limit; none while a snapshot is pending. */
  nextCommittedEntries(): Entry[] {
    if (!this.hasNextCommittedEntries()) return [];
    const lo = Math.max(this.applied + 1, this.firstIndex());
    return this.slice(lo, this.committed + 1, this.maxCommittedBytes);
  }

  hasNextCommittedEntries(): boolean {
    if (this.hasPendingSnapshot()) return false;
    return this.committed + 1 > Math.max(this.applied + 1, this.firstIndex());
  }

  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  /** Entries from `lo` to the end, within `maxBytes` (at least one). */
  entries(lo: number, maxBytes: number): Entry[] {
    const last = this.lastIndex();
    if (lo > last) return [];
    return this.slice(lo, last + 1, maxBytes);
  }

  /** Entries [lo, hi) within `maxBytes` (at least one); throws ErrCompacted if lo < firstIndex. */
  slice(lo: number, hi: number, maxBytes: number): Entry[] {
    assert(lo <= hi, () => `slice: lo ${lo} > hi ${hi}`);
    const first = this.firstIndex();
    if (lo < first) throw new ErrCompacted(lo, first);
    assert(hi <= this.lastIndex() + 1, () => `slice [${lo}, ${hi}) past the last index ${this.lastIndex()}`);
    if (lo === hi) return [];
    const offset = this.unstable.offset;
    let out: Entry[] = [];
    if (lo < offset) {
      const storedHi = Math.min(hi, offset);
      out = this.storage.entries(lo, storedHi, maxBytes);
      assert(out.length > 0 && out[0]!.index === lo, () => `storage returned no entry at ${lo}`);
      if (out.length < storedHi - lo) return out;
    }
    if (hi > offset) {
      const tail = this.unstable.slice(Math.max(lo, offset), hi);
      out = out.length === 0 ? tail : out.concat(tail);
    }
    return limitBytes(out, maxBytes);
  }

  /** A follower installs the leader's snapshot: the whole log is replaced by it. */
  restore(snapshot: Snapshot): void {
    this.committed = snapshot.meta.index;
    this.unstable.restore(snapshot);
  }
}
