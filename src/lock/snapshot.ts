/**
 * The replicated state of the lock state machine as bytes: what a Raft
 * snapshot carries. Only the PERSISTENT namespace (which holds the Redis
 * keyspace) is replicated; EPHEMERAL locks live in the leader's memory.
 *
 * Layout (big-endian): 'RLLS' magic, u8 version, f64 log time of the last
 * applied command, f64 EPHEMERAL horizon (version 2 on), then the
 * PERSISTENT table (LockTable.writeSnapshot; version 3 on, a released
 * resource's record may name the owner that released it).
 */
import { Reader, Writer } from './codec.js';
import type { LockStateMachine } from './machine.js';
import { TableReader, type TableImage } from './table.js';

const MAGIC = 0x524c4c53; // 'RLLS'
const VERSION = 3;

/** Bytes before the table: magic, version, log time, EPHEMERAL horizon. */
const HEADER_BYTES = 4 + 1 + 8 + 8;

/** Encodes the replicated state as of the last applied command, whose log time is logTimeMs. */
export function encodeLockSnapshot(machine: LockStateMachine, logTimeMs: number): Uint8Array {
  const encoder = new LockSnapshotEncoder(machine, logTimeMs);
  encoder.step(Infinity);
  return encoder.bytes();
}

/**
 * encodeLockSnapshot() a slice at a time: the state is copied when the
 * encoder is made (LockTable.image(), a small part of the cost), and the
 * machine may change while step() writes the copy out. A large table then
 * never holds the event loop for the whole encoding.
 */
export class LockSnapshotEncoder {
  private readonly image: TableImage;
  private readonly w: Writer;
  private bytesPerRecord = 48;
  private done = false;
  private taken: Uint8Array | null = null;

  constructor(machine: LockStateMachine, logTimeMs: number) {
    this.image = machine.persistent.image();
    this.w = new Writer(HEADER_BYTES + 20).u32(MAGIC).u8(VERSION).f64(logTimeMs).f64(machine.ephemeralHorizonMs);
    this.image.writeHeader(this.w);
  }

  /** Encodes up to `records` more records; true once the snapshot is complete. */
  step(records: number): boolean {
    if (this.done) return true;
    const { image, w } = this;
    const left = image.count - image.written;
    const n = Math.min(records, left);
    // Room for all that is left once the first slice showed how large records are: one
    // allocation for the rest, no copy per slice and none at the end.
    w.room(Math.ceil((image.written > 0 ? left : n) * this.bytesPerRecord) + 64);
    const start = w.length;
    this.done = image.writeRecords(w, n);
    if (n > 0) this.bytesPerRecord = Math.max(this.bytesPerRecord, ((w.length - start) / n) * 1.05);
    return this.done;
  }

  /** The snapshot, once step() returned true. */
  bytes(): Uint8Array {
    if (!this.done) throw new Error('the lock snapshot is not fully encoded yet');
    this.taken ??= this.w.take();
    return this.taken;
  }
}

/**
 * Replaces the machine's replicated state with a snapshot's; returns the log
 * time it was taken at. Throws on bytes encodeLockSnapshot did not write,
 * leaving the machine as it was.
 */
export function restoreLockSnapshot(machine: LockStateMachine, bytes: Uint8Array): { logTimeMs: number } {
  const decoder = new LockSnapshotDecoder(bytes);
  decoder.step(Infinity);
  return decoder.installInto(machine);
}

/**
 * restoreLockSnapshot() a slice at a time: step() reads records into new
 * columns, and installInto() replaces the machine's state with them at once,
 * so a large snapshot never holds the event loop for the whole decoding.
 */
export class LockSnapshotDecoder {
  private readonly r: Reader;
  private readonly table: TableReader;
  private readonly logTimeMs: number;
  private readonly horizonMs: number;
  private done = false;

  constructor(bytes: Uint8Array) {
    const r = new Reader(bytes, 'lock snapshot');
    if (r.u32() !== MAGIC) throw r.error('bad magic');
    const version = r.u8();
    if (version < 1 || version > VERSION) throw r.error(`unknown format version ${version}`);
    this.logTimeMs = r.f64();
    this.horizonMs = version >= 2 ? r.f64() : 0;
    this.r = r;
    this.table = new TableReader(r);
  }

  /** Reads up to `records` more records; true once all are. */
  step(records: number): boolean {
    if (!this.done) this.done = this.table.step(records);
    return this.done;
  }

  /** Replaces the machine's replicated state (once step() returned true); returns the snapshot's log time. */
  installInto(machine: LockStateMachine): { logTimeMs: number } {
    if (!this.done) throw new Error('the lock snapshot is not fully read yet');
    this.r.end();
    this.table.installInto(machine.persistent);
    machine.ephemeralHorizonMs = this.horizonMs;
    return { logTimeMs: this.logTimeMs };
  }
}
