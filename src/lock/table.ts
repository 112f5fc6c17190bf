import { DeadlineHeap } from './heap.js';

/** Expiry of a lock that never expires (a Redis key without a TTL). */
export const NO_EXPIRY = Infinity;

export interface Holder {
  readonly owner: string;
  readonly token: bigint;
  /** Log time (ms) after which the lock is free; NO_EXPIRY for none. */
  expiresAtMs: number;
}

export interface LockTableLimits {
  /**
   * Released resources remember their last fencing token so that the next
   * holder gets a larger one. Past this many, the oldest are forgotten and
   * their tokens folded into a floor that every forgotten resource starts from,
   * so tokens still never go backwards while memory stays bounded.
   */
  tombstonesMax: number;
}

export const DEFAULT_TABLE_LIMITS: LockTableLimits = { tombstonesMax: 1_000_000 };

/**
 * One namespace of locks (PERSISTENT or EPHEMERAL). Pure: time is passed in as
 * log time; nothing here reads a clock. A lock is expired when now > expiresAt,
 * so a lease is held for at least its full ttl.
 */
export class LockTable {
  private readonly live = new Map<string, Holder>();
  private readonly tombstones = new Map<string, bigint>();
  private readonly expiries = new DeadlineHeap();
  private tokenFloor = 0n;
  /** Live holders with a finite expiry (for INFO keyspace without a scan). */
  private expiring = 0;
  /** Resources released or expired since the last drain (for waiters). */
  private freed: string[] = [];

  constructor(private readonly limits: LockTableLimits = DEFAULT_TABLE_LIMITS) {
    if (!Number.isInteger(limits.tombstonesMax) || limits.tombstonesMax < 0) {
      throw new RangeError(`tombstonesMax must be a non-negative integer, got ${limits.tombstonesMax}`);
    }
  }

  /** The current holder, or undefined when free (an expired holder is released first). */
  lookup(resource: string, nowMs: number): Holder | undefined {
    const holder = this.live.get(resource);
    if (holder === undefined) return undefined;
    if (nowMs > holder.expiresAtMs) {
      this.release(resource, holder);
      return undefined;
    }
    return holder;
  }

  /** Grants the free resource to owner with a new fencing token. */
  grant(resource: string, owner: string, expiresAtMs: number): Holder {
    const holder: Holder = { owner, token: this.nextToken(resource), expiresAtMs };
    this.live.set(resource, holder);
    if (expiresAtMs !== NO_EXPIRY) {
      this.expiring += 1;
      this.pushExpiry(expiresAtMs, resource);
    }
    return holder;
  }

  /** Replaces the holder (Redis SET semantics): same owner keeps its token. */
  replace(resource: string, owner: string, expiresAtMs: number, nowMs: number): Holder {
    const current = this.lookup(resource, nowMs);
    if (current !== undefined && current.owner === owner) {
      this.setExpiry(resource, current, expiresAtMs);
      return current;
    }
    if (current !== undefined) {
      const holder: Holder = { owner, token: current.token + 1n, expiresAtMs: NO_EXPIRY };
      if (current.expiresAtMs !== NO_EXPIRY) this.expiring -= 1;
      this.live.set(resource, holder);
      this.setExpiry(resource, holder, expiresAtMs);
      return holder;
    }
    return this.grant(resource, owner, expiresAtMs);
  }

  setExpiry(resource: string, holder: Holder, expiresAtMs: number): void {
    this.expiring += (expiresAtMs !== NO_EXPIRY ? 1 : 0) - (holder.expiresAtMs !== NO_EXPIRY ? 1 : 0);
    holder.expiresAtMs = expiresAtMs;
    if (expiresAtMs !== NO_EXPIRY) this.pushExpiry(expiresAtMs, resource);
  }

  /** Frees a resource; its token is remembered for the next holder. */
  release(resource: string, holder: Holder): void {
    if (holder.expiresAtMs !== NO_EXPIRY) this.expiring -= 1;
    this.live.delete(resource);
    this.tombstones.delete(resource);
    this.tombstones.set(resource, holder.token);
    this.freed.push(resource);
    if (this.tombstones.size > this.limits.tombstonesMax) this.forgetOldest();
  }

  /**
   * Releases up to budget expired locks, oldest deadline first. Returns how
   * many were released. Stale heap entries (extended or released locks) are
   * discarded without counting against the budget's purpose.
   */
  expireDue(nowMs: number, budget: number): number {
    let released = 0;
    let examined = 0;
    while (examined < budget && this.expiries.peekDeadline() < nowMs) {
      examined += 1;
      const deadline = this.expiries.peekDeadline();
      const resource = this.expiries.peekKey()!;
      this.expiries.pop();
      const holder = this.live.get(resource);
      if (holder !== undefined && holder.expiresAtMs === deadline) {
        this.release(resource, holder);
        released += 1;
      }
    }
    return released;
  }

  /** Earliest pending expiry deadline (may be stale), Infinity if none. */
  nextExpiryMs(): number {
    return this.expiries.peekDeadline();
  }

  /** Live holders, including ones expired but not yet reclaimed. */
  get sizeIncludingExpired(): number {
    return this.live.size;
  }

  /** Live holders after reclaiming every expired one; O(expired). */
  liveCount(nowMs: number): number {
    this.expireDue(nowMs, Infinity);
    return this.live.size;
  }

  /** Of the live holders, how many have a finite expiry (call after liveCount). */
  get expiringCount(): number {
    return this.expiring;
  }

  get tombstoneCount(): number {
    return this.tombstones.size;
  }

  /** Resources freed since the last call, in order. */
  drainFreed(): string[] {
    if (this.freed.length === 0) return EMPTY;
    const out = this.freed;
    this.freed = [];
    return out;
  }

  /** All live (unexpired) entries; for snapshots and tests. */
  *entries(nowMs: number): IterableIterator<[string, Holder]> {
    for (const [resource, holder] of this.live) {
      if (nowMs <= holder.expiresAtMs) yield [resource, holder];
    }
  }

  private nextToken(resource: string): bigint {
    const last = this.tombstones.get(resource);
    if (last === undefined) return this.tokenFloor;
    const next = last + 1n;
    return next > this.tokenFloor ? next : this.tokenFloor;
  }

  private forgetOldest(): void {
    const oldest = this.tombstones.keys().next();
    if (oldest.done === true) return;
    const token = this.tombstones.get(oldest.value)!;
    this.tombstones.delete(oldest.value);
    if (token + 1n > this.tokenFloor) this.tokenFloor = token + 1n;
  }

  private pushExpiry(expiresAtMs: number, resource: string): void {
    this.expiries.push(expiresAtMs, resource);
    // Extends leave stale entries behind; rebuild before they dominate memory.
    if (this.expiries.size > 2 * this.live.size + 1024) this.rebuildExpiries();
  }

  private rebuildExpiries(): void {
    this.expiries.clear();
    for (const [resource, holder] of this.live) {
      if (holder.expiresAtMs !== NO_EXPIRY) this.expiries.push(holder.expiresAtMs, resource);
    }
  }
}

const EMPTY: string[] = [];
