/**
 * Big-endian binary writer and reader shared by the lock command encoding and
 * the lock table snapshot. Strings are binary strings (one char per byte, as
 * the RESP decoder produces them), written as a u32 length and their bytes.
 */
import type { Durability } from './machine.js';
import { slabCopy } from '../storage/slab.js';
import { latin1 } from '../../resp/decoder.js';

export class Writer {
  private buf: Buffer;
  private at = 0;

  constructor(initialBytes = 64) {
    this.buf = Buffer.allocUnsafe(initialBytes);
  }

  get length(): number {
    return this.at;
  }

  /** Starts over, keeping the buffer (one writer can serve many encodings). */
  reset(): this {
    this.at = 0;
    return this;
  }

  u8(n: number): this {
    this.room(1);
    this.buf[this.at++] = n;
    return this;
  }

  u32(n: number): this {
    this.room(4);
    this.buf.writeUInt32BE(n, this.at);
    this.at += 4;
    return this;
  }

  u64(n: bigint): this {
    this.room(8);
    this.buf.writeBigUInt64BE(n, this.at);
    this.at += 8;
    return this;
  }

  /** A non-negative safe integer as a u64 (no bigint). */
  u64n(n: number): this {
    this.room(8);
    const hi = Math.floor(n / 0x100000000);
    this.buf.writeUInt32BE(hi, this.at);
    this.buf.writeUInt32BE(n - hi * 0x100000000, this.at + 4);
    this.at += 8;
    return this;
  }

  f64(n: number): this {
    this.room(8);
    this.buf.writeDoubleBE(n, this.at);
    this.at += 8;
    return this;
  }

  /** A binary string (one char per byte). */
  str(s: string): this {
    this.u32(s.length);
    this.room(s.length);
    // Short strings (resource and owner names) are cheaper copied here than through a native call.
    if (s.length <= 48) {
      for (let i = 0; i < s.length; i++) this.buf[this.at++] = s.charCodeAt(i);
    } else {
      this.at += this.buf.write(s, this.at, s.length, 'latin1');
    }
    return this;
  }

  /** A copy of the bytes written, as a Uint8Array of exactly that length (small ones share a slab chunk). */
  finish(): Uint8Array {
    return slabCopy(this.buf, 0, this.at);
  }

  /**
   * The bytes written, without a copy: hands over the writer's buffer, so the
   * writer must not be used again. For a writer sized up front to what it
   * writes (a large one: small buffers come from Node's shared pool).
   */
  take(): Uint8Array {
    const buf = this.buf;
    const n = this.at;
    this.buf = Buffer.alloc(0);
    this.at = 0;
    // A buffer of its own (not a slice of the pool) is handed over as it is.
    return buf.byteOffset === 0 && buf.length === buf.buffer.byteLength ? buf.subarray(0, n) : slabCopy(buf, 0, n);
  }

  /** Makes room for n more bytes. */
  room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n));
    this.buf.copy(next, 0, 0, this.at);
    this.buf = next;
  }
}

/** Scratch for reading a big-endian float64 without a DataView (or Buffer view) per read. */
const F64 = new Float64Array(1);
const F64_BYTES = new Uint8Array(F64.buffer);
const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The big-endian float64 at bytes[at, at + 8); the caller checks the bounds. */
export function readF64BE(bytes: Uint8Array, at: number): number {
  if (HOST_LITTLE_ENDIAN) for (let i = 0; i < 8; i++) F64_BYTES[i] = bytes[at + 7 - i]!;
  else for (let i = 0; i < 8; i++) F64_BYTES[i] = bytes[at + i]!;
  return F64[0]!;
}

/** Reads what Writer wrote, straight from the bytes given (no Buffer view is made). */
export class Reader {
  private at = 0;

  /** what names the encoding in error messages ("lock command", "lock snapshot"). */
  constructor(private readonly bytes: Uint8Array, private readonly what: string) {}

  u8(): number {
    this.need(1);
    return this.bytes[this.at++]!;
  }

  u32(): number {
    this.need(4);
    const b = this.bytes;
    const at = this.at;
    this.at = at + 4;
    return b[at]! * 0x1000000 + ((b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!);
  }

  f64(): number {
    this.need(8);
    const n = readF64BE(this.bytes, this.at);
    this.at += 8;
    return n;
  }

  /** A flat binary string (never a rope of one-char pieces: these become Map keys). */
  str(): string {
    const len = this.u32();
    this.need(len);
    const start = this.at;
    this.at += len;
    return latin1(this.bytes, start, start + len);
  }

  durability(): Durability {
    const d = this.u8();
    if (d > 1) throw this.error(`bad durability ${d}`);
    return d === 0 ? 'persistent' : 'ephemeral';
  }

  pick<T>(values: readonly T[]): T {
    const i = this.u8();
    if (i >= values.length) throw this.error(`bad enum value ${i}`);
    return values[i]!;
  }

  end(): void {
    if (this.at !== this.bytes.length) throw this.error(`${this.bytes.length - this.at} trailing bytes`);
  }

  error(detail: string): Error {
    return new Error(`${this.what}: ${detail}`);
  }

  private need(n: number): void {
    if (this.at + n > this.bytes.length) throw this.error('truncated');
  }
}
