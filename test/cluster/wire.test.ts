import t, { type Test } from 'tap';
import type { Entry, Message, MessageType, NodeId } from '../../raft/types.js';
import {
  BATCH_OVERHEAD_BYTES_MAX, FrameDecoder, NONCE_BYTES, WIRE_VERSION, WireError, batchFrame, decodeFrameBody, encodeFrame, encodeItem,
  frameQueue, lazyFrameSize, type Frame, type FrameKind, type GroupMessage, type LazyFrame,
} from '../../src/cluster/wire.js';
import { mulberry32 } from '../helpers/random.js';

const TYPES: MessageType[] = [
  'MsgPreVote', 'MsgPreVoteResp', 'MsgVote', 'MsgVoteResp', 'MsgApp', 'MsgAppResp', 'MsgHeartbeat',
  'MsgHeartbeatResp', 'MsgSnap', 'MsgTimeoutNow', 'MsgReadIndex', 'MsgReadIndexResp', 'MsgTransferLeader',
];
const EDGE_NUMBERS = [0, 1, 127, 128, 16383, 16384, 2 ** 31, 2 ** 32, 2 ** 49, Number.MAX_SAFE_INTEGER];
const IDS: NodeId[] = ['n1', 'n2', 'node-três', '', 'x'.repeat(255), '節点'];

function generator(seed: number) {
  const rnd = mulberry32(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const num = () => (rnd() < 0.3 ? pick(EDGE_NUMBERS) : int(rnd() < 0.5 ? 1000 : 2 ** 40));
  const bool = () => rnd() < 0.5;
  const bytes = () => {
    const b = new Uint8Array(rnd() < 0.2 ? 0 : int(rnd() < 0.9 ? 40 : 5000));
    for (let i = 0; i < b.length; i++) b[i] = int(256);
    return b;
  };
  const ids = () => Array.from({ length: int(5) }, () => pick(IDS));
  const entry = (): Entry => ({ term: num(), index: num(), type: pick(['normal', 'noop', 'conf'] as const), data: bytes() });
  const message = (type: MessageType): Message => {
    const base = { from: pick(IDS), to: pick(IDS), term: num() };
    switch (type) {
      case 'MsgPreVote': return { type, ...base, lastLogIndex: num(), lastLogTerm: num() };
      case 'MsgVote': return { type, ...base, lastLogIndex: num(), lastLogTerm: num(), transfer: bool() };
      case 'MsgPreVoteResp': case 'MsgVoteResp': return { type, ...base, reject: bool() };
      case 'MsgApp': return { type, ...base, index: num(), logTerm: num(), commit: num(), entries: Array.from({ length: int(6) }, entry) };
      case 'MsgAppResp': return { type, ...base, index: num(), reject: bool(), rejectHint: num(), logTerm: num() };
      case 'MsgHeartbeat': return { type, ...base, commit: num(), round: num(), tick: num() };
      case 'MsgHeartbeatResp': return { type, ...base, round: num(), tick: num() };
      case 'MsgSnap':
        return { type, ...base, snapshot: { meta: { index: num(), term: num(), conf: { voters: ids(), learners: ids() } }, data: bytes() } };
      case 'MsgTimeoutNow': return { type, ...base };
      case 'MsgReadIndex': return { type, ...base, ctx: bytes() };
      case 'MsgReadIndexResp': return { type, ...base, index: num(), ctx: bytes() };
      case 'MsgTransferLeader': return { type, ...base, transferee: pick(IDS) };
    }
  };
  const batch = (): GroupMessage[] => Array.from({ length: int(8) }, () => ({ group: pick([0, 1, 7, 300, 2 ** 31]), message: message(pick(TYPES)) }));
  const nonce = () => Uint8Array.from({ length: NONCE_BYTES }, () => int(256));
  return { rnd, int, pick, message, batch, nonce };
}

/** Decodes a stream as one chunk, byte by byte and in chunks of random sizes; all must give the same frames. */
function decodeBoth(t: Test, bytes: Buffer): Frame[] {
  const whole = new FrameDecoder().push(bytes);
  const decoder = new FrameDecoder();
  const split: Frame[] = [];
  for (let i = 0; i < bytes.length; i++) split.push(...decoder.push(bytes.subarray(i, i + 1)));
  t.same(split, whole, 'byte by byte gives the same frames as one chunk');
  t.equal(decoder.bufferedBytes, 0);
  const rnd = mulberry32(bytes.length);
  const chunked = new FrameDecoder();
  const pieces: Frame[] = [];
  for (let i = 0; i < bytes.length;) {
    const size = 1 + Math.floor(rnd() * 40);
    pieces.push(...chunked.push(bytes.subarray(i, i + size)));
    i += size;
  }
  t.same(pieces, whole, 'chunks of 1 to 40 bytes give the same frames');
  t.equal(chunked.bufferedBytes, 0);
  return whole;
}

t.test('every message type round-trips with random field values', async (t) => {
  for (let seed = 1; seed <= 40; seed++) {
    const g = generator(seed);
    for (const type of TYPES) {
      const item = { group: g.pick([0, 5, 2 ** 32 - 1]), message: g.message(type) };
      const [frame] = new FrameDecoder().push(encodeFrame({ kind: 'batch', batch: [item] }));
      if (!t.same(frame, { kind: 'batch', batch: [item] }, `${type} seed ${seed}`)) return;
    }
  }
});

t.test('batches of mixed groups and types round-trip, one chunk and byte by byte', async (t) => {
  const g = generator(7);
  const frames: Frame[] = Array.from({ length: 12 }, () => ({ kind: 'batch', batch: g.batch() }));
  frames.push({ kind: 'batch', batch: [] });
  const decoded = decodeBoth(t, Buffer.concat(frames.map(encodeFrame)));
  t.same(decoded, frames);
});

t.test('decoded bytes fields are copies, not views of the receive buffer', async (t) => {
  const message: Message = { type: 'MsgReadIndex', from: 'n1', to: 'n2', term: 3, ctx: Uint8Array.of(1, 2, 3) };
  const bytes = encodeFrame({ kind: 'batch', batch: [{ group: 0, message }] });
  const [frame] = new FrameDecoder().push(bytes);
  bytes.fill(0);
  t.same(frame, { kind: 'batch', batch: [{ group: 0, message }] });
});

t.test('batchFrame over pre-encoded items equals encodeFrame of the batch', async (t) => {
  const g = generator(11);
  const batch = g.batch();
  const items = batch.map(({ group, message }) => encodeItem(group, message));
  t.same(batchFrame(items, items.reduce((n, i) => n + i.length, 0)), encodeFrame({ kind: 'batch', batch }));
  t.throws(() => batchFrame(items, 1), { code: 'RAFTLOCK_ERR_WIRE_UNENCODABLE' });
});

t.test('node ids decode right however many there are and whichever bytes they share', async (t) => {
  // The decoder keeps the first short strings it decodes and finds them again by their bytes:
  // ids of equal length differing in one byte, ids past what it keeps, UTF-8 ids.
  const ids = [
    ...Array.from({ length: 40 }, (_, i) => `n${i}`), 'nA', 'nB', 'node-é', 'node-ü', 'こんにちは', 'n1 ', ' n1', 'x'.repeat(64), 'x'.repeat(65),
  ];
  const batch: GroupMessage[] = [];
  for (let i = 0; i < ids.length; i++) {
    const from = ids[i]!;
    const to = ids[(i * 7 + 3) % ids.length]!;
    batch.push({ group: i, message: { type: 'MsgHeartbeatResp', from, to, term: i + 1, round: i, tick: 0 } });
  }
  const decoder = new FrameDecoder();
  for (let pass = 0; pass < 2; pass++) {
    const [frame] = decoder.push(encodeFrame({ kind: 'batch', batch }));
    t.same(frame, { kind: 'batch', batch }, `pass ${pass + 1}`);
  }
});

t.test('handshake frames round-trip', async (t) => {
  const g = generator(3);
  const frames: Frame[] = [
    { kind: 'hello', nodeId: 'n1', to: 'n2', auth: true, nonce: g.nonce(), incarnation: '9f86d081884c7d659a2feaa0' },
    { kind: 'hello', nodeId: '節点', to: '', auth: false, nonce: g.nonce(), incarnation: '' },
    { kind: 'challenge', nodeId: 'n2', auth: true, nonce: g.nonce(), proof: g.nonce(), incarnation: 'c0ffee' },
    { kind: 'challenge', nodeId: 'n2', auth: false, nonce: g.nonce(), proof: new Uint8Array(0), incarnation: '' },
    { kind: 'auth', proof: g.nonce() },
    { kind: 'auth', proof: new Uint8Array(0) },
    { kind: 'ready' },
    { kind: 'refuse', reason: 'unknown node id "n9"' },
  ];
  t.same(decodeBoth(t, Buffer.concat(frames.map(encodeFrame))), frames);
});

/** Every byte value, as a latin1 ("binary") string. */
const ALL_BYTES = String.fromCharCode(...Array.from({ length: 256 }, (_, i) => i));

const FORWARDING_FRAMES: Frame[] = [
  { kind: 'request', id: 0, proto: 2, argv: ['PING'] },
  { kind: 'request', id: 2 ** 32 + 5, proto: 3, argv: ['SET', ALL_BYTES, '', 'x'.repeat(300), '\r\n'] },
  { kind: 'request', id: 9, proto: 2, argv: ['KLOCK', 'r', 'o', '1000'], trace: { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', flags: 1 } },
  { kind: 'response', id: 7, reply: `$256\r\n${ALL_BYTES}\r\n` },
  { kind: 'response', id: Number.MAX_SAFE_INTEGER, reply: '' },
  { kind: 'cancel', id: 0 },
  { kind: 'cancel', id: 128 },
  { kind: 'meta', respHost: '127.0.0.1', respPort: 6379 },
  { kind: 'meta', respHost: 'nœud-1.example', respPort: 65535 },
  { kind: 'meta', respHost: '', respPort: 0 },
];

t.test('request, response, cancel and meta frames round-trip, every byte value included', async (t) => {
  t.same(decodeBoth(t, Buffer.concat(FORWARDING_FRAMES.map(encodeFrame))), FORWARDING_FRAMES);
  const bytes = encodeFrame({ kind: 'request', id: 1, proto: 2, argv: [ALL_BYTES] });
  t.ok(bytes.includes(Buffer.from(Array.from({ length: 256 }, (_, i) => i))), 'an argument travels as its bytes, one per character');
  const [frame] = new FrameDecoder().push(bytes);
  bytes.fill(0);
  t.same(frame, { kind: 'request', id: 1, proto: 2, argv: [ALL_BYTES] }, 'decoded strings do not depend on the receive buffer');
});

t.test('forwarding frames the wire cannot carry are refused when encoding', async (t) => {
  const cases: [string, Frame][] = [
    ['an argument beyond latin1', { kind: 'request', id: 1, proto: 2, argv: ['GET', 'k\u0100'] }],
    ['an emoji argument', { kind: 'request', id: 1, proto: 2, argv: ['😀'] }],
    ['a reply beyond latin1', { kind: 'response', id: 1, reply: '+\u20ac\r\n' }],
    ['protocol 1', { kind: 'request', id: 1, proto: 1 as 2, argv: ['PING'] }],
    ['no arguments', { kind: 'request', id: 1, proto: 2, argv: [] }],
    ['a negative id', { kind: 'cancel', id: -1 }],
    ['port 65536', { kind: 'meta', respHost: 'h', respPort: 65536 }],
    ['a fractional port', { kind: 'meta', respHost: 'h', respPort: 1.5 }],
    ['a host over 255 bytes', { kind: 'meta', respHost: 'h'.repeat(256), respPort: 1 }],
  ];
  for (const [what, frame] of cases) t.throws(() => encodeFrame(frame), { code: 'RAFTLOCK_ERR_WIRE_UNENCODABLE' }, what);
});

t.test('malformed forwarding frames are rejected with a clear error', async (t) => {
  const [request, response, cancel, meta] = [7, 8, 9, 10];
  const cases: [string, Uint8Array, RegExp][] = [
    ['protocol 4', frameOf(Buffer.from([WIRE_VERSION, request, 1, 4, 1, 1, 97])), /proto 4 is neither 2 nor 3/],
    ['no arguments', frameOf(Buffer.from([WIRE_VERSION, request, 1, 2, 0])), /a request without arguments/],
    ['argument count beyond the bytes left', frameOf(Buffer.from([WIRE_VERSION, request, 1, 2, 5, 0, 0])), /argument count 5 exceeds the 2 bytes left/],
    ['argument longer than the frame', frameOf(Buffer.from([WIRE_VERSION, request, 1, 2, 1, 9, 97])), /argument of 9 bytes is truncated/],
    ['reply longer than the frame', frameOf(Buffer.from([WIRE_VERSION, response, 1, 3, 43, 79])), /reply of 3 bytes is truncated/],
    ['cancel with trailing bytes', frameOf(Buffer.from([WIRE_VERSION, cancel, 1, 0])), /1 trailing bytes after cancel/],
    ['port above 65535', frameOf(Buffer.from([WIRE_VERSION, meta, 1, 104, 0x80, 0x80, 0x04])), /RESP port 65536 exceeds 65535/],
    ['host over 255 bytes', frameOf(Buffer.from([WIRE_VERSION, meta, 0x80, 0x02, 104])), /RESP host of 256 bytes exceeds 255/],
    ['host not UTF-8', frameOf(Buffer.from([WIRE_VERSION, meta, 1, 0xff, 1])), /RESP host is not valid UTF-8/],
  ];
  for (const [what, bytes, pattern] of cases) expectMalformed(t, bytes, pattern, what);
  let checked = 0;
  for (const frame of FORWARDING_FRAMES) {
    const body = encodeFrame(frame).subarray(4);
    for (let cut = 2; cut < body.length; cut++) {
      try {
        decodeFrameBody(body.subarray(0, cut));
      } catch (err) {
        if (err instanceof WireError) {
          checked++;
          continue;
        }
        throw err;
      }
      return t.fail(`${frame.kind} cut at ${cut} decoded`);
    }
  }
  t.ok(checked > 500, `${checked} truncations rejected`);
});

t.test('frameQueue lays items and whole frames out in order, items in batch frames within the limit', async (t) => {
  const g = generator(13);
  const frameBytesMax = 2048;
  const items = Array.from({ length: 40 }, (_, i) => ({ group: i, message: g.message('MsgReadIndex') }))
    .filter(({ message }) => encodeItem(0, message).length + BATCH_OVERHEAD_BYTES_MAX <= frameBytesMax);
  const whole: Frame[] = [{ kind: 'request', id: 1, proto: 2, argv: ['A'] }, { kind: 'cancel', id: 2 }, { kind: 'response', id: 3, reply: '+OK\r\n' }];
  // items[0..10), request, cancel, items[10..), response
  const queue = [
    ...items.slice(0, 10).map(({ group, message }) => ({ bytes: encodeItem(group, message), item: true })),
    { bytes: encodeFrame(whole[0]!), item: false },
    { bytes: encodeFrame(whole[1]!), item: false },
    ...items.slice(10).map(({ group, message }) => ({ bytes: encodeItem(group, message), item: true })),
    { bytes: encodeFrame(whole[2]!), item: false },
  ];
  const frames = new FrameDecoder(frameBytesMax).push(frameQueue(queue, frameBytesMax));
  const flat = frames.flatMap((f): (GroupMessage | FrameKind)[] => (f.kind === 'batch' ? f.batch : [f.kind]));
  t.same(flat, [...items.slice(0, 10), 'request', 'cancel', ...items.slice(10), 'response'], 'everything, in queue order');
  t.ok(frames.filter((f) => f.kind === 'batch').length >= 3, 'items split over several batch frames');
  t.same(frameQueue([], frameBytesMax).length, 0);
  t.throws(() => frameQueue([{ bytes: new Uint8Array(frameBytesMax), item: true }], frameBytesMax), { code: 'RAFTLOCK_ERR_WIRE_UNENCODABLE' });
  t.throws(() => frameQueue([{ bytes: new Uint8Array(frameBytesMax + 5), item: false }], frameBytesMax), { code: 'RAFTLOCK_ERR_WIRE_UNENCODABLE' });
});

t.test('lazy request and response frames encode at flush exactly as encodeFrame does', async (t) => {
  const lazy: LazyFrame[] = [
    { kind: 'request', id: 0, proto: 2, argv: ['KLOCK', 'r', 'o', '1000'] },
    { kind: 'request', id: 300, proto: 3, argv: ['SET', 'k', '\xff'.repeat(70), ''] },
    { kind: 'request', id: 301, proto: 2, argv: ['GET', 'k'], trace: { traceId: 'ffffffffffffffffffffffffffffffff', spanId: '0000000000000001', flags: 0 } },
    { kind: 'response', id: 2 ** 40, reply: ':12884901888\r\n' },
    { kind: 'response', id: 1, reply: '$100\r\n' + 'x'.repeat(100) + '\r\n' },
  ];
  for (const frame of lazy) t.equal(lazyFrameSize(frame), encodeFrame(frame).length, `size of ${frame.kind} ${frame.id}`);
  const item = encodeItem(3, { type: 'MsgHeartbeatResp', from: 'n1', to: 'n2', term: 1, round: 0, tick: 0 });
  const queue = [
    { bytes: item, item: true },
    ...lazy.map((frame) => ({ bytes: new Uint8Array(0), item: false, frame, size: lazyFrameSize(frame) })),
    { bytes: item, item: true },
  ];
  const expected = Buffer.concat([frameQueue([queue[0]!], 4096), ...lazy.map((f) => encodeFrame(f)), frameQueue([queue[0]!], 4096)]);
  t.same(frameQueue(queue, 4096), expected, 'byte for byte');
  t.throws(() => lazyFrameSize({ kind: 'request', id: 1, proto: 2, argv: ['GET', '\u0100'] }), { code: 'RAFTLOCK_ERR_WIRE_UNENCODABLE' });
  t.throws(() => lazyFrameSize({ kind: 'request', id: 1, proto: 2, argv: ['x'.repeat(64) + '\u0100'] }), { code: 'RAFTLOCK_ERR_WIRE_UNENCODABLE' });
  t.throws(() => lazyFrameSize({ kind: 'request', id: 1, proto: 2, argv: [] }), { code: 'RAFTLOCK_ERR_WIRE_UNENCODABLE' });
  t.throws(() => lazyFrameSize({ kind: 'request', id: -1, proto: 2, argv: ['PING'] }), { code: 'RAFTLOCK_ERR_WIRE_UNENCODABLE' });
  t.throws(() => lazyFrameSize({ kind: 'request', id: 1, proto: 4 as 2, argv: ['PING'] }), { code: 'RAFTLOCK_ERR_WIRE_UNENCODABLE' });
  const big = { kind: 'response', id: 1, reply: 'x'.repeat(5000) } as const;
  t.throws(() => frameQueue([{ bytes: new Uint8Array(0), item: false, frame: big, size: lazyFrameSize(big) }], 4096), { code: 'RAFTLOCK_ERR_WIRE_UNENCODABLE' });
});

t.test('encoding rejects values the wire cannot carry', async (t) => {
  const base = { type: 'MsgHeartbeatResp', from: 'n1', to: 'n2', round: 0, tick: 0 } as const;
  for (const term of [-1, 1.5, 2 ** 53, NaN]) {
    t.throws(() => encodeItem(0, { ...base, term }), { code: 'RAFTLOCK_ERR_WIRE_UNENCODABLE' }, `term ${term}`);
  }
  t.throws(() => encodeItem(0, { ...base, term: 1, from: 'x'.repeat(256) }), { code: 'RAFTLOCK_ERR_WIRE_UNENCODABLE' }, 'node id over 255 bytes');
  t.throws(() => encodeItem(-1, { ...base, term: 1 }), { code: 'RAFTLOCK_ERR_WIRE_UNENCODABLE' }, 'negative group');
});

/** A frame with a correct length field around the given body. */
function frameOf(body: Uint8Array): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length, 0);
  return Buffer.concat([head, body]);
}

function expectMalformed(t: Test, bytes: Uint8Array, pattern: RegExp, what: string): void {
  let caught: unknown;
  try {
    new FrameDecoder(1 << 20).push(bytes);
  } catch (err) {
    caught = err;
  }
  t.ok(caught instanceof WireError, `${what}: a WireError`);
  t.equal((caught as WireError).code, 'RAFTLOCK_ERR_WIRE_MALFORMED', what);
  t.match((caught as Error).message, pattern, what);
}

t.test('every truncation of a frame body is rejected with a WireError', async (t) => {
  const g = generator(5);
  const frames: Frame[] = [
    ...TYPES.map((type): Frame => ({ kind: 'batch', batch: [{ group: 3, message: g.message(type) }, { group: 4, message: g.message(type) }] })),
    { kind: 'hello', nodeId: 'n1', to: 'n2', auth: true, nonce: g.nonce(), incarnation: '' },
    { kind: 'challenge', nodeId: 'n2', auth: true, nonce: g.nonce(), proof: g.nonce(), incarnation: '' },
    { kind: 'refuse', reason: 'no' },
  ];
  let checked = 0;
  for (const frame of frames) {
    const body = encodeFrame(frame).subarray(4);
    for (let cut = 2; cut < body.length; cut++) {
      let caught: unknown;
      try {
        decodeFrameBody(body.subarray(0, cut));
      } catch (err) {
        caught = err;
      }
      if (!(caught instanceof WireError)) return t.fail(`${frame.kind} cut at ${cut}: ${String(caught)}`);
      checked++;
    }
  }
  t.ok(checked > 500, `${checked} truncations rejected`);
});

t.test('a stream cut short decodes nothing and holds the partial frame', async (t) => {
  const bytes = encodeFrame({ kind: 'batch', batch: generator(9).batch() });
  const decoder = new FrameDecoder();
  t.same(decoder.push(bytes.subarray(0, bytes.length - 1)), []);
  t.equal(decoder.bufferedBytes, bytes.length - 1);
  t.equal(decoder.push(bytes.subarray(bytes.length - 1)).length, 1);
});

t.test('malformed headers and fields are rejected with a clear error', async (t) => {
  const hb = encodeFrame({ kind: 'batch', batch: [{ group: 0, message: { type: 'MsgTimeoutNow', from: 'a', to: 'b', term: 1 } }] }).subarray(4);
  const cases: [string, Uint8Array, RegExp][] = [
    ['length over the limit', Buffer.from([0xff, 0xff, 0xff, 0xff]), /frame length 4294967295 exceeds the limit/],
    ['length shorter than the header', Buffer.from([0, 0, 0, 1, 1]), /shorter than its header/],
    ['unknown version', frameOf(Buffer.from([1, 4])), /unsupported wire version 1 \(this node speaks 2\)/],
    ['unknown frame kind', frameOf(Buffer.from([WIRE_VERSION, 99])), /unknown frame kind 99/],
    ['trailing bytes', frameOf(Buffer.from([WIRE_VERSION, 4, 0])), /1 trailing bytes after ready/],
    ['unknown message type', frameOf(Buffer.from([WIRE_VERSION, 6, 1, 0, 77, 0, 0, 0])), /unknown message type 77/],
    ['batch count beyond the bytes left', frameOf(Buffer.from([WIRE_VERSION, 6, 0xff, 0xff, 0xff, 0x7f])), /batch count \d+ exceeds the 0 bytes left/],
    ['varint over 8 bytes', frameOf(Buffer.from([WIRE_VERSION, 6, ...Array(9).fill(0xff)])), /varint longer than 8 bytes/],
    ['varint above 2^53-1', frameOf(Buffer.from([WIRE_VERSION, 6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])), /exceeds 2\^53-1/],
    ['overlong varint', frameOf(Buffer.from([WIRE_VERSION, 6, 0x81, 0x00])), /overlong varint/],
    ['boolean byte 2', frameOf(Buffer.from([WIRE_VERSION, 6, 1, 0, 2, 1, 97, 1, 98, 1, 2])), /reject is 2, not a boolean/],
    ['invalid UTF-8 node id', frameOf(Buffer.from([WIRE_VERSION, 6, 1, 0, 10, 1, 0xc3, 1, 98, 1])), /from is not valid UTF-8/],
    ['node id over 255 bytes', frameOf(Buffer.from([WIRE_VERSION, 6, 1, 0, 10, 0x80, 0x02, 97, 97])), /from of 256 bytes exceeds 255/],
    ['string longer than the frame', frameOf(Buffer.from([WIRE_VERSION, 6, 1, 0, 10, 9, 97, 97])), /from of 9 bytes is truncated \(2 left\)/],
    ['short nonce', encodeFrame({ kind: 'hello', nodeId: 'a', to: 'b', auth: false, nonce: new Uint8Array(32), incarnation: '' }).subarray(0, 4 + 2 + 2 + 2 + 1 + 1 + 31), /truncated|trailing/],
    ['wrong proof length', frameOf(Buffer.from([WIRE_VERSION, 3, 3, 1, 2, 3])), /proof of 3 bytes, expected 0 or 32/],
    ['unknown entry type', frameOf(Buffer.from([WIRE_VERSION, 6, 1, 0, 5, 1, 97, 1, 98, 1, 0, 0, 0, 1, 1, 1, 9, 0])), /unknown entry type 9/],
  ];
  t.equal(decodeFrameBody(hb).kind, 'batch', 'the reference body decodes');
  for (const [what, bytes, pattern] of cases) {
    if (what === 'short nonce') {
      // Rewrite the length field so the frame is complete but its nonce is one byte short.
      const b = Buffer.from(bytes);
      b.writeUInt32BE(b.length - 4, 0);
      b[4 + 2 + 2 + 2 + 1] = 31;
      expectMalformed(t, b, /nonce of 31 bytes, expected 32/, what);
      continue;
    }
    expectMalformed(t, bytes, pattern, what);
  }
});

t.test('a failed decoder stays failed', async (t) => {
  const decoder = new FrameDecoder();
  t.throws(() => decoder.push(Buffer.from([0, 0, 0, 2, 9, 9])), WireError);
  t.throws(() => decoder.push(encodeFrame({ kind: 'ready' })), /unsupported wire version 9/);
});

t.test('random garbage and mutated frames give frames or a WireError, never another exception', async (t) => {
  const g = generator(21);
  let errors = 0;
  for (let round = 0; round < 3000; round++) {
    let bytes: Buffer;
    if (round % 2 === 0) {
      bytes = Buffer.from(Array.from({ length: g.int(64) }, () => g.int(256)));
      if (round % 4 === 0 && bytes.length >= 6) {
        bytes.writeUInt32BE(bytes.length - 4, 0);
        bytes[4] = WIRE_VERSION;
        bytes[5] = 1 + g.int(10);
      }
    } else {
      bytes = encodeFrame(round % 4 === 1 ? g.pick(FORWARDING_FRAMES) : { kind: 'batch', batch: g.batch() });
      for (let k = 1 + g.int(3); k > 0; k--) bytes[4 + g.int(bytes.length - 4)] = g.int(256);
    }
    try {
      new FrameDecoder(1 << 16).push(bytes);
    } catch (err) {
      if (!(err instanceof WireError)) return t.fail(`round ${round}: ${String(err)} from ${bytes.toString('hex')}`);
      errors++;
    }
  }
  t.ok(errors > 1000, `${errors} inputs rejected, none with a foreign exception`);
});
