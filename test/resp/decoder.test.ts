import t from 'tap';
import { constants } from 'node:buffer';
import { DEFAULT_DECODER_LIMITS, ProtocolError, RequestDecoder, type DecoderLimits } from '../../resp/decoder.js';

/** What a stream decodes to: its commands, then the protocol error that ended it, if any. */
interface Decoded {
  commands: string[][];
  error?: string;
}

interface Case {
  name: string;
  /** A binary string: one char per byte. */
  input: string;
  limits?: Partial<DecoderLimits>;
  commands: string[][];
  error?: string;
}

/** Feeds `input` in chunks of `chunkBytes`, draining next() after every push like a connection does. */
function decode(input: string, chunkBytes: number, limits?: Partial<DecoderLimits>): Decoded {
  const decoder = new RequestDecoder(limits);
  const bytes = Buffer.from(input, 'latin1');
  const commands: string[][] = [];
  for (let at = 0; at < bytes.length || at === 0; at += chunkBytes) {
    decoder.push(bytes.subarray(at, at + chunkBytes));
    for (let result = decoder.next(); result !== null; result = decoder.next()) {
      if (result instanceof ProtocolError) return { commands, error: result.message };
      commands.push(result);
    }
  }
  return { commands };
}

const big = (n: number): string => 'x'.repeat(n);
const bulk = (s: string): string => `$${s.length}\r\n${s}\r\n`;
const multibulk = (...args: string[]): string => `*${args.length}\r\n${args.map(bulk).join('')}`;
const allBytes = Array.from({ length: 256 }, (_, i) => String.fromCharCode(i)).join('');

const cases: Case[] = [
  // Multibulk
  { name: 'one multibulk command', input: '*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n', commands: [['GET', 'key']] },
  { name: 'several commands in one chunk', input: multibulk('PING') + multibulk('SET', 'k', 'v') + multibulk('GET', 'k'),
    commands: [['PING'], ['SET', 'k', 'v'], ['GET', 'k']] },
  { name: 'empty bulk argument', input: '*2\r\n$4\r\nECHO\r\n$0\r\n\r\n', commands: [['ECHO', '']] },
  { name: 'payload holding CRLF, * and $', input: multibulk('SET', 'k', 'a\r\n*1\r\n$3\r\nb\r\n'),
    commands: [['SET', 'k', 'a\r\n*1\r\n$3\r\nb\r\n']] },
  { name: 'all 256 byte values survive as latin1 chars', input: multibulk('SET', allBytes, allBytes),
    commands: [['SET', allBytes, allBytes]] },
  { name: 'large bulk', input: multibulk('SET', 'k', big(200_000)), commands: [['SET', 'k', big(200_000)]] },
  { name: '*0 and *-1 are skipped silently', input: '*0\r\n*-1\r\n*-5\r\n' + multibulk('PING'), commands: [['PING']] },
  { name: 'half-sent command waits', input: '*2\r\n$3\r\nGET\r\n$3\r\nke', commands: [] },
  { name: 'count line without its LF waits', input: '*1\r', commands: [] },
  { name: 'Redis skips the byte after \\r in headers and after payloads unchecked',
    input: '*1\rX$4\rYPINGzz', commands: [['PING']] },
  { name: 'count line of 64 KiB exactly is still allowed', input: '*' + '1'.repeat(65535), commands: [] },
  { name: 'inline after multibulk and back', input: multibulk('PING') + 'ECHO hi\r\n' + multibulk('GET', 'k'),
    commands: [['PING'], ['ECHO', 'hi'], ['GET', 'k']] },

  // Inline
  { name: 'inline command', input: 'SET key value\r\n', commands: [['SET', 'key', 'value']] },
  { name: 'inline with bare LF and extra blanks', input: '  GET \t key  \n', commands: [['GET', 'key']] },
  { name: 'empty and blank inline lines are skipped', input: '\r\n\n   \r\nPING\r\n', commands: [['PING']] },
  { name: 'inline double quotes and escapes',
    input: 'SET "a b" "\\n\\r\\t\\b\\a\\\\\\"\\x41\\x4a\\xzz\\q"\r\n',
    commands: [['SET', 'a b', '\n\r\t\b\x07\\"AJxzzq']] },
  { name: 'inline \\xHH yields high bytes', input: 'SET k "\\xff\\x00\\xC3"\r\n', commands: [['SET', 'k', '\xff\x00\xc3']] },
  { name: 'inline single quotes escape only \\\'', input: "SET 'it\\'s' 'a\\nb'\r\n", commands: [['SET', "it's", 'a\\nb']] },
  { name: 'quotes inside a word join it', input: 'SET k ab"c d"\r\n', commands: [['SET', 'k', 'abc d']] },
  { name: 'empty quoted argument', input: 'SET k ""\r\n', commands: [['SET', 'k', '']] },
  { name: 'inline high bytes pass through', input: 'SET k \xe9\xff\r\n', commands: [['SET', 'k', '\xe9\xff']] },
  { name: 'vertical tab separates only between words', input: '\x0bSET k a\x0bb\r\n', commands: [['SET', 'k', 'a\x0bb']] },
  { name: 'CR inside an inline line separates words', input: 'SET k\rv\r\n', commands: [['SET', 'k', 'v']] },
  { name: 'inline line of maxInlineBytes is accepted', input: big(65536) + '\n', commands: [[big(65536)]] },
  { name: 'incomplete inline line waits', input: 'PING', commands: [] },

  // Protocol errors
  { name: 'count not a number', input: '*x\r\n', commands: [], error: 'invalid multibulk length' },
  { name: 'count with leading zero', input: '*01\r\n', commands: [], error: 'invalid multibulk length' },
  { name: 'count "-0"', input: '*-0\r\n', commands: [], error: 'invalid multibulk length' },
  { name: 'empty count', input: '*\r\n', commands: [], error: 'invalid multibulk length' },
  { name: 'count above INT_MAX', input: '*2147483648\r\n', limits: { maxArgs: 2 ** 40 }, commands: [],
    error: 'invalid multibulk length' },
  { name: 'count over 64-bit', input: '*99999999999999999999\r\n', commands: [], error: 'invalid multibulk length' },
  { name: 'count of LLONG_MAX', input: '*9223372036854775807\r\n', commands: [], error: 'invalid multibulk length' },
  { name: 'count just under LLONG_MIN', input: '*-9223372036854775809\r\n', commands: [], error: 'invalid multibulk length' },
  { name: 'count of LLONG_MIN is a valid number, so an empty command', input: '*-9223372036854775808\r\n' + multibulk('PING'),
    commands: [['PING']] },
  { name: 'count over maxArgs', input: `*${1024 * 1024 + 1}\r\n`, commands: [], error: 'invalid multibulk length' },
  { name: 'count line over 64 KiB without CR', input: '*' + '1'.repeat(65536), commands: [],
    error: 'too big mbulk count string' },
  { name: 'commands before an error still come out', input: multibulk('PING') + '*z\r\n' + multibulk('PING'),
    commands: [['PING']], error: 'invalid multibulk length' },
  { name: 'bulk header without $', input: '*1\r\nx\r\n', commands: [], error: "expected '$', got 'x'" },
  { name: 'bulk header that is an empty line', input: '*1\r\n\r\n', commands: [], error: "expected '$', got ' '" },
  { name: 'header check waits for the line end, as in Redis', input: '*1\r\nx', commands: [] },
  { name: 'negative bulk length', input: '*1\r\n$-5\r\n', commands: [], error: 'invalid bulk length' },
  { name: '$-1 is not a request null', input: '*1\r\n$-1\r\n', commands: [], error: 'invalid bulk length' },
  { name: 'bulk length not a number', input: '*1\r\n$1x\r\n', commands: [], error: 'invalid bulk length' },
  { name: 'bulk over maxBulkBytes', input: `*1\r\n$${512 * 1024 * 1024 + 1}\r\n`, commands: [], error: 'invalid bulk length' },
  { name: 'bulk over the longest JS string', input: `*1\r\n$${constants.MAX_STRING_LENGTH + 1}\r\n`, commands: [],
    error: 'invalid bulk length' },
  { name: 'bulk of the longest JS string waits for its payload', input: `*1\r\n$${constants.MAX_STRING_LENGTH}\r\n`,
    commands: [] },
  { name: 'bulk of custom maxBulkBytes waits for its payload', input: '*1\r\n$10\r\n', limits: { maxBulkBytes: 10 },
    commands: [] },
  { name: 'bulk count line over 64 KiB', input: '*1\r\n$' + '1'.repeat(65536), commands: [],
    error: 'too big bulk count string' },
  { name: 'inline line over 64 KiB', input: big(65537), commands: [], error: 'too big inline request' },
  { name: 'inline line over 64 KiB even when its LF came along', input: big(65537) + '\n', commands: [],
    error: 'too big inline request' },
  { name: 'the CR counts towards the inline limit', input: big(65536) + '\r\n', commands: [], error: 'too big inline request' },
  { name: 'unterminated double quote', input: 'SET k "abc\r\n', commands: [], error: 'unbalanced quotes in request' },
  { name: 'unterminated single quote', input: "SET k 'abc\r\n", commands: [], error: 'unbalanced quotes in request' },
  { name: 'closing quote followed by a letter', input: 'SET "k"v\r\n', commands: [], error: 'unbalanced quotes in request' },
  { name: 'backslash at the end of a quote', input: 'SET k "abc\\\r\n', commands: [], error: 'unbalanced quotes in request' },

  // Custom limits
  { name: 'custom maxArgs', input: multibulk('A', 'B', 'C') + multibulk('A', 'B', 'C', 'D'), limits: { maxArgs: 3 },
    commands: [['A', 'B', 'C']], error: 'invalid multibulk length' },
  { name: 'custom maxBulkBytes', input: multibulk(big(10)) + multibulk(big(11)), limits: { maxBulkBytes: 10 },
    commands: [[big(10)]], error: 'invalid bulk length' },
  { name: 'custom maxInlineBytes', input: 'PING 123\r\nPING 1234\r\n', limits: { maxInlineBytes: 9 },
    commands: [['PING', '123']], error: 'too big inline request' },
  { name: 'custom maxInlineBytes bounds header lines too', input: '*1\r\n$0000000001', limits: { maxInlineBytes: 8 },
    commands: [], error: 'too big bulk count string' },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const expected: Decoded = c.error === undefined ? { commands: c.commands } : { commands: c.commands, error: c.error };
    t.same(decode(c.input, c.input.length + 1, c.limits), expected, 'as one chunk');
    t.same(decode(c.input, 1, c.limits), expected, 'byte by byte');
  });
}

t.test('a long mixed pipeline decodes the same in every chunk size from 1 to 100 bytes', async (t) => {
  const parts: string[] = [];
  const expected: string[][] = [];
  for (let i = 0; i < 300; i++) {
    const value = 'v'.repeat(i % 40) + '\r\n' + String(i);
    if (i % 3 === 0) {
      parts.push(`SET k${i} "${value.replace(/\r\n/, '\\r\\n')}"\r\n`);
    } else {
      parts.push(multibulk('SET', `k${i}`, value));
    }
    expected.push(['SET', `k${i}`, value]);
  }
  const input = parts.join('');
  for (let size = 1; size <= 100; size++) {
    const decoded = decode(input, size);
    if (decoded.commands.length !== expected.length || decoded.error !== undefined) t.fail(`chunks of ${size}`);
    else t.same(decoded.commands, expected, `chunks of ${size}`);
  }
});

t.test('a long inline pipeline decodes the same in large chunks', async (t) => {
  const lines = Array.from({ length: 2000 }, (_, i) => `SET key:${i} ${'v'.repeat(1 + (i % 50))}\r\n`);
  const expected = lines.map((_, i) => ['SET', `key:${i}`, 'v'.repeat(1 + (i % 50))]);
  const input = lines.join('');
  for (const size of [1000, 4999, 10007, 65536]) t.same(decode(input, size).commands, expected, `chunks of ${size}`);
});

t.test('a half-sent bulk returns null until the rest arrives', async (t) => {
  const decoder = new RequestDecoder();
  decoder.push(Buffer.from('*2\r\n$3\r\nGET\r\n$5\r\nab'));
  t.equal(decoder.next(), null);
  decoder.push(Buffer.from('c'));
  t.equal(decoder.next(), null);
  decoder.push(Buffer.from('de\r'));
  t.equal(decoder.next(), null, 'payload complete but its trailing CRLF is not');
  decoder.push(Buffer.from('\n'));
  t.same(decoder.next(), ['GET', 'abcde']);
  t.equal(decoder.next(), null);
});

t.test('after a protocol error the decoder keeps returning it', async (t) => {
  const decoder = new RequestDecoder();
  decoder.push(Buffer.from('*1\r\n$x\r\n'));
  const error = decoder.next();
  t.ok(error instanceof ProtocolError);
  t.equal((error as ProtocolError).message, 'invalid bulk length');
  decoder.push(Buffer.from(multibulk('PING')));
  t.equal(decoder.next(), error);
  t.equal(decoder.next(), error);
  t.equal(decoder.bufferedBytes, 0, 'a dead decoder holds nothing');
});

t.test('bufferedBytes counts every byte not yet returned as a command', async (t) => {
  const decoder = new RequestDecoder();
  const first = multibulk('SET', 'k', 'v');
  const second = multibulk('GET', 'k');
  decoder.push(Buffer.from(first + second.slice(0, 10)));
  t.equal(decoder.bufferedBytes, first.length + 10);
  t.same(decoder.next(), ['SET', 'k', 'v']);
  t.equal(decoder.bufferedBytes, 10);
  t.equal(decoder.next(), null);
  t.equal(decoder.bufferedBytes, 10, 'a partly parsed command still counts');
  decoder.push(Buffer.from(second.slice(10, 15)));
  decoder.push(Buffer.from(second.slice(15)));
  t.equal(decoder.bufferedBytes, second.length);
  t.same(decoder.next(), ['GET', 'k']);
  t.equal(decoder.bufferedBytes, 0);
  t.equal(decoder.next(), null);
});

t.test('a blocked client: pushes without next() keep bytes buffered, next() resumes them in order', async (t) => {
  const decoder = new RequestDecoder();
  const stream = multibulk('KLOCK', 'r', 'o', '100', 'WAIT', '1000') + multibulk('PING') + 'ECHO x\r\n' + multibulk('SET', 'k', big(70_000));
  const bytes = Buffer.from(stream, 'latin1');
  for (let at = 0; at < bytes.length; at += 7) decoder.push(bytes.subarray(at, at + 7));
  t.equal(decoder.bufferedBytes, bytes.length);
  t.same(decoder.next(), ['KLOCK', 'r', 'o', '100', 'WAIT', '1000']);
  t.equal(decoder.lastCommandInline, false);
  t.same(decoder.next(), ['PING']);
  t.same(decoder.next(), ['ECHO', 'x']);
  t.equal(decoder.lastCommandInline, true);
  t.same(decoder.next(), ['SET', 'k', big(70_000)]);
  t.equal(decoder.lastCommandInline, false);
  t.equal(decoder.next(), null);
  t.equal(decoder.bufferedBytes, 0);
});

t.test('a huge chunk behind a split header is not needed whole to parse the header', async (t) => {
  const decoder = new RequestDecoder();
  const payload = big(3_000_000);
  decoder.push(Buffer.from('*2\r\n$3\r\nSET\r\n$300'));
  t.equal(decoder.next(), null);
  decoder.push(Buffer.from(`0000\r\n${payload}\r\n`));
  t.same(decoder.next(), ['SET', payload]);
});

t.test('limits default to Redis values and can be overridden one at a time', async (t) => {
  t.same(DEFAULT_DECODER_LIMITS, { maxBulkBytes: 512 * 1024 * 1024, maxArgs: 1024 * 1024, maxInlineBytes: 64 * 1024 });
  const decoder = new RequestDecoder({ maxArgs: 1 });
  decoder.push(Buffer.from(multibulk(big(1000))));
  t.same(decoder.next(), [big(1000)], 'other limits keep their defaults');
});

t.test('unauthenticated clients are capped at 10 arguments of 16 KiB', async (t) => {
  const cases: [string, string[] | string][] = [
    [multibulk(...Array.from({ length: 10 }, () => 'a')), Array.from({ length: 10 }, () => 'a')],
    [multibulk(...Array.from({ length: 11 }, () => 'a')), 'unauthenticated multibulk length'],
    [multibulk('SET', 'k', big(16384)), ['SET', 'k', big(16384)]],
    [multibulk('SET', 'k', big(16385)), 'unauthenticated bulk length'],
  ];
  for (const [input, expected] of cases) {
    const decoder = new RequestDecoder();
    decoder.authRequired = true;
    decoder.push(Buffer.from(input));
    const got = decoder.next();
    t.same(got instanceof ProtocolError ? got.message : got, expected);
  }
});
