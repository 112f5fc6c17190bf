import t from 'tap';
import { join } from 'node:path';
import { MemoryFs } from '../../src/storage/memory-fs.js';
import { decodeRecord, readFrame, RECORD_COMMIT } from '../../src/storage/record.js';
import type { WalRecord } from '../../src/storage/types.js';
import { Wal } from '../../src/storage/wal.js';
import { applyToModel, digest, entries, type Model } from './helpers.js';

const DIR = '/wal';

/** The highest entry index of each group in a segment, read straight from its frames. */
async function groupsIn(fs: MemoryFs, name: string): Promise<Map<number, number>> {
  const bytes = await fs.readFile(join(DIR, name));
  const max = new Map<number, number>();
  for (let pos = 0; pos < bytes.length;) {
    const f = readFrame(bytes, pos);
    if (!f.ok) throw new Error(`test setup: bad frame in ${name} at ${pos}`);
    if (f.type !== RECORD_COMMIT) {
      const r = decodeRecord(bytes, f.type, f.start, f.end);
      if (r.type === 'entries') max.set(r.group, Math.max(r.entries.at(-1)!.index, max.get(r.group) ?? 0));
    }
    pos = f.end;
  }
  return max;
}

async function segmentNames(fs: MemoryFs): Promise<string[]> {
  return (await fs.readdir(DIR)).filter((n) => n.startsWith('wal-'));
}

/** Appends and tracks the model of what was appended. */
function recorder(wal: Wal): { append: (records: WalRecord[]) => Promise<void>; model: Model } {
  const model: Model = new Map();
  return {
    model,
    append: async (records) => {
      await wal.append(records);
      for (const r of records) applyToModel(model, r);
    },
  };
}

t.test('compaction deletes the oldest segments whose entries every group has covered, never the active one', async (t) => {
  const fs = new MemoryFs();
  const { wal } = await Wal.open({ fs, dir: DIR, segmentBytes: 1024 });
  const w = recorder(wal);
  for (let i = 1; i <= 40; i++) await w.append([{ type: 'entries', group: 1, entries: entries(i, 1, 1) }]);
  for (let i = 1; i <= 40; i++) await w.append([{ type: 'entries', group: 2, entries: entries(i, 1, 1) }]);
  for (let i = 41; i <= 80; i++) await w.append([{ type: 'entries', group: 1, entries: entries(i, 1, 1) }]);
  await w.append([{ type: 'hardState', group: 1, hardState: { term: 1, vote: 'n1', commit: 80 } }]);
  await w.append([{ type: 'hardState', group: 2, hardState: { term: 1, vote: 'n1', commit: 40 } }]);
  await w.append([{ type: 'snapshot', group: 1, index: 60, term: 1 }]);
  const before = await segmentNames(fs);
  t.ok(before.length >= 6, `${before.length} segments`);
  const contents = new Map<string, Map<number, number>>();
  for (const name of before) contents.set(name, await groupsIn(fs, name));
  /** The leading non-active segments whose entries are all covered, given each group's covered index. */
  const expectDeleted = (covered: Map<number, number>): string[] => {
    const names: string[] = [];
    for (const name of before.slice(0, -1)) {
      if ([...contents.get(name)!].some(([g, max]) => max > (covered.get(g) ?? 0))) break;
      names.push(name);
    }
    return names;
  };

  const byGroup1 = await wal.compact(1, 60);
  t.same(byGroup1, expectDeleted(new Map([[1, 60]])), 'group 1 alone covers only segments without group 2 entries');
  t.ok(contents.get(before[byGroup1.length]!)!.has(2), 'the first kept segment holds group 2 entries');

  await w.append([{ type: 'snapshot', group: 2, index: 40, term: 1 }]);
  const byGroup2 = await wal.compact(2, 40);
  const deleted = [...byGroup1, ...byGroup2];
  t.same(deleted, expectDeleted(new Map([[1, 60], [2, 40]])), 'with both covered, up to the first group-1 entry above 60');
  t.ok(byGroup2.length > 0);
  const now = await segmentNames(fs);
  t.ok(deleted.every((n) => !now.includes(n)), 'deleted files are gone');
  t.ok(before.filter((n) => !deleted.includes(n)).every((n) => now.includes(n)), 'nothing else is');

  await w.append([{ type: 'snapshot', group: 1, index: 80, term: 1 }]);
  await wal.compact(1, 80);
  t.equal((await segmentNames(fs)).length, 1, 'with everything covered only the active segment is left');
  await wal.close();

  fs.crash(() => 0);
  const { groups } = await Wal.open({ fs, dir: DIR, segmentBytes: 1024 });
  t.equal(digest(groups), digest(w.model), 'replay after compaction and a crash equals the appended state');
});

t.test('a quiet group keeps its hard state and snapshot when the segments holding them are deleted', async (t) => {
  const fs = new MemoryFs();
  const { wal } = await Wal.open({ fs, dir: DIR, segmentBytes: 1024 });
  const w = recorder(wal);
  await w.append([
    { type: 'entries', group: 3, entries: entries(1, 3, 2) },
    { type: 'hardState', group: 3, hardState: { term: 2, vote: 'n2', commit: 3 } },
  ]);
  await w.append([{ type: 'snapshot', group: 3, index: 3, term: 2 }]);
  await wal.compact(3, 3);
  for (let i = 1; i <= 60; i++) await w.append([{ type: 'entries', group: 1, entries: entries(i, 1, 1) }]);
  await w.append([{ type: 'snapshot', group: 1, index: 55, term: 1 }]);
  const deleted = await wal.compact(1, 55);
  t.ok(deleted.includes('wal-0000000000000001.log'), 'the segment with group 3 records is gone');
  await wal.close();
  const { groups } = await Wal.open({ fs, dir: DIR });
  t.same(groups.get(3), { entries: [], hardState: { term: 2, vote: 'n2', commit: 3 }, snapshot: { index: 3, term: 2 } });
  t.equal(digest(groups), digest(w.model));
});

t.test('compaction needs a durable snapshot marker', async (t) => {
  const { wal } = await Wal.open({ fs: new MemoryFs(), dir: DIR });
  await wal.append([{ type: 'entries', group: 1, entries: entries(1, 5, 1) }]);
  const marker = wal.append([{ type: 'snapshot', group: 1, index: 4, term: 1 }]);
  await t.rejects(wal.compact(1, 4), { code: 'RAFTLOCK_ERR_WAL_INVALID_RECORD' }, 'not before the marker is durable');
  await marker;
  t.same(await wal.compact(1, 4), [], 'then it is accepted (the only segment is active)');
  await t.rejects(wal.compact(1, 5), { code: 'RAFTLOCK_ERR_WAL_INVALID_RECORD' }, 'not beyond the marker');
  await wal.close();
});

t.test('entries replayed after compaction resume right after the snapshot', async (t) => {
  const fs = new MemoryFs();
  const { wal } = await Wal.open({ fs, dir: DIR, segmentBytes: 1024 });
  const w = recorder(wal);
  for (let i = 1; i <= 50; i++) await w.append([{ type: 'entries', group: 1, entries: entries(i, 1, 1, 'x') }]);
  // A new leader rewrites the uncommitted tail; the snapshot then covers part of the rewritten log.
  await w.append([{ type: 'entries', group: 1, entries: entries(45, 3, 2, 'y') }]);
  await w.append([{ type: 'snapshot', group: 1, index: 46, term: 2 }]);
  await wal.compact(1, 46);
  await wal.close();
  const { groups } = await Wal.open({ fs, dir: DIR });
  t.same(groups.get(1)!.entries.map((e) => [e.index, e.term]), [[47, 2]]);
  t.equal(digest(groups), digest(w.model));
});
