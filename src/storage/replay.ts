/**
 * WAL recovery at open: read every segment in order, cut a torn tail off the
 * last one (durably, before anything new is written after it), check that the
 * segments form one unbroken sequence, and rebuild each group's state.
 */
import { join } from 'node:path';
import { WalCorruptError } from './errors.js';
import type { StorageFs } from './fs.js';
import { ReplayLog } from './group-log.js';
import { type LocatedRecord, type TornTail, parseSegment, parseSegmentName } from './segment.js';
import type { GroupReplay } from './types.js';

export interface SegmentInfo {
  name: string;
  path: string;
  firstSeq: number;
  size: number;
  /** Highest entry index each group wrote into this segment: compaction deletes it once all are covered. */
  maxEntry: Map<number, number>;
}

export interface Recovery {
  segments: SegmentInfo[];
  groups: Map<number, GroupReplay>;
  /** Sequence number of the next data record. */
  nextSeq: number;
  records: number;
  tail: TornTail | null;
}

export function newSegmentInfo(dir: string, name: string, firstSeq: number): SegmentInfo {
  return { name, path: join(dir, name), firstSeq, size: 0, maxEntry: new Map() };
}

export async function recover(fs: StorageFs, dir: string): Promise<Recovery> {
  const names: { name: string; seq: number }[] = [];
  for (const name of await fs.readdir(dir)) {
    let seq: number | null;
    try {
      seq = parseSegmentName(name);
    } catch (error) {
      throw new WalCorruptError(join(dir, name), 0, (error as Error).message);
    }
    if (seq !== null) names.push({ name, seq });
  }
  names.sort((a, b) => a.seq - b.seq);
  const segments: SegmentInfo[] = [];
  const records: LocatedRecord[] = [];
  let tail: TornTail | null = null;
  let nextSeq = names[0]?.seq ?? 1;
  for (const [i, { name, seq }] of names.entries()) {
    const info = newSegmentInfo(dir, name, seq);
    const isLast = i === names.length - 1;
    if (seq !== nextSeq) {
      throw new WalCorruptError(info.path, 0, `segment starts at seq ${seq} but the records before it end at seq ${nextSeq - 1}: a segment is missing`);
    }
    const parsed = parseSegment(await fs.readFile(info.path), info.path, seq, isLast);
    if (!isLast && parsed.records.length === 0) throw new WalCorruptError(info.path, 0, 'empty segment before the last one');
    if (parsed.tail !== null) await cutTail(fs, info.path, parsed.validBytes);
    tail = parsed.tail ?? tail;
    info.size = parsed.validBytes;
    for (const r of parsed.records) {
      records.push(r);
      if (r.record.type === 'entries') {
        const last = r.record.entries.at(-1)!.index;
        info.maxEntry.set(r.record.group, Math.max(last, info.maxEntry.get(r.record.group) ?? 0));
      }
    }
    nextSeq = parsed.nextSeq;
    segments.push(info);
  }
  return { segments, groups: rebuildGroups(records), nextSeq, records: records.length, tail };
}

/** The cut must be durable before new batches follow it, or a crash could resurrect the torn bytes after them. */
async function cutTail(fs: StorageFs, path: string, length: number): Promise<void> {
  const handle = await fs.open(path, 'r+');
  try {
    await handle.truncate(length);
    await handle.datasync();
  } finally {
    await handle.close();
  }
}

function rebuildGroups(records: readonly LocatedRecord[]): Map<number, GroupReplay> {
  // A first pass finds each group's newest snapshot: the floor below which compaction may have removed entries.
  const floors = new Map<number, number>();
  for (const { record } of records) {
    if (record.type === 'snapshot') floors.set(record.group, Math.max(record.index, floors.get(record.group) ?? 0));
  }
  const logs = new Map<number, ReplayLog>();
  const lastSeen = new Map<number, LocatedRecord>();
  for (const located of records) {
    const { record } = located;
    let log = logs.get(record.group);
    if (log === undefined) {
      log = new ReplayLog(record.group, floors.get(record.group) ?? 0);
      logs.set(record.group, log);
    }
    const problem = record.type === 'entries' ? log.applyEntries(record.entries)
      : record.type === 'hardState' ? log.applyHardState(record.hardState)
        : log.applySnapshot(record.index, record.term, record.keepsLog);
    if (problem !== null) throw new WalCorruptError(located.file, located.offset, problem);
    lastSeen.set(record.group, located);
  }
  const groups = new Map<number, GroupReplay>();
  for (const [group, log] of logs) {
    const state = log.finish();
    if (typeof state === 'string') {
      const at = lastSeen.get(group)!;
      throw new WalCorruptError(at.file, at.offset, state);
    }
    groups.set(group, state);
  }
  return groups;
}
