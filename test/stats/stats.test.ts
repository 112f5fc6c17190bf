import t from 'tap';
import { Histogram, HISTOGRAM_VALUE_MAX, highestEquivalent } from '../../src/stats/histogram.js';
import { Slowlog, trimArgv } from '../../src/stats/slowlog.js';
import { mulberry32 } from '../helpers/random.js';

t.test('values below 256 are kept exactly; larger ones within 1/128', async (t) => {
  for (const v of [0, 1, 17, 255]) t.equal(highestEquivalent(v), v, `${v} is exact`);
  const random = mulberry32(7);
  for (let i = 0; i < 10_000; i++) {
    const v = Math.floor(256 + random() * 2 ** (8 + random() * 28));
    const high = highestEquivalent(v);
    if (high < v || (high - v) / v > 1 / 128) return t.fail(`${v} falls in a bucket reaching ${high}`);
  }
  t.pass('10000 random values up to 2^36 fall in buckets no wider than 1/128 of them');
  t.equal(highestEquivalent(2 ** 40), HISTOGRAM_VALUE_MAX, 'values beyond the range count as the largest');
  t.equal(highestEquivalent(-5), 0);
});

t.test('percentiles are HdrHistogram\'s (the highest value of the bucket at that rank), as Redis reports them', async (t) => {
  const h = new Histogram();
  t.equal(h.percentile(50), 0, 'empty');
  for (let i = 0; i < 99; i++) h.record(1000);
  h.record(2_000_000);
  t.equal(h.percentile(50), 1003, '1 µs reads 1.003 µs, as in Redis\'s INFO latencystats');
  t.equal(h.percentile(99), 1003);
  t.equal(h.percentile(99.9), highestEquivalent(2_000_000));
  t.equal(h.count, 100);
  t.equal(h.sum, 99 * 1000 + 2_000_000);
  t.same([...h.buckets()].map((b) => b.count), [99, 1]);
});

t.test('the slow log keeps the newest entries and trims each', async (t) => {
  const log = new Slowlog({ slowerThanUs: 100, maxLen: 2 });
  t.notOk(log.logs(99));
  t.ok(log.logs(100));
  for (const name of ['a', 'b', 'c']) log.push('get', ['GET', name], 150.4, 'x:1', '', 1_700_000_000_999);
  t.equal(log.length, 2);
  t.same(log.newest(10).map((e) => [e.id, e.argv[1], e.durationUs, e.timeSeconds]), [[2, 'c', 150, 1_700_000_000], [1, 'b', 150, 1_700_000_000]]);
  log.slowerThanUs = -1;
  t.notOk(log.logs(1e9), 'negative: off');
  t.same(trimArgv('auth', ['AUTH', 'user', 'pw']), ['AUTH', '(redacted)', '(redacted)']);
  t.same(trimArgv('hello', ['HELLO', '3', 'SETNAME', 'x', 'AUTH', 'u', 'p']), ['HELLO', '3', 'SETNAME', 'x', 'AUTH', '(redacted)', '(redacted)']);
  t.same(trimArgv('get', Array.from({ length: 32 }, (_, i) => String(i))).at(-1), '31', 'exactly 32 arguments are all kept');
  const short = ['SET', 'k', 'v'];
  t.equal(trimArgv('set', short), short, 'nothing to trim: kept as it is, not copied');
  t.not(trimArgv('set', ['SET', 'k', 'v'.repeat(129)]), short);
});

t.test('a full slow log overwrites its oldest entries in place, every field', async (t) => {
  const log = new Slowlog({ slowerThanUs: 0, maxLen: 2 });
  log.push('get', ['GET', 'a'], 10, 'x:1', 'one', 1_000);
  log.push('get', ['GET', 'b'], 20, 'x:2', 'two', 2_000);
  log.push('auth', ['AUTH', 'pw'], 30.6, 'x:3', 'three', 3_999);
  t.same(log.newest(2), [
    { id: 2, timeSeconds: 3, durationUs: 31, argv: ['AUTH', '(redacted)'], addr: 'x:3', name: 'three' },
    { id: 1, timeSeconds: 2, durationUs: 20, argv: ['GET', 'b'], addr: 'x:2', name: 'two' },
  ]);
});

t.test('the slow log keeps the newest maxLen entries, newest first, through wrap-around and resizing', (t) => {
  const log = new Slowlog({ slowerThanUs: 0, maxLen: 128 });
  const push = (n: number): void => {
    for (let i = 0; i < n; i++) log.push('get', ['GET', 'k'], 1, 'a', '', 0);
  };
  const ids = (count = 1000): number[] => log.newest(count).map((e) => e.id);
  push(300);
  t.equal(log.length, 128);
  t.same(ids(), Array.from({ length: 128 }, (_, i) => 299 - i), 'ids 299 down to 172');
  t.same(ids(3), [299, 298, 297]);
  log.maxLen = 10;
  t.same(ids(), Array.from({ length: 10 }, (_, i) => 299 - i), 'lowering keeps the newest');
  log.maxLen = 20;
  push(15);
  t.same(ids(), Array.from({ length: 20 }, (_, i) => 314 - i), 'raising lets it grow again, then wrap');
  log.reset();
  t.equal(log.length, 0);
  push(2);
  t.same(ids(), [316, 315], 'ids go on after a reset, as in Redis');
  log.maxLen = 0;
  push(1);
  t.equal(log.length, 0, 'maxLen 0 keeps nothing');
  t.end();
});
