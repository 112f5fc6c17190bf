/**
 * A leader's proposals waiting for their log entries to apply, in index order.
 *
 * Within one leadership the indices a leader proposes at only grow, and
 * entries apply one index after another, so a queue finds the proposal of an
 * applied entry by looking at its head: no Map insert, lookup and delete per
 * write, and no rehashing as the number in flight rises and falls. Anything
 * that breaks that order (the log rewritten under a proposal, an index
 * skipped) ends the proposals it passes over with the error given by
 * `orphaned`: their entries may or may not have been replaced.
 */
export interface Proposed {
  readonly index: number;
}

/** Past this many taken slots at the front (and half the array), the array is compacted. */
const COMPACT_AFTER = 1024;

export class ProposalQueue<P extends Proposed> {
  private items: P[] = [];
  private head = 0;

  /** orphaned: ends a proposal whose entry was replaced or skipped. */
  constructor(private readonly orphaned: (proposal: P) => void) {}

  get size(): number {
    return this.items.length - this.head;
  }

  /** Adds a proposal; earlier ones at its index or beyond (a rewritten log) are orphaned first. */
  push(proposal: P): void {
    while (this.size > 0 && this.items[this.items.length - 1]!.index >= proposal.index) this.orphaned(this.items.pop()!);
    this.items.push(proposal);
  }

  /** The proposal at index, removed; undefined if none. Proposals before index are orphaned. */
  take(index: number): P | undefined {
    while (this.head < this.items.length) {
      const first = this.items[this.head]!;
      if (first.index > index) return undefined;
      this.items[this.head] = undefined as unknown as P;
      this.head += 1;
      this.compact();
      if (first.index === index) return first;
      this.orphaned(first);
    }
    return undefined;
  }

  /** The proposal at index, left in place; undefined if none. */
  peek(index: number): P | undefined {
    let lo = this.head;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.items[mid]!.index < index) lo = mid + 1;
      else hi = mid;
    }
    const found = this.items[lo];
    return lo < this.items.length && found!.index === index ? found : undefined;
  }

  /** Removes and returns every proposal, oldest first. */
  drain(): P[] {
    const all = this.items.slice(this.head);
    this.items = [];
    this.head = 0;
    return all;
  }

  private compact(): void {
    if (this.head === this.items.length) {
      this.items.length = 0;
      this.head = 0;
    } else if (this.head >= COMPACT_AFTER && this.head * 2 >= this.items.length) {
      this.items.splice(0, this.head);
      this.head = 0;
    }
  }
}
