const INITIAL_CAPACITY = 64;

/**
 * A binary min-heap of (deadline, key) pairs, ordered by deadline, then key
 * (so that the pop order is a function of the contents alone). Entries are never updated in
 * place: when a key's deadline changes a new pair is pushed and the old one is
 * recognised as stale when popped (the caller checks it against the table).
 *
 * Deadlines live in a Float64Array rather than one boxed number per entry;
 * its unused tail is never written, so it costs address space, not memory.
 */
export class DeadlineHeap {
  private deadlines = new Float64Array(INITIAL_CAPACITY);
  private readonly keys: string[] = [];
  private count = 0;

  get size(): number {
    return this.count;
  }

  push(deadlineMs: number, key: string): void {
    if (this.count === this.deadlines.length) this.resize(this.count + (this.count >> 1));
    this.keys.push(key);
    this.count += 1;
    this.siftUp(this.count - 1, deadlineMs, key);
  }

  /** The smallest deadline, or Infinity when empty. */
  peekDeadline(): number {
    return this.count > 0 ? this.deadlines[0]! : Infinity;
  }

  peekKey(): string | undefined {
    return this.keys[0];
  }

  pop(): void {
    if (this.count === 0) return;
    this.count -= 1;
    const last = this.count;
    const deadline = this.deadlines[last]!;
    const key = this.keys.pop()!;
    if (last > 0) this.siftDown(0, deadline, key);
    // Give memory back after a burst, with hysteresis so that it stays amortised O(1).
    if (this.deadlines.length > INITIAL_CAPACITY && this.count < this.deadlines.length >> 2) {
      this.resize(this.deadlines.length >> 1);
    }
  }

  clear(): void {
    this.count = 0;
    this.keys.length = 0;
    this.deadlines = new Float64Array(INITIAL_CAPACITY);
  }

  private resize(capacity: number): void {
    const next = new Float64Array(Math.max(capacity, INITIAL_CAPACITY));
    next.set(this.deadlines.subarray(0, this.count));
    this.deadlines = next;
  }

  /** Places (deadline, key) at hole i or above it, moving larger parents down. */
  private siftUp(i: number, deadline: number, key: string): void {
    const deadlines = this.deadlines;
    const keys = this.keys;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const dp = deadlines[parent]!;
      if (dp < deadline || (dp === deadline && keys[parent]! <= key)) break;
      deadlines[i] = dp;
      keys[i] = keys[parent]!;
      i = parent;
    }
    deadlines[i] = deadline;
    keys[i] = key;
  }

  /** Places (deadline, key) at hole i or below it, moving smaller children up. */
  private siftDown(i: number, deadline: number, key: string): void {
    const deadlines = this.deadlines;
    const keys = this.keys;
    const n = this.count;
    while (true) {
      let child = 2 * i + 1;
      if (child >= n) break;
      const right = child + 1;
      if (right < n && less(deadlines[right]!, keys[right]!, deadlines[child]!, keys[child]!)) child = right;
      if (!less(deadlines[child]!, keys[child]!, deadline, key)) break;
      deadlines[i] = deadlines[child]!;
      keys[i] = keys[child]!;
      i = child;
    }
    deadlines[i] = deadline;
    keys[i] = key;
  }
}

function less(da: number, ka: string, db: number, kb: string): boolean {
  return da < db || (da === db && ka < kb);
}
