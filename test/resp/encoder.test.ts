import t from 'tap';
import { ReplyWriter, formatDouble, fromUtf8, toUtf8 } from '../../resp/encoder.js';

/** Each method call with the exact bytes it must produce in RESP2 and in RESP3. */
const cases: { name: string; write: (w: ReplyWriter) => void; resp2: string; resp3: string }[] = [
  { name: 'simple', write: (w) => w.simple('OK'), resp2: '+OK\r\n', resp3: '+OK\r\n' },
  { name: 'simple with newlines', write: (w) => w.simple('a\r\nb'), resp2: '+a  b\r\n', resp3: '+a  b\r\n' },
  { name: 'error', write: (w) => w.error('ERR syntax error'), resp2: '-ERR syntax error\r\n', resp3: '-ERR syntax error\r\n' },
  { name: 'error text cannot break the line', write: (w) => w.error("ERR unknown command 'a\nb'"),
    resp2: "-ERR unknown command 'a b'\r\n", resp3: "-ERR unknown command 'a b'\r\n" },
  { name: 'integer', write: (w) => w.integer(42), resp2: ':42\r\n', resp3: ':42\r\n' },
  { name: 'negative integer', write: (w) => w.integer(-7), resp2: ':-7\r\n', resp3: ':-7\r\n' },
  { name: 'bigint integer', write: (w) => w.integer(18446744073709551615n),
    resp2: ':18446744073709551615\r\n', resp3: ':18446744073709551615\r\n' },
  { name: 'bulk', write: (w) => w.bulk('hello'), resp2: '$5\r\nhello\r\n', resp3: '$5\r\nhello\r\n' },
  { name: 'empty bulk', write: (w) => w.bulk(''), resp2: '$0\r\n\r\n', resp3: '$0\r\n\r\n' },
  { name: 'binary bulk', write: (w) => w.bulk('\r\n\x00\xff'), resp2: '$4\r\n\r\n\x00\xff\r\n', resp3: '$4\r\n\r\n\x00\xff\r\n' },
  { name: 'bulkOrNull with a value', write: (w) => w.bulkOrNull('v'), resp2: '$1\r\nv\r\n', resp3: '$1\r\nv\r\n' },
  { name: 'bulkOrNull with null', write: (w) => w.bulkOrNull(null), resp2: '$-1\r\n', resp3: '_\r\n' },
  { name: 'bulkOrNull with undefined', write: (w) => w.bulkOrNull(undefined), resp2: '$-1\r\n', resp3: '_\r\n' },
  { name: 'nullBulk', write: (w) => w.nullBulk(), resp2: '$-1\r\n', resp3: '_\r\n' },
  { name: 'nullArray', write: (w) => w.nullArray(), resp2: '*-1\r\n', resp3: '_\r\n' },
  { name: 'array', write: (w) => w.array(3), resp2: '*3\r\n', resp3: '*3\r\n' },
  { name: 'empty array', write: (w) => w.array(0), resp2: '*0\r\n', resp3: '*0\r\n' },
  { name: 'map', write: (w) => w.map(2), resp2: '*4\r\n', resp3: '%2\r\n' },
  { name: 'set', write: (w) => w.set(2), resp2: '*2\r\n', resp3: '~2\r\n' },
  { name: 'push', write: (w) => w.push(3), resp2: '*3\r\n', resp3: '>3\r\n' },
  { name: 'double', write: (w) => w.double(1.5), resp2: '$3\r\n1.5\r\n', resp3: ',1.5\r\n' },
  { name: 'boolean true', write: (w) => w.boolean(true), resp2: ':1\r\n', resp3: '#t\r\n' },
  { name: 'boolean false', write: (w) => w.boolean(false), resp2: ':0\r\n', resp3: '#f\r\n' },
  { name: 'verbatim', write: (w) => w.verbatim('txt', 'Some string'),
    resp2: '$11\r\nSome string\r\n', resp3: '=15\r\ntxt:Some string\r\n' },
  { name: 'bigNumber', write: (w) => w.bigNumber(-3492890328409238509324850943850943825024385n),
    resp2: '$44\r\n-3492890328409238509324850943850943825024385\r\n', resp3: '(-3492890328409238509324850943850943825024385\r\n' },
  { name: 'raw', write: (w) => w.raw('+PONG\r\n'), resp2: '+PONG\r\n', resp3: '+PONG\r\n' },
  { name: 'a nested reply', write: (w) => {
    w.map(1);
    w.bulk('k');
    w.array(2);
    w.integer(1);
    w.nullBulk();
  }, resp2: '*2\r\n$1\r\nk\r\n*2\r\n:1\r\n$-1\r\n', resp3: '%1\r\n$1\r\nk\r\n*2\r\n:1\r\n_\r\n' },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    for (const proto of [2, 3] as const) {
      const w = new ReplyWriter(proto);
      c.write(w);
      const expected = proto === 2 ? c.resp2 : c.resp3;
      t.equal(w.length, expected.length, `RESP${proto} length`);
      t.equal(w.take(), expected, `RESP${proto} bytes`);
    }
  });
}

t.test('doubles are formatted like Redis 7.2 d2string()', async (t) => {
  const table: [number, string][] = [
    [1.5, '1.5'], [0.1, '0.1'], [-2.25, '-2.25'], [3.0, '3'], [-42, '-42'], [0.1 + 0.2, '0.30000000000000004'],
    [1e300, '1e+300'], [-1e300, '-1e+300'], [1.7976931348623157e308, '1.7976931348623157e+308'], [5e-324, '5e-324'],
    [1e-6, '0.000001'], [1e-7, '1e-7'], [1.25e-10, '1.25e-10'], [123456789012.5, '123456789012.5'],
    [1e17, '100000000000000000'], [2 ** 62, '4611686018427387904'], [-(2 ** 62), '-4611686018427387904'],
    [4.7e18, '4.7e+18'], [1e21, '1e+21'], [2 ** 63 * 0.75, '6917529027641082000'],
    [0, '0'], [-0, '-0'], [Infinity, 'inf'], [-Infinity, '-inf'], [NaN, 'nan'],
  ];
  for (const [x, text] of table) t.equal(formatDouble(x), text, String(x));
  const w = new ReplyWriter(3);
  for (const x of [-0, Infinity, -Infinity, NaN, 3.0]) w.double(x);
  t.equal(w.take(), ',-0\r\n,inf\r\n,-inf\r\n,nan\r\n,3\r\n');
  w.proto = 2;
  w.double(Infinity);
  w.double(1e300);
  t.equal(w.take(), '$3\r\ninf\r\n$6\r\n1e+300\r\n', 'proto can be switched (HELLO 2)');
});

t.test('doubles round-trip through their text', async (t) => {
  for (const x of [Math.PI, 1 / 3, 2 / 3e10, 1e-300, 123.456e200]) {
    t.equal(Number(formatDouble(x)), x, String(x));
  }
});

t.test('take() returns everything written and starts over', async (t) => {
  const w = new ReplyWriter();
  t.equal(w.proto, 2, 'RESP2 by default');
  w.simple('OK');
  w.integer(1);
  t.equal(w.length, 9);
  t.equal(w.take(), '+OK\r\n:1\r\n');
  t.equal(w.length, 0);
  t.equal(w.take(), '');
});

t.test('UTF-8 helpers round-trip and produce one char per byte', async (t) => {
  for (const text of ['', 'plain ascii', 'héllo wörld', 'ключ', '锁', 'emoji 🔒 lock', '\u0000\u007f\u0080\uffff']) {
    const bin = fromUtf8(text);
    t.equal(bin.length, Buffer.byteLength(text, 'utf8'), `${JSON.stringify(text)} length in bytes`);
    t.equal(Buffer.from(bin, 'latin1').toString('utf8'), text, 'bytes are the UTF-8 encoding');
    t.equal(toUtf8(bin), text, 'round trip');
  }
  const w = new ReplyWriter();
  w.bulk(fromUtf8('é'));
  t.equal(w.take(), '$2\r\n\xc3\xa9\r\n', 'a bulk counts bytes, not characters');
});
