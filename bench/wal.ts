/**
 * WAL append throughput on the real disk: how far group commit (one writev +
 * one fdatasync per batch) carries 1, 16 and 256 concurrent appenders of
 * 64-byte entries spread over 8 Raft groups.
 *
 * Reproduce: npx tsc -p tsconfig.build.json && node dist/bench/wal.js
 * (RAFTLOCK_BENCH_DIR picks the directory, default the OS temp dir; RAFTLOCK_BENCH_MS the time per row.)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { type FileHandleLike, type StorageFs, nodeFs } from '../src/storage/fs.js';
import { Wal } from '../src/storage/wal.js';

export interface WalBenchResult {
  appenders: number;
  entries: number;
  seconds: number;
  entriesPerSec: number;
  fdatasyncs: number;
  entriesPerSync: number;
  p50Ms: number;
  p99Ms: number;
}

const GROUPS = 8;
const ENTRY_BYTES = 64;

/** nodeFs with a count of fdatasync calls on the handles it opens. */
function countingSyncs(inner: StorageFs): { fs: StorageFs; syncs: () => number } {
  let syncs = 0;
  const fs: StorageFs = {
    ...inner,
    async open(path, flags): Promise<FileHandleLike> {
      const handle = await inner.open(path, flags);
      const datasync = handle.datasync.bind(handle);
      handle.datasync = () => {
        syncs++;
        return datasync();
      };
      return handle;
    },
  };
  return { fs, syncs: () => syncs };
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

async function measure(root: string, appenders: number, durationMs: number): Promise<WalBenchResult> {
  const dir = await mkdtemp(join(root, 'raftlock-wal-bench-'));
  try {
    const { fs, syncs } = countingSyncs(nodeFs);
    const { wal } = await Wal.open({ fs, dir });
    const data = new Uint8Array(ENTRY_BYTES).fill(0x2a);
    const nextIndex = new Array<number>(GROUPS).fill(0);
    const latencies: number[] = [];
    const syncsBefore = syncs();
    const start = performance.now();
    const deadline = start + durationMs;
    await Promise.all(Array.from({ length: appenders }, async (_, k) => {
      const group = k % GROUPS;
      while (performance.now() < deadline) {
        // Indexes are taken at call time, so concurrent appends to one group reach the WAL in index order.
        const index = ++nextIndex[group]!;
        const began = performance.now();
        await wal.append([{ type: 'entries', group, entries: [{ term: 1, index, type: 'normal', data }] }]);
        latencies.push(performance.now() - began);
      }
    }));
    const seconds = (performance.now() - start) / 1000;
    const fdatasyncs = syncs() - syncsBefore;
    await wal.close();
    const sorted = Float64Array.from(latencies).sort();
    return {
      appenders,
      entries: latencies.length,
      seconds,
      entriesPerSec: latencies.length / seconds,
      fdatasyncs,
      entriesPerSync: latencies.length / Math.max(1, fdatasyncs),
      p50Ms: percentile(sorted, 0.5),
      p99Ms: percentile(sorted, 0.99),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Mean time of one small write + fdatasync on this disk: the floor under one append's latency. */
async function fdatasyncMs(root: string): Promise<number> {
  const dir = await mkdtemp(join(root, 'raftlock-fsync-probe-'));
  try {
    const handle = await nodeFs.open(join(dir, 'probe'), 'w');
    const rounds = 500;
    const began = performance.now();
    for (let i = 0; i < rounds; i++) {
      await handle.writev([new Uint8Array(100)], i * 100);
      await handle.datasync();
    }
    const ms = (performance.now() - began) / rounds;
    await handle.close();
    return ms;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function run(options: { dir?: string; durationMs?: number } = {}): Promise<WalBenchResult[]> {
  const root = options.dir ?? process.env['RAFTLOCK_BENCH_DIR'] ?? tmpdir();
  const durationMs = options.durationMs ?? Number(process.env['RAFTLOCK_BENCH_MS'] ?? 3000);
  const probe = await fdatasyncMs(root);
  console.log(`WAL append throughput: ${ENTRY_BYTES}-byte entries, ${GROUPS} groups, ${durationMs} ms per row, dir ${root}`);
  console.log(`write + fdatasync of 100 bytes on this disk: ${(probe * 1000).toFixed(0)} µs`);
  await measure(root, 16, Math.min(500, durationMs)); // warm-up: JIT and file-system caches
  const results: WalBenchResult[] = [];
  for (const appenders of [1, 16, 256]) results.push(await measure(root, appenders, durationMs));
  console.table(results.map((r) => ({
    appenders: r.appenders,
    'entries/s': Math.round(r.entriesPerSec),
    fdatasyncs: r.fdatasyncs,
    'entries/fdatasync': Number(r.entriesPerSync.toFixed(1)),
    'p50 ms': Number(r.p50Ms.toFixed(3)),
    'p99 ms': Number(r.p99Ms.toFixed(3)),
  })));
  return results;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run();
}
