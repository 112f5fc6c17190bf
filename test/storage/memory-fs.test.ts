import t from 'tap';
import { join } from 'node:path';
import { type StorageFs, ensureDir, nodeFs, writeAll } from '../../src/storage/fs.js';
import { MemoryFs } from '../../src/storage/memory-fs.js';
import { seededRng, tempDir } from './helpers.js';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const str = (b: Uint8Array): string => new TextDecoder().decode(b);
const loseAll = (): number => 0;
const keepAll = (): number => 0.999999;

async function writeFile(fs: StorageFs, path: string, data: string, sync: boolean): Promise<void> {
  const h = await fs.open(path, 'w');
  await h.writev([text(data)], 0);
  if (sync) await h.datasync();
  await h.close();
}

t.test('data that was not fsynced is lost at a crash; fsynced data is kept', async (t) => {
  const fs = new MemoryFs();
  await fs.mkdir('/d');
  await fs.fsyncDir('/');
  const h = await fs.open('/d/f', 'w+');
  await fs.fsyncDir('/d');
  await h.writev([text('durable')], 0);
  await h.sync();
  await h.writev([text(' and not')], 7);
  t.equal(str(await fs.readFile('/d/f')), 'durable and not', 'a reader sees the page cache');
  fs.crash(loseAll);
  t.equal(str(await fs.readFile('/d/f')), 'durable');
  await t.rejects(h.writev([text('x')], 0), { code: 'EIO' }, 'handles from before the crash are dead');
});

t.test('directory entries are durable only after fsyncDir', async (t) => {
  const fs = new MemoryFs();
  await writeFile(fs, '/created', 'a', true);
  fs.crash(keepAll);
  t.notOk(await fs.exists('/created'), 'a create without a directory fsync is rolled back, even with its data synced');

  await writeFile(fs, '/old', 'a', true);
  await fs.fsyncDir('/');
  await fs.rename('/old', '/new');
  fs.crash(keepAll);
  t.same(await fs.readdir('/'), ['old'], 'a rename without a directory fsync is rolled back');
  await fs.rename('/old', '/new');
  await fs.fsyncDir('/');
  fs.crash(keepAll);
  t.same(await fs.readdir('/'), ['new'], 'with one it survives');
  t.equal(str(await fs.readFile('/new')), 'a');

  await fs.unlink('/new');
  fs.crash(keepAll);
  t.ok(await fs.exists('/new'), 'an unlink without a directory fsync is rolled back');

  await fs.mkdir('/a/b');
  await fs.fsyncDir('/a');
  fs.crash(keepAll);
  t.notOk(await fs.exists('/a'), 'mkdir needs an fsync of the parent');
  await ensureDir(fs, '/a/b/c');
  fs.crash(keepAll);
  t.ok(await fs.exists('/a/b/c'), 'ensureDir fsyncs every new level');
});

t.test('a crash keeps a random prefix of pending writes, the last one possibly torn', async (t) => {
  const writes = ['first-', 'second-', 'third-'];
  const seen = new Set<string>();
  const wrong: string[] = [];
  for (let seed = 0; seed < 300; seed++) {
    const fs = new MemoryFs();
    const h = await fs.open('/f', 'w');
    await fs.fsyncDir('/');
    await h.writev([text('base|')], 0);
    await h.datasync();
    let at = 5;
    for (const w of writes) {
      await h.writev([text(w)], at);
      at += w.length;
    }
    fs.crash(seededRng(seed));
    const after = str(await fs.readFile('/f')).replace(/\0+$/, (z) => `<${z.length} zeros>`);
    const rest = after.slice(5).replace(/<\d+ zeros>$/, '');
    if (!after.startsWith('base|') || !writes.join('').startsWith(rest)) wrong.push(`seed ${seed}: ${after}`);
    seen.add(rest === '' ? 'none' : rest === writes.join('') ? 'all' : writes.some((_, i) => rest === writes.slice(0, i + 1).join('')) ? 'whole writes' : 'torn');
    if (after.includes('zeros')) seen.add('zero-filled');
  }
  t.same(wrong, [], 'fsynced bytes survive, then a prefix of the pending writes in order');
  t.same([...seen].sort(), ['all', 'none', 'torn', 'whole writes', 'zero-filled'], 'every outcome occurs across seeds');
});

t.test('truncations are pending operations too', async (t) => {
  const fs = new MemoryFs();
  const h = await fs.open('/f', 'w+');
  await fs.fsyncDir('/');
  await h.writev([text('0123456789')], 0);
  await h.datasync();
  await h.truncate(4);
  t.equal((await h.stat()).size, 4);
  fs.crash(loseAll);
  t.equal(str(await fs.readFile('/f')), '0123456789', 'an un-synced truncate is lost');
  const h2 = await fs.open('/f', 'r+');
  await h2.truncate(12);
  await h2.sync();
  t.same([...(await fs.readFile('/f')).subarray(10)], [0, 0], 'growing zero-fills');
});

t.test('errors mirror the real file system', async (t) => {
  const fs = new MemoryFs();
  await writeFile(fs, '/f', 'x', false);
  await fs.mkdir('/d');
  await t.rejects(fs.open('/missing', 'r'), { code: 'ENOENT' });
  await t.rejects(fs.open('/f', 'wx'), { code: 'EEXIST' });
  await t.rejects(fs.open('/d', 'r'), { code: 'EISDIR' });
  await t.rejects(fs.open('/nodir/f', 'w'), { code: 'ENOENT' });
  await t.rejects(fs.readFile('/d'), { code: 'EISDIR' });
  await t.rejects(fs.unlink('/d'), { code: 'EISDIR' });
  await t.rejects(fs.unlink('/missing'), { code: 'ENOENT' });
  await t.rejects(fs.rename('/missing', '/x'), { code: 'ENOENT' });
  await t.rejects(fs.rename('/f', '/d'), { code: 'EISDIR' });
  await t.rejects(fs.readdir('/f'), { code: 'ENOTDIR' });
  await t.rejects(fs.mkdir('/f/sub'), { code: 'ENOTDIR' });
  await t.rejects(fs.fsyncDir('/missing'), { code: 'ENOENT' });
  const ro = await fs.open('/f', 'r');
  await t.rejects(ro.writev([text('y')]), { code: 'EBADF' });
  await t.rejects(ro.truncate(0), { code: 'EBADF' });
  const wo = await fs.open('/f', 'w');
  await t.rejects(wo.read(new Uint8Array(1), 0, 1, 0), { code: 'EBADF' });
  await wo.close();
  await t.rejects(wo.close(), { code: 'EBADF' });
});

/** Runs one script of operations and returns everything observable, errors as their codes. */
async function observe(fs: StorageFs, root: string): Promise<unknown[]> {
  const out: unknown[] = [];
  const step = async (fn: () => Promise<unknown>): Promise<void> => {
    try {
      const v = await fn();
      out.push(v instanceof Uint8Array ? str(v) : v ?? 'ok');
    } catch (error) {
      out.push((error as NodeJS.ErrnoException).code);
    }
  };
  const p = (name: string): string => join(root, name);
  await step(() => fs.mkdir(p('a/b')));
  await step(() => fs.mkdir(p('a/b')));
  const h = await fs.open(p('a/f'), 'w+');
  await step(() => h.writev([text('hello'), text(' world')], 0));
  await step(() => h.writev([text('!')]));
  await step(() => writeAll(h, [text('HE')], 0));
  await step(async () => {
    const buf = new Uint8Array(20);
    const n = await h.read(buf, 2, 18, 0);
    return `${n}:${str(buf.subarray(2, 2 + n))}`;
  });
  await step(() => h.read(new Uint8Array(4), 2, 4, 0));
  await step(() => h.truncate(8));
  await step(async () => (await h.stat()).size);
  await step(() => h.datasync());
  await step(() => h.close());
  await step(() => fs.readFile(p('a/f')));
  await step(() => fs.rename(p('a/f'), p('a/b/g')));
  await step(() => fs.readdir(p('a')));
  await step(() => fs.readdir(p('a/b')));
  await step(() => fs.exists(p('a/f')));
  await step(() => fs.fsyncDir(p('a/b')));
  await step(() => fs.open(p('a/b/g'), 'wx'));
  await step(() => fs.unlink(p('a/b/g')));
  await step(() => fs.readFile(p('a/b/g')));
  await step(() => fs.readdir(p('nope')));
  return out;
}

t.test('MemoryFs and nodeFs agree on a script of operations', async (t) => {
  const dir = await tempDir(t);
  const real = await observe(nodeFs, dir);
  const mem = new MemoryFs();
  await mem.mkdir(dir);
  t.same(await observe(mem, dir), real);
  t.equal(await nodeFs.exists(join(dir, 'nope')), false);
  await nodeFs.fsyncDir(dir);
});
