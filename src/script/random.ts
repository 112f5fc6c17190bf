/**
 * The deterministic random numbers scripts get from math.random: Redis's
 * rand48 (the drand48 linear congruential generator), reseeded with 0
 * before every script as Redis does, so each run of a script draws the same
 * sequence on every replica.
 */
const MULTIPLIER = 0x5deece66dn;
const INCREMENT = 0xbn;
const MASK_48 = (1n << 48n) - 1n;
/** REDIS_LRAND48_MAX: INT32_MAX. */
export const LRAND48_MAX = 2147483647;

export class Rand48 {
  private state = 0n;

  constructor(seed = 0) {
    this.seed(seed);
  }

  /** redisSrand48: the 32-bit seed in the high bits, 0x330E below. */
  seed(seed: number): void {
    this.state = ((BigInt(seed | 0) & 0xffffffffn) << 16n) | 0x330en;
  }

  /** redisLrand48: the next 31-bit value. */
  next(): number {
    this.state = (this.state * MULTIPLIER + INCREMENT) & MASK_48;
    return Number(this.state >> 17n);
  }

  /** math.random() as Redis's Lua computes it: a double in [0, 1). */
  nextUnit(): number {
    return (this.next() % LRAND48_MAX) / LRAND48_MAX;
  }
}
