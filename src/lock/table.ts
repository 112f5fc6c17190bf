import { DeadlineHeap } from './heap.js';
import type { Reader, Writer } from './codec.js';

/** Expiry of a lock that never expires (a Redis key without a TTL). */
export const NO_EXPIRY = Infinity;

export interface Holder {
  readonly owner: string;
  readonly token: bigint;
  /** Log time (ms) after which the lock is free; NO_EXPIRY for none. */
  readonly expiresAtMs: number;
}

export interface LockTableLimits {
  /**
   * Released resources remember their last fencing token so that the next
   * holder gets a larger one. Past this many, some are forgotten and their
   * tokens folded into a floor that every forgotten resource starts from, so
   * tokens still never go backwards while memory stays bounded.
   */
  tombstonesMax: number;
}

export const DEFAULT_TABLE_LIMITS: LockTableLimits = { tombstonesMax: 1_000_000 };

/**
 * One resource's record. A free record (owner null) is a tombstone that keeps
 * the last token. Records are updated in place: acquiring and releasing a hot
 * resource never deletes and re-inserts its Map entry, which would leave a
 * growing chain of deleted slots behind that key until the Map rehashes.
 */
interface LockRecord {
  owner: string | null;
  token: bigint;
  expiresAtMs: number;
}

/**
 * One namespace of locks (PERSISTENT or EPHEMERAL). Pure: time is passed in as
 * log time; nothing here reads a clock. A lock is expired when now > expiresAt,
 * so a lease is held for at least its full ttl.
 */
export class LockTable {
  private readonly records = new Map<string, LockRecord>();
  private readonly expiries = new DeadlineHeap();
  private tokenFloor = 0n;
  private live = 0;
  /** Locks released because their lease ran out (INFO expired_keys). */
  expiredTotal = 0;
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
    const record = this.records.get(resource);
    if (record === undefined || record.owner === null) return undefined;
    if (nowMs > record.expiresAtMs) {
      this.expiredTotal += 1;
      this.releaseRecord(resource, record);
      return undefined;
    }
    return record as Holder;
  }

  /**
   * The current holder without changing anything: reads must not mutate, so
   * that every replica's state depends only on the log it applied.
   */
  peek(resource: string, nowMs: number): Holder | undefined {
    const record = this.records.get(resource);
    if (record === undefined || record.owner === null || nowMs > record.expiresAtMs) return undefined;
    return record as Holder;
  }

  /** Grants the free resource to owner with a new fencing token. */
  grant(resource: string, owner: string, expiresAtMs: number): Holder {
    let record = this.records.get(resource);
    if (record !== undefined && record.owner !== null) throw new Error(`grant of held resource '${resource}'`);
    if (record === undefined) {
      record = { owner, token: this.tokenFloor, expiresAtMs: NO_EXPIRY };
      this.records.set(resource, record);
    } else {
      const next = record.token + 1n;
      record.owner = owner;
      record.token = next > this.tokenFloor ? next : this.tokenFloor;
      record.expiresAtMs = NO_EXPIRY;
    }
    this.live += 1;
    this.setExpiry(resource, record as Holder, expiresAtMs);
    return record as Holder;
  }

  /** Replaces the holder (Redis SET semantics): the same owner keeps its token, another gets the next one. */
  replace(resource: string, owner: string, expiresAtMs: number, nowMs: number): Holder {
    const current = this.lookup(resource, nowMs);
    if (current === undefined) return this.grant(resource, owner, expiresAtMs);
    if (current.owner !== owner) {
      const record = current as LockRecord;
      record.owner = owner;
      record.token += 1n;
    }
    this.setExpiry(resource, current, expiresAtMs);
    return current;
  }

  setExpiry(resource: string, holder: Holder, expiresAtMs: number): void {
    this.expiring += (expiresAtMs !== NO_EXPIRY ? 1 : 0) - (holder.expiresAtMs !== NO_EXPIRY ? 1 : 0);
    (holder as LockRecord).expiresAtMs = expiresAtMs;
    if (expiresAtMs !== NO_EXPIRY) this.pushExpiry(expiresAtMs, resource);
  }

  /** Frees a held resource; its token is remembered for the next holder. */
  release(resource: string, holder: Holder): void {
    const record = this.records.get(resource);
    if (record !== holder || record.owner === null) throw new Error(`release of a lock not held: '${resource}'`);
    this.releaseRecord(resource, record);
  }

  /**
   * Releases up to budget expired locks in (deadline, resource) order and
   * returns how many it released. Stale heap entries (locks extended or
   * released since) are discarded without counting against the budget: each
   * is popped once, so the work stays amortised O(1) per expiry set, and which
   * locks a call releases depends only on the table's records, never on the
   * heap's history; so replicas, including ones restored from a snapshot,
   * release the same locks.
   */
  expireDue(nowMs: number, budget: number): number {
    let released = 0;
    while (released < budget && this.expiries.peekDeadline() < nowMs) {
      const deadline = this.expiries.peekDeadline();
      const resource = this.expiries.peekKey()!;
      this.expiries.pop();
      const record = this.records.get(resource);
      if (record !== undefined && record.owner !== null && record.expiresAtMs === deadline) {
        this.expiredTotal += 1;
        this.releaseRecord(resource, record);
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
    return this.live;
  }

  /** Live holders after reclaiming every expired one; O(expired). */
  liveCount(nowMs: number): number {
    this.expireDue(nowMs, Infinity);
    return this.live;
  }

  /** Of the live holders, how many have a finite expiry. */
  get expiringCount(): number {
    return this.expiring;
  }

  /** Resources with a record: holders (expired or not) and tombstones. */
  get recordCount(): number {
    return this.records.size;
  }

  /** Released resources whose last token is remembered individually. */
  get tombstoneCount(): number {
    return this.records.size - this.live;
  }

  /** Resources freed since the last call, in order. */
  drainFreed(): string[] {
    if (this.freed.length === 0) return EMPTY;
    const out = this.freed;
    this.freed = [];
    return out;
  }

  /**
   * Writes the whole table (records in Map order, tombstones included, and
   * the token floor) so that a table read back with readSnapshot() behaves
   * exactly like this one from then on. The expiry heap is rebuilt: expiry
   * order does not depend on its layout or its stale entries.
   */
  writeSnapshot(w: Writer): void {
    w.u64(this.tokenFloor).f64(this.expiredTotal).u32(this.records.size);
    for (const [resource, record] of this.records) {
      w.str(resource).u64(record.token).f64(record.expiresAtMs);
      if (record.owner === null) w.u8(0);
      else w.u8(1).str(record.owner);
    }
  }

  /** Replaces the whole table with what writeSnapshot() wrote. */
  readSnapshot(r: Reader): void {
    this.records.clear();
    this.freed = [];
    this.tokenFloor = r.u64();
    this.expiredTotal = r.f64();
    this.live = 0;
    this.expiring = 0;
    const count = r.u32();
    for (let i = 0; i < count; i++) {
      const resource = r.str();
      const token = r.u64();
      const expiresAtMs = r.f64();
      const owner = r.u8() === 0 ? null : r.str();
      if (owner !== null) {
        this.live += 1;
        if (expiresAtMs !== NO_EXPIRY) this.expiring += 1;
      } else if (expiresAtMs !== NO_EXPIRY) {
        throw r.error(`free resource '${resource}' has an expiry`);
      }
      this.records.set(resource, { owner, token, expiresAtMs });
    }
    if (this.records.size !== count) throw r.error('a resource appears twice');
    this.rebuildExpiries();
  }

  /** All live (unexpired) entries; for snapshots and tests. */
  *entries(nowMs: number): IterableIterator<[string, Holder]> {
    for (const [resource, record] of this.records) {
      if (record.owner !== null && nowMs <= record.expiresAtMs) yield [resource, record as Holder];
    }
  }

  private releaseRecord(resource: string, record: LockRecord): void {
    if (record.expiresAtMs !== NO_EXPIRY) this.expiring -= 1;
    record.owner = null;
    record.expiresAtMs = NO_EXPIRY;
    this.live -= 1;
    this.freed.push(resource);
    if (this.tombstoneCount > this.limits.tombstonesMax) this.evictTombstones();
  }

  /**
   * Forgets tombstones until a tenth of the limit is free again, folding their
   * tokens into the floor. Any choice of victims is safe, because a forgotten
   * resource restarts above every forgotten token; the batch keeps the cost
   * per release amortised O(1) even when live records sit between tombstones.
   */
  private evictTombstones(): void {
    const target = Math.floor(this.limits.tombstonesMax * 0.9);
    // Always from the front of the Map: the victims then depend only on the
    // table's contents and order, which a snapshot preserves, so a replica
    // restored from one evicts exactly what the others do.
    for (const [resource, record] of this.records) {
      if (this.tombstoneCount <= target) return;
      if (record.owner !== null) continue;
      if (record.token + 1n > this.tokenFloor) this.tokenFloor = record.token + 1n;
      this.records.delete(resource);
    }
    throw new Error('tombstone count out of step with the table');
  }

  private pushExpiry(expiresAtMs: number, resource: string): void {
    this.expiries.push(expiresAtMs, resource);
    // Extends leave stale entries behind; rebuild before they dominate memory.
    if (this.expiries.size > 2 * this.live + 1024) this.rebuildExpiries();
  }

  private rebuildExpiries(): void {
    this.expiries.clear();
    for (const [resource, record] of this.records) {
      if (record.owner !== null && record.expiresAtMs !== NO_EXPIRY) this.expiries.push(record.expiresAtMs, resource);
    }
  }
}

const EMPTY: string[] = [];
