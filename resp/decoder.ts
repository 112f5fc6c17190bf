/**
 * Streaming decoder for client requests, byte-compatible with Redis 7.2's
 * networking.c (processMultibulkBuffer, processInlineBuffer, sdssplitargs).
 *
 * Arguments are "binary strings": one char per byte (latin1), which keeps them
 * binary-safe and cheap to slice. The decoder is pull-style: push() only queues
 * bytes and next() parses one command at a time, so a blocked client's later
 * commands simply stay buffered.
 */
import { constants } from 'node:buffer';

export interface DecoderLimits {
  /** Largest bulk argument (Redis's proto-max-bulk-len). */
  maxBulkBytes: number;
  /** Most arguments in one multibulk command. */
  maxArgs: number;
  /**
   * Longest inline command line, and longest "*count" / "$length" line (Redis
   * uses one constant, PROTO_INLINE_MAX_SIZE, for all three).
   */
  maxInlineBytes: number;
}

export const DEFAULT_DECODER_LIMITS: DecoderLimits = Object.freeze({
  maxBulkBytes: 512 * 1024 * 1024,
  maxArgs: 1024 * 1024,
  maxInlineBytes: 64 * 1024,
});

/** A malformed request. `message` is Redis's text, to be sent as `-ERR Protocol error: <message>`. */
export class ProtocolError {
  constructor(readonly message: string) {}
}

const UNAUTHENTICATED_ARGS_MAX = 10;
const UNAUTHENTICATED_BULK_BYTES_MAX = 16384;
const CR = 13;
const LF = 10;
const STAR = 42;
const DOLLAR = 36;
const INT_MAX = 2147483647;
const EMPTY = Buffer.alloc(0);
/** Smallest scratch store; lines that straddle chunks are short, so this rarely grows. */
const MIN_STORE_BYTES = 4096;
/** Bytes pulled from the next chunk to finish a split line; a header fits. */
const MIN_STEP_BYTES = 256;
/** The argument scratch array is dropped after a command with more arguments than this. */
const ARGS_SCRATCH_MAX = 64;
/** Arguments up to this long are built in JS: cheaper than a native latin1Slice() call. */
const SHORT_ARG_BYTES = 12;
/** Marks an empty command (`*0`, `*-1`, a blank inline line), which Redis skips silently. */
const SKIP = Symbol('skip');

type Step = string[] | ProtocolError | null | typeof SKIP;

export class RequestDecoder {
  private readonly maxBulkBytes: number;
  private readonly maxArgs: number;
  private readonly maxInlineBytes: number;
  /** The buffer being parsed; bytes before `pos` are consumed. */
  private buf: Buffer = EMPTY;
  private pos = 0;
  /** Scratch buffer that joins a line split across chunks; `buf` may be a view of it. */
  private store: Buffer = EMPTY;
  private bufInStore = false;
  /** Chunks pushed behind `buf`, oldest first from `pendingHead`. */
  private pending: Buffer[] = [];
  private pendingHead = 0;
  private pendingBytes = 0;
  /** Bytes after `pos` already searched for the awaited line end, so a trickling line is scanned once. */
  private scanned = 0;
  /**
   * The multibulk command being read: its arguments so far (argc of them, in an array reused and
   * copied out at the command's end), how many are still due, the current bulk's length (-1: header next).
   */
  private readonly args: string[] = [];
  private argc = 0;
  private argsLeft = 0;
  private bulkLen = -1;
  /** Bytes of the unfinished command already consumed from the buffers (they still count as buffered). */
  private partialBytes = 0;
  private failure: ProtocolError | null = null;
  private inline = false;
  /**
   * While the client has not authenticated (with --requirepass), commands are
   * capped like Redis caps them: at most 10 arguments of at most 16 KiB, so an
   * anonymous peer cannot make the server buffer large requests.
   */
  authRequired = false;

  constructor(limits: Partial<DecoderLimits> = {}) {
    const all = { ...DEFAULT_DECODER_LIMITS, ...limits };
    // A JS string cannot be longer than MAX_STRING_LENGTH, so neither can a bulk.
    this.maxBulkBytes = Math.min(all.maxBulkBytes, constants.MAX_STRING_LENGTH);
    this.maxArgs = Math.min(all.maxArgs, INT_MAX);
    this.maxInlineBytes = all.maxInlineBytes;
  }

  /** Bytes received but not yet returned as commands (for the per-client query buffer limit). */
  get bufferedBytes(): number {
    return this.buf.length - this.pos + this.pendingBytes + this.partialBytes;
  }

  /** Whether the last command returned by next() was an inline one. */
  get lastCommandInline(): boolean {
    return this.inline;
  }

  /** Queues bytes; parsing happens in next(). */
  push(chunk: Buffer): void {
    if (this.failure !== null || chunk.length === 0) return;
    if (this.pos === this.buf.length && this.pendingBytes === 0) {
      // Everything before was parsed: parse the chunk in place, no copy.
      this.buf = chunk;
      this.pos = 0;
      this.bufInStore = false;
      this.scanned = 0;
    } else {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
    }
  }

  /**
   * The next complete command's arguments; null when more bytes are needed.
   * After a ProtocolError the decoder is dead and returns that error forever.
   */
  next(): string[] | ProtocolError | null {
    if (this.failure !== null) return this.failure;
    for (;;) {
      const step = this.argsLeft > 0 ? this.readBulks() : this.readCommand();
      if (step === null) {
        this.releaseIfDrained();
        return null;
      }
      if (step instanceof ProtocolError) return this.fail(step);
      this.partialBytes = 0;
      if (step !== SKIP) {
        this.releaseIfDrained();
        return step;
      }
    }
  }

  private readCommand(): Step {
    if (!this.hasData()) return null;
    return this.buf[this.pos] === STAR ? this.readMultibulk() : this.readInline();
  }

  private readMultibulk(): Step {
    const count = this.readNumberLine(STAR, 'too big mbulk count string');
    if (count === null || count instanceof ProtocolError) return count;
    // NaN (not an integer) fails this test too.
    if (!(count <= this.maxArgs)) return new ProtocolError('invalid multibulk length');
    if (this.authRequired && count > UNAUTHENTICATED_ARGS_MAX) return new ProtocolError('unauthenticated multibulk length');
    if (count <= 0) return SKIP;
    this.argsLeft = count;
    return this.readBulks();
  }

  /** Reads the remaining bulks of the current multibulk command, resuming where the last call stopped. */
  private readBulks(): Step {
    while (this.argsLeft > 0) {
      if (this.bulkLen < 0) {
        if (!this.hasData()) return null;
        const len = this.readNumberLine(DOLLAR, 'too big bulk count string');
        if (len === null || len instanceof ProtocolError) return len;
        if (!(len >= 0 && len <= this.maxBulkBytes)) return new ProtocolError('invalid bulk length');
        if (this.authRequired && len > UNAUTHENTICATED_BULK_BYTES_MAX) return new ProtocolError('unauthenticated bulk length');
        this.bulkLen = len;
      }
      const arg = this.readBody(this.bulkLen);
      if (arg === null) return null;
      this.args[this.argc++] = arg;
      this.bulkLen = -1;
      this.argsLeft -= 1;
    }
    // An array of exactly argc elements, where pushing onto a new one would grow it to 17.
    const scratch = this.args;
    const args = scratch.slice(0, this.argc);
    // Not kept alive by the decoder (a large value could be).
    for (let i = 0; i < this.argc; i++) scratch[i] = '';
    if (scratch.length > ARGS_SCRATCH_MAX) scratch.length = 0;
    this.argc = 0;
    this.inline = false;
    return args;
  }

  /**
   * Reads a "*count" or "$length" line. The fast path handles plain digits
   * followed by '\r' in the current buffer; anything else goes the careful way.
   */
  private readNumberLine(prefix: number, tooBig: string): number | ProtocolError | null {
    const buf = this.buf;
    // Looks at 15 digits at most: `value` stays exact and a long line trickling in is not rescanned.
    const end = Math.min(buf.length, this.pos + 18);
    let at = this.pos + 1;
    if (buf[this.pos] === prefix && at < end && buf[at] >= 49 && buf[at] <= 57) {
      let value = 0;
      for (; at < end; at++) {
        const c = buf[at];
        if (c < 48 || c > 57) break;
        value = value * 10 + (c - 48);
      }
      // Redis skips the byte after '\r' unchecked.
      if (at + 1 < end && buf[at] === CR) {
        this.advance(at + 2);
        return value;
      }
    }
    return this.readNumberLineSlow(prefix, tooBig);
  }

  /** Redis's way: find the first '\r', require one byte after it, then string2ll() the line. */
  private readNumberLineSlow(prefix: number, tooBig: string): number | ProtocolError | null {
    const cr = this.findLineEnd(CR, 1);
    // Redis checks this length only while no '\r' has arrived; checking the
    // found line too gives the same answer however the bytes were chunked.
    if ((cr < 0 ? this.scanned : cr - this.pos) > this.maxInlineBytes) return new ProtocolError(tooBig);
    if (cr < 0) return null;
    const first = this.buf[this.pos];
    if (first !== prefix) {
      // Redis maps '\r' and '\n' in error text to spaces so the reply stays one line.
      const got = first === CR || first === LF ? ' ' : String.fromCharCode(first);
      return new ProtocolError(`expected '$', got '${got}'`);
    }
    const value = parseLongLong(this.buf, this.pos + 1, cr);
    this.advance(cr + 2);
    return value;
  }

  /** The bulk payload plus the two bytes after it (Redis skips them unchecked), or null until all have arrived. */
  private readBody(len: number): string | null {
    const start = this.pos;
    if (this.buf.length - start >= len + 2) {
      this.advance(start + len + 2);
      return latin1(this.buf, start, start + len);
    }
    if (this.buf.length - start + this.pendingBytes < len + 2) return null;
    this.partialBytes += len + 2;
    const arg = this.takeAcross(len, true);
    this.takeAcross(2, false);
    return arg;
  }

  /** Consumes n bytes that may span queued chunks; each byte is copied once, into the result. */
  private takeAcross(n: number, keep: boolean): string {
    let out = '';
    for (let left = n; left > 0; ) {
      if (this.pos === this.buf.length) this.nextChunk();
      const end = Math.min(this.buf.length, this.pos + left);
      if (keep) out += this.buf.latin1Slice(this.pos, end);
      left -= end - this.pos;
      this.pos = end;
    }
    return out;
  }

  private readInline(): Step {
    const lf = this.findLineEnd(LF, 0);
    if ((lf < 0 ? this.scanned : lf - this.pos) > this.maxInlineBytes) {
      return new ProtocolError('too big inline request');
    }
    if (lf < 0) return null;
    const end = lf > this.pos && this.buf[lf - 1] === CR ? lf - 1 : lf;
    const args = splitArgs(this.buf.latin1Slice(this.pos, end));
    this.advance(lf + 1);
    if (args === null) return new ProtocolError('unbalanced quotes in request');
    if (args.length === 0) return SKIP;
    this.inline = true;
    return args;
  }

  /**
   * Index in buf of the first `byte` at or after pos that has `after` more
   * bytes behind it, or -1 for now. Queued chunks are pulled in only as far as
   * the longest allowed line, so a huge chunk behind a split line is not copied.
   */
  private findLineEnd(byte: number, after: number): number {
    const window = this.maxInlineBytes + 2;
    for (;;) {
      const at = this.buf.indexOf(byte, this.pos + this.scanned);
      if (at >= 0 && at + after < this.buf.length) return at;
      this.scanned = (at >= 0 ? at : this.buf.length) - this.pos;
      if (this.pendingBytes === 0 || this.buf.length - this.pos >= window) return -1;
      this.coalesce(window);
    }
  }

  /**
   * Moves queued bytes behind the unparsed tail of buf: as many as the tail
   * already holds (at least MIN_STEP_BYTES), never past `window`. Doubling keeps
   * a long line O(n); small steps keep a split header from copying a whole read.
   */
  private coalesce(window: number): void {
    const tail = this.buf.length - this.pos;
    const want = Math.min(this.pendingBytes, window - tail, Math.max(tail, MIN_STEP_BYTES));
    if (!this.bufInStore || this.store.length - this.buf.length < want) {
      this.compactInto(this.buf.length - this.pos + want);
    }
    let at = this.buf.length;
    for (let moved = 0; moved < want; ) {
      const chunk = this.pending[this.pendingHead];
      const n = Math.min(chunk.length, want - moved);
      chunk.copy(this.store, at, 0, n);
      at += n;
      moved += n;
      if (n === chunk.length) this.dropPendingHead();
      else this.pending[this.pendingHead] = chunk.subarray(n);
      this.pendingBytes -= n;
    }
    this.buf = this.store.subarray(0, at);
  }

  /**
   * Moves the unparsed tail to the start of a store with room for `bytes`.
   * The store doubles, so a line arriving byte by byte costs O(n) in total.
   */
  private compactInto(bytes: number): void {
    const store = this.store.length >= 2 * bytes ? this.store : Buffer.allocUnsafe(Math.max(2 * bytes, MIN_STORE_BYTES));
    const tail = this.buf.copy(store, 0, this.pos);
    this.store = store;
    this.buf = store.subarray(0, tail);
    this.pos = 0;
    this.bufInStore = true;
  }

  /** True when there is a byte to parse at pos, moving to the next queued chunk if buf is used up. */
  private hasData(): boolean {
    if (this.pos < this.buf.length) return true;
    if (this.pendingBytes === 0) return false;
    this.nextChunk();
    return true;
  }

  /** Makes the next queued chunk current (zero copy) and lets go of the consumed buffer. */
  private nextChunk(): void {
    const chunk = this.pending[this.pendingHead];
    this.dropPendingHead();
    this.pendingBytes -= chunk.length;
    this.buf = chunk;
    this.pos = 0;
    this.scanned = 0;
    this.store = EMPTY;
    this.bufInStore = false;
  }

  private dropPendingHead(): void {
    this.pending[this.pendingHead++] = EMPTY;
    if (this.pendingHead === this.pending.length) {
      this.pending = [];
      this.pendingHead = 0;
    }
  }

  private advance(to: number): void {
    this.partialBytes += to - this.pos;
    this.pos = to;
    this.scanned = 0;
  }

  /** Drops references to consumed buffers once everything received has been parsed. */
  private releaseIfDrained(): void {
    if (this.pos === this.buf.length && this.pendingBytes === 0) {
      this.buf = EMPTY;
      this.pos = 0;
      this.store = EMPTY;
      this.bufInStore = false;
    }
  }

  private fail(error: ProtocolError): ProtocolError {
    this.failure = error;
    this.buf = EMPTY;
    this.pos = 0;
    this.store = EMPTY;
    this.pending = [];
    this.pendingHead = 0;
    this.pendingBytes = 0;
    this.partialBytes = 0;
    this.args.length = 0;
    this.argc = 0;
    return error;
  }
}

/** One reusable array of char codes per short length, for String.fromCharCode.apply(). */
const CHAR_CODES = Array.from({ length: SHORT_ARG_BYTES + 1 }, (_, n) => new Array<number>(n).fill(0));

const latin1Slice = Buffer.prototype.latin1Slice as (this: Uint8Array, start: number, end: number) => string;

/** buf[start, end) as a binary string (one char per byte), built the cheapest way for its length. */
export function latin1(buf: Uint8Array, start: number, end: number): string {
  const n = end - start;
  if (n > SHORT_ARG_BYTES) return latin1Slice.call(buf, start, end);
  const codes = CHAR_CODES[n]!;
  for (let i = 0; i < n; i++) codes[i] = buf[start + i]!;
  return String.fromCharCode.apply(null, codes);
}

const LLONG_MAX = 9223372036854775807n;
const LLONG_MIN = -9223372036854775808n;

/**
 * Redis's string2ll() on buf[start, end): an optional '-', then digits with no
 * leading zero ("0" alone is fine, "-0" is not), fitting a signed 64-bit
 * integer. Returns NaN otherwise. Large values lose precision, which only
 * matters for comparisons against limits far below 2^53.
 */
export function parseLongLong(buf: Buffer, start: number, end: number): number {
  const len = end - start;
  if (len === 0 || len >= 21) return NaN;
  if (len === 1 && buf[start] === 48) return 0;
  const negative = buf[start] === 45;
  let at = negative ? start + 1 : start;
  if (at === end || buf[at] < 49 || buf[at] > 57) return NaN;
  let value = 0;
  for (; at < end; at++) {
    const c = buf[at];
    if (c < 48 || c > 57) return NaN;
    value = value * 10 + (c - 48);
  }
  if (value > 9.2e18) {
    const exact = BigInt(buf.latin1Slice(start, end));
    if (exact > LLONG_MAX || exact < LLONG_MIN) return NaN;
  }
  return negative ? -value : value;
}

/**
 * Redis's sdssplitargs() for inline commands: whitespace-separated words,
 * "double quotes" with \n \r \t \b \a \xHH and \<any> escapes, 'single quotes'
 * where only \' is an escape. A closing quote must be followed by whitespace or
 * the end. Returns null on unbalanced quotes.
 *
 * One difference: Redis stops at a NUL byte (C strings), so an inline line
 * holding one never completes there; here NUL is an ordinary byte.
 */
export function splitArgs(line: string): string[] | null {
  return new InlineSplitter(line).split();
}

const SPACE = 32;
const TAB = 9;
const DQUOTE = 34;
const SQUOTE = 39;
const BACKSLASH = 92;

/** C isspace() in the C locale: the separators skipped between arguments. */
function isSpace(c: number): boolean {
  return c === SPACE || (c >= 9 && c <= 13);
}

/** The bytes that end an unquoted word (note: not \v or \f, unlike isspace). */
function endsWord(c: number): boolean {
  return c === SPACE || c === LF || c === CR || c === TAB;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** The char a backslash escape inside "double quotes" stands for. */
function unescapeChar(c: string): string {
  switch (c) {
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case 'b': return '\b';
    case 'a': return '\x07';
    default: return c;
  }
}

class InlineSplitter {
  private at = 0;

  constructor(private readonly line: string) {}

  split(): string[] | null {
    const args: string[] = [];
    for (;;) {
      while (this.at < this.line.length && isSpace(this.line.charCodeAt(this.at))) this.at++;
      if (this.at === this.line.length) return args;
      const arg = this.word();
      if (arg === null) return null;
      args.push(arg);
    }
  }

  /** One argument: an unquoted run, possibly ending in a quoted section that closes the argument. */
  private word(): string | null {
    const line = this.line;
    const start = this.at;
    while (this.at < line.length) {
      const c = line.charCodeAt(this.at);
      if (endsWord(c)) break;
      if (c === DQUOTE || c === SQUOTE) {
        const head = line.slice(start, this.at);
        this.at++;
        const quoted = c === DQUOTE ? this.doubleQuoted() : this.singleQuoted();
        return quoted === null ? null : head + quoted;
      }
      this.at++;
    }
    return line.slice(start, this.at);
  }

  /** Body of "..." after the opening quote; leaves `at` after the closing quote. */
  private doubleQuoted(): string | null {
    const line = this.line;
    let out = '';
    for (;;) {
      if (this.at >= line.length) return null;
      const c = line.charCodeAt(this.at);
      if (c === BACKSLASH && this.at + 1 < line.length) {
        const hi = hexValue(line.charCodeAt(this.at + 2));
        const lo = hexValue(line.charCodeAt(this.at + 3));
        if (line[this.at + 1] === 'x' && hi >= 0 && lo >= 0) {
          out += String.fromCharCode(hi * 16 + lo);
          this.at += 4;
        } else {
          out += unescapeChar(line[this.at + 1]);
          this.at += 2;
        }
      } else if (c === DQUOTE) {
        return this.closeQuote(out);
      } else {
        out += line[this.at];
        this.at++;
      }
    }
  }

  /** Body of '...' after the opening quote: only \' is an escape. */
  private singleQuoted(): string | null {
    const line = this.line;
    let out = '';
    for (;;) {
      if (this.at >= line.length) return null;
      const c = line.charCodeAt(this.at);
      if (c === BACKSLASH && line.charCodeAt(this.at + 1) === SQUOTE) {
        out += "'";
        this.at += 2;
      } else if (c === SQUOTE) {
        return this.closeQuote(out);
      } else {
        out += line[this.at];
        this.at++;
      }
    }
  }

  /** A closing quote must be followed by whitespace or the end of the line. */
  private closeQuote(text: string): string | null {
    this.at++;
    if (this.at < this.line.length && !isSpace(this.line.charCodeAt(this.at))) return null;
    return text;
  }
}
