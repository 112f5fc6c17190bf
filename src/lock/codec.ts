/**
 * Big-endian binary writer and reader shared by the lock command encoding and
 * the lock table snapshot. Strings are binary strings (one char per byte, as
 * the RESP decoder produces them), written as a u32 length and their bytes.
 */
import type { Durability } from './machine.js';
import { slabCopy } from '../storage/slab.js';

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
    if (s.length <= 16) {
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

  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n));
    this.buf.copy(next, 0, 0, this.at);
    this.buf = next;
  }
}

export class Reader {
  private readonly buf: Buffer;
  private at = 0;

  /** what names the encoding in error messages ("lock command", "lock snapshot"). */
  constructor(bytes: Uint8Array, private readonly what: string) {
    this.buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  u8(): number {
    this.need(1);
    return this.buf[this.at++]!;
  }

  u32(): number {
    this.need(4);
    const n = this.buf.readUInt32BE(this.at);
    this.at += 4;
    return n;
  }

  u64(): bigint {
    this.need(8);
    const n = this.buf.readBigUInt64BE(this.at);
    this.at += 8;
    return n;
  }

  f64(): number {
    this.need(8);
    const n = this.buf.readDoubleBE(this.at);
    this.at += 8;
    return n;
  }

  /** A flat binary string (never a rope of one-char pieces: these become Map keys). */
  str(): string {
    const len = this.u32();
    this.need(len);
    const s = this.buf.toString('latin1', this.at, this.at + len);
    this.at += len;
    return s;
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
    if (this.at !== this.buf.length) throw this.error(`${this.buf.length - this.at} trailing bytes`);
  }

  error(detail: string): Error {
    return new Error(`${this.what}: ${detail}`);
  }

  private need(n: number): void {
    if (this.at + n > this.buf.length) throw this.error('truncated');
  }
}
