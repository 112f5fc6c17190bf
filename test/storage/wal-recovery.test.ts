import t from 'tap';
import { appendFile, readFile, readdir, rename, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32c } from '../../src/storage/crc32c.js';
import { WalCorruptError } from '../../src/storage/errors.js';
import { nodeFs } from '../../src/storage/fs.js';
import { RECORD_COMMIT, encodeRecords, readFrame } from '../../src/storage/record.js';
import type { WalRecord } from '../../src/storage/types.js';
import { Wal } from '../../src/storage/wal.js';
import { applyToModel, digest, entry, tempDir, type Model, type TapTest } from './helpers.js';

interface Frame {
  offset: number;
  end: number;
  commit: boolean;
}

function framesOf(bytes: Uint8Array): Frame[] {
  const frames: Frame[] = [];
  for (let pos = 0; pos < bytes.length;) {
    const f = readFrame(bytes, pos);
    if (!f.ok) throw new Error(`test setup: bad frame at ${pos}`);
    frames.push({ offset: pos, end: f.end, commit: f.type === RECORD_COMMIT });
    pos = f.end;
  }
  return frames;
}

/** Writes `batches` one append each into a WAL in a temp dir, closes it, and returns what is on disk. */
async function writtenWal(t: TapTest, batches: number, segmentBytes?: number) {
  const dir = await tempDir(t);
  const { wal } = await Wal.open({ fs: nodeFs, dir, segmentBytes });
  const appends: WalRecord[][] = [];
  for (let i = 1; i <= batches; i++) {
    const records: WalRecord[] = [{ type: 'entries', group: 1, entries: [entry(i, 1, new Uint8Array(40).fill(i))] }];
    appends.push(records);
    await wal.append(records);
  }
  await wal.close();
  const files = (await readdir(dir)).filter((n) => n.startsWith('wal-')).sort();
  const modelAfter = (n: number): string => {
    const model: Model = new Map();
    for (const records of appends.slice(0, n)) for (const r of records) applyToModel(model, r);
    return digest(model);
  };
  return { dir, files, path: (i: number) => join(dir, files.at(i)!), modelAfter };
}

async function flipByte(path: string, offset: number): Promise<void> {
  const bytes = await readFile(path);
  bytes[offset] = bytes[offset]! ^ 0x5a;
  await writeFile(path, bytes);
}

t.test('torn tails are cut off, reported, and the WAL goes on', async (t) => {
  const cases: [string, (path: string, frames: Frame[]) => Promise<void>][] = [
    ['the file is cut in the middle of the last record', (path, frames) => truncate(path, frames.at(-2)!.offset + 7)],
    ['the commit frame of the last batch is missing', (path, frames) => truncate(path, frames.at(-1)!.offset)],
    ['garbage follows the last batch', (path) => appendFile(path, Buffer.from('not a frame, just noise from a torn write'))],
    ['zeros follow the last batch (size updated, data not)', (path) => appendFile(path, Buffer.alloc(4096))],
    ['a byte of the last frame is flipped', (path, frames) => flipByte(path, frames.at(-1)!.offset + 10)],
    ['the last frame header is cut short', (path, frames) => truncate(path, frames.at(-1)!.offset + 4)],
  ];
  for (const [name, damage] of cases) {
    await t.test(name, async (t) => {
      const w = await writtenWal(t, 5);
      // The last segment holds the carry-forward written at open, if any; damage the one before it.
      const target = w.path(0);
      const frames = framesOf(await readFile(target));
      await damage(target, frames);
      const sizeBefore = (await readFile(target)).length;
      const { wal, groups, report } = await Wal.open({ fs: nodeFs, dir: w.dir });
      t.not(report.truncatedTail, null, 'the cut is reported');
      t.equal(report.truncatedTail!.file, target);
      t.equal((await readFile(target)).length, report.truncatedTail!.offset, 'the file was truncated to the reported offset');
      t.equal(report.truncatedTail!.bytesDropped, sizeBefore - report.truncatedTail!.offset);
      const kept = digest(groups);
      t.ok(kept === w.modelAfter(5) || kept === w.modelAfter(4), 'only the unfinished last batch is lost');
      const next = groups.get(1)!.entries.at(-1)!.index + 1;
      await wal.append([{ type: 'entries', group: 1, entries: [entry(next, 1)] }]);
      await wal.close();
      const again = await Wal.open({ fs: nodeFs, dir: w.dir });
      t.equal(again.report.truncatedTail, null, 'the next open is clean');
      t.equal(again.groups.get(1)!.entries.at(-1)!.index, next);
      await again.wal.close();
    });
  }
});

async function expectCorrupt(t: TapTest, dir: string, file: string, offset?: number): Promise<void> {
  const error = await Wal.open({ fs: nodeFs, dir }).then(() => null, (e: unknown) => e);
  t.ok(error instanceof WalCorruptError, `refused: ${String(error)}`);
  const corrupt = error as WalCorruptError;
  t.equal(corrupt.code, 'RAFTLOCK_ERR_WAL_CORRUPT');
  t.equal(corrupt.file, file);
  t.ok(corrupt.message.includes(file), 'the message names the file');
  t.ok(corrupt.message.includes(`byte offset ${corrupt.offset}`), 'the message names the offset');
  if (offset !== undefined) t.equal(corrupt.offset, offset, 'at the damaged record');
}

t.test('a corrupt record followed by committed batches refuses to start', async (t) => {
  const w = await writtenWal(t, 10);
  const path = w.path(0);
  const frames = framesOf(await readFile(path));
  const middle = frames.filter((f) => !f.commit)[4]!;
  await flipByte(path, middle.offset + 12);
  await expectCorrupt(t, w.dir, path, middle.offset);
});

t.test('a damaged length field in a middle record refuses to start', async (t) => {
  const w = await writtenWal(t, 10);
  const path = w.path(0);
  const middle = framesOf(await readFile(path)).filter((f) => !f.commit)[3]!;
  await flipByte(path, middle.offset + 2);
  await expectCorrupt(t, w.dir, path, middle.offset);
});

t.test('a flipped byte in the last data record, sealed by its commit frame, is corruption, not a torn write', async (t) => {
  const w = await writtenWal(t, 5);
  const path = w.path(0);
  const last = framesOf(await readFile(path)).filter((f) => !f.commit).at(-1)!;
  await flipByte(path, last.offset + 20);
  await expectCorrupt(t, w.dir, path, last.offset);
});

t.test('damage to the tail of an earlier segment refuses to start', async (t) => {
  const w = await writtenWal(t, 200, 2048);
  t.ok(w.files.length > 3, `${w.files.length} segments`);
  const path = w.path(1);
  const frames = framesOf(await readFile(path));
  await truncate(path, frames.at(-1)!.offset + 3);
  await expectCorrupt(t, w.dir, path, frames.at(-1)!.offset);
});

t.test('a missing segment refuses to start', async (t) => {
  const w = await writtenWal(t, 200, 2048);
  await rename(w.path(2), join(w.dir, 'moved-away'));
  await expectCorrupt(t, w.dir, w.path(3), 0);
});

t.test('an empty segment before the last refuses to start', async (t) => {
  const w = await writtenWal(t, 200, 2048);
  await truncate(w.path(1), 0);
  await expectCorrupt(t, w.dir, w.path(1), 0);
});

t.test('a frame with a valid checksum that does not decode refuses to start', async (t) => {
  const w = await writtenWal(t, 3);
  const path = w.path(0);
  const bytes = await readFile(path);
  const frames = framesOf(bytes);
  // Re-encode a well-formed frame, then change its type byte and fix the checksum: an unknown record type.
  const forged = encodeRecords([{ type: 'entries', group: 1, entries: [entry(99, 1)] }]);
  forged[8] = 77;
  new DataView(forged.buffer, forged.byteOffset).setUint32(4, crc32c(forged, 0, 8, forged.length), true);
  const at = frames[0]!.offset;
  await writeFile(path, Buffer.concat([bytes.subarray(0, at), forged, bytes.subarray(at)]));
  await expectCorrupt(t, w.dir, path, at);
});

t.test('a commit frame that does not match its batch refuses to start', async (t) => {
  const w = await writtenWal(t, 3);
  const path = w.path(0);
  const bytes = await readFile(path);
  const commits = framesOf(bytes).filter((f) => f.commit);
  // Drop the data record of the second batch but keep its commit frame.
  const second = commits[1]!;
  const dataStart = commits[0]!.end;
  await writeFile(path, Buffer.concat([bytes.subarray(0, dataStart), bytes.subarray(second.offset)]));
  await expectCorrupt(t, w.dir, path, dataStart);
});

t.test('a file that looks like a segment but is misnamed refuses to start', async (t) => {
  const w = await writtenWal(t, 1);
  const bogus = join(w.dir, 'wal-xyz.log');
  await writeFile(bogus, '');
  await expectCorrupt(t, w.dir, bogus, 0);
});
