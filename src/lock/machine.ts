import { LockTable, NO_EXPIRY, NO_SLOT, type LockTableLimits, DEFAULT_TABLE_LIMITS } from './table.js';

export type Durability = 'persistent' | 'ephemeral';

/** Condition flags of EXPIRE/PEXPIRE. */
export type ExpireCondition = 'always' | 'nx' | 'xx' | 'gt' | 'lt';

/**
 * How SET treats the expiry: 'none' removes it, 'keep' keeps it (KEEPTTL),
 * 'ttl' sets it to now + ttlMs.
 */
export type SetExpiry = { kind: 'none' } | { kind: 'keep' } | { kind: 'ttl'; ttlMs: number };

/**
 * How an owner asking again for what it already has is answered. A Redlock
 * client configured with the nodes of one raftlock cluster as if they were
 * independent Redis servers sends each request to every node, and they all
 * reach the same lock: the first acquire takes it, the others find it taken
 * (by the same owner), and the first release frees it, the others find it
 * free. Answering those repeats as successes lets such a client reach its
 * quorum.
 * - 'none': Redis's replies.
 * - 'scripts' (default): in the well-known lock scripts, an acquire by the
 *   owner that holds every key succeeds (the expiry is left as it is), and a
 *   release by the owner whose release freed the key succeeds. Those clients
 *   use a random value per lock, so the same value is the same lock.
 * - 'all': also SET key value NX by the holder's own value answers OK. Off by
 *   default: some clients use a constant value with SET NX, and would then
 *   all get the lock.
 * It changes replies only, never the state, so replicas need not agree on it.
 */
export type OwnerRepeats = 'none' | 'scripts' | 'all';

export interface LockInfo {
  owner: string;
  token: bigint;
  /** Remaining lease in ms, -1 when the lock never expires. */
  remainingMs: number;
}

export interface SetResult {
  /** Whether the value was written (false when NX/XX prevented it). */
  written: boolean;
  /** The previous owner (value) when it existed; for SET ... GET. */
  previous: string | undefined;
}

/**
 * The lock state machine: two namespaces of locks and the Redis string
 * keyspace, which is the PERSISTENT namespace (a key's value is its owner).
 *
 * Every method is deterministic in its arguments and the current state; time
 * arrives as log time (nowMs), so the same sequence of calls on two replicas
 * gives the same replies and the same state. Writes are the methods a
 * replicated log will carry; reads never change visible state (they may
 * reclaim expired entries, which no reader can observe).
 */
export class LockStateMachine {
  readonly persistent: LockTable;
  /** EPHEMERAL locks: in the leader's memory only, emptied whenever leadership changes. */
  ephemeral: LockTable;
  /**
   * Replicated: the log time until which an EPHEMERAL lock granted by any
   * leader may still be held. A leader grants or extends an EPHEMERAL lock
   * only up to the horizon already committed, so a later leader, which knows
   * no EPHEMERAL locks, grants none before its log clock passes the horizon
   * it inherited.
   */
  ephemeralHorizonMs = 0;
  /** See OwnerRepeats. */
  ownerRepeats: OwnerRepeats = 'none';

  constructor(private readonly limits: LockTableLimits = DEFAULT_TABLE_LIMITS) {
    this.persistent = new LockTable(limits);
    this.ephemeral = new LockTable(limits);
  }

  /** Forgets every EPHEMERAL lock; new grants get tokens from tokenFloor up. */
  resetEphemeral(tokenFloor: number): void {
    this.ephemeral = new LockTable(this.limits, tokenFloor);
  }

  /** Raises the EPHEMERAL horizon (never lowers it). */
  raiseHorizon(untilMs: number): void {
    if (untilMs > this.ephemeralHorizonMs) this.ephemeralHorizonMs = untilMs;
  }

  table(durability: Durability): LockTable {
    return durability === 'persistent' ? this.persistent : this.ephemeral;
  }

  /**
   * KLOCK: the fencing token if owner holds the lock afterwards, null if
   * another owner holds it. The same owner re-acquiring gets the same token and
   * its expiry is left unchanged.
   */
  lock(durability: Durability, resource: string, owner: string, ttlMs: number, nowMs: number): bigint | null {
    const table = this.table(durability);
    const slot = table.lookup(resource, nowMs);
    if (slot !== NO_SLOT) return table.ownerOf(slot) === owner ? table.tokenOf(slot) : null;
    return table.tokenOf(table.grant(resource, owner, nowMs + ttlMs));
  }

  /** KUNLOCK: true if owner held the lock and released it. */
  unlock(durability: Durability, resource: string, owner: string, nowMs: number): boolean {
    const table = this.table(durability);
    const slot = table.lookup(resource, nowMs);
    if (slot === NO_SLOT || table.ownerOf(slot) !== owner) return false;
    table.release(resource, slot);
    return true;
  }

  /** KEXTEND: the token if owner holds the lock (new expiry now + ttl), else null. */
  extend(durability: Durability, resource: string, owner: string, ttlMs: number, nowMs: number): bigint | null {
    const table = this.table(durability);
    const slot = table.lookup(resource, nowMs);
    if (slot === NO_SLOT || table.ownerOf(slot) !== owner) return null;
    table.setExpiry(resource, slot, nowMs + ttlMs);
    return table.tokenOf(slot);
  }

  /** KGETLOCK. Reads never change state. */
  info(durability: Durability, resource: string, nowMs: number): LockInfo | null {
    const table = this.table(durability);
    const slot = table.peekSlot(resource, nowMs);
    if (slot === NO_SLOT) return null;
    const remainingMs = remaining(table.expiresAtMsOf(slot), nowMs);
    return { owner: table.ownerOf(slot), token: table.tokenOf(slot), remainingMs };
  }

  /** SET key value [NX|XX] [expiry]. */
  set(key: string, value: string, options: { mode: 'always' | 'nx' | 'xx'; expiry: SetExpiry }, nowMs: number): SetResult {
    const table = this.persistent;
    const slot = table.lookup(key, nowMs);
    const previous = slot === NO_SLOT ? undefined : table.ownerOf(slot);
    if ((options.mode === 'nx' && slot !== NO_SLOT) || (options.mode === 'xx' && slot === NO_SLOT)) {
      // The holder repeating its own SET NX (ownerRepeats 'all'): a success that changes nothing.
      return { written: options.mode === 'nx' && this.ownerRepeats === 'all' && previous === value, previous };
    }
    const expiry = options.expiry;
    let expiresAtMs = NO_EXPIRY;
    if (expiry.kind === 'ttl') expiresAtMs = nowMs + expiry.ttlMs;
    else if (expiry.kind === 'keep' && slot !== NO_SLOT) expiresAtMs = table.expiresAtMsOf(slot);
    this.persistent.replace(key, value, expiresAtMs, nowMs);
    return { written: true, previous };
  }

  /** The owner whose release freed a PERSISTENT key that is free now (not one whose lease ran out). */
  releasedBy(key: string, nowMs: number): string | undefined {
    return this.persistent.releasedBy(key, nowMs);
  }

  /** GET: the owner of a PERSISTENT lock, or undefined. */
  get(key: string, nowMs: number): string | undefined {
    const slot = this.persistent.peekSlot(key, nowMs);
    return slot === NO_SLOT ? undefined : this.persistent.ownerOf(slot);
  }

  /** DEL / UNLINK: how many of the keys existed (each is released). */
  del(keys: readonly string[], nowMs: number): number {
    let count = 0;
    for (const key of keys) {
      const slot = this.persistent.lookup(key, nowMs);
      if (slot === NO_SLOT) continue;
      this.persistent.release(key, slot);
      count += 1;
    }
    return count;
  }

  /** EXISTS: counts every occurrence, like Redis (EXISTS k k → 2). */
  exists(keys: readonly string[], nowMs: number): number {
    let count = 0;
    for (const key of keys) if (this.persistent.peekSlot(key, nowMs) !== NO_SLOT) count += 1;
    return count;
  }

  /**
   * PEXPIRE key ttl [cond]: 1 if the timeout was set, 0 if the key is missing
   * or the condition failed. A ttl <= 0 deletes the key (Redis semantics).
   * A key without expiry counts as an infinite ttl for GT and LT.
   */
  expire(key: string, ttlMs: number, condition: ExpireCondition, nowMs: number): 0 | 1 {
    const slot = this.persistent.lookup(key, nowMs);
    if (slot === NO_SLOT) return 0;
    const current = this.persistent.expiresAtMsOf(slot);
    const next = nowMs + ttlMs;
    if (condition === 'nx' && current !== NO_EXPIRY) return 0;
    if (condition === 'xx' && current === NO_EXPIRY) return 0;
    if (condition === 'gt' && !(next > current)) return 0;
    if (condition === 'lt' && !(next < current)) return 0;
    if (ttlMs <= 0) {
      this.persistent.release(key, slot);
      return 1;
    }
    this.persistent.setExpiry(key, slot, next);
    return 1;
  }

  /** PERSIST: 1 if an expiry was removed. */
  persist(key: string, nowMs: number): 0 | 1 {
    const slot = this.persistent.lookup(key, nowMs);
    if (slot === NO_SLOT || this.persistent.expiresAtMsOf(slot) === NO_EXPIRY) return 0;
    this.persistent.setExpiry(key, slot, NO_EXPIRY);
    return 1;
  }

  /** PTTL: -2 missing, -1 no expiry, else remaining ms. */
  pttl(key: string, nowMs: number): number {
    const slot = this.persistent.peekSlot(key, nowMs);
    if (slot === NO_SLOT) return -2;
    return remaining(this.persistent.expiresAtMsOf(slot), nowMs);
  }

  /**
   * DBSIZE: PERSISTENT keys, like Redis counting keys that expired but were
   * not reclaimed yet (reads never change state).
   */
  dbsize(): number {
    return this.persistent.sizeIncludingExpired;
  }

  /** Bounded active expiry over both namespaces; returns locks released. */
  expireDue(nowMs: number, budget: number): number {
    const fromPersistent = this.persistent.expireDue(nowMs, budget);
    return fromPersistent + this.ephemeral.expireDue(nowMs, budget);
  }
}

function remaining(expiresAtMs: number, nowMs: number): number {
  return expiresAtMs === NO_EXPIRY ? -1 : expiresAtMs - nowMs;
}
