import t from 'tap';
import { readFile, readdir, rename, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SnapshotCorruptError } from '../../src/storage/errors.js';
import { nodeFs } from '../../src/storage/fs.js';
import { MemoryFs } from '../../src/storage/memory-fs.js';
import { type Snapshot, SnapshotStore } from '../../src/storage/snapshot.js';
import { HookFs, crashingFs, randInt, seededRng, tempDir } from './helpers.js';

const conf = { voters: ['n1', 'n2', 'n3'], learners: [] };

function snapshot(group: number, index: number, fill = index): Snapshot {
  return { group, index, term: 2, conf, data: new Uint8Array(1000).fill(fill) };
}

t.test('save and load round-trip; the newest snapshot replaces older ones', async (t) => {
  const dir = await tempDir(t);
  const store = await SnapshotStore.open({ fs: nodeFs, dir: join(dir, 'snap') });
  t.equal(await store.load(1), null, 'no snapshot yet');
  const saved = await store.save(snapshot(1, 10));
  t.match(saved.file, /snap-00000001-000000000000000a\.snap$/);
  await store.save(snapshot(2, 5));
  await store.save(snapshot(1, 20));
  const loaded = await store.load(1);
  t.same(loaded, snapshot(1, 20));
  t.same((await store.list(1)).map((s) => s.index), [20], 'the older snapshot of group 1 was deleted');
  t.same((await store.list(2)).map((s) => s.index), [5], 'other groups are untouched');
  await store.save({ ...snapshot(1, 20), data: new Uint8Array(0), conf: null });
  t.same(await store.load(1), { ...snapshot(1, 20), data: new Uint8Array(0), conf: null }, 'saving the same index again replaces it');
});

t.test('invalid snapshots are refused before anything is written', async (t) => {
  const store = await SnapshotStore.open({ fs: new MemoryFs(), dir: '/s' });
  await store.save(snapshot(1, 10));
  const bad: [string, Snapshot][] = [
    ['a conf JSON cannot carry', { ...snapshot(1, 11), conf: { at: undefined } as never }],
    ['a NaN in the conf', { ...snapshot(1, 11), conf: [NaN] }],
    ['index 0', snapshot(1, 0)],
    ['a negative group', snapshot(-1, 1)],
    ['data that is not bytes', { ...snapshot(1, 11), data: [1, 2] as never }],
  ];
  for (const [name, s] of bad) await t.rejects(store.save(s), { code: 'RAFTLOCK_ERR_SNAPSHOT_INVALID' }, name);
  await t.rejects(store.save(snapshot(1, 9)), { code: 'RAFTLOCK_ERR_SNAPSHOT_INVALID' }, 'an older snapshot than the saved one');
  t.same((await store.list(1)).map((s) => s.index), [10]);
});

t.test('a damaged snapshot is a clear error naming the file', async (t) => {
  const cases: [string, (file: string) => Promise<void>][] = [
    ['a flipped data byte', async (file) => {
      const bytes = await readFile(file);
      bytes[bytes.length - 10] = bytes[bytes.length - 10]! ^ 1;
      await writeFile(file, bytes);
    }],
    ['a flipped header byte', async (file) => {
      const bytes = await readFile(file);
      bytes[21] = bytes[21]! ^ 1;
      await writeFile(file, bytes);
    }],
    ['a truncated file', (file) => truncate(file, 500)],
    ['a file shorter than the header', (file) => truncate(file, 10)],
    ['a bad magic', async (file) => {
      const bytes = await readFile(file);
      bytes[0] = 0;
      await writeFile(file, bytes);
    }],
    ['a file renamed to another index', (file) => rename(file, file.replace('000000000000000a', '000000000000000b'))],
  ];
  for (const [name, damage] of cases) {
    await t.test(name, async (t) => {
      const dir = await tempDir(t);
      const store = await SnapshotStore.open({ fs: nodeFs, dir });
      const { file } = await store.save(snapshot(1, 10));
      await damage(file);
      const [current] = await readdir(dir);
      const error = await store.load(1).then(() => null, (e: unknown) => e);
      t.ok(error instanceof SnapshotCorruptError, String(error));
      t.equal((error as SnapshotCorruptError).code, 'RAFTLOCK_ERR_SNAPSHOT_CORRUPT');
      t.equal((error as SnapshotCorruptError).file, join(dir, current!));
      t.match((error as Error).message, join(dir, current!));
    });
  }
});

t.test('save writes a temp file, fsyncs it, renames it, fsyncs the directory, then deletes older ones', async (t) => {
  const log: string[] = [];
  const fs = new HookFs(new MemoryFs(), (op, path, phase) => {
    if (phase === 'before' && op !== 'readdir' && op !== 'exists') log.push(`${op} ${path.replace(/^\/s\//, '')}`);
  });
  const store = await SnapshotStore.open({ fs, dir: '/s' });
  await store.save(snapshot(1, 1));
  log.length = 0;
  await store.save(snapshot(1, 2));
  t.same(log, [
    'open snap-00000001-0000000000000002.snap.tmp',
    'writev snap-00000001-0000000000000002.snap.tmp',
    'sync snap-00000001-0000000000000002.snap.tmp',
    'close snap-00000001-0000000000000002.snap.tmp',
    'rename snap-00000001-0000000000000002.snap.tmp',
    'fsyncDir /s',
    'unlink snap-00000001-0000000000000001.snap',
    'fsyncDir /s',
  ]);
});

t.test('a crash during save leaves the old or the new snapshot, never a damaged or missing one', async (t) => {
  const failures: string[] = [];
  const outcomes = new Set<string>();
  for (let seed = 1; seed <= 150; seed++) {
    const rng = seededRng(seed);
    const mem = new MemoryFs();
    const first = await SnapshotStore.open({ fs: mem, dir: '/s' });
    await first.save(snapshot(1, 1));
    const { fs, crashed } = crashingFs(mem, randInt(rng, 1, 14), rng);
    let resolved = false;
    try {
      const store = await SnapshotStore.open({ fs, dir: '/s' });
      await store.save(snapshot(1, 2));
      resolved = true;
    } catch (error) {
      if (!crashed()) failures.push(`seed ${seed}: ${(error as Error).message}`);
    }
    if (!crashed()) mem.crash(rng);
    const after = await SnapshotStore.open({ fs: mem, dir: '/s' });
    const loaded = await after.load(1).catch((e: Error) => e);
    if (loaded instanceof Error || loaded === null) {
      failures.push(`seed ${seed}: ${String(loaded)}`);
      continue;
    }
    if (resolved && loaded.index !== 2) failures.push(`seed ${seed}: a saved snapshot was lost`);
    outcomes.add(loaded.index === 2 ? 'new' : 'old');
    if ((await mem.readdir('/s')).some((n) => n.endsWith('.tmp'))) failures.push(`seed ${seed}: temp file left after open`);
  }
  t.same(failures, []);
  t.same([...outcomes].sort(), ['new', 'old'], 'both outcomes occur');
});
