/**
 * One WAL segment file: `wal-<16 hex digits>.log`, named after the sequence
 * number of its first data record (records are numbered 1, 2, ... across the
 * whole WAL; commit frames are not numbered). Names sort in log order.
 *
 * Parsing decides what a damaged segment means. The writer only starts a batch
 * after the previous one is fully durable, so a crash can damage at most the
 * last batch of the last segment, and that batch was never acknowledged:
 * - damage in the last segment with no intact, later commit frame after it is
 *   a torn tail: the unfinished batch is cut off and reported;
 * - damage anywhere else (an earlier segment, or followed by a committed
 *   batch) is corruption of data that may have been acknowledged: refuse.
 */
import { WalCorruptError } from './errors.js';
import { RECORD_COMMIT, decodeCommit, decodeRecord, findCommitFrame, readFrame } from './record.js';
import type { StoredRecord } from './types.js';

const NAME_PATTERN = /^wal-([0-9a-f]{16})\.log$/;

export function segmentName(firstSeq: number): string {
  if (!Number.isSafeInteger(firstSeq) || firstSeq < 1) throw new RangeError(`invalid segment sequence ${firstSeq}`);
  return `wal-${firstSeq.toString(16).padStart(16, '0')}.log`;
}

/** The first sequence number a segment file name encodes, null for other names, throws for a damaged WAL name. */
export function parseSegmentName(name: string): number | null {
  if (!name.startsWith('wal-') || !name.endsWith('.log')) return null;
  const match = NAME_PATTERN.exec(name);
  const seq = match === null ? NaN : parseInt(match[1]!, 16);
  if (!Number.isSafeInteger(seq) || seq < 1) throw new Error(`unexpected WAL file name '${name}'`);
  return seq;
}

export interface TornTail {
  file: string;
  /** Byte offset the segment was truncated to. */
  offset: number;
  bytesDropped: number;
  /** Why the dropped bytes were not a committed batch. */
  reason: string;
}

export interface LocatedRecord {
  record: StoredRecord;
  file: string;
  offset: number;
}

export interface ParsedSegment {
  /** Records of committed batches, in log order. */
  records: LocatedRecord[];
  nextSeq: number;
  /** Length of the committed prefix: the file's size once a torn tail is cut. */
  validBytes: number;
  tail: TornTail | null;
}

interface ScanState {
  pos: number;
  seq: number;
  /** Offset and first seq of the batch being read (not yet closed by its commit frame). */
  batchStart: number;
  batchSeq: number;
  pending: LocatedRecord[];
  records: LocatedRecord[];
}

export function parseSegment(bytes: Uint8Array, file: string, firstSeq: number, isLast: boolean): ParsedSegment {
  const s: ScanState = { pos: 0, seq: firstSeq, batchStart: 0, batchSeq: firstSeq, pending: [], records: [] };
  while (s.pos < bytes.length) {
    const frame = readFrame(bytes, s.pos);
    if (!frame.ok) return damaged(bytes, file, s, isLast, frame.reason, true);
    if (frame.type === RECORD_COMMIT) {
      closeBatch(s, decodeCommitChecked(bytes, frame, file, s.pos), file);
      s.batchStart = frame.end;
      s.batchSeq = s.seq;
    } else {
      s.pending.push({ record: decodeChecked(bytes, frame, file, s.pos), file, offset: s.pos });
      s.seq++;
    }
    s.pos = frame.end;
  }
  if (s.pending.length > 0) {
    return damaged(bytes, file, { ...s, pos: s.batchStart }, isLast, 'the last batch has no commit frame', false);
  }
  return { records: s.records, nextSeq: s.seq, validBytes: bytes.length, tail: null };
}

function decodeChecked(bytes: Uint8Array, frame: { type: number; start: number; end: number }, file: string, at: number): StoredRecord {
  try {
    return decodeRecord(bytes, frame.type, frame.start, frame.end);
  } catch (error) {
    // The checksum matched, so these are the bytes that were written: not a torn write but a format or writer bug.
    throw new WalCorruptError(file, at, `record with a valid checksum does not decode (${(error as Error).message})`);
  }
}

function decodeCommitChecked(bytes: Uint8Array, frame: { start: number; end: number }, file: string, at: number): { firstSeq: number; count: number } {
  try {
    return decodeCommit(bytes, frame.start, frame.end);
  } catch (error) {
    throw new WalCorruptError(file, at, `commit frame with a valid checksum does not decode (${(error as Error).message})`);
  }
}

function closeBatch(s: ScanState, commit: { firstSeq: number; count: number }, file: string): void {
  if (commit.firstSeq !== s.batchSeq || commit.count !== s.pending.length || commit.count === 0) {
    throw new WalCorruptError(file, s.pos,
      `commit frame covers ${commit.count} records from seq ${commit.firstSeq}, but its batch holds ${s.pending.length} from seq ${s.batchSeq}`);
  }
  for (const r of s.pending) s.records.push(r);
  s.pending = [];
}

/**
 * Damage at `s.pos`: a torn tail to cut at the batch start, or corruption to refuse.
 * After a bad frame (`badFrame`), the rest of the file is searched byte by byte
 * for an intact commit frame, since a damaged length field hides where the next
 * frame starts. (Entry data that happens to contain a well-formed commit frame
 * for a future seq can only make this refuse, never accept, a damaged log.)
 */
function damaged(bytes: Uint8Array, file: string, s: ScanState, isLast: boolean, reason: string, badFrame: boolean): ParsedSegment {
  if (!isLast) throw new WalCorruptError(file, s.pos, `${reason} in a segment that is not the last one`);
  const later = badFrame ? findCommitFrame(bytes, s.pos + 1, s.batchSeq) : -1;
  if (later >= 0) {
    throw new WalCorruptError(file, s.pos, `${reason}, yet an intact commit frame follows at byte offset ${later}, so this batch was fully written`);
  }
  return {
    records: s.records,
    nextSeq: s.batchSeq,
    validBytes: s.batchStart,
    tail: { file, offset: s.batchStart, bytesDropped: bytes.length - s.batchStart, reason: `${reason} at byte offset ${s.pos}` },
  };
}
