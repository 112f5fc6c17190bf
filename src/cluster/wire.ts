/**
 * Binary codec of the peer transport: the frames two raftlock nodes exchange on their cluster port,
 * the Raft messages of every partition that batch frames carry, and the client commands a node
 * forwards to another (request, response, cancel).
 *
 *   frame    u32 length (bytes after this field, at most frameBytesMax) | u8 version (2) | u8 kind | payload
 *   number   unsigned LEB128 varint of a non-negative safe integer (1 to 8 bytes, no overlong forms)
 *   string   varint byte length + UTF-8 (node ids at most NODE_ID_BYTES_MAX bytes)
 *   latin1   varint length + one byte per character (code 0..255): RESP arguments and replies as they
 *            are on the client's socket, arbitrary bytes included
 *   bytes    varint length + raw bytes
 *   boolean  one byte, 0 or 1
 *   batch    varint count, then per item: varint group, u8 message type, from, to, term, the type's fields
 *   request  varint id, u8 proto (2 or 3), varint argument count (at least 1), each argument as latin1
 *   traced request (kind 11): a request whose command is traced: varint id, u8 proto, the W3C trace
 *            context of the sender's span (bytes: 16-byte trace id, bytes: 8-byte span id, u8 flags),
 *            then the arguments as in a request
 *   response varint id, reply as latin1
 *   cancel   varint id
 *   meta     RESP host as string (at most HOST_BYTES_MAX bytes), RESP port as number (at most 65535)
 *   hello    node id, destination id (strings), boolean auth, bytes nonce, then the sender's data
 *            directory incarnation as a string (at most INCARNATION_BYTES_MAX bytes; empty: none)
 *   challenge node id, boolean auth, bytes nonce, bytes proof, then the incarnation as in hello
 *
 * Decoding checks every length against the bytes actually present before it reads or allocates, and
 * reports any malformed input as a WireError (code RAFTLOCK_ERR_WIRE_MALFORMED): the transport closes
 * that one connection. The decoder is push-style and resumes across chunk boundaries.
 */
import type { ConfState, Entry, Message, MessageType, NodeId, Snapshot } from '../../raft/types.js';
import { latin1 } from '../../resp/decoder.js';
import type { TraceParent } from '../trace/trace.js';

/** 2: hello and challenge carry the sender's data directory incarnation. */
export const WIRE_VERSION = 2;

/** Default bound on a frame's length field; a larger frame is refused before it is buffered. */
export const FRAME_BYTES_MAX_DEFAULT = 64 * 1024 * 1024;

export const NODE_ID_BYTES_MAX = 255;
/** Bound on the host name a node announces for its client (RESP) endpoint. */
export const HOST_BYTES_MAX = 255;
/** Handshake nonces are this long; HMAC-SHA256 proofs are this long too. */
export const NONCE_BYTES = 32;
export const PROOF_BYTES = 32;
/** Bound on a data directory incarnation id in a handshake. */
export const INCARNATION_BYTES_MAX = 64;
const REASON_BYTES_MAX = 1024;
const FRAME_HEADER_BYTES = 6;
const VARINT_BYTES_MAX = 8;
/** Bytes a batch frame adds around its items: the header and the item count. */
export const BATCH_OVERHEAD_BYTES_MAX = FRAME_HEADER_BYTES + VARINT_BYTES_MAX;

export type WireErrorCode = 'RAFTLOCK_ERR_WIRE_MALFORMED' | 'RAFTLOCK_ERR_WIRE_UNENCODABLE';

export class WireError extends Error {
  readonly code: WireErrorCode;

  constructor(code: WireErrorCode, message: string) {
    super(message);
    this.name = 'WireError';
    this.code = code;
  }
}

const malformed = (detail: string): WireError => new WireError('RAFTLOCK_ERR_WIRE_MALFORMED', `malformed peer frame: ${detail}`);
const unencodable = (detail: string): WireError => new WireError('RAFTLOCK_ERR_WIRE_UNENCODABLE', `cannot encode peer frame: ${detail}`);

/** One Raft message addressed to one partition's group. */
export interface GroupMessage {
  group: number;
  message: Message;
}

export type Frame =
  /**
   * Dialer → acceptor: who I am, whom I meant to call, whether I hold a secret, my nonce, and which
   * data directory I run on (its incarnation; '' for a node without one).
   */
  | { kind: 'hello'; nodeId: NodeId; to: NodeId; auth: boolean; nonce: Uint8Array; incarnation: string }
  /** Acceptor → dialer: who I am, my nonce, (with a secret) my proof over both nonces, my incarnation. */
  | { kind: 'challenge'; nodeId: NodeId; auth: boolean; nonce: Uint8Array; proof: Uint8Array; incarnation: string }
  /** Dialer → acceptor: the dialer's proof (empty without a secret). */
  | { kind: 'auth'; proof: Uint8Array }
  /** Acceptor → dialer: the link is open; batches may flow both ways. */
  | { kind: 'ready' }
  /** Either side, before closing: why the connection was refused. */
  | { kind: 'refuse'; reason: string }
  | { kind: 'batch'; batch: GroupMessage[] }
  /** Run a client's command (argv in latin1) on the receiving node; answer in RESP protocol `proto`. */
  | { kind: 'request'; id: number; proto: 2 | 3; argv: string[]; trace?: TraceParent }
  /** The RESP reply (latin1) to the request `id` that the other side sent on this connection. */
  | { kind: 'response'; id: number; reply: string }
  /** The requester no longer wants the reply to its request `id`. */
  | { kind: 'cancel'; id: number }
  /** Either side, once the link is open: where clients reach the sender over RESP. */
  | { kind: 'meta'; respHost: string; respPort: number };

export type FrameKind = Frame['kind'];

const KIND_CODES: Record<FrameKind, number> = {
  hello: 1, challenge: 2, auth: 3, ready: 4, refuse: 5, batch: 6, request: 7, response: 8, cancel: 9, meta: 10,
};
const KINDS = invert(KIND_CODES);
/** The code of a request frame that carries trace context. */
const TRACED_REQUEST_CODE = 11;
const TRACE_ID_BYTES = 16;
const SPAN_ID_BYTES = 8;
/** Trace context in a traced request: two length-prefixed ids and the flags. */
const TRACE_CONTEXT_BYTES = 1 + TRACE_ID_BYTES + 1 + SPAN_ID_BYTES + 1;

function kindCode(frame: Frame): number {
  return frame.kind === 'request' && frame.trace !== undefined ? TRACED_REQUEST_CODE : KIND_CODES[frame.kind];
}

function writeTraceContext(w: Writer, trace: TraceParent): void {
  const traceId = Buffer.from(trace.traceId, 'hex');
  const spanId = Buffer.from(trace.spanId, 'hex');
  if (traceId.length !== TRACE_ID_BYTES || spanId.length !== SPAN_ID_BYTES) throw unencodable('trace context ids are not 16 and 8 bytes of hex');
  w.bytes(traceId).bytes(spanId).u8(trace.flags & 0xff);
}

function readTraceContext(r: Reader): TraceParent {
  const traceId = r.bytes('trace id', TRACE_ID_BYTES);
  const spanId = r.bytes('span id', SPAN_ID_BYTES);
  if (traceId.length !== TRACE_ID_BYTES || spanId.length !== SPAN_ID_BYTES) throw malformed('trace context ids are not 16 and 8 bytes');
  return { traceId: Buffer.from(traceId).toString('hex'), spanId: Buffer.from(spanId).toString('hex'), flags: r.u8('trace flags') };
}

const TYPE_CODES: Record<MessageType, number> = {
  MsgPreVote: 1, MsgPreVoteResp: 2, MsgVote: 3, MsgVoteResp: 4, MsgApp: 5, MsgAppResp: 6, MsgHeartbeat: 7,
  MsgHeartbeatResp: 8, MsgSnap: 9, MsgTimeoutNow: 10, MsgReadIndex: 11, MsgReadIndexResp: 12, MsgTransferLeader: 13,
};
const TYPES = invert(TYPE_CODES);

const ENTRY_TYPE_CODES: Record<Entry['type'], number> = { normal: 0, noop: 1, conf: 2 };
const ENTRY_TYPES = invert(ENTRY_TYPE_CODES);

function invert<K extends string>(codes: Record<K, number>): Map<number, K> {
  return new Map(Object.entries(codes).map(([name, code]) => [code as number, name as K]));
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
/** A UTF-16 code unit that does not fit one latin1 byte. */
const BEYOND_LATIN1 = /[\u0100-\uffff]/;
const PORT_MAX = 65535;
/** Strings shorter than this are copied byte by byte in JavaScript. */
const SHORT_STRING = 64;
/** UTF-8 of the short strings written most (node ids, in every message), up to ENCODED_STRINGS_MAX of them. */
const encodedStrings = new Map<string, Buffer>();
const ENCODED_STRINGS_MAX = 256;
const ENCODED_STRING_LENGTH_MAX = 64;

class Writer {
  private buf: Buffer;
  private at = 0;

  constructor(capacity = 256) {
    this.buf = Buffer.allocUnsafe(capacity);
  }

  /** Bytes written so far. */
  get length(): number {
    return this.at;
  }

  /** Starts over; a buffer grown past `keepBytes` is given up for a new one of that size. */
  reset(keepBytes: number): this {
    if (this.buf.length > keepBytes) this.buf = Buffer.allocUnsafe(keepBytes);
    this.at = 0;
    return this;
  }

  u8(n: number): this {
    this.room(1);
    this.buf[this.at++] = n;
    return this;
  }

  varint(n: number): this {
    if (!Number.isSafeInteger(n) || n < 0) throw unencodable(`${n} is not a non-negative safe integer`);
    this.room(VARINT_BYTES_MAX);
    while (n >= 0x80) {
      this.buf[this.at++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    this.buf[this.at++] = n;
    return this;
  }

  bool(b: boolean): this {
    return this.u8(b ? 1 : 0);
  }

  bytes(b: Uint8Array): this {
    this.varint(b.length);
    this.room(b.length);
    this.buf.set(b, this.at);
    this.at += b.length;
    return this;
  }

  str(s: string, bytesMax: number): this {
    let b = s.length <= ENCODED_STRING_LENGTH_MAX ? encodedStrings.get(s) : undefined;
    if (b === undefined) {
      b = Buffer.from(s, 'utf8');
      if (s.length <= ENCODED_STRING_LENGTH_MAX && encodedStrings.size < ENCODED_STRINGS_MAX) encodedStrings.set(s, b);
    }
    if (b.length > bytesMax) throw unencodable(`string of ${b.length} bytes exceeds ${bytesMax}`);
    return this.bytes(b);
  }

  /** One byte per character: a "binary" string, as RESP arguments and replies travel. */
  latin1(s: string): this {
    if (BEYOND_LATIN1.test(s)) throw unencodable('string has a character above U+00FF, not one byte');
    return this.latin1Checked(s);
  }

  /** latin1() for a string known to fit one byte per character (see lazyFrameSize). */
  latin1Checked(s: string): this {
    const n = s.length;
    this.varint(n);
    this.room(n);
    // Short strings: a loop beats a call into the buffer binding.
    if (n < SHORT_STRING) {
      const buf = this.buf;
      let at = this.at;
      for (let i = 0; i < n; i++) buf[at++] = s.charCodeAt(i);
      this.at = at;
    } else {
      this.at += this.buf.write(s, this.at, 'latin1');
    }
    return this;
  }

  /** Appends bytes as they are (no length prefix). */
  raw(b: Uint8Array): this {
    this.room(b.length);
    this.buf.set(b, this.at);
    this.at += b.length;
    return this;
  }

  /** Writes a big-endian u32 at `at`, inside what was written. */
  patchU32(at: number, n: number): void {
    this.buf.writeUInt32BE(n, at);
  }

  /** The bytes written, in a buffer of exactly that length. */
  finish(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.at));
  }

  /** The bytes written, without a copy: the writer must not be used afterwards. */
  view(): Buffer {
    return this.buf.subarray(0, this.at);
  }

  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n));
    this.buf.copy(next, 0, 0, this.at);
    this.buf = next;
  }
}

/**
 * The first short strings decoded (node ids, which every message carries twice, are among the
 * first): found again by comparing bytes, without a view or a decoder call.
 */
const decodedStrings: { bytes: Uint8Array; text: string }[] = [];
const DECODED_STRINGS_MAX = 16;

/** The string of buf[at, at + n) if it was decoded before and kept in decodedStrings. */
function decodedBefore(buf: Buffer, at: number, n: number): string | undefined {
  for (const known of decodedStrings) {
    const bytes = known.bytes;
    if (bytes.length !== n) continue;
    let i = 0;
    while (i < n && buf[at + i] === bytes[i]) i++;
    if (i === n) return known.text;
  }
  return undefined;
}

/** Reads buf[at, limit). */
class Reader {
  private readonly buf: Buffer;

  constructor(buf: Uint8Array, private at = 0, private readonly limit = buf.length) {
    this.buf = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get remaining(): number {
    return this.limit - this.at;
  }

  u8(what: string): number {
    if (this.at >= this.limit) throw malformed(`truncated at ${what}`);
    return this.buf[this.at++]!;
  }

  varint(what: string): number {
    let n = 0;
    let scale = 1;
    for (let i = 0; i < VARINT_BYTES_MAX; i++) {
      const b = this.u8(what);
      n += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) {
        if (b === 0 && i > 0) throw malformed(`overlong varint at ${what}`);
        if (!Number.isSafeInteger(n)) throw malformed(`${what} exceeds 2^53-1`);
        return n;
      }
      scale *= 0x80;
    }
    throw malformed(`varint longer than ${VARINT_BYTES_MAX} bytes at ${what}`);
  }

  bool(what: string): boolean {
    const b = this.u8(what);
    if (b > 1) throw malformed(`${what} is ${b}, not a boolean`);
    return b === 1;
  }

  /** A copy, so that a decoded message never pins a socket's receive buffer. */
  bytes(what: string, bytesMax = Infinity): Uint8Array {
    const n = this.length(what, bytesMax);
    // A plain Uint8Array: Buffer.prototype.slice would return a view.
    const out = new Uint8Array(n);
    this.buf.copy(out, 0, this.at, this.at + n);
    this.at += n;
    return out;
  }

  str(what: string, bytesMax: number): string {
    const n = this.length(what, bytesMax);
    const at = this.at;
    const short = n <= ENCODED_STRING_LENGTH_MAX;
    const known = short ? decodedBefore(this.buf, at, n) : undefined;
    this.at = at + n;
    if (known !== undefined) return known;
    const view = this.buf.subarray(at, at + n);
    let text: string;
    try {
      text = utf8.decode(view);
    } catch {
      throw malformed(`${what} is not valid UTF-8`);
    }
    if (short && decodedStrings.length < DECODED_STRINGS_MAX) decodedStrings.push({ bytes: Uint8Array.from(view), text });
    return text;
  }

  /** A string of one character per byte; a copy, like bytes(). */
  latin1(what: string): string {
    const n = this.length(what, Infinity);
    const s = latin1(this.buf, this.at, this.at + n);
    this.at += n;
    return s;
  }

  /** A count of items each at least `itemBytesMin` long: checked against the bytes left before any loop. */
  count(what: string, itemBytesMin: number): number {
    const n = this.varint(what);
    if (n * itemBytesMin > this.remaining) throw malformed(`${what} ${n} exceeds the ${this.remaining} bytes left`);
    return n;
  }

  end(what: string): void {
    if (this.remaining !== 0) throw malformed(`${this.remaining} trailing bytes after ${what}`);
  }

  private length(what: string, bytesMax: number): number {
    const n = this.varint(`${what} length`);
    if (n > bytesMax) throw malformed(`${what} of ${n} bytes exceeds ${bytesMax}`);
    if (n > this.remaining) throw malformed(`${what} of ${n} bytes is truncated (${this.remaining} left)`);
    return n;
  }
}

// ---- Raft messages -------------------------------------------------------------------------------

/** Encodes one batch item (group and message); the transport queues these and frames them with batchFrame. */
export function encodeItem(group: number, message: Message): Buffer {
  const w = itemWriter.reset(ITEM_WRITER_KEEP_BYTES);
  writeItem(w, group, message);
  return w.finish();
}

/** Scratch for encodeItem (the result is copied out); an item larger than this (a snapshot) does not keep its buffer. */
const ITEM_WRITER_KEEP_BYTES = 64 * 1024;
const itemWriter = new Writer(ITEM_WRITER_KEEP_BYTES);

function writeItem(w: Writer, group: number, m: Message): void {
  const code = TYPE_CODES[m.type];
  if (code === undefined) throw unencodable(`unknown message type ${String(m.type)}`);
  w.varint(group).u8(code).str(m.from, NODE_ID_BYTES_MAX).str(m.to, NODE_ID_BYTES_MAX).varint(m.term);
  switch (m.type) {
    case 'MsgPreVote': w.varint(m.lastLogIndex).varint(m.lastLogTerm); break;
    case 'MsgVote': w.varint(m.lastLogIndex).varint(m.lastLogTerm).bool(m.transfer); break;
    case 'MsgPreVoteResp': case 'MsgVoteResp': w.bool(m.reject); break;
    case 'MsgApp':
      w.varint(m.index).varint(m.logTerm).varint(m.commit).varint(m.entries.length);
      for (const e of m.entries) w.varint(e.term).varint(e.index).u8(ENTRY_TYPE_CODES[e.type]).bytes(e.data);
      break;
    case 'MsgAppResp': w.varint(m.index).bool(m.reject).varint(m.rejectHint).varint(m.logTerm); break;
    case 'MsgHeartbeat': w.varint(m.commit).varint(m.round).varint(m.tick); break;
    case 'MsgHeartbeatResp': w.varint(m.round).varint(m.tick); break;
    case 'MsgSnap': writeSnapshot(w, m.snapshot); break;
    case 'MsgTimeoutNow': break;
    case 'MsgReadIndex': w.bytes(m.ctx); break;
    case 'MsgReadIndexResp': w.varint(m.index).bytes(m.ctx); break;
    case 'MsgTransferLeader': w.str(m.transferee, NODE_ID_BYTES_MAX); break;
  }
}

function writeSnapshot(w: Writer, s: Snapshot): void {
  w.varint(s.meta.index).varint(s.meta.term);
  for (const list of [s.meta.conf.voters, s.meta.conf.learners]) {
    w.varint(list.length);
    for (const id of list) w.str(id, NODE_ID_BYTES_MAX);
  }
  w.bytes(s.data);
}

function readItem(r: Reader): GroupMessage {
  const group = r.varint('group');
  const code = r.u8('message type');
  const type = TYPES.get(code);
  if (type === undefined) throw malformed(`unknown message type ${code}`);
  const base = { from: r.str('from', NODE_ID_BYTES_MAX), to: r.str('to', NODE_ID_BYTES_MAX), term: r.varint('term') };
  return { group, message: readBody(r, type, base) };
}

function readBody(r: Reader, type: MessageType, base: { from: NodeId; to: NodeId; term: number }): Message {
  switch (type) {
    case 'MsgPreVote': return { type, ...base, lastLogIndex: r.varint('lastLogIndex'), lastLogTerm: r.varint('lastLogTerm') };
    case 'MsgVote':
      return { type, ...base, lastLogIndex: r.varint('lastLogIndex'), lastLogTerm: r.varint('lastLogTerm'), transfer: r.bool('transfer') };
    case 'MsgPreVoteResp': case 'MsgVoteResp': return { type, ...base, reject: r.bool('reject') };
    case 'MsgApp': {
      const index = r.varint('index');
      const logTerm = r.varint('logTerm');
      const commit = r.varint('commit');
      const entries: Entry[] = [];
      for (let i = r.count('entry count', 4); i > 0; i--) entries.push(readEntry(r));
      return { type, ...base, index, logTerm, entries, commit };
    }
    case 'MsgAppResp':
      return { type, ...base, index: r.varint('index'), reject: r.bool('reject'), rejectHint: r.varint('rejectHint'), logTerm: r.varint('logTerm') };
    case 'MsgHeartbeat': return { type, ...base, commit: r.varint('commit'), round: r.varint('round'), tick: r.varint('tick') };
    case 'MsgHeartbeatResp': return { type, ...base, round: r.varint('round'), tick: r.varint('tick') };
    case 'MsgSnap': return { type, ...base, snapshot: readSnapshot(r) };
    case 'MsgTimeoutNow': return { type, ...base };
    case 'MsgReadIndex': return { type, ...base, ctx: r.bytes('ctx') };
    case 'MsgReadIndexResp': return { type, ...base, index: r.varint('index'), ctx: r.bytes('ctx') };
    case 'MsgTransferLeader': return { type, ...base, transferee: r.str('transferee', NODE_ID_BYTES_MAX) };
  }
}

function readEntry(r: Reader): Entry {
  const term = r.varint('entry term');
  const index = r.varint('entry index');
  const code = r.u8('entry type');
  const type = ENTRY_TYPES.get(code);
  if (type === undefined) throw malformed(`unknown entry type ${code}`);
  return { term, index, type, data: r.bytes('entry data') };
}

function readSnapshot(r: Reader): Snapshot {
  const index = r.varint('snapshot index');
  const term = r.varint('snapshot term');
  const readIds = (what: string): NodeId[] => {
    const ids: NodeId[] = [];
    for (let i = r.count(what, 1); i > 0; i--) ids.push(r.str(what, NODE_ID_BYTES_MAX));
    return ids;
  };
  const conf: ConfState = { voters: readIds('voters'), learners: readIds('learners') };
  return { meta: { index, term, conf }, data: r.bytes('snapshot data') };
}

// ---- Frames --------------------------------------------------------------------------------------

/**
 * A batch frame around items produced by encodeItem; `itemBytes` is the sum of their lengths.
 * The caller keeps the frame within the peer's frameBytesMax (items + BATCH_OVERHEAD_BYTES_MAX).
 */
export function batchFrame(items: readonly Uint8Array[], itemBytes: number): Buffer {
  let total = 0;
  for (const item of items) total += item.length;
  if (total !== itemBytes) throw unencodable(`itemBytes ${itemBytes} does not match the items' total length ${total}`);
  const header = batchHeader(items.length, itemBytes);
  const pieces: Uint8Array[] = [header];
  for (const item of items) pieces.push(item);
  return Buffer.concat(pieces, header.length + itemBytes);
}

/** A batch frame's length field, header and item count, for `count` items of `itemBytes` in all. */
function batchHeader(count: number, itemBytes: number): Buffer {
  const out = new Writer().u8(0).u8(0).u8(0).u8(0).u8(WIRE_VERSION).u8(KIND_CODES.batch).varint(count).finish();
  out.writeUInt32BE(out.length - 4 + itemBytes, 0);
  return out;
}

/** A request or response frame that a send queue holds unencoded until it is flushed (frameQueue). */
export type LazyFrame = Extract<Frame, { kind: 'request' }> | Extract<Frame, { kind: 'response' }>;

/**
 * One entry of a peer's send queue: a batch item from encodeItem, a whole frame from encodeFrame, or
 * (with `frame`) a request or response that frameQueue encodes, `size` (from lazyFrameSize) bytes.
 */
export interface Outgoing {
  bytes: Uint8Array;
  /** A batch item: consecutive items share batch frames. */
  item: boolean;
  frame?: LazyFrame;
  size?: number;
}

/** The bytes an entry takes in a send queue. */
export function outgoingBytes(entry: Outgoing): number {
  return entry.frame === undefined ? entry.bytes.length : entry.size!;
}

/**
 * The encoded length of a request or response frame, its length field included. Checks what
 * encoding would check, so that a lazily encoded frame cannot fail at flush: an argument or reply
 * beyond latin1, a request without arguments, a proto other than 2 or 3, an id that is not a safe
 * non-negative integer.
 */
export function lazyFrameSize(frame: LazyFrame): number {
  let size = FRAME_HEADER_BYTES + varintBytes(frame.id);
  if (frame.kind === 'response') return size + latin1Bytes(frame.reply);
  if (frame.proto !== 2 && frame.proto !== 3) throw unencodable(`proto ${String(frame.proto)} is neither 2 nor 3`);
  if (frame.argv.length === 0) throw unencodable('a request without arguments');
  size += 1 + varintBytes(frame.argv.length);
  if (frame.trace !== undefined) size += TRACE_CONTEXT_BYTES;
  for (const arg of frame.argv) size += latin1Bytes(arg);
  return size;
}

function varintBytes(n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) throw unencodable(`${n} is not a non-negative safe integer`);
  let bytes = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    bytes++;
  }
  return bytes;
}

/** The length-prefixed size of a latin1 string; throws for a character above U+00FF. */
function latin1Bytes(s: string): number {
  const n = s.length;
  if (n < SHORT_STRING) {
    for (let i = 0; i < n; i++) if (s.charCodeAt(i) > 0xff) throw unencodable('string has a character above U+00FF, not one byte');
  } else if (BEYOND_LATIN1.test(s)) {
    throw unencodable('string has a character above U+00FF, not one byte');
  }
  return varintBytes(n) + n;
}

/**
 * Lays a send queue out as one buffer, for a single socket write, in queue order: each run of
 * consecutive items becomes batch frames of at most frameBytesMax; whole frames are copied as they
 * are; lazy frames are encoded in place.
 */
export function frameQueue(queue: readonly Outgoing[], frameBytesMax: number): Buffer {
  const itemBytesMax = frameBytesMax - BATCH_OVERHEAD_BYTES_MAX;
  let capacity = 0;
  for (const entry of queue) capacity += outgoingBytes(entry) + (entry.item ? BATCH_OVERHEAD_BYTES_MAX : 0);
  const w = new Writer(Math.max(capacity, 1));
  let runStart = 0;
  let runBytes = 0;
  const closeRun = (end: number): void => {
    if (end > runStart) {
      w.raw(batchHeader(end - runStart, runBytes));
      for (let i = runStart; i < end; i++) w.raw(queue[i]!.bytes);
    }
    runStart = end;
    runBytes = 0;
  };
  for (let i = 0; i < queue.length; i++) {
    const entry = queue[i]!;
    if (!entry.item) {
      closeRun(i);
      if (entry.frame !== undefined) writeLazyFrame(w, entry.frame, entry.size!, frameBytesMax);
      else if (entry.bytes.length - 4 > frameBytesMax) throw unencodable(`frame of ${entry.bytes.length} bytes exceeds ${frameBytesMax}`);
      else w.raw(entry.bytes);
      runStart = i + 1;
      continue;
    }
    const bytes = entry.bytes;
    if (bytes.length > itemBytesMax) throw unencodable(`batch item of ${bytes.length} bytes exceeds a frame of ${frameBytesMax}`);
    if (runBytes + bytes.length > itemBytesMax) closeRun(i);
    runBytes += bytes.length;
  }
  closeRun(queue.length);
  return w.view();
}

function writeLazyFrame(w: Writer, frame: LazyFrame, size: number, frameBytesMax: number): void {
  if (size - 4 > frameBytesMax) throw unencodable(`frame of ${size} bytes exceeds ${frameBytesMax}`);
  const start = w.length;
  w.u8(0).u8(0).u8(0).u8(0).u8(WIRE_VERSION).u8(kindCode(frame)).varint(frame.id);
  if (frame.kind === 'response') {
    w.latin1Checked(frame.reply);
  } else {
    w.u8(frame.proto);
    if (frame.trace !== undefined) writeTraceContext(w, frame.trace);
    w.varint(frame.argv.length);
    for (const arg of frame.argv) w.latin1Checked(arg);
  }
  w.patchU32(start, w.length - start - 4);
}

export function encodeFrame(frame: Frame): Buffer {
  if (frame.kind === 'batch') {
    const items = frame.batch.map(({ group, message }) => encodeItem(group, message));
    return batchFrame(items, items.reduce((sum, item) => sum + item.length, 0));
  }
  const w = new Writer().u8(0).u8(0).u8(0).u8(0).u8(WIRE_VERSION).u8(kindCode(frame));
  switch (frame.kind) {
    case 'hello':
      w.str(frame.nodeId, NODE_ID_BYTES_MAX).str(frame.to, NODE_ID_BYTES_MAX).bool(frame.auth).bytes(frame.nonce).str(frame.incarnation, INCARNATION_BYTES_MAX);
      break;
    case 'challenge':
      w.str(frame.nodeId, NODE_ID_BYTES_MAX).bool(frame.auth).bytes(frame.nonce).bytes(frame.proof).str(frame.incarnation, INCARNATION_BYTES_MAX);
      break;
    case 'auth': w.bytes(frame.proof); break;
    case 'ready': break;
    case 'refuse': w.str(frame.reason, REASON_BYTES_MAX); break;
    case 'request':
      if (frame.proto !== 2 && frame.proto !== 3) throw unencodable(`proto ${String(frame.proto)} is neither 2 nor 3`);
      if (frame.argv.length === 0) throw unencodable('a request without arguments');
      w.varint(frame.id).u8(frame.proto);
      if (frame.trace !== undefined) writeTraceContext(w, frame.trace);
      w.varint(frame.argv.length);
      for (const arg of frame.argv) w.latin1(arg);
      break;
    case 'response': w.varint(frame.id).latin1(frame.reply); break;
    case 'cancel': w.varint(frame.id); break;
    case 'meta':
      if (!Number.isInteger(frame.respPort) || frame.respPort < 0 || frame.respPort > PORT_MAX) throw unencodable(`port ${frame.respPort}`);
      w.str(frame.respHost, HOST_BYTES_MAX).varint(frame.respPort);
      break;
  }
  const out = w.finish();
  out.writeUInt32BE(out.length - 4, 0);
  return out;
}

/** Decodes one frame's body: everything after the length field. */
export function decodeFrameBody(body: Uint8Array, start = 0, end = body.length): Frame {
  const r = new Reader(body, start, end);
  const version = r.u8('version');
  if (version !== WIRE_VERSION) throw malformed(`unsupported wire version ${version} (this node speaks ${WIRE_VERSION})`);
  const code = r.u8('frame kind');
  const kind = code === TRACED_REQUEST_CODE ? 'request' : KINDS.get(code);
  if (kind === undefined) throw malformed(`unknown frame kind ${code}`);
  const frame = kind === 'request' ? readRequest(r, code === TRACED_REQUEST_CODE) : readFrame(r, kind);
  r.end(kind);
  return frame;
}

function readRequest(r: Reader, traced: boolean): Frame {
  const id = r.varint('request id');
  const proto = r.u8('proto');
  if (proto !== 2 && proto !== 3) throw malformed(`proto ${proto} is neither 2 nor 3`);
  const trace = traced ? readTraceContext(r) : undefined;
  const argc = r.count('argument count', 1);
  if (argc === 0) throw malformed('a request without arguments');
  // Filled by index: an array pushed onto grows to 17 elements.
  const argv = new Array<string>(argc);
  for (let i = 0; i < argc; i++) argv[i] = r.latin1('argument');
  return trace === undefined ? { kind: 'request', id, proto, argv } : { kind: 'request', id, proto, argv, trace };
}

function readFrame(r: Reader, kind: FrameKind): Frame {
  switch (kind) {
    // Fields are read in the order written: object literals evaluate left to right.
    case 'hello': return {
      kind, nodeId: r.str('node id', NODE_ID_BYTES_MAX), to: r.str('to', NODE_ID_BYTES_MAX), auth: r.bool('auth'), nonce: nonce(r),
      incarnation: r.str('incarnation', INCARNATION_BYTES_MAX),
    };
    case 'challenge': return {
      kind, nodeId: r.str('node id', NODE_ID_BYTES_MAX), auth: r.bool('auth'), nonce: nonce(r), proof: proof(r),
      incarnation: r.str('incarnation', INCARNATION_BYTES_MAX),
    };
    case 'auth': return { kind, proof: proof(r) };
    case 'ready': return { kind };
    case 'refuse': return { kind, reason: r.str('reason', REASON_BYTES_MAX) };
    case 'batch': {
      const batch: GroupMessage[] = [];
      for (let i = r.count('batch count', 5); i > 0; i--) batch.push(readItem(r));
      return { kind, batch };
    }
    case 'request': return readRequest(r, false);
    case 'response': return { kind, id: r.varint('response id'), reply: r.latin1('reply') };
    case 'cancel': return { kind, id: r.varint('cancel id') };
    case 'meta': {
      const respHost = r.str('RESP host', HOST_BYTES_MAX);
      const respPort = r.varint('RESP port');
      if (respPort > PORT_MAX) throw malformed(`RESP port ${respPort} exceeds ${PORT_MAX}`);
      return { kind, respHost, respPort };
    }
  }
}

function nonce(r: Reader): Uint8Array {
  const b = r.bytes('nonce', NONCE_BYTES);
  if (b.length !== NONCE_BYTES) throw malformed(`nonce of ${b.length} bytes, expected ${NONCE_BYTES}`);
  return b;
}

function proof(r: Reader): Uint8Array {
  const b = r.bytes('proof', PROOF_BYTES);
  if (b.length !== 0 && b.length !== PROOF_BYTES) throw malformed(`proof of ${b.length} bytes, expected 0 or ${PROOF_BYTES}`);
  return b;
}

/**
 * Push-style frame decoder: feed it socket chunks, get whole frames back. A frame whose length field
 * exceeds frameBytesMax is refused before any of it is buffered. After an error the decoder stays
 * failed: the stream has lost its framing and the connection must be closed.
 */
export class FrameDecoder {
  private readonly chunks: Buffer[] = [];
  /** Bytes of chunks[0] already taken: a chunk is read where it lies, not cut into new views. */
  private head = 0;
  private buffered = 0;
  /** Length of the frame being assembled, or -1 while its length field is still incomplete. */
  private need = -1;
  private failed: WireError | null = null;

  constructor(private readonly frameBytesMax = FRAME_BYTES_MAX_DEFAULT) {}

  /** Bytes received of an incomplete frame, its length field included. */
  get bufferedBytes(): number {
    return this.buffered + (this.need === -1 ? 0 : 4);
  }

  push(chunk: Uint8Array): Frame[] {
    if (this.failed !== null) throw this.failed;
    if (chunk.length > 0) {
      this.chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
      this.buffered += chunk.length;
    }
    const frames: Frame[] = [];
    try {
      while (true) {
        if (this.need === -1) {
          if (this.buffered < 4) break;
          const n = this.takeLength();
          if (n < 2) throw malformed(`frame length ${n} is shorter than its header`);
          if (n > this.frameBytesMax) throw malformed(`frame length ${n} exceeds the limit of ${this.frameBytesMax} bytes`);
          this.need = n;
        }
        if (this.buffered < this.need) break;
        const n = this.need;
        this.need = -1;
        const first = this.chunks[0]!;
        if (first.length - this.head >= n) {
          // Read in place: a frame copies what it keeps (see Reader), so no view of the chunk is needed.
          const head = this.head;
          this.advance(first, n);
          frames.push(decodeFrameBody(first, head, head + n));
        } else {
          frames.push(decodeFrameBody(this.take(n)));
        }
      }
    } catch (err) {
      this.failed = err instanceof WireError ? err : malformed(String(err));
      this.chunks.length = 0;
      this.head = 0;
      this.buffered = 0;
      throw this.failed;
    }
    return frames;
  }

  /** The next frame's length field (4 bytes are buffered). */
  private takeLength(): number {
    const first = this.chunks[0]!;
    if (first.length - this.head < 4) return this.take(4).readUInt32BE(0);
    const n = first.readUInt32BE(this.head);
    this.advance(first, 4);
    return n;
  }

  /** A copy of the next n buffered bytes, which span chunks (callers read within one chunk in place). */
  private take(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length - this.head, n - at);
      c.copy(out, at, this.head, this.head + k);
      at += k;
      this.advance(c, k);
    }
    return out;
  }

  /** k bytes of `first` (chunks[0]) are taken. */
  private advance(first: Buffer, k: number): void {
    this.head += k;
    this.buffered -= k;
    if (this.head === first.length) {
      this.chunks.shift();
      this.head = 0;
    }
  }
}
