import t from 'tap';
import { ErrCompacted, ErrSnapOutOfDate, ErrUnavailable, RaftInvariantError } from '../../raft/errors.js';
import { BOOTSTRAP_INDEX, MemoryStorage, bootstrapState } from '../../raft/storage.js';
import type { Entry } from '../../raft/types.js';
import { ENTRY_OVERHEAD_BYTES } from '../../raft/util.js';

const ent = (index: number, term: number, size = 0): Entry => ({ index, term, type: 'normal', data: new Uint8Array(size) });
const conf = { voters: ['a'], learners: [] };

/** Storage holding a snapshot at 3 (term 3) and entries 4..5 at terms 4, 5. */
function sample(): MemoryStorage {
  const s = new MemoryStorage();
  s.append([ent(1, 1), ent(2, 2), ent(3, 3), ent(4, 4), ent(5, 5)]);
  s.createSnapshot(3, conf, new Uint8Array([7]));
  s.compact(3);
  return s;
}

const errorOf = (fn: () => unknown): unknown => {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
};

t.test('an empty storage is at index 0', async (t) => {
  const s = new MemoryStorage();
  t.equal(s.firstIndex(), 1);
  t.equal(s.lastIndex(), 0);
  t.equal(s.term(0), 0);
  t.same(s.initialState(), { hardState: { term: 0, vote: null, commit: 0 }, conf: { voters: [], learners: [] } });
});

t.test('a founding member starts from the bootstrap snapshot', async (t) => {
  const s = new MemoryStorage({ voters: ['b', 'a'], learners: ['c'] });
  t.equal(s.firstIndex(), BOOTSTRAP_INDEX + 1);
  t.equal(s.lastIndex(), BOOTSTRAP_INDEX);
  t.same(s.initialState(), { hardState: { term: 1, vote: null, commit: 1 }, conf: { voters: ['b', 'a'], learners: ['c'] } });
  t.equal(s.snapshot().data.byteLength, 0, 'empty data: the initial state');
  t.throws(() => bootstrapState({ voters: [], learners: [] }), RaftInvariantError);
});

t.test('term() by index', async (t) => {
  const s = sample();
  const cases: [number, number | typeof ErrCompacted | typeof ErrUnavailable][] = [
    [2, ErrCompacted], [3, 3], [4, 4], [5, 5], [6, ErrUnavailable],
  ];
  for (const [index, want] of cases) {
    if (typeof want === 'number') t.equal(s.term(index), want, `term(${index})`);
    else t.ok(errorOf(() => s.term(index)) instanceof want, `term(${index}) throws ${want.name}`);
  }
});

t.test('entries() by range and size', async (t) => {
  const s = new MemoryStorage();
  s.append([ent(1, 1, 10), ent(2, 1, 10), ent(3, 1, 10), ent(4, 1, 10)]);
  s.createSnapshot(1, conf, new Uint8Array());
  s.compact(1);
  const one = 10 + ENTRY_OVERHEAD_BYTES;
  const cases: [string, number, number, number, number[]][] = [
    ['all', 2, 5, Infinity, [2, 3, 4]],
    ['empty range', 3, 3, Infinity, []],
    ['limited to two', 2, 5, 2 * one, [2, 3]],
    ['limited just under two', 2, 5, 2 * one - 1, [2]],
    ['at least one even if too big', 2, 5, 0, [2]],
  ];
  for (const [name, lo, hi, max, want] of cases) t.same(s.entries(lo, hi, max).map((e) => e.index), want, name);
  t.ok(errorOf(() => s.entries(1, 3, Infinity)) instanceof ErrCompacted, 'compacted lo');
  t.ok(errorOf(() => s.entries(2, 6, Infinity)) instanceof RaftInvariantError, 'hi past the end is a bug');
});

t.test('append overwrites a conflicting tail and skips compacted entries', async (t) => {
  const cases: [string, Entry[], number[] | 'gap'][] = [
    ['extends', [ent(6, 5)], [4, 4, 5, 5, 6, 5]],
    ['replaces the tail', [ent(5, 6), ent(6, 6)], [4, 4, 5, 6, 6, 6]],
    ['replaces from the first entry', [ent(4, 6)], [4, 6]],
    ['skips compacted prefix', [ent(2, 2), ent(3, 3), ent(4, 7)], [4, 7]],
    ['all compacted: no-op', [ent(1, 1), ent(2, 2)], [4, 4, 5, 5]],
    ['gap is a bug', [ent(7, 5)], 'gap'],
  ];
  for (const [name, entries, want] of cases) {
    const s = sample();
    if (want === 'gap') {
      t.ok(errorOf(() => s.append(entries)) instanceof RaftInvariantError, name);
      continue;
    }
    s.append(entries);
    t.same(s.entries(s.firstIndex(), s.lastIndex() + 1, Infinity).flatMap((e) => [e.index, e.term]), want, name);
  }
  t.ok(errorOf(() => sample().append([ent(6, 5), ent(8, 5)])) instanceof RaftInvariantError, 'non-contiguous input');
});

t.test('snapshots and compaction', async (t) => {
  const s = sample();
  t.ok(errorOf(() => s.createSnapshot(3, conf, new Uint8Array())) instanceof ErrSnapOutOfDate, 'same index is out of date');
  t.ok(errorOf(() => s.createSnapshot(9, conf, new Uint8Array())) instanceof RaftInvariantError, 'past the end');
  t.ok(errorOf(() => s.compact(3)) instanceof ErrCompacted, 'compact twice');
  t.ok(errorOf(() => s.compact(5)) instanceof RaftInvariantError, 'compact past the snapshot');
  const snap = s.createSnapshot(5, { voters: ['a', 'b'], learners: [] }, new Uint8Array([9]));
  t.same(snap.meta, { index: 5, term: 5, conf: { voters: ['a', 'b'], learners: [] } });
  t.equal(s.firstIndex(), 4, 'createSnapshot keeps entries');
  s.compact(5);
  t.equal(s.firstIndex(), 6);
  t.equal(s.lastIndex(), 5);
  t.equal(s.term(5), 5, 'the compaction point keeps its term');
  t.ok(errorOf(() => s.applySnapshot({ meta: { index: 4, term: 4, conf }, data: new Uint8Array() })) instanceof ErrSnapOutOfDate);
  s.applySnapshot({ meta: { index: 10, term: 7, conf }, data: new Uint8Array() });
  t.equal(s.firstIndex(), 11);
  t.equal(s.lastIndex(), 10);
  t.equal(s.term(10), 7);
  t.same(s.initialState().conf, conf, 'membership follows the snapshot');
});

t.test('hard state round-trips', async (t) => {
  const s = new MemoryStorage();
  s.setHardState({ term: 3, vote: 'b', commit: 0 });
  t.same(s.initialState().hardState, { term: 3, vote: 'b', commit: 0 });
});

t.test('errors carry stable codes', async (t) => {
  t.equal(new ErrCompacted(1, 2).code, 'RAFTLOCK_ERR_RAFT_COMPACTED');
  t.equal(new ErrUnavailable(1, 2).code, 'RAFTLOCK_ERR_RAFT_UNAVAILABLE');
  t.equal(new ErrSnapOutOfDate(1, 2).name, 'ErrSnapOutOfDate');
});
