/** Shared test helpers for the storage layer: temp dirs, a seeded RNG, and file systems that count or crash. */
import { mkdtemp, rm } from 'node:fs/promises';
import type { TAP } from 'tap';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FileHandleLike, OpenFlags, StorageFs } from '../../src/storage/fs.js';
import type { MemoryFs } from '../../src/storage/memory-fs.js';
import type { Entry, EntryType, GroupReplay, HardState, SnapshotMarker, WalRecord } from '../../src/storage/types.js';

/** The `t` a tap test callback receives. */
export type TapTest = Parameters<Parameters<TAP['test']>[0]>[0];

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** A fresh temp directory, removed when the test ends, pass or fail. */
export async function tempDir(t: Teardown): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'raftlock-storage-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** xorshift32 over a scrambled seed: uniform in [0, 1), the same sequence for the same seed. */
export function seededRng(seed: number): () => number {
  let s = (Math.imul(seed ^ 0x5bd1e995, 0x9e3779b1) >>> 0) || 0x1234567;
  const next = (): number => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x1_0000_0000;
  };
  for (let i = 0; i < 8; i++) next();
  return next;
}

export function randInt(rng: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rng() * (hi - lo + 1));
}

export type FsOp = 'open' | 'readFile' | 'rename' | 'unlink' | 'readdir' | 'mkdir' | 'fsyncDir' | 'exists'
  | 'writev' | 'read' | 'datasync' | 'sync' | 'truncate' | 'stat' | 'close';

/** Called before and after every operation; throwing from it fails the operation. `n` numbers operations. */
export type FsHook = (op: FsOp, path: string, phase: 'before' | 'after', n: number) => void;

/** Wraps a StorageFs (and the handles it opens) so a hook sees every operation. */
export class HookFs implements StorageFs {
  private ops = 0;

  constructor(private readonly inner: StorageFs, private readonly hook: FsHook) {}

  async run<T>(op: FsOp, path: string, fn: () => Promise<T>): Promise<T> {
    const n = ++this.ops;
    this.hook(op, path, 'before', n);
    const result = await fn();
    this.hook(op, path, 'after', n);
    return result;
  }

  async open(path: string, flags: OpenFlags): Promise<FileHandleLike> {
    const handle = await this.run('open', path, () => this.inner.open(path, flags));
    const run = <T>(op: FsOp, fn: () => Promise<T>): Promise<T> => this.run(op, path, fn);
    return {
      writev: (buffers, position) => run('writev', () => handle.writev(buffers, position)),
      read: (buffer, offset, length, position) => run('read', () => handle.read(buffer, offset, length, position)),
      datasync: () => run('datasync', () => handle.datasync()),
      sync: () => run('sync', () => handle.sync()),
      truncate: (length) => run('truncate', () => handle.truncate(length)),
      stat: () => run('stat', () => handle.stat()),
      close: () => run('close', () => handle.close()),
    };
  }

  readFile(path: string): Promise<Uint8Array> {
    return this.run('readFile', path, () => this.inner.readFile(path));
  }

  rename(from: string, to: string): Promise<void> {
    return this.run('rename', from, () => this.inner.rename(from, to));
  }

  unlink(path: string): Promise<void> {
    return this.run('unlink', path, () => this.inner.unlink(path));
  }

  readdir(dir: string): Promise<string[]> {
    return this.run('readdir', dir, () => this.inner.readdir(dir));
  }

  mkdir(dir: string): Promise<void> {
    return this.run('mkdir', dir, () => this.inner.mkdir(dir));
  }

  fsyncDir(dir: string): Promise<void> {
    return this.run('fsyncDir', dir, () => this.inner.fsyncDir(dir));
  }

  exists(path: string): Promise<boolean> {
    return this.run('exists', path, () => this.inner.exists(path));
  }
}

/** Counts operations by kind. */
export function countingFs(inner: StorageFs): { fs: StorageFs; counts: Map<FsOp, number> } {
  const counts = new Map<FsOp, number>();
  const fs = new HookFs(inner, (op, _path, phase) => {
    if (phase === 'before') counts.set(op, (counts.get(op) ?? 0) + 1);
  });
  return { fs, counts };
}

/**
 * Power-fails `mem` at operation number `crashAt`: before it runs, or right
 * after it ran but before the caller hears back. Every later operation fails.
 */
export function crashingFs(mem: MemoryFs, crashAt: number, rng: () => number): { fs: StorageFs; crashed: () => boolean } {
  let crashed = false;
  const afterOp = rng() < 0.5;
  const fs = new HookFs(mem, (op, path, phase, n) => {
    if (crashed) throw new Error(`EIO: ${op} ${path} after the crash`);
    if (n === crashAt && (phase === 'after') === afterOp) {
      crashed = true;
      mem.crash(rng);
      throw new Error(`EIO: crash during ${op} ${path}`);
    }
  });
  return { fs, crashed: () => crashed };
}

export function entry(index: number, term: number, data: string | Uint8Array = `e${index}`, type: EntryType = 'normal'): Entry {
  return { index, term, type, data: typeof data === 'string' ? new TextEncoder().encode(data) : data };
}

export function entries(first: number, count: number, term: number, tag = ''): Entry[] {
  return Array.from({ length: count }, (_, i) => entry(first + i, term, `${tag}e${first + i}`));
}

/**
 * The reference semantics of replay, kept deliberately naive: the state a
 * group's records describe when applied in order.
 */
export type Model = Map<number, GroupReplay>;

export function applyToModel(model: Model, record: WalRecord): void {
  const g = model.get(record.group) ?? { entries: [], hardState: null, snapshot: null };
  model.set(record.group, g);
  if (record.type === 'entries') {
    const first = record.entries[0]!.index;
    g.entries = [...g.entries.filter((e) => e.index < first), ...record.entries];
  } else if (record.type === 'hardState') {
    g.hardState = { ...record.hardState };
  } else {
    const at = g.entries.find((e) => e.index === record.index);
    const keep = at?.term === record.term || (g.snapshot?.index === record.index && g.snapshot.term === record.term);
    g.entries = keep ? g.entries.filter((e) => e.index > record.index) : [];
    g.snapshot = { index: record.index, term: record.term };
  }
}

export function cloneModel(model: Model): Model {
  const copy: Model = new Map();
  for (const [g, s] of model) copy.set(g, { entries: [...s.entries], hardState: s.hardState, snapshot: s.snapshot });
  return copy;
}

/** A canonical string for comparing states. */
export function digest(groups: Map<number, GroupReplay>): string {
  const hex = (d: Uint8Array): string => Buffer.from(d).toString('hex');
  return JSON.stringify([...groups.entries()].sort((a, b) => a[0] - b[0]).map(([g, s]) => [
    g, s.snapshot, s.hardState, s.entries.map((e) => [e.index, e.term, e.type, hex(e.data)]),
  ]));
}

/** Raft-plausible random records for `model` (which the caller advances as it appends them). */
export function randomRecord(rng: () => number, model: Model, groups: number): WalRecord {
  // Skewed activity: quiet groups leave their last hard state in old segments, which compaction then deletes.
  const group = Math.floor(rng() ** 3 * groups) * 7;
  const g = model.get(group) ?? { entries: [], hardState: null, snapshot: null };
  const snap: SnapshotMarker | null = g.snapshot;
  const snapIndex = snap?.index ?? 0;
  const last = g.entries.at(-1)?.index ?? snapIndex;
  const lastTerm = g.entries.at(-1)?.term ?? snap?.term ?? 1;
  const hs: HardState | null = g.hardState;
  const commit = hs?.commit ?? 0;
  const topTerm = Math.max(lastTerm, hs?.term ?? 1);
  const data = (): Uint8Array => Uint8Array.from({ length: randInt(rng, 0, 40) }, () => randInt(rng, 0, 255));
  const run = (first: number, term: number): Entry[] =>
    Array.from({ length: randInt(rng, 1, 4) }, (_, i) => ({ index: first + i, term, type: 'normal' as const, data: data() }));
  const r = rng();
  const low = Math.max(commit, snapIndex) + 1;
  if (r < 0.1 && low <= last) {
    return { type: 'entries', group, entries: run(randInt(rng, low, last), topTerm + 1) };
  }
  if (r < 0.3) {
    const term = Math.max(hs?.term ?? 0, lastTerm) + (rng() < 0.3 ? 1 : 0);
    const vote = term === hs?.term && hs.vote !== null ? hs.vote : [null, 'n1', 'n2'][randInt(rng, 0, 2)]!;
    return { type: 'hardState', group, hardState: { term, vote, commit: randInt(rng, commit, Math.max(commit, last)) } };
  }
  if (r < 0.4 && Math.min(commit, last) > snapIndex) {
    const index = randInt(rng, snapIndex + 1, Math.min(commit, last));
    return { type: 'snapshot', group, index, term: g.entries.find((e) => e.index === index)!.term };
  }
  // A leader's snapshot: past the end of the log, or over an uncommitted entry with another term; either way the log goes.
  if (r < 0.43) return { type: 'snapshot', group, index: last + randInt(rng, 1, 3), term: topTerm + 1 };
  if (r < 0.46 && low <= last) return { type: 'snapshot', group, index: randInt(rng, low, last), term: topTerm + 1 };
  return { type: 'entries', group, entries: run(last + 1, lastTerm) };
}
