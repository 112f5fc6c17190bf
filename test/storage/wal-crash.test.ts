/**
 * Random power failures over MemoryFs. For each seed a WAL goes through
 * several lives: appends (many groups, truncations, snapshot markers,
 * compaction) run until a crash at a random file-system operation, which
 * keeps a random prefix of un-fsynced writes and may tear the last one. Each
 * recovery must show the state after some prefix of the issued appends that
 * includes every append whose promise resolved: nothing acknowledged is lost,
 * nothing that was never appended appears, and each append is all-or-nothing.
 */
import t from 'tap';
import { MemoryFs } from '../../src/storage/memory-fs.js';
import type { WalRecord } from '../../src/storage/types.js';
import { Wal, type WalOpenResult } from '../../src/storage/wal.js';
import {
  applyToModel, cloneModel, crashingFs, digest, randInt, randomRecord, seededRng, type Model,
} from './helpers.js';

const SEEDS = 150;
const LIVES = 4;
const DIR = '/node/wal';
const OPTIONS = { segmentBytes: 2048, batchBytesMax: 2048 };

/** How often the seeds reached the paths this test exists for. */
const reached = { tornTails: 0, crashedOpens: 0, segmentsDeleted: 0, rollovers: 0, unresolvedKept: 0 };

interface Life {
  /** The state the last recovery verified. */
  base: Model;
  /** Appends issued since, in order, and how many of them resolved. */
  issued: WalRecord[][];
  resolved: number;
}

/** Finds the prefix of `life.issued` (at least the resolved ones) whose state the recovery shows. */
function matchPrefix(life: Life, recovered: string): Model | null {
  const model = cloneModel(life.base);
  for (let n = 0; n <= life.issued.length; n++) {
    if (n > 0) for (const r of life.issued[n - 1]!) applyToModel(model, r);
    if (n >= life.resolved && digest(model) === recovered) {
      if (n > life.resolved) reached.unresolvedKept++;
      return model;
    }
  }
  return null;
}

async function runLife(wal: Wal, life: Life, rng: () => number, model: Model, crashed: () => boolean): Promise<string[]> {
  const problems: string[] = [];
  const outcomes: Promise<unknown>[] = [];
  const durableSnapshots = new Map<number, number>();
  const issue = (records: WalRecord[]): void => {
    const n = life.issued.length;
    life.issued.push(records);
    outcomes.push(wal.append(records).then(() => {
      if (life.resolved !== n) problems.push(`append ${n} resolved after ${life.resolved} earlier ones`);
      life.resolved = n + 1;
      for (const r of records) if (r.type === 'snapshot') durableSnapshots.set(r.group, r.index);
    }, (error: Error) => {
      if (!crashed()) problems.push(`append ${n} failed without a crash: ${error.message}`);
    }));
  };
  for (let step = 0; step < 60 && !crashed(); step++) {
    const records = Array.from({ length: randInt(rng, 1, 3) }, () => {
      const r = randomRecord(rng, model, 5);
      applyToModel(model, r);
      return r;
    });
    issue(records);
    if (rng() < 0.1 && durableSnapshots.size > 0) {
      const [group, index] = [...durableSnapshots][randInt(rng, 0, durableSnapshots.size - 1)]!;
      outcomes.push(wal.compact(group, index).then((deleted) => {
        reached.segmentsDeleted += deleted.length;
      }, (error: Error) => {
        if (!crashed()) problems.push(`compact failed without a crash: ${error.message}`);
      }));
    }
    if (rng() < 0.3) await new Promise((resolve) => setImmediate(resolve));
  }
  await Promise.all(outcomes);
  if (wal.stats().segments > 1) reached.rollovers++;
  return problems;
}

async function runSeed(seed: number): Promise<string[]> {
  const rng = seededRng(seed);
  const mem = new MemoryFs();
  let life: Life = { base: new Map(), issued: [], resolved: 0 };
  for (let n = 0; n < LIVES; n++) {
    const { fs, crashed } = crashingFs(mem, randInt(rng, 1, 150), rng);
    let opened: WalOpenResult;
    try {
      opened = await Wal.open({ fs, dir: DIR, ...OPTIONS });
    } catch (error) {
      if (!crashed()) return [`life ${n}: open failed without a crash: ${(error as Error).message}`];
      reached.crashedOpens++;
      continue;
    }
    const verified = matchPrefix(life, digest(opened.groups));
    if (verified === null) {
      return [`life ${n}: recovered state is not a prefix of the appends with all ${life.resolved} resolved ones`];
    }
    if (opened.report.truncatedTail !== null) reached.tornTails++;
    life = { base: verified, issued: [], resolved: 0 };
    const problems = await runLife(opened.wal, life, rng, cloneModel(verified), crashed);
    if (problems.length > 0) return problems.map((p) => `life ${n}: ${p}`);
    if (!crashed()) mem.crash(rng);
  }
  try {
    const final = await Wal.open({ fs: mem, dir: DIR, ...OPTIONS });
    return matchPrefix(life, digest(final.groups)) === null ? ['final recovery is not a valid prefix'] : [];
  } catch (error) {
    return [`final open failed: ${(error as Error).message}`];
  }
}

t.test(`WAL recovery after random crashes never loses or invents an append (${SEEDS} seeds)`, async (t) => {
  const failures: string[] = [];
  for (let seed = 1; seed <= SEEDS; seed++) {
    for (const p of await runSeed(seed)) failures.push(`seed ${seed}: ${p}`);
  }
  t.same(failures, [], 'no seed failed');
  t.comment(`paths reached: ${JSON.stringify(reached)}`);
  for (const [path, count] of Object.entries(reached)) t.ok(count > 0, `the seeds reached ${path}`);
});
