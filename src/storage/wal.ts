/**
 * The node-level write-ahead log. One WAL carries every Raft group (partition)
 * of a node, so one fdatasync makes many groups' entries and hard states
 * durable at once.
 *
 * Group commit: append() validates and encodes its records at once, queues
 * them, and resolves only when they are durable. A single writer loop takes
 * everything queued (up to batchBytesMax), writes it with one writev followed
 * by a commit frame, then issues one fdatasync; appends that arrive while that
 * fdatasync is in flight form the next batch. A batch is written only after
 * the previous one is durable, which is what lets replay treat damage to the
 * last batch as a torn tail (see segment.ts).
 *
 * Segments roll over between batches once the active one would exceed
 * segmentBytes. Each new active segment starts with a carry-forward batch
 * (every group's latest hard state and snapshot marker), so older segments
 * never hold the only copy of that state and compaction need only look at
 * entries.
 */
import {
  WalClosedError, WalFailedError, WalInvalidRecordError, WalQueueFullError,
} from './errors.js';
import { type FileHandleLike, type StorageFs, ensureDir, writeAll } from './fs.js';
import { GroupTracker } from './group-log.js';
import { PAYLOAD_BYTES_MAX, checkRecordShape, encodeCommit, encodeRecords } from './record.js';
import { type SegmentInfo, newSegmentInfo, recover } from './replay.js';
import { type TornTail, segmentName } from './segment.js';
import type { GroupReplay, HardState, SnapshotMarker, StoredRecord, StoredSnapshotRecord, WalRecord } from './types.js';

const MiB = 1024 * 1024;

export interface WalOptions {
  fs: StorageFs;
  dir: string;
  /** A segment rolls over before the batch that would take it past this size. */
  segmentBytes?: number;
  /** Largest write batch, and so the largest single append. */
  batchBytesMax?: number;
  /** Bytes of appends waiting for the writer; beyond it append() rejects with WalQueueFullError. */
  queueBytesMax?: number;
  /** Appends waiting for the writer; beyond it append() rejects with WalQueueFullError. */
  queueAppendsMax?: number;
  /** Told of every batch made durable: its fdatasync's duration (ms), data records and bytes (metrics). */
  onSync?: (syncMs: number, records: number, bytes: number) => void;
}

export const WAL_DEFAULTS = {
  segmentBytes: 64 * MiB,
  batchBytesMax: 4 * MiB,
  queueBytesMax: 64 * MiB,
  queueAppendsMax: 65_536,
} as const;

export interface WalOpenReport {
  dir: string;
  /** Segment files after open, oldest first; the last is the active one. */
  segments: string[];
  /** Data records replayed. */
  records: number;
  /** The unfinished batch cut off the last segment, if a crash left one: log it. */
  truncatedTail: TornTail | null;
}

export interface WalOpenResult {
  wal: Wal;
  groups: Map<number, GroupReplay>;
  report: WalOpenReport;
}

export interface WalStats {
  batches: number;
  records: number;
  bytes: number;
  segments: number;
  queuedAppends: number;
  queuedBytes: number;
}

/** What one record does to the state the writer tracks: computed at append time, applied when written. */
interface Effect {
  group: number;
  lastEntry: number;
  hardState: HardState | null;
  snapshot: SnapshotMarker | null;
}

interface PendingAppend {
  frames: Uint8Array;
  effects: Effect[];
  resolve: () => void;
  reject: (error: Error) => void;
}

interface Batch {
  appends: PendingAppend[];
  buffers: Uint8Array[];
  bytes: number;
  effects: Effect[];
  /** The new segment this batch opens, if it rolls over. */
  rollTo: SegmentInfo | null;
}

type Limits = Required<Omit<WalOptions, 'fs' | 'dir' | 'onSync'>>;

function checkLimits(options: WalOptions): Limits {
  const limits: Limits = {
    segmentBytes: options.segmentBytes ?? WAL_DEFAULTS.segmentBytes,
    batchBytesMax: options.batchBytesMax ?? WAL_DEFAULTS.batchBytesMax,
    queueBytesMax: options.queueBytesMax ?? WAL_DEFAULTS.queueBytesMax,
    queueAppendsMax: options.queueAppendsMax ?? WAL_DEFAULTS.queueAppendsMax,
  };
  const within = (name: keyof Limits, min: number, max: number): void => {
    const v = limits[name];
    if (!Number.isSafeInteger(v) || v < min || v > max) {
      throw new RangeError(`WAL option ${name} must be an integer in [${min}, ${max}], got ${v}`);
    }
  };
  within('segmentBytes', 1024, 2 ** 40);
  within('batchBytesMax', 1024, PAYLOAD_BYTES_MAX);
  within('queueBytesMax', limits.batchBytesMax, 2 ** 40);
  within('queueAppendsMax', 1, 2 ** 24);
  return limits;
}

export class Wal {
  private readonly trackers = new Map<number, GroupTracker>();
  /** Each group's latest hard state and snapshot as of the last batch handed to the disk: the carry-forward. */
  private readonly written = new Map<number, { hardState: HardState | null; snapshot: SnapshotMarker | null }>();
  private readonly durableSnapshot = new Map<number, number>();
  private readonly covered = new Map<number, number>();
  private queue: PendingAppend[] = [];
  private queueBytes = 0;
  private compactWaiters: { resolve: (deleted: string[]) => void; reject: (error: Error) => void }[] = [];
  private drainWaiters: (() => void)[] = [];
  private flushing = false;
  private closed = false;
  private failure: Error | null = null;
  private readonly counters = { batches: 0, records: 0, bytes: 0 };
  private onSync: WalOptions['onSync'];

  private constructor(
    private readonly fs: StorageFs,
    private readonly dir: string,
    private readonly limits: Limits,
    private readonly segments: SegmentInfo[],
    private handle: FileHandleLike,
    private nextSeq: number,
  ) {}

  static async open(options: WalOptions): Promise<WalOpenResult> {
    const limits = checkLimits(options);
    const { fs, dir } = options;
    await ensureDir(fs, dir);
    const recovery = await recover(fs, dir);
    const segments = recovery.segments;
    let handle: FileHandleLike;
    const last = segments.at(-1);
    if (last !== undefined && last.size === 0) {
      handle = await fs.open(last.path, 'r+');
    } else {
      // Recovered segments are never written again, so they stay exactly as replay verified them;
      // the fresh active segment begins with the carry-forward, as after every rollover.
      const fresh = newSegmentInfo(dir, segmentName(recovery.nextSeq), recovery.nextSeq);
      handle = await fs.open(fresh.path, 'wx');
      await fs.fsyncDir(dir);
      segments.push(fresh);
    }
    const wal = new Wal(fs, dir, limits, segments, handle, recovery.nextSeq);
    wal.onSync = options.onSync;
    for (const [group, state] of recovery.groups) {
      wal.trackers.set(group, GroupTracker.fromReplay(group, state));
      wal.written.set(group, { hardState: state.hardState, snapshot: state.snapshot });
      if (state.snapshot !== null) wal.durableSnapshot.set(group, state.snapshot.index);
    }
    try {
      const carry = wal.buildBatch([], true);
      if (carry.bytes > 0) await wal.writeBatch(carry);
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
    const report: WalOpenReport = {
      dir, segments: segments.map((s) => s.name), records: recovery.records, truncatedTail: recovery.tail,
    };
    return { wal, groups: recovery.groups, report };
  }

  /**
   * Queues records for the disk. Resolves once they, and every record appended
   * before them, are durable; after a crash the records of one call are
   * replayed all together or not at all. Rejects with WalInvalidRecordError or
   * WalQueueFullError (nothing written), WalClosedError, or WalFailedError.
   */
  append(records: readonly WalRecord[]): Promise<void> {
    if (this.closed) return Promise.reject(new WalClosedError());
    if (this.failure !== null) return Promise.reject(this.failedError(false));
    let prepared: { frames: Uint8Array; effects: Effect[]; drafts: Map<number, GroupTracker> };
    try {
      prepared = this.prepare(records);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    const bytes = prepared.frames.length;
    if (this.queue.length >= this.limits.queueAppendsMax || this.queueBytes + bytes > this.limits.queueBytesMax) {
      return Promise.reject(new WalQueueFullError(
        `WAL queue full (${this.queue.length} appends, ${this.queueBytes} bytes; limits ${this.limits.queueAppendsMax} appends, ${this.limits.queueBytesMax} bytes)`));
    }
    for (const [group, tracker] of prepared.drafts) this.trackers.set(group, tracker);
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ frames: prepared.frames, effects: prepared.effects, resolve, reject });
      this.queueBytes += bytes;
      this.kick();
    });
  }

  /**
   * Declares that group's state up to `index` is safe in a durable snapshot
   * whose marker this WAL has made durable (index <= that marker's index).
   * Deletes the oldest segments, never the active one, whose entries are all
   * covered for every group in them. Resolves with the deleted file names.
   */
  compact(group: number, index: number): Promise<string[]> {
    if (this.closed) return Promise.reject(new WalClosedError());
    if (this.failure !== null) return Promise.reject(this.failedError(false));
    const durable = this.durableSnapshot.get(group) ?? 0;
    if (!Number.isInteger(group) || group < 0 || group > 0xffffffff || !Number.isSafeInteger(index) || index < 0 || index > durable) {
      return Promise.reject(new WalInvalidRecordError(
        `compact(group ${group}, ${index}): the group's durable snapshot marker is at ${durable}`));
    }
    this.covered.set(group, Math.max(index, this.covered.get(group) ?? 0));
    return new Promise((resolve, reject) => {
      this.compactWaiters.push({ resolve, reject });
      this.kick();
    });
  }

  /** Waits for queued appends to become durable, then releases the active segment. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.flushing) await new Promise<void>((resolve) => this.drainWaiters.push(resolve));
    await this.handle.close().catch(() => undefined);
  }

  stats(): WalStats {
    return { ...this.counters, segments: this.segments.length, queuedAppends: this.queue.length, queuedBytes: this.queueBytes };
  }

  /** Validates records against format and Raft invariants on copies of the group trackers, then encodes them. */
  private prepare(records: readonly WalRecord[]): { frames: Uint8Array; effects: Effect[]; drafts: Map<number, GroupTracker> } {
    if (!Array.isArray(records) || records.length === 0) throw new WalInvalidRecordError('append needs at least one record');
    const drafts = new Map<number, GroupTracker>();
    const commitBefore = new Map<number, number>();
    const draft = (group: number): GroupTracker => {
      let tracker = drafts.get(group);
      if (tracker === undefined) {
        const current = this.trackers.get(group);
        tracker = current?.clone() ?? new GroupTracker(group);
        drafts.set(group, tracker);
        commitBefore.set(group, current?.hardState?.commit ?? 0);
      }
      return tracker;
    };
    const stored: StoredRecord[] = [];
    const effects: Effect[] = [];
    for (const record of records) {
      const effect: Effect = { group: record.group, lastEntry: 0, hardState: null, snapshot: null };
      if (record.type === 'snapshot') {
        const shaped: StoredSnapshotRecord = { ...record, keepsLog: false };
        checkRecordShape(shaped);
        shaped.keepsLog = draft(record.group).acceptSnapshot(record.index, record.term);
        stored.push(shaped);
        effect.snapshot = { index: record.index, term: record.term };
      } else {
        checkRecordShape(record);
        const tracker = draft(record.group);
        if (record.type === 'entries') {
          tracker.acceptEntries(record.entries, commitBefore.get(record.group)!);
          effect.lastEntry = record.entries.at(-1)!.index;
        } else {
          tracker.acceptHardState(record.hardState);
          effect.hardState = { ...record.hardState };
        }
        stored.push(record);
      }
      effects.push(effect);
    }
    const frames = encodeRecords(stored);
    if (frames.length > this.limits.batchBytesMax) {
      throw new WalInvalidRecordError(`append of ${frames.length} bytes exceeds batchBytesMax ${this.limits.batchBytesMax}`);
    }
    return { frames, effects, drafts };
  }

  private kick(): void {
    if (this.flushing) return;
    this.flushing = true;
    // Start on a microtask so that appends issued in the same synchronous burst share the first batch.
    queueMicrotask(() => void this.flushLoop());
  }

  private async flushLoop(): Promise<void> {
    let batch: Batch | null = null;
    try {
      while (this.failure === null && (this.queue.length > 0 || this.compactWaiters.length > 0)) {
        if (this.compactWaiters.length > 0) await this.runCompaction();
        if (this.queue.length === 0) continue;
        batch = this.cutBatch();
        await this.writeBatch(batch);
        for (const a of batch.appends) a.resolve();
        batch = null;
      }
    } catch (error) {
      this.fail(error as Error, batch?.appends ?? []);
    } finally {
      this.flushing = false;
      for (const resolve of this.drainWaiters.splice(0)) resolve();
    }
  }

  /** Takes queued appends up to batchBytesMax (always at least one) and decides on rollover. */
  private cutBatch(): Batch {
    let bytes = 0;
    let count = 0;
    while (count < this.queue.length) {
      const next = this.queue[count]!.frames.length;
      if (count > 0 && bytes + next > this.limits.batchBytesMax) break;
      bytes += next;
      count++;
    }
    const appends = this.queue.splice(0, count);
    this.queueBytes -= bytes;
    const active = this.segments.at(-1)!;
    const roll = active.size > 0 && active.size + bytes > this.limits.segmentBytes;
    return this.buildBatch(appends, roll);
  }

  /** Frames a batch: optional carry-forward, the appends, and the commit frame that seals it. */
  private buildBatch(appends: PendingAppend[], withCarry: boolean): Batch {
    const carry: StoredRecord[] = [];
    if (withCarry) {
      for (const [group, state] of this.written) {
        if (state.snapshot !== null) carry.push({ type: 'snapshot', group, ...state.snapshot, keepsLog: true });
        if (state.hardState !== null) carry.push({ type: 'hardState', group, hardState: state.hardState });
      }
    }
    const effects: Effect[] = [];
    for (const a of appends) for (const e of a.effects) effects.push(e);
    const firstSeq = this.nextSeq;
    const count = carry.length + effects.length;
    const rollTo = withCarry && appends.length > 0 ? newSegmentInfo(this.dir, segmentName(firstSeq), firstSeq) : null;
    if (count === 0) return { appends, buffers: [], bytes: 0, effects, rollTo };
    this.nextSeq += count;
    let buffers = [...(carry.length > 0 ? [encodeRecords(carry)] : []), ...appends.map((a) => a.frames), encodeCommit(firstSeq, count)];
    let bytes = 0;
    for (const b of buffers) bytes += b.length;
    if (buffers.length > 16) buffers = [concat(buffers, bytes)];
    const target = rollTo ?? this.segments.at(-1)!;
    for (const e of effects) {
      const state = this.written.get(e.group) ?? { hardState: null, snapshot: null };
      if (e.hardState !== null) state.hardState = e.hardState;
      if (e.snapshot !== null) state.snapshot = e.snapshot;
      this.written.set(e.group, state);
      if (e.lastEntry > 0) target.maxEntry.set(e.group, Math.max(e.lastEntry, target.maxEntry.get(e.group) ?? 0));
    }
    return { appends, buffers, bytes, effects, rollTo };
  }

  private async writeBatch(batch: Batch): Promise<void> {
    if (batch.rollTo !== null) await this.roll(batch.rollTo);
    const active = this.segments.at(-1)!;
    await writeAll(this.handle, batch.buffers, active.size);
    const syncStartMs = this.onSync === undefined ? 0 : performance.now();
    await this.handle.datasync();
    active.size += batch.bytes;
    this.counters.batches++;
    this.counters.records += batch.effects.length;
    this.counters.bytes += batch.bytes;
    this.onSync?.(performance.now() - syncStartMs, batch.effects.length, batch.bytes);
    for (const e of batch.effects) {
      if (e.snapshot !== null) this.durableSnapshot.set(e.group, e.snapshot.index);
    }
  }

  /** The new segment's name must be durable before any record in it is acknowledged. */
  private async roll(segment: SegmentInfo): Promise<void> {
    const handle = await this.fs.open(segment.path, 'wx');
    await this.fs.fsyncDir(this.dir);
    const old = this.handle;
    this.handle = handle;
    this.segments.push(segment);
    await old.close();
  }

  /**
   * Deletes covered segments oldest first, one directory fsync each, so that a
   * crash can only bring back a prefix of them, never leave a hole in the sequence.
   */
  private async runCompaction(): Promise<void> {
    const waiters = this.compactWaiters.splice(0);
    const deleted: string[] = [];
    try {
      while (this.segments.length > 1 && this.isCovered(this.segments[0]!)) {
        const segment = this.segments[0]!;
        await this.fs.unlink(segment.path);
        await this.fs.fsyncDir(this.dir);
        this.segments.shift();
        deleted.push(segment.name);
      }
    } catch (error) {
      for (const w of waiters) w.reject(error as Error);
      throw error;
    }
    for (const w of waiters) w.resolve(deleted);
  }

  private isCovered(segment: SegmentInfo): boolean {
    for (const [group, maxIndex] of segment.maxEntry) {
      if (maxIndex > (this.covered.get(group) ?? 0)) return false;
    }
    return true;
  }

  private failedError(maybeWritten: boolean): WalFailedError {
    const cause = this.failure;
    return new WalFailedError(`WAL stopped after an I/O error (${cause?.message ?? 'unknown'}); restart to replay`, maybeWritten, cause);
  }

  /** After a failed write or fsync nothing later can be trusted to be durable: stop for good. */
  private fail(cause: Error, inFlight: PendingAppend[]): void {
    this.failure ??= cause;
    for (const a of inFlight) a.reject(this.failedError(true));
    for (const a of this.queue.splice(0)) a.reject(this.failedError(false));
    this.queueBytes = 0;
    for (const w of this.compactWaiters.splice(0)) w.reject(this.failedError(false));
  }
}

function concat(buffers: Uint8Array[], bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  let at = 0;
  for (const b of buffers) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}
