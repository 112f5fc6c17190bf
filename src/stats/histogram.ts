/**
 * A log-linear histogram of non-negative integers (durations in ns, batch
 * sizes), laid out as HdrHistogram with 2 significant digits, the layout
 * Redis uses for LATENCY HISTOGRAM and INFO latencystats: values below 256
 * are counted exactly; above, each power of two is split into 128 equal
 * buckets, so a bucket is never wider than 1/128 of its values. Recording is
 * a few arithmetic operations and one array increment, no allocation.
 */

const SUB_BUCKETS = 256;
const HALF = SUB_BUCKETS / 2;
/** Largest value recorded as itself; larger ones count as this (as ns: about 137 s). */
export const HISTOGRAM_VALUE_MAX = 2 ** 37 - 1;
const BUCKETS = SUB_BUCKETS + (37 - 8) * HALF;
const TWO_32 = 2 ** 32;

/** The bucket an integer value (0 … HISTOGRAM_VALUE_MAX) falls in. */
function indexOf(value: number): number {
  if (value < SUB_BUCKETS) return value;
  // shift = log2(value) - 7, so that value >> shift has 8 significant bits (128 … 255).
  if (value < TWO_32) {
    const shift = 24 - Math.clz32(value);
    return SUB_BUCKETS + (shift - 1) * HALF + ((value >>> shift) - HALF);
  }
  const shift = 56 - Math.clz32(value / TWO_32);
  return SUB_BUCKETS + (shift - 1) * HALF + (Math.floor(value / 2 ** shift) - HALF);
}

/** The smallest and the largest value a bucket stands for. */
function boundsOf(index: number): { low: number; high: number } {
  if (index < SUB_BUCKETS) return { low: index, high: index };
  const shift = Math.floor((index - SUB_BUCKETS) / HALF) + 1;
  const sub = ((index - SUB_BUCKETS) % HALF) + HALF;
  return { low: sub * 2 ** shift, high: (sub + 1) * 2 ** shift - 1 };
}

function clamp(value: number): number {
  return value <= 0 ? 0 : value >= HISTOGRAM_VALUE_MAX ? HISTOGRAM_VALUE_MAX : Math.round(value);
}

/** The largest value of the bucket `value` falls in (HdrHistogram's "highest equivalent value"). */
export function highestEquivalent(value: number): number {
  return boundsOf(indexOf(clamp(value))).high;
}

export interface HistogramBucket {
  readonly low: number;
  readonly high: number;
  readonly count: number;
}

export class Histogram {
  /** Exact up to 2^53 samples per bucket. */
  private readonly counts = new Float64Array(BUCKETS);
  /** Samples recorded. */
  count = 0;
  /** Sum of the recorded values as given (before rounding and bucketing). */
  sum = 0;

  record(value: number): void {
    this.counts[indexOf(clamp(value))] += 1;
    this.count += 1;
    this.sum += value;
  }

  /**
   * The value at a percentile (0 … 100) as HdrHistogram computes it: the
   * highest value of the bucket holding the sample of that rank; 0 when empty.
   */
  percentile(percentile: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.round((percentile / 100) * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return boundsOf(i).high;
    }
    return HISTOGRAM_VALUE_MAX;
  }

  /** The non-empty buckets, smallest values first. */
  *buckets(): Generator<HistogramBucket> {
    for (let i = 0; i < BUCKETS; i++) {
      const count = this.counts[i]!;
      if (count > 0) yield { ...boundsOf(i), count };
    }
  }
}
