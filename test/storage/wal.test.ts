import t from 'tap';
import { nodeFs } from '../../src/storage/fs.js';
import { MemoryFs } from '../../src/storage/memory-fs.js';
import type { WalRecord } from '../../src/storage/types.js';
import { Wal } from '../../src/storage/wal.js';
import {
  HookFs, applyToModel, countingFs, digest, entries, entry, tempDir, type Model,
} from './helpers.js';

function modelOf(appends: WalRecord[][]): Model {
  const model: Model = new Map();
  for (const records of appends) for (const r of records) applyToModel(model, r);
  return model;
}

t.test('many groups round-trip through the real file system', async (t) => {
  const dir = await tempDir(t);
  const { wal, groups, report } = await Wal.open({ fs: nodeFs, dir });
  t.equal(groups.size, 0, 'a new WAL is empty');
  t.equal(report.truncatedTail, null);
  const appends: WalRecord[][] = [];
  for (let round = 0; round < 5; round++) {
    for (let g = 0; g < 32; g++) {
      const records: WalRecord[] = [{ type: 'entries', group: g, entries: entries(round * 3 + 1, 3, round + 1, `g${g}`) }];
      if (round % 2 === 0) records.push({ type: 'hardState', group: g, hardState: { term: round + 1, vote: `n${g % 3}`, commit: round * 3 } });
      appends.push(records);
    }
  }
  // A group's leader changed: entries from 14 on are replaced by a newer term (Raft truncation).
  appends.push([{ type: 'entries', group: 5, entries: entries(14, 1, 9, 'new') }]);
  appends.push([{ type: 'snapshot', group: 7, index: 6, term: 2 }]);
  await Promise.all(appends.map((records) => wal.append(records)));
  await wal.close();

  const again = await Wal.open({ fs: nodeFs, dir });
  t.equal(digest(again.groups), digest(modelOf(appends)), 'replay equals the appended state');
  t.equal(again.groups.get(5)!.entries.at(-1)!.index, 14, 'truncation dropped the replaced suffix');
  t.same(again.groups.get(7)!.snapshot, { index: 6, term: 2 });
  t.equal(again.groups.get(7)!.entries[0]!.index, 7, 'entries resume after the snapshot');
  t.same(again.groups.get(3)!.hardState, { term: 5, vote: 'n0', commit: 12 });
  t.equal(again.report.truncatedTail, null);
  t.ok(again.report.records >= appends.flat().length, 'every record replayed');
  await again.wal.close();
});

t.test('a resolved append survives a crash that loses every un-fsynced byte', async (t) => {
  const mem = new MemoryFs();
  const { wal } = await Wal.open({ fs: mem, dir: '/data/wal' });
  await wal.append([{ type: 'entries', group: 1, entries: [entry(1, 1)] }]);
  await wal.append([{ type: 'hardState', group: 1, hardState: { term: 1, vote: 'n1', commit: 1 } }]);
  mem.crash(() => 0);
  const { groups, report } = await Wal.open({ fs: mem, dir: '/data/wal' });
  t.same(groups.get(1)!.entries.map((e) => e.index), [1]);
  t.same(groups.get(1)!.hardState, { term: 1, vote: 'n1', commit: 1 });
  t.equal(report.truncatedTail, null);
});

t.test('group commit: concurrent appends share one writev and one fdatasync', async (t) => {
  const dir = await tempDir(t);
  const { fs, counts } = countingFs(nodeFs);
  const { wal } = await Wal.open({ fs, dir });
  counts.clear();
  const next = new Map<number, number>();
  const append = (group: number): Promise<void> => {
    const index = (next.get(group) ?? 0) + 1;
    next.set(group, index);
    return wal.append([{ type: 'entries', group, entries: [entry(index, 1, new Uint8Array(64))] }]);
  };
  await Promise.all(Array.from({ length: 2000 }, (_, i) => append(i % 8)));
  const syncs = counts.get('datasync') ?? 0;
  t.ok(syncs >= 1 && syncs <= 20, `2000 concurrent appends took ${syncs} fdatasyncs`);
  t.equal(counts.get('writev'), syncs, 'one writev per fdatasync');
  t.equal(wal.stats().batches, syncs);

  counts.clear();
  for (let i = 0; i < 5; i++) await append(0);
  t.equal(counts.get('datasync'), 5, 'an append issued alone is not held back: one fdatasync each');
  await wal.close();
});

t.test('batches stay within batchBytesMax', async (t) => {
  const mem = new MemoryFs();
  const writes: number[] = [];
  const spy = new HookFs(mem, () => undefined);
  const original = spy.open.bind(spy);
  spy.open = async (path, flags) => {
    const handle = await original(path, flags);
    const writev = handle.writev.bind(handle);
    handle.writev = (buffers, position) => {
      writes.push(buffers.reduce((n, b) => n + b.length, 0));
      return writev(buffers, position);
    };
    return handle;
  };
  const { wal } = await Wal.open({ fs: spy, dir: '/w', batchBytesMax: 4096 });
  await Promise.all(Array.from({ length: 100 }, (_, i) =>
    wal.append([{ type: 'entries', group: 1, entries: [entry(i + 1, 1, new Uint8Array(200))] }])));
  t.ok(writes.length >= 6, `${writes.length} batches for ~23 KB`);
  t.ok(writes.every((n) => n <= 4096 + 64), 'no batch exceeds the limit (plus its commit frame)');
  await t.rejects(wal.append([{ type: 'entries', group: 1, entries: [entry(101, 1, new Uint8Array(5000))] }]),
    { code: 'RAFTLOCK_ERR_WAL_INVALID_RECORD' }, 'an append larger than a batch is refused');
  await wal.close();
});

t.test('a full queue rejects with a typed error and the WAL keeps working', async (t) => {
  const { wal } = await Wal.open({ fs: new MemoryFs(), dir: '/w', queueAppendsMax: 10 });
  const accepted = Array.from({ length: 10 }, (_, i) => wal.append([{ type: 'entries', group: 1, entries: [entry(i + 1, 1)] }]));
  await t.rejects(wal.append([{ type: 'entries', group: 1, entries: [entry(11, 1)] }]), { code: 'RAFTLOCK_ERR_WAL_QUEUE_FULL' });
  await Promise.all(accepted);
  await wal.append([{ type: 'entries', group: 1, entries: [entry(11, 1)] }]);
  const bytes = await Wal.open({ fs: new MemoryFs(), dir: '/w', queueBytesMax: 4096, batchBytesMax: 4096 });
  const big = (i: number): WalRecord[] => [{ type: 'entries', group: 1, entries: [entry(i, 1, new Uint8Array(3000))] }];
  const first = bytes.wal.append(big(1));
  await t.rejects(bytes.wal.append(big(2)), { code: 'RAFTLOCK_ERR_WAL_QUEUE_FULL' }, 'byte limit');
  await first;
  await Promise.all([wal.close(), bytes.wal.close()]);
});

t.test('records that break the format or Raft invariants are refused and change nothing', async (t) => {
  const mem = new MemoryFs();
  const { wal } = await Wal.open({ fs: mem, dir: '/w' });
  const base: WalRecord[][] = [
    [{ type: 'entries', group: 1, entries: entries(1, 5, 2) }],
    [{ type: 'hardState', group: 1, hardState: { term: 2, vote: 'n1', commit: 3 } }],
    [{ type: 'entries', group: 2, entries: entries(1, 5, 1) }],
    [{ type: 'snapshot', group: 2, index: 3, term: 1 }],
  ];
  for (const records of base) await wal.append(records);
  const bad: [string, WalRecord[]][] = [
    ['an empty append', []],
    ['a gap after the last index', [{ type: 'entries', group: 1, entries: [entry(7, 2)] }]],
    ['entries inside the snapshot', [{ type: 'entries', group: 2, entries: [entry(3, 1)] }]],
    ['replacing a committed entry', [{ type: 'entries', group: 1, entries: [entry(3, 3)] }]],
    ['a term below the previous entry', [{ type: 'entries', group: 1, entries: [entry(6, 1)] }]],
    ['non-consecutive indexes', [{ type: 'entries', group: 1, entries: [entry(6, 2), entry(8, 2)] }]],
    ['decreasing terms in a record', [{ type: 'entries', group: 1, entries: [entry(6, 3), entry(7, 2)] }]],
    ['index 0', [{ type: 'entries', group: 3, entries: [entry(0, 1)] }]],
    ['term 0', [{ type: 'entries', group: 3, entries: [entry(1, 0)] }]],
    ['an unknown entry type', [{ type: 'entries', group: 3, entries: [{ ...entry(1, 1), type: 'bogus' as never }] }]],
    ['data that is not bytes', [{ type: 'entries', group: 3, entries: [{ ...entry(1, 1), data: 'x' as never }] }]],
    ['a negative group', [{ type: 'entries', group: -1, entries: [entry(1, 1)] }]],
    ['a second vote in the same term', [{ type: 'hardState', group: 1, hardState: { term: 2, vote: 'n2', commit: 3 } }]],
    ['a term going back', [{ type: 'hardState', group: 1, hardState: { term: 1, vote: null, commit: 3 } }]],
    ['a commit going back', [{ type: 'hardState', group: 1, hardState: { term: 2, vote: 'n1', commit: 2 } }]],
    ['an empty vote', [{ type: 'hardState', group: 1, hardState: { term: 3, vote: '', commit: 3 } }]],
    ['a fractional commit', [{ type: 'hardState', group: 1, hardState: { term: 3, vote: null, commit: 1.5 } }]],
    ['a snapshot going back', [{ type: 'snapshot', group: 2, index: 2, term: 1 }]],
    ['a snapshot at the same index with another term', [{ type: 'snapshot', group: 2, index: 3, term: 2 }]],
    ['a snapshot at index 0', [{ type: 'snapshot', group: 4, index: 0, term: 1 }]],
    ['a valid record followed by an invalid one', [
      { type: 'entries', group: 1, entries: [entry(6, 2)] },
      { type: 'entries', group: 1, entries: [entry(9, 2)] },
    ]],
  ];
  for (const [name, records] of bad) {
    await t.rejects(wal.append(records), { code: 'RAFTLOCK_ERR_WAL_INVALID_RECORD' }, name);
  }
  const after: WalRecord[] = [{ type: 'entries', group: 1, entries: [entry(6, 2)] }];
  await wal.append(after);
  await wal.close();
  const { groups } = await Wal.open({ fs: mem, dir: '/w' });
  t.equal(digest(groups), digest(modelOf([...base, after])), 'refused appends left no trace');
});

t.test('an fdatasync failure stops the WAL and says which appends may be on disk', async (t) => {
  let failNext = false;
  const fs = new HookFs(new MemoryFs(), (op, _path, phase) => {
    if (op === 'datasync' && phase === 'before' && failNext) {
      failNext = false;
      throw new Error('EIO: injected');
    }
  });
  const { wal } = await Wal.open({ fs, dir: '/w' });
  await wal.append([{ type: 'entries', group: 1, entries: [entry(1, 1)] }]);
  failNext = true;
  const inFlight = wal.append([{ type: 'entries', group: 1, entries: [entry(2, 1)] }]);
  // Queued behind the failing batch: issued after the writer has taken the first one.
  await Promise.resolve();
  await Promise.resolve();
  const queued = wal.append([{ type: 'entries', group: 1, entries: [entry(3, 1)] }]);
  await t.rejects(inFlight, { code: 'RAFTLOCK_ERR_WAL_FAILED', maybeWritten: true });
  await t.rejects(queued, { code: 'RAFTLOCK_ERR_WAL_FAILED', maybeWritten: false });
  await t.rejects(wal.append([{ type: 'entries', group: 1, entries: [entry(4, 1)] }]), { code: 'RAFTLOCK_ERR_WAL_FAILED' });
  await t.rejects(wal.compact(1, 0), { code: 'RAFTLOCK_ERR_WAL_FAILED' });
  await wal.close();
});

t.test('close waits for queued appends; later appends are refused', async (t) => {
  const mem = new MemoryFs();
  const { wal } = await Wal.open({ fs: mem, dir: '/w' });
  const pending = wal.append([{ type: 'entries', group: 1, entries: [entry(1, 1)] }]);
  await wal.close();
  await pending;
  await t.rejects(wal.append([{ type: 'entries', group: 1, entries: [entry(2, 1)] }]), { code: 'RAFTLOCK_ERR_WAL_CLOSED' });
  await t.rejects(wal.compact(1, 0), { code: 'RAFTLOCK_ERR_WAL_CLOSED' });
  await wal.close();
  mem.crash(() => 0);
  const { groups } = await Wal.open({ fs: mem, dir: '/w' });
  t.equal(groups.get(1)!.entries.length, 1);
});

t.test('segments roll over and replay reads across them', async (t) => {
  const dir = await tempDir(t);
  const { wal } = await Wal.open({ fs: nodeFs, dir, segmentBytes: 4096 });
  const appends: WalRecord[][] = [];
  for (let i = 1; i <= 300; i++) {
    const records: WalRecord[] = [{ type: 'entries', group: i % 3, entries: [entry(Math.ceil(i / 3), 1, new Uint8Array(50).fill(i))] }];
    if (i % 50 === 0) records.push({ type: 'hardState', group: i % 3, hardState: { term: 1, vote: 'n1', commit: 1 } });
    appends.push(records);
    await wal.append(records);
  }
  const segments = wal.stats().segments;
  t.ok(segments >= 6, `${segments} segments of <= 4 KiB`);
  await wal.close();
  const { wal: again, groups, report } = await Wal.open({ fs: nodeFs, dir, segmentBytes: 4096 });
  t.equal(digest(groups), digest(modelOf(appends)));
  t.equal(report.segments.length, segments + 1, 'open starts a fresh segment');
  t.same(report.segments, [...report.segments].sort(), 'names sort in log order');
  t.match(report.segments[0], /^wal-0{15}1\.log$/);
  await again.close();
});

t.test('replay applies truncation, both kinds of snapshot marker, and the latest hard state', async (t) => {
  const mem = new MemoryFs();
  const { wal } = await Wal.open({ fs: mem, dir: '/w' });
  const appends: WalRecord[][] = [
    [{ type: 'entries', group: 1, entries: entries(1, 10, 1) }],
    [{ type: 'entries', group: 1, entries: entries(6, 2, 2, 'x') }],
    [{ type: 'hardState', group: 1, hardState: { term: 2, vote: null, commit: 4 } }],
    [{ type: 'snapshot', group: 1, index: 4, term: 1 }],
    [{ type: 'entries', group: 2, entries: entries(1, 5, 1) }],
    // A leader's snapshot that does not match the local log: the whole log goes.
    [{ type: 'snapshot', group: 2, index: 3, term: 2 }],
    [{ type: 'entries', group: 2, entries: entries(4, 1, 2, 'y') }],
    [{ type: 'hardState', group: 2, hardState: { term: 2, vote: 'n3', commit: 3 } }, { type: 'hardState', group: 2, hardState: { term: 3, vote: null, commit: 4 } }],
  ];
  for (const records of appends) await wal.append(records);
  await wal.close();
  const { groups } = await Wal.open({ fs: mem, dir: '/w' });
  const g1 = groups.get(1)!;
  t.same(g1.entries.map((e) => [e.index, e.term]), [[5, 1], [6, 2], [7, 2]]);
  t.same(new TextDecoder().decode(g1.entries[1]!.data), 'xe6');
  t.same(g1.snapshot, { index: 4, term: 1 });
  const g2 = groups.get(2)!;
  t.same(g2.entries.map((e) => [e.index, e.term]), [[4, 2]]);
  t.same(g2.hardState, { term: 3, vote: null, commit: 4 });
  t.equal(digest(groups), digest(modelOf(appends)));
});

t.test('options are validated with precise errors', async (t) => {
  const fs = new MemoryFs();
  await t.rejects(Wal.open({ fs, dir: '/w', segmentBytes: 10 }), /segmentBytes must be an integer in \[1024/);
  await t.rejects(Wal.open({ fs, dir: '/w', batchBytesMax: 1.5 }), /batchBytesMax/);
  await t.rejects(Wal.open({ fs, dir: '/w', batchBytesMax: 8192, queueBytesMax: 4096 }), /queueBytesMax/);
  await t.rejects(Wal.open({ fs, dir: '/w', queueAppendsMax: 0 }), /queueAppendsMax/);
  const { wal } = await Wal.open({ fs, dir: '/w' });
  t.same(wal.stats(), { batches: 0, records: 0, bytes: 0, segments: 1, queuedAppends: 0, queuedBytes: 0 });
  await t.rejects(wal.compact(1, 1), { code: 'RAFTLOCK_ERR_WAL_INVALID_RECORD' }, 'no snapshot marker yet');
  await t.rejects(wal.compact(-1, 0), { code: 'RAFTLOCK_ERR_WAL_INVALID_RECORD' });
  await wal.close();
});
