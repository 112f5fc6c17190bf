/**
 * The simulator's only source of randomness. One seed makes a root generator;
 * every subsystem (network, faults, each client, each node's Raft timers,
 * each crash) forks its own stream from it by a label, so that adding a draw
 * in one subsystem does not shift what every other subsystem sees.
 */

/** A 32-bit FNV-1a hash of a string: stable labels for forked streams and trace hashes. */
export function fnv1a(text: string, hash = 0x811c9dc5): number {
  let h = hash >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** sfc32 (Chris Doty-Humphrey's small fast counter generator): 128-bit state, fast, good enough for fault injection. */
export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = (seed >>> 0) ^ Math.floor(seed / 2 ** 32);
    for (let i = 0; i < 15; i++) this.next();
  }

  /** Uniform in [0, 1). */
  next(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return (t >>> 0) / 4294967296;
  }

  /** The generator as a plain function, for APIs that take `() => number`. */
  get fn(): () => number {
    return () => this.next();
  }

  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** Uniform real in [lo, hi). */
  real(lo: number, hi: number): number {
    return lo + this.next() * (hi - lo);
  }

  chance(p: number): boolean {
    return p > 0 && this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick from an empty list');
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** Fisher–Yates, in place. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [items[i], items[j]] = [items[j]!, items[i]!];
    }
    return items;
  }

  /** An independent stream named by label; the same (state, label) always gives the same stream. */
  fork(label: string): Prng {
    const mixed = fnv1a(label, Math.floor(this.next() * 4294967296));
    return new Prng(mixed * 2 ** 20 + Math.floor(this.next() * 2 ** 20));
  }
}

/** Forks a stream per label from the seed alone, so streams do not depend on the order they are created in. */
export function streamFor(seed: number, label: string): Prng {
  return new Prng(seed).fork(label);
}
