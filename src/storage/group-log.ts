/**
 * Per-group log bookkeeping, in two forms:
 *
 * - GroupTracker checks appends against the Raft log invariants before they
 *   reach the disk (no gaps, no writes inside the snapshot, terms never
 *   decrease, committed entries never truncated, one vote per term). It keeps
 *   only index/term runs, so it costs a few words per group however long the log.
 * - ReplayLog rebuilds a group's log from the records replay reads back.
 *
 * A Raft bug caught here is a rejected append instead of a log that hands out
 * a lock twice after the next restart.
 */
import { WalInvalidRecordError } from './errors.js';
import type { Entry, GroupReplay, HardState, SnapshotMarker } from './types.js';

interface TermRun {
  /** First index of a run of entries that share `term`. */
  start: number;
  term: number;
}

/** Why `next` may not follow `prev`, or null when it may. */
export function hardStateRegression(prev: HardState | null, next: HardState): string | null {
  if (prev === null) return null;
  if (next.term < prev.term) return `hard state term goes back from ${prev.term} to ${next.term}`;
  if (next.commit < prev.commit) return `hard state commit goes back from ${prev.commit} to ${next.commit}`;
  if (next.term === prev.term && prev.vote !== null && next.vote !== prev.vote) {
    return `vote changes from '${prev.vote}' to '${String(next.vote)}' within term ${next.term}`;
  }
  return null;
}

export class GroupTracker {
  snapshot: SnapshotMarker | null = null;
  hardState: HardState | null = null;
  lastIndex = 0;
  /** Terms of the entries in (snapshot index, lastIndex], as ascending runs. */
  private runs: TermRun[] = [];

  constructor(readonly group: number) {}

  static fromReplay(group: number, replay: GroupReplay): GroupTracker {
    const tracker = new GroupTracker(group);
    tracker.snapshot = replay.snapshot === null ? null : { ...replay.snapshot };
    tracker.hardState = replay.hardState === null ? null : { ...replay.hardState };
    tracker.lastIndex = replay.entries.at(-1)?.index ?? replay.snapshot?.index ?? 0;
    for (const e of replay.entries) {
      if (tracker.runs.at(-1)?.term !== e.term) tracker.runs.push({ start: e.index, term: e.term });
    }
    return tracker;
  }

  clone(): GroupTracker {
    const copy = new GroupTracker(this.group);
    copy.snapshot = this.snapshot;
    copy.hardState = this.hardState;
    copy.lastIndex = this.lastIndex;
    copy.runs = this.runs.slice();
    return copy;
  }

  /** The term of the entry at `index` if this group's log (or its snapshot) still knows it. */
  termAt(index: number): number | undefined {
    const snapIndex = this.snapshot?.index ?? 0;
    if (this.snapshot !== null && index === snapIndex) return this.snapshot.term;
    if (index <= snapIndex || index > this.lastIndex) return undefined;
    let lo = 0;
    let hi = this.runs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.runs[mid]!.start <= index) lo = mid;
      else hi = mid - 1;
    }
    return this.runs[lo]?.term;
  }

  /** `commitBefore` is the commit index durable before this append: entries up to it may never be replaced. */
  acceptEntries(entries: readonly Entry[], commitBefore: number): void {
    const first = entries[0]!.index;
    const snapIndex = this.snapshot?.index ?? 0;
    const where = `group ${this.group}: entries starting at ${first}`;
    if (first <= snapIndex) throw new WalInvalidRecordError(`${where} fall inside the snapshot at ${snapIndex}`);
    if (first > this.lastIndex + 1) throw new WalInvalidRecordError(`${where} leave a gap after the last index ${this.lastIndex}`);
    if (first <= this.lastIndex && first <= commitBefore) {
      throw new WalInvalidRecordError(`${where} would replace committed entries (commit ${commitBefore})`);
    }
    const prevTerm = this.termAt(first - 1);
    if (prevTerm !== undefined && entries[0]!.term < prevTerm) {
      throw new WalInvalidRecordError(`${where} have term ${entries[0]!.term}, below the previous entry's term ${prevTerm}`);
    }
    while (this.runs.length > 0 && this.runs.at(-1)!.start >= first) this.runs.pop();
    for (const e of entries) {
      if (this.runs.at(-1)?.term !== e.term) this.runs.push({ start: e.index, term: e.term });
    }
    this.lastIndex = entries.at(-1)!.index;
  }

  /** Records a snapshot marker; returns whether the log after it survives (see StoredSnapshotRecord). */
  acceptSnapshot(index: number, term: number): boolean {
    const where = `group ${this.group}: snapshot at ${index} (term ${term})`;
    const prev = this.snapshot;
    if (prev !== null && (index < prev.index || term < prev.term)) {
      throw new WalInvalidRecordError(`${where} is older than the snapshot at ${prev.index} (term ${prev.term})`);
    }
    if (prev !== null && index === prev.index && term !== prev.term) {
      throw new WalInvalidRecordError(`${where} disagrees with the snapshot at the same index (term ${prev.term})`);
    }
    const keepsLog = this.termAt(index) === term;
    if (keepsLog) {
      while (this.runs.length > 1 && this.runs[1]!.start <= index + 1) this.runs.shift();
      if (index === this.lastIndex) this.runs = [];
      else if (this.runs[0] !== undefined && this.runs[0].start <= index) this.runs[0] = { start: index + 1, term: this.runs[0].term };
    } else {
      this.runs = [];
      this.lastIndex = index;
    }
    this.snapshot = { index, term };
    return keepsLog;
  }

  acceptHardState(next: HardState): void {
    const regression = hardStateRegression(this.hardState, next);
    if (regression !== null) throw new WalInvalidRecordError(`group ${this.group}: ${regression}`);
    this.hardState = { ...next };
  }
}

/**
 * Rebuilds one group's log from replayed records, applying Raft truncation:
 * an entries record starting at index i replaces everything from i on.
 *
 * `floor` is the index of the group's newest snapshot marker anywhere in the
 * WAL. Compaction deletes segments whose entries all lie at or below a durable
 * snapshot, so a record may legitimately start past the end of the log being
 * rebuilt, or before its start, as long as it starts at or below floor + 1:
 * everything it skips is covered by that snapshot.
 */
export class ReplayLog {
  private base = 1;
  private entries: Entry[] = [];
  private snapshot: SnapshotMarker | null = null;
  private hardState: HardState | null = null;

  constructor(readonly group: number, private readonly floor: number) {}

  private get lastIndex(): number {
    return this.base + this.entries.length - 1;
  }

  /** Returns why the record cannot follow the log rebuilt so far, or null. */
  applyEntries(entries: readonly Entry[]): string | null {
    const first = entries[0]!.index;
    if (first >= this.base && first <= this.lastIndex + 1) {
      this.entries.length = first - this.base;
    } else if (first <= this.floor + 1) {
      this.entries = [];
      this.base = first;
    } else {
      return `group ${this.group}: entries start at ${first} but the log ends at ${this.lastIndex} and no snapshot covers the gap`;
    }
    for (const e of entries) this.entries.push(e);
    return null;
  }

  applySnapshot(index: number, term: number, keepsLog: boolean): string | null {
    if (this.snapshot !== null && index < this.snapshot.index) {
      return `group ${this.group}: snapshot marker at ${index} follows one at ${this.snapshot.index}`;
    }
    if (keepsLog && index >= this.base && index <= this.lastIndex) {
      this.entries = this.entries.slice(index - this.base + 1);
      this.base = index + 1;
    } else if (!keepsLog || index > this.lastIndex) {
      this.entries = [];
      this.base = index + 1;
    }
    this.snapshot = { index, term };
    return null;
  }

  applyHardState(hardState: HardState): string | null {
    const regression = hardStateRegression(this.hardState, hardState);
    if (regression !== null) return `group ${this.group}: ${regression}`;
    this.hardState = hardState;
    return null;
  }

  /** The recovered state, or why it is inconsistent. */
  finish(): GroupReplay | string {
    const snapIndex = this.snapshot?.index ?? 0;
    const entries = this.base <= snapIndex ? this.entries.slice(snapIndex - this.base + 1) : this.entries;
    if (entries.length > 0 && entries[0]!.index !== snapIndex + 1) {
      return `group ${this.group}: the log resumes at ${entries[0]!.index} after the snapshot at ${snapIndex}`;
    }
    return { entries, hardState: this.hardState, snapshot: this.snapshot };
  }
}
