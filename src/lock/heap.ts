/**
 * A binary min-heap of (deadline, key) pairs, ordered by deadline, then key
 * (so that the pop order is a function of the contents alone). Entries are never updated in
 * place: when a key's deadline changes a new pair is pushed and the old one is
 * recognised as stale when popped (the caller checks it against the table).
 */
export class DeadlineHeap {
  private readonly deadlines: number[] = [];
  private readonly keys: string[] = [];

  get size(): number {
    return this.deadlines.length;
  }

  push(deadlineMs: number, key: string): void {
    this.deadlines.push(deadlineMs);
    this.keys.push(key);
    this.siftUp(this.deadlines.length - 1);
  }

  /** The smallest deadline, or Infinity when empty. */
  peekDeadline(): number {
    return this.deadlines.length > 0 ? this.deadlines[0]! : Infinity;
  }

  peekKey(): string | undefined {
    return this.keys[0];
  }

  pop(): void {
    const last = this.deadlines.length - 1;
    if (last < 0) return;
    this.swap(0, last);
    this.deadlines.pop();
    this.keys.pop();
    if (last > 0) this.siftDown(0);
  }

  clear(): void {
    this.deadlines.length = 0;
    this.keys.length = 0;
  }

  private siftUp(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) return;
      this.swap(i, parent);
      i = parent;
    }
  }

  private siftDown(i: number): void {
    const n = this.deadlines.length;
    while (true) {
      const l = 2 * i + 1;
      const r = l + 1;
      let min = i;
      if (l < n && this.less(l, min)) min = l;
      if (r < n && this.less(r, min)) min = r;
      if (min === i) return;
      this.swap(i, min);
      i = min;
    }
  }

  private less(a: number, b: number): boolean {
    const da = this.deadlines[a]!;
    const db = this.deadlines[b]!;
    return da < db || (da === db && this.keys[a]! < this.keys[b]!);
  }

  private swap(a: number, b: number): void {
    const d = this.deadlines[a]!;
    this.deadlines[a] = this.deadlines[b]!;
    this.deadlines[b] = d;
    const k = this.keys[a]!;
    this.keys[a] = this.keys[b]!;
    this.keys[b] = k;
  }
}
