import { DeadlineHeap } from './heap.js';
import type { Reader, Writer } from './codec.js';

/** Expiry of a lock that never expires (a Redis key without a TTL). */
export const NO_EXPIRY = Infinity;

/**
 * Largest fencing token. Tokens are kept as float64, which holds every integer
 * up to 2^53 - 1 exactly; a grant past it throws rather than repeat a token.
 * At a million grants a second on one resource that takes 285 years.
 */
export const TOKEN_MAX = Number.MAX_SAFE_INTEGER;

/**
 * Where a resource's record sits in the table's columns: what lookup(),
 * peekSlot() and grant() return and the other methods take. A slot is only
 * valid until the table next changes (evicted tombstones' slots are reused).
 */
export type Slot = number;

/** lookup() and peekSlot() of a free resource. */
export const NO_SLOT: Slot = -1;

/** A holder as an object, for callers that want one (peek(), entries()). */
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

const INITIAL_SLOTS = 64;

/**
 * One namespace of locks (PERSISTENT or EPHEMERAL). Pure: time is passed in as
 * log time; nothing here reads a clock. A lock is expired when now > expiresAt,
 * so a lease is held for at least its full ttl.
 *
 * Memory is what bounds how many locks a server holds, so a record is not an
 * object but a slot in columns: the Map from resource to slot holds a small
 * integer, expiry and token sit side by side in one Float64Array, and owners
 * in a plain array. A free record (owner null) is a tombstone that keeps the
 * last token. Records are updated in place: acquiring and releasing a hot
 * resource never deletes and re-inserts its Map entry, which would leave a
 * growing chain of deleted slots behind that key until the Map rehashes.
 */
export class LockTable {
  /** Resource → slot, in insertion order, which eviction and snapshots follow. */
  private slots = new Map<string, Slot>();
  /** Slot s: [2s] expiresAtMs (NO_EXPIRY for none and for tombstones), [2s + 1] token. */
  private cells = new Float64Array(2 * INITIAL_SLOTS);
  /** Slot s's holder; null for a tombstone or an unused slot. Its length is the slots handed out. */
  private owners: (string | null)[] = [];
  /**
   * The owner whose release() last freed slot s, kept while a later owner
   * holds it; null once a lease ran out there (expiry is not a release).
   */
  private releasers: (string | null)[] = [];
  /** Slots of evicted tombstones, handed out again before new ones. */
  private freeSlots: Slot[] = [];
  private expiries = new DeadlineHeap();
  /** Every resource without a record starts from this token. */
  private tokenFloor = 0;
  private live = 0;
  /** Locks released because their lease ran out (INFO expired_keys). */
  expiredTotal = 0;
  /** Live holders with a finite expiry (for INFO keyspace without a scan). */
  private expiring = 0;
  /** Resources released or expired since the last drain (for waiters). */
  private freed: string[] = [];
  /**
   * The owner last written: a client that takes many locks in a row sends
   * its name with each, and they then share one string instead of holding
   * a copy per lock (24 bytes or more each).
   */
  private lastOwner = '';

  /** tokenFloor: the token of the first grant of every resource (EPHEMERAL tables start each leader term higher). */
  constructor(private readonly limits: LockTableLimits = DEFAULT_TABLE_LIMITS, tokenFloor = 0) {
    this.tokenFloor = Math.min(tokenFloor, TOKEN_MAX + 1);
    if (!Number.isInteger(limits.tombstonesMax) || limits.tombstonesMax < 0) {
      throw new RangeError(`tombstonesMax must be a non-negative integer, got ${limits.tombstonesMax}`);
    }
  }

  /** The current holder's slot, or NO_SLOT when free (an expired holder is released first). */
  lookup(resource: string, nowMs: number): Slot {
    const slot = this.slots.get(resource);
    if (slot === undefined || this.owners[slot] === null) return NO_SLOT;
    if (nowMs > this.cells[2 * slot]!) {
      this.expiredTotal += 1;
      this.releaseSlot(resource, slot);
      return NO_SLOT;
    }
    return slot;
  }

  /**
   * The current holder's slot without changing anything: reads must not
   * mutate, so that every replica's state depends only on the log it applied.
   */
  peekSlot(resource: string, nowMs: number): Slot {
    const slot = this.slots.get(resource);
    if (slot === undefined || this.owners[slot] === null || nowMs > this.cells[2 * slot]!) return NO_SLOT;
    return slot;
  }

  /**
   * peekSlot() as an object, or undefined when free. Like a slot it is only
   * valid until the table next changes: it reads the slot when asked, so
   * that a caller who never looks at the token does not pay for a bigint.
   */
  peek(resource: string, nowMs: number): Holder | undefined {
    const slot = this.peekSlot(resource, nowMs);
    return slot === NO_SLOT ? undefined : new SlotHolder(this, slot);
  }

  /** The owner of a held slot. */
  ownerOf(slot: Slot): string {
    return this.owners[slot]!;
  }

  tokenOf(slot: Slot): bigint {
    return toBigInt(this.cells[2 * slot + 1]!);
  }

  /** Log time (ms) after which the lock is free; NO_EXPIRY for none. */
  expiresAtMsOf(slot: Slot): number {
    return this.cells[2 * slot]!;
  }

  /** Grants the free resource to owner with a new fencing token. */
  grant(resource: string, owner: string, expiresAtMs: number): Slot {
    let slot = this.slots.get(resource);
    let token = this.tokenFloor;
    if (slot === undefined) {
      slot = this.newSlot();
      this.slots.set(resource, slot);
    } else {
      if (this.owners[slot] !== null) throw new Error(`grant of held resource '${resource}'`);
      token = Math.max(this.cells[2 * slot + 1]! + 1, token);
    }
    if (token > TOKEN_MAX) throw tokensExhausted(resource);
    this.owners[slot] = this.shared(owner);
    this.cells[2 * slot] = NO_EXPIRY;
    this.cells[2 * slot + 1] = token;
    this.live += 1;
    this.setExpiry(resource, slot, expiresAtMs);
    return slot;
  }

  /** Replaces the holder (Redis SET semantics): the same owner keeps its token, another gets the next one. */
  replace(resource: string, owner: string, expiresAtMs: number, nowMs: number): Slot {
    const slot = this.lookup(resource, nowMs);
    if (slot === NO_SLOT) return this.grant(resource, owner, expiresAtMs);
    if (this.owners[slot] !== owner) {
      const token = this.cells[2 * slot + 1]! + 1;
      if (token > TOKEN_MAX) throw tokensExhausted(resource);
      this.owners[slot] = this.shared(owner);
      this.cells[2 * slot + 1] = token;
    }
    this.setExpiry(resource, slot, expiresAtMs);
    return slot;
  }

  /** Sets a held slot's expiry. */
  setExpiry(resource: string, slot: Slot, expiresAtMs: number): void {
    const at = 2 * slot;
    this.expiring += (expiresAtMs !== NO_EXPIRY ? 1 : 0) - (this.cells[at] !== NO_EXPIRY ? 1 : 0);
    this.cells[at] = expiresAtMs;
    if (expiresAtMs !== NO_EXPIRY) this.pushExpiry(expiresAtMs, resource);
  }

  /** Frees a held resource; its token is remembered for the next holder, and who released it. */
  release(resource: string, slot: Slot): void {
    const owner = this.owners[slot];
    if (this.slots.get(resource) !== slot || owner === null) {
      throw new Error(`release of a lock not held: '${resource}'`);
    }
    this.releaseSlot(resource, slot, owner);
  }

  /**
   * The owner whose release last freed the resource (it may be held by
   * another owner since); undefined if a lease ran out there since, or it
   * was never released. Never changes anything.
   */
  releasedBy(resource: string, nowMs: number): string | undefined {
    const slot = this.slots.get(resource);
    if (slot === undefined) return undefined;
    // A holder whose lease ran out, not reclaimed yet: that is an expiry, which forgets the releaser.
    if (this.owners[slot] !== null && nowMs > this.cells[2 * slot]!) return undefined;
    return this.releasers[slot] ?? undefined;
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
      // The heap holds resources, not slots: a slot may have changed hands since.
      const slot = this.slots.get(resource);
      if (slot !== undefined && this.owners[slot] !== null && this.cells[2 * slot] === deadline) {
        this.expiredTotal += 1;
        this.releaseSlot(resource, slot);
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
    return this.slots.size;
  }

  /** Released resources whose last token is remembered individually. */
  get tombstoneCount(): number {
    return this.slots.size - this.live;
  }

  /** Slots the columns have room for (for tests of their growth). */
  get slotCapacity(): number {
    return this.cells.length / 2;
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
   * exactly like this one from then on. Slots are not written: which slot
   * holds a record is invisible. The expiry heap is rebuilt: expiry order
   * does not depend on its layout or its stale entries.
   */
  writeSnapshot(w: Writer): void {
    const image = this.image();
    image.writeHeader(w);
    image.writeRecords(w, Infinity);
  }

  /**
   * The table as it is now, copied but not encoded: what writeSnapshot()
   * writes, to be written later (in slices) while the table changes. The copy
   * reads no string's contents (they are shared, not copied), which keeps it
   * a small part of the cost of encoding.
   */
  image(): TableImage {
    const image = new TableImage(this.tokenFloor, this.expiredTotal, this.slots.size);
    const { cells, owners, releasers } = this;
    const { resources, cells: copied } = image;
    const imageOwners = image.owners;
    const imageReleasers = image.releasers;
    let i = 0;
    this.slots.forEach((slot, resource) => {
      resources[i] = resource;
      imageOwners[i] = owners[slot]!;
      imageReleasers[i] = releasers[slot] ?? null;
      copied[2 * i] = cells[2 * slot]!;
      copied[2 * i + 1] = cells[2 * slot + 1]!;
      i += 1;
    });
    return image;
  }

  /** Replaces the whole table with what writeSnapshot() wrote. */
  readSnapshot(r: Reader): void {
    const reader = new TableReader(r);
    reader.step(Infinity);
    reader.installInto(this);
  }

  /**
   * Takes over the columns a TableReader built: the whole table becomes the
   * snapshot's. Waiters see nothing freed (they are the leader's, and a
   * replica installs a snapshot only as a follower).
   */
  adopt(columns: TableColumns): void {
    this.slots = columns.slots;
    this.cells = columns.cells;
    this.owners = columns.owners;
    this.releasers = columns.releasers;
    this.freeSlots = [];
    this.freed = [];
    this.expiries = columns.expiries;
    this.tokenFloor = columns.tokenFloor;
    this.expiredTotal = columns.expiredTotal;
    this.live = columns.live;
    this.expiring = columns.expiring;
  }

  /** All live (unexpired) entries, as copies; for tests. */
  *entries(nowMs: number): IterableIterator<[string, Holder]> {
    for (const [resource, slot] of this.slots) {
      if (this.owners[slot] !== null && nowMs <= this.cells[2 * slot]!) yield [resource, this.holderAt(slot)];
    }
  }

  private shared(owner: string): string {
    if (owner === this.lastOwner) return this.lastOwner;
    this.lastOwner = owner;
    return owner;
  }

  private holderAt(slot: Slot): Holder {
    return { owner: this.owners[slot]!, token: this.tokenOf(slot), expiresAtMs: this.cells[2 * slot]! };
  }

  /** A slot for a new record: an evicted tombstone's, else the next unused one (growing the columns by half). */
  private newSlot(): Slot {
    const reused = this.freeSlots.pop();
    if (reused !== undefined) return reused;
    const slot = this.owners.length;
    if (2 * slot === this.cells.length) {
      const cells = new Float64Array(2 * (slot + (slot >> 1)));
      cells.set(this.cells);
      this.cells = cells;
    }
    this.owners.push(null);
    this.releasers.push(null);
    return slot;
  }

  /** Frees a slot; releaser: the owner that released it, null when its lease ran out. */
  private releaseSlot(resource: string, slot: Slot, releaser: string | null = null): void {
    if (this.cells[2 * slot] !== NO_EXPIRY) this.expiring -= 1;
    this.owners[slot] = null;
    this.releasers[slot] = releaser;
    this.cells[2 * slot] = NO_EXPIRY;
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
    for (const [resource, slot] of this.slots) {
      if (this.owners[slot] !== null) continue;
      this.tokenFloor = Math.max(this.tokenFloor, this.cells[2 * slot + 1]! + 1);
      this.slots.delete(resource);
      this.releasers[slot] = null;
      this.freeSlots.push(slot);
      // Checked after the delete: the last tombstone may be the Map's last record.
      if (this.tombstoneCount <= target) return;
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
    for (const [resource, slot] of this.slots) {
      const expiresAtMs = this.cells[2 * slot]!;
      if (this.owners[slot] !== null && expiresAtMs !== NO_EXPIRY) this.expiries.push(expiresAtMs, resource);
    }
  }
}

const EMPTY: string[] = [];

/** What a TableReader builds and LockTable.adopt() takes over. */
export interface TableColumns {
  slots: Map<string, Slot>;
  cells: Float64Array<ArrayBuffer>;
  owners: (string | null)[];
  releasers: (string | null)[];
  expiries: DeadlineHeap;
  tokenFloor: number;
  expiredTotal: number;
  live: number;
  expiring: number;
}

/**
 * Reads a table that writeSnapshot() wrote into new columns, all at once or
 * a slice at a time; installInto() then replaces a table's contents with
 * them, so the table is never seen half read.
 */
export class TableReader {
  private readonly columns: TableColumns;
  private readonly count: number;
  private read = 0;
  private lastOwner = '';

  constructor(private readonly r: Reader) {
    // The floor is one past a forgotten token, so it may be one past TOKEN_MAX.
    const tokenFloor = readToken(r, TOKEN_MAX + 1, null);
    const expiredTotal = r.f64();
    const count = r.u32();
    this.count = count;
    this.columns = {
      slots: new Map(),
      cells: new Float64Array(2 * Math.max(count, INITIAL_SLOTS)),
      // Sized first and filled by index: pushing a million entries costs several times more.
      owners: new Array<string | null>(count),
      releasers: new Array<string | null>(count),
      expiries: new DeadlineHeap(),
      tokenFloor,
      expiredTotal,
      live: 0,
      expiring: 0,
    };
  }

  /** Reads up to n more records; true once every record is read. */
  step(n: number): boolean {
    const { r, columns } = this;
    const { slots, owners, releasers, cells, expiries } = columns;
    const end = Math.min(this.count, this.read + n);
    for (let slot = this.read; slot < end; slot++) {
      const resource = r.str();
      const token = readToken(r, TOKEN_MAX, resource);
      const expiresAtMs = r.f64();
      const tag = r.u8();
      if (tag > 3) throw r.error(`record tag ${tag} of '${resource}'`);
      let owner: string | null = null;
      if ((tag & 1) !== 0) {
        owner = r.str();
        // A client that takes many locks in a row sends its name with each: one string for all.
        if (owner === this.lastOwner) owner = this.lastOwner;
        else this.lastOwner = owner;
      }
      const releaser = (tag & 2) !== 0 ? r.str() : null;
      if (owner !== null) {
        columns.live += 1;
        if (expiresAtMs !== NO_EXPIRY) {
          columns.expiring += 1;
          expiries.push(expiresAtMs, resource);
        }
      } else if (expiresAtMs !== NO_EXPIRY) {
        throw r.error(`free resource '${resource}' has an expiry`);
      }
      slots.set(resource, slot);
      if (slots.size !== slot + 1) throw r.error('a resource appears twice');
      owners[slot] = owner;
      releasers[slot] = releaser;
      cells[2 * slot] = expiresAtMs;
      cells[2 * slot + 1] = token;
    }
    this.read = end;
    return end === this.count;
  }

  /** Replaces table's contents with what was read (every record must be). */
  installInto(table: LockTable): void {
    if (this.read !== this.count) throw new Error('the table snapshot is not fully read yet');
    table.adopt(this.columns);
  }
}

/**
 * A LockTable's records copied in Map order (LockTable.image()), written out
 * as writeSnapshot() writes them, all at once or a slice at a time.
 */
export class TableImage {
  // Filled by index, not pushed: growing arrays of a million entries costs several times more.
  readonly resources: string[];
  readonly owners: (string | null)[];
  readonly releasers: (string | null)[];
  /** Record i: [2i] expiresAtMs, [2i + 1] token. */
  readonly cells: Float64Array;
  /** Records written so far. */
  written = 0;

  constructor(readonly tokenFloor: number, readonly expiredTotal: number, readonly count: number) {
    this.resources = new Array<string>(count);
    this.owners = new Array<string | null>(count);
    this.releasers = new Array<string | null>(count);
    this.cells = new Float64Array(2 * count);
  }

  writeHeader(w: Writer): void {
    w.u64n(this.tokenFloor).f64(this.expiredTotal).u32(this.count);
  }

  /** Writes up to n more records; true once every record is written. */
  writeRecords(w: Writer, n: number): boolean {
    const { resources, owners, releasers, cells } = this;
    const end = Math.min(this.count, this.written + n);
    for (let i = this.written; i < end; i++) {
      w.str(resources[i]!).u64n(cells[2 * i + 1]!).f64(cells[2 * i]!);
      // Tag bit 0: a holder follows; bit 1: the last releaser follows (snapshot version 3 on).
      const owner = owners[i]!;
      const releaser = releasers[i]!;
      w.u8((owner !== null ? 1 : 0) | (releaser !== null ? 2 : 0));
      if (owner !== null) w.str(owner);
      if (releaser !== null) w.str(releaser);
    }
    this.written = end;
    return end === this.count;
  }
}

/** What peek() returns: it reads the slot's columns when asked. */
class SlotHolder implements Holder {
  constructor(
    private readonly table: LockTable,
    private readonly slot: Slot,
  ) {}

  get owner(): string {
    return this.table.ownerOf(this.slot);
  }

  get token(): bigint {
    return this.table.tokenOf(this.slot);
  }

  get expiresAtMs(): number {
    return this.table.expiresAtMsOf(this.slot);
  }
}

/** Most resources see few holders: their tokens come from here rather than a new bigint per read. */
const SMALL_TOKENS: readonly bigint[] = Array.from({ length: 1024 }, (_, i) => BigInt(i));

/**
 * BigInt(token), faster: a table for small tokens, and up to 2^30 a small
 * integer (one that `| 0` keeps), which V8 converts in a third of the time
 * of the runtime call it makes for a double.
 */
function toBigInt(token: number): bigint {
  if (token < SMALL_TOKENS.length) return SMALL_TOKENS[token]!;
  return token <= 0x3fffffff ? BigInt(token | 0) : BigInt(token);
}

function tokensExhausted(resource: string): Error {
  return new RangeError(`fencing tokens of '${resource}' are exhausted: the next would pass 2^53 - 1`);
}

/** A u64 token that the table can hold exactly, at most max: the token of `resource`, or with null the token floor. */
function readToken(r: Reader, max: number, resource: string | null): number {
  const hi = r.u32();
  const lo = r.u32();
  const token = hi * 0x100000000 + lo;
  // A number holds it exactly up to 2^53: below it (hi < 2^21), or 2^53 itself.
  if ((hi < 0x200000 || lo === 0) && token <= max) return token;
  throw r.error(`${resource === null ? 'the token floor' : `the token of '${resource}'`} is ${(BigInt(hi) << 32n) | BigInt(lo)}, past ${max}`);
}
