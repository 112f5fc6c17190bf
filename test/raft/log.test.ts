import t from 'tap';
import { ErrCompacted, RaftInvariantError } from '../../raft/errors.js';
import { RaftLog } from '../../raft/log.js';
import { Inflights, Progress } from '../../raft/progress.js';
import { MemoryStorage } from '../../raft/storage.js';
import type { Entry } from '../../raft/types.js';

const ent = (index: number, term: number): Entry => ({ index, term, type: 'normal', data: new Uint8Array() });
const terms = (entries: Entry[]): number[] => entries.map((e) => e.term);
const errorOf = (fn: () => unknown): unknown => {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
};

/** A log with entries 1..3 stable (terms 1, 1, 2) and 4..5 unstable (terms 3, 3). */
function sampleLog(): RaftLog {
  const s = new MemoryStorage();
  s.append([ent(1, 1), ent(2, 1), ent(3, 2)]);
  const log = new RaftLog(s, Infinity);
  log.append([ent(4, 3), ent(5, 3)]);
  return log;
}

t.test('maybeAppend accepts matching appends and truncates conflicts', async (t) => {
  const cases: [string, number, number, Entry[], number | null, number[]][] = [
    ['prev mismatch', 5, 2, [ent(6, 3)], null, [1, 1, 2, 3, 3]],
    ['prev past the end', 6, 3, [ent(7, 3)], null, [1, 1, 2, 3, 3]],
    ['heartbeat-like empty append', 5, 3, [], 5, [1, 1, 2, 3, 3]],
    ['extends', 5, 3, [ent(6, 4)], 6, [1, 1, 2, 3, 3, 4]],
    ['duplicate is idempotent', 3, 2, [ent(4, 3)], 4, [1, 1, 2, 3, 3]],
    ['conflict in unstable tail', 4, 3, [ent(5, 4)], 5, [1, 1, 2, 3, 4]],
    ['conflict in stable part', 2, 1, [ent(3, 4)], 3, [1, 1, 4]],
  ];
  for (const [name, prevIndex, prevTerm, entries, want, wantTerms] of cases) {
    const log = sampleLog();
    t.equal(log.maybeAppend(prevIndex, prevTerm, 0, entries), want, name);
    t.same(terms(log.slice(1, log.lastIndex() + 1, Infinity)), wantTerms, `${name}: log`);
  }
});

t.test('maybeAppend commits up to the last new entry only', async (t) => {
  const log = sampleLog();
  log.maybeAppend(2, 1, 100, []);
  t.equal(log.committed, 2, 'not past what this append proves');
  log.maybeAppend(5, 3, 4, []);
  t.equal(log.committed, 4);
  t.throws(() => log.maybeAppend(1, 1, 4, [ent(2, 5)]), RaftInvariantError, 'never truncates committed entries');
});

t.test('findConflictByTerm returns the last entry with term at most the given term', async (t) => {
  const log = sampleLog();
  const cases: [number, number, { index: number; term: number }][] = [
    [5, 3, { index: 5, term: 3 }],
    [5, 2, { index: 3, term: 2 }],
    [5, 1, { index: 2, term: 1 }],
    [5, 0, { index: 0, term: 0 }],
    [9, 3, { index: 9, term: 0 }],
  ];
  for (const [index, term, want] of cases) t.same(log.findConflictByTerm(index, term), want, `(${index}, ${term})`);
});

t.test('isUpToDate compares last term, then length', async (t) => {
  const log = sampleLog();
  const cases: [number, number, boolean][] = [[5, 3, true], [4, 3, false], [9, 2, false], [1, 4, true], [6, 3, true]];
  for (const [index, term, want] of cases) t.equal(log.isUpToDate(index, term), want, `(${index}, ${term})`);
});

t.test('slice spans storage and the unstable tail and honours size', async (t) => {
  const log = sampleLog();
  t.same(log.slice(2, 6, Infinity).map((e) => e.index), [2, 3, 4, 5]);
  t.same(log.slice(4, 6, Infinity).map((e) => e.index), [4, 5]);
  t.same(log.slice(2, 6, 1).map((e) => e.index), [2], 'size-limited inside storage');
  t.same(log.entries(6, Infinity), []);
  const storage = log.storage as MemoryStorage;
  storage.createSnapshot(2, { voters: [], learners: [] }, new Uint8Array());
  storage.compact(2);
  t.ok(errorOf(() => log.slice(2, 4, Infinity)) instanceof ErrCompacted);
  t.equal(log.termOrZero(1), 0, 'compacted term reads as 0');
  t.equal(log.matchTerm(1, 1), false);
});

t.test('stableTo ignores entries replaced since they were handed out', async (t) => {
  const log = sampleLog();
  log.append([ent(5, 4)]);
  log.stableTo(5, 3);
  t.equal(log.unstable.offset, 4, 'term mismatch: nothing became stable');
  log.stableTo(4, 3);
  t.equal(log.unstable.offset, 5);
  t.same(terms(log.unstableEntries()), [4]);
});

t.test('committed entries wait for a pending snapshot', async (t) => {
  const log = sampleLog();
  log.commitTo(3);
  t.same(log.nextCommittedEntries().map((e) => e.index), [1, 2, 3]);
  log.restore({ meta: { index: 10, term: 5, conf: { voters: [], learners: [] } }, data: new Uint8Array() });
  t.equal(log.hasNextCommittedEntries(), false);
  t.equal(log.lastIndex(), 10);
  t.equal(log.term(10), 5);
  t.equal(log.firstIndex(), 11);
  t.throws(() => log.commitTo(11), RaftInvariantError, 'commit past the end means a lost log');
  t.throws(() => log.appliedTo(11), RaftInvariantError);
});

t.test('inflights: bounded by count and bytes, freed in order', async (t) => {
  const inf = new Inflights(3, 100);
  inf.add(1, 10);
  inf.add(2, 10);
  t.notOk(inf.full());
  inf.add(5, 10);
  t.ok(inf.full(), 'count limit');
  t.throws(() => inf.add(6, 1), RaftInvariantError);
  inf.freeLE(2);
  t.equal(inf.count, 1);
  inf.add(6, 90);
  t.ok(inf.full(), 'byte limit');
  t.throws(() => inf.add(4, 1), RaftInvariantError, 'indexes must increase');
  inf.freeFirst();
  t.equal(inf.bytes, 90);
  inf.freeLE(100);
  inf.freeFirst();
  t.equal(inf.count, 0);
  for (let i = 10; i < 20; i++) {
    inf.add(i, 1);
    inf.freeLE(i);
  }
  t.equal(inf.count, 0, 'wraps around');
});

const at = (tick: number) => ({ tick, round: tick });

t.test('progress: probe, replicate and snapshot states', async (t) => {
  const pr = new Progress(11, false, 2, 1000, at(0));
  t.equal(pr.state, 'probe');
  pr.sentEntries(1, 10, 11, at(0));
  t.ok(pr.isPaused(), 'one probe at a time');
  t.notOk(pr.maybeDecrTo(3, 2), 'stale rejection ignored');
  t.ok(pr.maybeDecrTo(10, 4), 'rejection with hint');
  t.equal(pr.next, 5);
  t.notOk(pr.isPaused());
  t.ok(pr.maybeUpdate(4, at(1)));
  pr.becomeReplicate(at(1));
  t.equal(pr.next, 5);
  pr.sentEntries(2, 10, 6, at(2));
  pr.sentEntries(1, 10, 7, at(2));
  t.ok(pr.isPaused(), 'window full');
  t.equal(pr.next, 8);
  t.notOk(pr.maybeDecrTo(4, 0), 'replicate: rejection at or below match is stale');
  t.ok(pr.maybeDecrTo(6, 0));
  t.equal(pr.next, 5);
  pr.becomeSnapshot(20, at(3));
  t.ok(pr.isPaused());
  t.throws(() => pr.sentEntries(1, 1, 21, at(3)), RaftInvariantError);
  pr.becomeProbe(at(4));
  t.equal(pr.next, 21, 'after a snapshot, probe past it');
});
