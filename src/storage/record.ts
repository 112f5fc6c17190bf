/**
 * WAL record framing and payload codec.
 *
 * Frame (little-endian): [u32 payload length][u32 crc32c of type + payload][u8 type][payload]
 *
 * Payloads of the data records all start with the u32 group id:
 * - entries:   group, u64 first index, u32 count, then per entry: u64 term, u8 type, u32 data length, data.
 *              Indexes in one record are consecutive, so only the first is stored.
 * - hardState: group, u64 term, u64 commit, u16 vote length (0xffff = no vote), vote UTF-8.
 * - snapshot:  group, u64 index, u64 term, u8 keepsLog.
 * - commit:    u64 seq of the batch's first data record, u32 number of data records in the batch.
 *
 * A commit frame closes every write batch (one writev + one fdatasync). Replay
 * only accepts batches that end in their commit frame, which makes each batch,
 * and so each append() call, all-or-nothing after a crash.
 */
import { crc32c } from './crc32c.js';
import { slabCopy } from './slab.js';
import { WalInvalidRecordError } from './errors.js';
import type { Entry, EntryType, StoredRecord } from './types.js';

export const FRAME_HEADER_BYTES = 9;
export const RECORD_ENTRIES = 1;
export const RECORD_HARD_STATE = 2;
export const RECORD_SNAPSHOT = 3;
export const RECORD_COMMIT = 4;
/** No frame is larger than this; a larger length field is corruption, not a record. */
export const PAYLOAD_BYTES_MAX = 64 * 1024 * 1024;
export const VOTE_BYTES_MAX = 1024;
const COMMIT_PAYLOAD_BYTES = 12;
const NO_VOTE = 0xffff;
const U32_MAX = 0xffffffff;
const TWO_32 = 0x1_0000_0000;

const ENTRY_TYPES: readonly EntryType[] = ['normal', 'noop', 'conf'];
const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

function isU32(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= U32_MAX;
}

function isIndex(n: number, min: number): boolean {
  return Number.isSafeInteger(n) && n >= min;
}

/** Format-level checks of one record; Raft log invariants are GroupTracker's job. */
export function checkRecordShape(record: StoredRecord): void {
  const where = `${record.type} record for group ${record.group}`;
  if (!isU32(record.group)) throw new WalInvalidRecordError(`${where}: group id must be a u32`);
  if (record.type === 'entries') {
    const { entries } = record;
    if (!Array.isArray(entries) || entries.length === 0) throw new WalInvalidRecordError(`${where}: no entries`);
    if (entries.length > U32_MAX) throw new WalInvalidRecordError(`${where}: too many entries`);
    entries.forEach((e, i) => checkEntry(e, i === 0 ? undefined : entries[i - 1], where));
  } else if (record.type === 'hardState') {
    const { term, vote, commit } = record.hardState;
    if (!isIndex(term, 0) || !isIndex(commit, 0)) {
      throw new WalInvalidRecordError(`${where}: term and commit must be non-negative safe integers`);
    }
    if (vote !== null && (typeof vote !== 'string' || vote === '' || textEncoder.encode(vote).length > VOTE_BYTES_MAX)) {
      throw new WalInvalidRecordError(`${where}: vote must be null or a node id of 1..${VOTE_BYTES_MAX} bytes`);
    }
  } else if (!isIndex(record.index, 1) || !isIndex(record.term, 1)) {
    throw new WalInvalidRecordError(`${where}: index and term must be positive safe integers`);
  }
}

function checkEntry(e: Entry, prev: Entry | undefined, where: string): void {
  if (!isIndex(e.index, 1) || !isIndex(e.term, 1)) {
    throw new WalInvalidRecordError(`${where}: entry index and term must be positive safe integers`);
  }
  if (!ENTRY_TYPES.includes(e.type)) throw new WalInvalidRecordError(`${where}: unknown entry type '${String(e.type)}'`);
  if (!(e.data instanceof Uint8Array)) throw new WalInvalidRecordError(`${where}: entry ${e.index} data is not bytes`);
  if (prev !== undefined && e.index !== prev.index + 1) {
    throw new WalInvalidRecordError(`${where}: entry indexes must be consecutive (${prev.index} then ${e.index})`);
  }
  if (prev !== undefined && e.term < prev.term) {
    throw new WalInvalidRecordError(`${where}: entry terms must not decrease (${prev.term} then ${e.term} at ${e.index})`);
  }
}

function payloadBytes(record: StoredRecord, vote: Uint8Array | null): number {
  if (record.type === 'entries') {
    let n = 16;
    for (const e of record.entries) n += 13 + e.data.length;
    return n;
  }
  if (record.type === 'hardState') return 22 + (vote?.length ?? 0);
  return 21;
}

function putU64(view: DataView, at: number, n: number): void {
  view.setUint32(at, n % TWO_32, true);
  view.setUint32(at + 4, Math.floor(n / TWO_32), true);
}

/**
 * Small encodings are carved out of a shared slab: a separate ArrayBuffer and
 * DataView per append cost more than encoding a 64-byte entry. Encoded frames
 * are never written to after encoding, so sharing a slab is safe.
 */
const SLAB_BYTES = 256 * 1024;
let slab = { bytes: new Uint8Array(SLAB_BYTES), view: new DataView(new ArrayBuffer(0)), used: 0 };
slab.view = new DataView(slab.bytes.buffer);

function allocate(size: number): { out: Uint8Array; view: DataView; base: number } {
  if (size > SLAB_BYTES / 4) {
    const out = new Uint8Array(size);
    return { out, view: new DataView(out.buffer), base: 0 };
  }
  if (slab.used + size > SLAB_BYTES) {
    const bytes = new Uint8Array(SLAB_BYTES);
    slab = { bytes, view: new DataView(bytes.buffer), used: 0 };
  }
  const base = slab.used;
  slab.used += size;
  return { out: slab.bytes, view: slab.view, base };
}

/** Encodes already-validated records into consecutive frames of one buffer. */
export function encodeRecords(records: readonly StoredRecord[]): Uint8Array {
  const votes: (Uint8Array | null)[] = [];
  let total = 0;
  for (const r of records) {
    const vote = r.type === 'hardState' && r.hardState.vote !== null ? textEncoder.encode(r.hardState.vote) : null;
    const size = payloadBytes(r, vote);
    if (size > PAYLOAD_BYTES_MAX) throw new WalInvalidRecordError(`a ${r.type} record of ${size} bytes exceeds ${PAYLOAD_BYTES_MAX}`);
    votes.push(vote);
    total += FRAME_HEADER_BYTES + size;
  }
  const { out, view, base } = allocate(total);
  let at = base;
  for (const [i, record] of records.entries()) {
    const vote = votes[i]!;
    const size = payloadBytes(record, vote);
    writePayload(out, view, at + FRAME_HEADER_BYTES, record, vote);
    sealFrame(out, view, at, record.type === 'entries' ? RECORD_ENTRIES
      : record.type === 'hardState' ? RECORD_HARD_STATE : RECORD_SNAPSHOT, size);
    at += FRAME_HEADER_BYTES + size;
  }
  if (at !== base + total) throw new Error(`encoder wrote ${at - base} bytes, planned ${total}`);
  return out.subarray(base, base + total);
}

function writePayload(out: Uint8Array, view: DataView, start: number, record: StoredRecord, vote: Uint8Array | null): void {
  view.setUint32(start, record.group, true);
  let at = start + 4;
  if (record.type === 'entries') {
    putU64(view, at, record.entries[0]!.index);
    view.setUint32(at + 8, record.entries.length, true);
    at += 12;
    for (const e of record.entries) {
      putU64(view, at, e.term);
      out[at + 8] = ENTRY_TYPES.indexOf(e.type);
      view.setUint32(at + 9, e.data.length, true);
      out.set(e.data, at + 13);
      at += 13 + e.data.length;
    }
  } else if (record.type === 'hardState') {
    putU64(view, at, record.hardState.term);
    putU64(view, at + 8, record.hardState.commit);
    view.setUint16(at + 16, vote === null ? NO_VOTE : vote.length, true);
    if (vote !== null) out.set(vote, at + 18);
  } else {
    putU64(view, at, record.index);
    putU64(view, at + 8, record.term);
    out[at + 16] = record.keepsLog ? 1 : 0;
  }
}

/** Fills in the length and checksum of the frame whose payload is already at `at + 9`. */
function sealFrame(out: Uint8Array, view: DataView, at: number, type: number, payload: number): void {
  view.setUint32(at, payload, true);
  out[at + 8] = type;
  view.setUint32(at + 4, crc32c(out, 0, at + 8, at + FRAME_HEADER_BYTES + payload), true);
}

export function encodeCommit(firstSeq: number, count: number): Uint8Array {
  if (!isIndex(firstSeq, 1) || !isIndex(count, 1) || count > U32_MAX) {
    throw new RangeError(`invalid commit frame: first seq ${firstSeq}, ${count} records`);
  }
  const size = FRAME_HEADER_BYTES + COMMIT_PAYLOAD_BYTES;
  const { out, view, base } = allocate(size);
  putU64(view, base + FRAME_HEADER_BYTES, firstSeq);
  view.setUint32(base + FRAME_HEADER_BYTES + 8, count, true);
  sealFrame(out, view, base, RECORD_COMMIT, COMMIT_PAYLOAD_BYTES);
  return out.subarray(base, base + size);
}

function u32At(bytes: Uint8Array, at: number): number {
  return (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0;
}

export type FrameResult =
  | { ok: true; type: number; start: number; end: number }
  | { ok: false; reason: string };

/** Reads and checksums the frame at `pos`; says why when it is not a whole, intact frame. */
export function readFrame(bytes: Uint8Array, pos: number): FrameResult {
  const available = bytes.length - pos;
  if (available < FRAME_HEADER_BYTES) return { ok: false, reason: `truncated frame header (${available} bytes)` };
  const length = u32At(bytes, pos);
  if (length > PAYLOAD_BYTES_MAX) return { ok: false, reason: `frame length ${length} exceeds ${PAYLOAD_BYTES_MAX}` };
  const end = pos + FRAME_HEADER_BYTES + length;
  if (end > bytes.length) return { ok: false, reason: `frame of ${length} payload bytes runs past the end of the file` };
  if (crc32c(bytes, 0, pos + 8, end) !== u32At(bytes, pos + 4)) return { ok: false, reason: 'checksum mismatch' };
  return { ok: true, type: bytes[pos + 8]!, start: pos + FRAME_HEADER_BYTES, end };
}

/** Bounds-checked reads over one payload; an overrun means a malformed payload. */
class Reader {
  private readonly view: DataView;
  constructor(private readonly bytes: Uint8Array, private at: number, private readonly end: number) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private take(n: number): number {
    if (this.at + n > this.end) throw new Error('payload shorter than its fields');
    const at = this.at;
    this.at += n;
    return at;
  }

  u8(): number {
    return this.bytes[this.take(1)]!;
  }

  u16(): number {
    return this.view.getUint16(this.take(2), true);
  }

  u32(): number {
    return this.view.getUint32(this.take(4), true);
  }

  u64(): number {
    const at = this.take(8);
    const n = this.view.getUint32(at + 4, true) * TWO_32 + this.view.getUint32(at, true);
    if (!Number.isSafeInteger(n)) throw new Error('u64 field exceeds 2^53');
    return n;
  }

  /** A copy, never a view of the segment: that would pin the whole segment buffer for as long as the entry lives. */
  copy(n: number): Uint8Array {
    const at = this.take(n);
    return slabCopy(this.bytes, at, at + n);
  }

  finish(): void {
    if (this.at !== this.end) throw new Error(`${this.end - this.at} unexpected bytes after the payload`);
  }
}

/** Decodes a checksummed data frame; throws with the reason if its content is malformed. */
export function decodeRecord(bytes: Uint8Array, type: number, start: number, end: number): StoredRecord {
  const r = new Reader(bytes, start, end);
  const group = r.u32();
  let record: StoredRecord;
  if (type === RECORD_ENTRIES) {
    const first = r.u64();
    const count = r.u32();
    const entries: Entry[] = [];
    for (let i = 0; i < count; i++) {
      const term = r.u64();
      const entryType = ENTRY_TYPES[r.u8()];
      if (entryType === undefined) throw new Error('unknown entry type');
      entries.push({ term, index: first + i, type: entryType, data: r.copy(r.u32()) });
    }
    record = { type: 'entries', group, entries };
  } else if (type === RECORD_HARD_STATE) {
    const term = r.u64();
    const commit = r.u64();
    const voteLength = r.u16();
    const vote = voteLength === NO_VOTE ? null : textDecoder.decode(r.copy(voteLength));
    record = { type: 'hardState', group, hardState: { term, vote, commit } };
  } else if (type === RECORD_SNAPSHOT) {
    const index = r.u64();
    const term = r.u64();
    const keepsLog = r.u8();
    if (keepsLog > 1) throw new Error(`snapshot keepsLog flag ${keepsLog} is not 0 or 1`);
    record = { type: 'snapshot', group, index, term, keepsLog: keepsLog === 1 };
  } else {
    throw new Error(`unknown record type ${type}`);
  }
  r.finish();
  checkRecordShape(record);
  return record;
}

export function decodeCommit(bytes: Uint8Array, start: number, end: number): { firstSeq: number; count: number } {
  const r = new Reader(bytes, start, end);
  const commit = { firstSeq: r.u64(), count: r.u32() };
  r.finish();
  return commit;
}

/**
 * The offset of the first intact commit frame at or after `from` whose batch
 * starts at `minFirstSeq` or later, or -1. Used after a bad frame: a committed
 * batch beyond the damage proves the damage is not a torn, unacknowledged tail.
 */
export function findCommitFrame(bytes: Uint8Array, from: number, minFirstSeq: number): number {
  const last = bytes.length - FRAME_HEADER_BYTES - COMMIT_PAYLOAD_BYTES;
  for (let p = from; p <= last; p++) {
    if (bytes[p + 8] !== RECORD_COMMIT || u32At(bytes, p) !== COMMIT_PAYLOAD_BYTES) continue;
    const frame = readFrame(bytes, p);
    if (!frame.ok) continue;
    if (decodeCommit(bytes, frame.start, frame.end).firstSeq >= minFirstSeq) return p;
  }
  return -1;
}
