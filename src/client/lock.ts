import { ClientClosedError, LockLostError, RaftLockError } from './errors.js';

/** Kahuna's durability codes; the string forms are accepted too. */
export const LockDurability = { Ephemeral: 0, Persistent: 1 } as const;

export type Durability = 'persistent' | 'ephemeral' | 0 | 1;

export function durabilityWord(d: Durability | undefined): 'PERSISTENT' | 'EPHEMERAL' {
  return d === 'ephemeral' || d === LockDurability.Ephemeral ? 'EPHEMERAL' : 'PERSISTENT';
}

export interface LockInfo {
  resource: string;
  owner: string;
  fencingToken: number;
  /** Lease time left on the server, in ms, when it answered. */
  remainingMs: number;
  durability: 'persistent' | 'ephemeral';
}

/** What a lock needs from the client that made it. */
export interface LockBackend {
  /** KEXTEND: the fencing token, or null when this owner does not hold the lock. */
  extend(resource: string, owner: string, expiryMs: number, durability: Durability, timeoutMs: number): Promise<number | null>;
  /** KUNLOCK: whether this owner held the lock. */
  unlock(resource: string, owner: string, durability: Durability): Promise<boolean>;
  info(resource: string, durability: Durability): Promise<LockInfo | null>;
  forget(lock: RaftLock): void;
  readonly retryMs: number;
  readonly commandTimeoutMs: number;
}

/** How much of a lease the client does not count on: the clocks' rate difference and scheduling. */
export function driftMarginMs(expiryMs: number): number {
  return Math.floor(expiryMs * 0.01) + 2;
}

/**
 * A lock handle from RaftLockClient.getOrCreateLock. When `isAcquired` is
 * false nothing is held (`fencingToken` is -1) and every method but getInfo
 * is a no-op. `await using` releases it at the end of the scope.
 *
 * Validity is measured on this process's monotonic clock from the moment the
 * acquiring (or last renewing) request was sent, minus a drift margin: the
 * server's lease started no earlier, so the lock is surely held until then.
 */
export class RaftLock implements AsyncDisposable {
  /** Fires (with a LockLostError, or ClientClosedError) as soon as the lock is known or suspected lost. */
  readonly signal: AbortSignal;
  private readonly controller = new AbortController();
  private acquired: boolean;
  private token: number;
  private expiryMs: number;
  /** performance.now() until which the lock is surely held. */
  private validUntil: number;
  private renewTimer: ReturnType<typeof setTimeout> | null = null;
  private expiryTimer: ReturnType<typeof setTimeout> | null = null;
  private renewing: Promise<boolean> | null = null;

  constructor(
    private readonly backend: LockBackend,
    readonly resource: string,
    readonly owner: string,
    readonly durability: 'persistent' | 'ephemeral',
    grant: { token: number; sentAt: number; expiryMs: number } | null,
    private readonly autoExtend: boolean,
  ) {
    this.signal = this.controller.signal;
    this.acquired = grant !== null;
    this.token = grant?.token ?? -1;
    this.expiryMs = grant?.expiryMs ?? 0;
    this.validUntil = grant === null ? -Infinity : grant.sentAt + grant.expiryMs - driftMarginMs(grant.expiryMs);
    if (grant === null) this.controller.abort(new LockLostError(resource, 'refused'));
    else this.armTimers();
  }

  get isAcquired(): boolean {
    return this.acquired;
  }

  /** The fencing token of this grant: pass it to the resource you protect. -1 when not acquired. */
  get fencingToken(): number {
    return this.token;
  }

  /** How long the lock is surely held still, on this process's clock (0 once lost). */
  get validityMs(): number {
    return this.acquired ? Math.max(0, this.validUntil - performance.now()) : 0;
  }

  /**
   * Extends the lease to `expiryMs` from now (default: the expiry it was
   * acquired with). Resolves true if extended; false if the lock is not held
   * any more, which also fires `signal`.
   */
  async extend(expiryMs = this.expiryMs): Promise<boolean> {
    if (!this.acquired) return false;
    this.expiryMs = expiryMs;
    return this.renew();
  }

  /** The lock as the server sees it now (whoever holds it), or null when it is free. */
  getInfo(): Promise<LockInfo | null> {
    return this.backend.info(this.resource, this.durability);
  }

  /** Releases the lock; resolves whether this owner still held it. Fires `signal`. */
  async release(): Promise<boolean> {
    if (!this.acquired) return false;
    this.lose(new LockLostError(this.resource, 'released'));
    return this.backend.unlock(this.resource, this.owner, this.durability);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    // The lease bounds a release that cannot get through: the scope's own error matters more.
    await this.release().catch(() => undefined);
  }

  /** The client closed: stop renewing (the lease runs out on the server). */
  abandon(): void {
    if (this.acquired) this.lose(new ClientClosedError());
  }

  private renew(): Promise<boolean> {
    this.renewing ??= this.renewOnce().finally(() => {
      this.renewing = null;
    });
    return this.renewing;
  }

  private async renewOnce(): Promise<boolean> {
    const sentAt = performance.now();
    const expiryMs = this.expiryMs;
    // Half of what is left, so that a renewal that hangs leaves time for another.
    const timeoutMs = Math.max(50, Math.min(this.backend.commandTimeoutMs, (this.validUntil - sentAt) / 2));
    const token = await this.backend.extend(this.resource, this.owner, expiryMs, this.durability, timeoutMs);
    if (!this.acquired) return false;
    if (token === null) {
      this.lose(new LockLostError(this.resource, 'refused'));
      return false;
    }
    this.token = token;
    this.validUntil = Math.max(this.validUntil, sentAt + expiryMs - driftMarginMs(expiryMs));
    this.armTimers();
    return true;
  }

  /** The local expiry timer, and with autoExtend the next renewal at a third of the lease. */
  private armTimers(): void {
    this.clearTimers();
    const now = performance.now();
    this.expiryTimer = setTimeout(() => this.onLocalExpiry(), Math.max(0, this.validUntil - now));
    this.expiryTimer.unref();
    if (this.autoExtend) this.scheduleRenewal(Math.max(0, this.validUntil - now - (2 * this.expiryMs) / 3));
  }

  private scheduleRenewal(delayMs: number): void {
    if (this.renewTimer !== null) clearTimeout(this.renewTimer);
    this.renewTimer = setTimeout(() => {
      this.renewTimer = null;
      this.renew().catch((error: unknown) => {
        if (!this.acquired) return;
        if (error instanceof RaftLockError && error.code === 'ERR_RAFTLOCK_CLOSED') return;
        // Unreachable or leaderless for now: try again while the lease lasts.
        const left = this.validUntil - performance.now();
        if (left > 0) this.scheduleRenewal(Math.min(this.backend.retryMs, left / 4));
      });
    }, delayMs);
    this.renewTimer.unref();
  }

  private onLocalExpiry(): void {
    if (!this.acquired) return;
    if (performance.now() < this.validUntil) {
      this.armTimers();
      return;
    }
    this.lose(new LockLostError(this.resource, 'expired'));
  }

  private lose(reason: LockLostError | ClientClosedError): void {
    this.acquired = false;
    this.clearTimers();
    this.backend.forget(this);
    this.controller.abort(reason);
  }

  private clearTimers(): void {
    if (this.renewTimer !== null) clearTimeout(this.renewTimer);
    if (this.expiryTimer !== null) clearTimeout(this.expiryTimer);
    this.renewTimer = null;
    this.expiryTimer = null;
  }
}


