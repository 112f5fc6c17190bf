import { DeadlineHeap } from './heap.js';
import { LockStateMachine, type Durability } from './machine.js';
import { WaitQueues, queueKey, type Waiter, type WaiterLimits, DEFAULT_WAITER_LIMITS } from './waiters.js';
import type { LockTableLimits } from './table.js';
import { DEFAULT_TABLE_LIMITS, NO_EXPIRY } from './table.js';

/** Monotonic milliseconds; injected so tests and the simulator control time. */
export type Clock = () => number;

/** Arms (or re-arms) the single wake-up the service needs at log time atMs. */
export type WakeScheduler = (atMs: number) => void;

export interface LockServiceOptions {
  clock: Clock;
  scheduleWake?: WakeScheduler;
  tableLimits?: LockTableLimits;
  waiterLimits?: WaiterLimits;
}

export type WaitOutcome =
  | { kind: 'done'; token: bigint | null }
  | { kind: 'queued'; waiter: Waiter }
  | { kind: 'full'; reason: 'resource-full' | 'total-full' };

/**
 * The lock service of one node: the state machine plus what lives only on the
 * node serving it (blocking waiters and their wake-ups). Commands call the
 * state machine through here so waiters are served in FIFO order whenever a
 * resource is freed, by unlock or by expiry.
 */
export class LockService {
  readonly machine: LockStateMachine;
  readonly waiters: WaitQueues;
  readonly clock: Clock;
  private readonly scheduleWake: WakeScheduler;
  /** Deadlines of waiter timeouts and of holders' expiries that waiters wait on. */
  private readonly wakeups = new DeadlineHeap();
  private armedAtMs = Infinity;
  expirations = 0;

  constructor(options: LockServiceOptions) {
    this.clock = options.clock;
    this.scheduleWake = options.scheduleWake ?? (() => undefined);
    this.machine = new LockStateMachine(options.tableLimits ?? DEFAULT_TABLE_LIMITS);
    this.waiters = new WaitQueues(options.waiterLimits ?? DEFAULT_WAITER_LIMITS);
  }

  now(): number {
    return this.clock();
  }

  /** KLOCK without WAIT; waiters queued on the resource go first. */
  lock(durability: Durability, resource: string, owner: string, ttlMs: number): bigint | null {
    const nowMs = this.clock();
    if (this.waiters.has(durability, resource)) this.serve(durability, resource, nowMs);
    return this.machine.lock(durability, resource, owner, ttlMs, nowMs);
  }

  /**
   * KLOCK ... WAIT: granted at once if possible, otherwise queued (FIFO) until
   * the resource is freed or timeoutMs passes. settle is called exactly once
   * for a queued waiter.
   */
  lockOrWait(
    request: { durability: Durability; resource: string; owner: string; ttlMs: number; timeoutMs: number },
    settle: (token: bigint | null) => void,
  ): WaitOutcome {
    const token = this.lock(request.durability, request.resource, request.owner, request.ttlMs);
    if (token !== null || request.timeoutMs <= 0) return { kind: 'done', token };
    const nowMs = this.clock();
    const waiter: Waiter = { ...request, deadlineMs: nowMs + request.timeoutMs, settle, done: false };
    const result = this.waiters.enqueue(waiter);
    if (result !== 'queued') return { kind: 'full', reason: result };
    this.wake(waiter.deadlineMs, request.durability, request.resource);
    this.watchHolder(request.durability, request.resource, nowMs);
    return { kind: 'queued', waiter };
  }

  /** Drops a waiter whose client went away; it is not settled. */
  cancel(waiter: Waiter): void {
    this.waiters.remove(waiter);
  }

  /** Call after every write: serves waiters of resources the write freed. */
  afterWrite(): void {
    if (this.waiters.size === 0) {
      this.machine.persistent.drainFreed();
      this.machine.ephemeral.drainFreed();
      return;
    }
    const nowMs = this.clock();
    this.serveFreed('persistent', this.machine.persistent.drainFreed(), nowMs);
    this.serveFreed('ephemeral', this.machine.ephemeral.drainFreed(), nowMs);
  }

  /** Runs due wake-ups: waiter timeouts and expiries of contended locks. */
  runTimers(): void {
    const nowMs = this.clock();
    this.armedAtMs = Infinity;
    while (this.wakeups.peekDeadline() <= nowMs) {
      const key = this.wakeups.peekKey()!;
      this.wakeups.pop();
      const durability: Durability = key.charCodeAt(0) === 112 ? 'persistent' : 'ephemeral';
      this.serve(durability, key.slice(2), nowMs);
      this.expireWaiters(durability, key.slice(2), nowMs);
    }
    this.afterWrite();
    this.rearm();
  }

  /** Bounded active expiry; returns how many locks expired. */
  activeExpire(budget: number): number {
    const released = this.machine.expireDue(this.clock(), budget);
    this.expirations += released;
    if (released > 0) this.afterWrite();
    return released;
  }

  private serveFreed(durability: Durability, freed: readonly string[], nowMs: number): void {
    for (const resource of freed) {
      if (this.waiters.has(durability, resource)) this.serve(durability, resource, nowMs);
    }
  }

  /** Grants a free resource to its first waiter, then watches the new holder's expiry. */
  private serve(durability: Durability, resource: string, nowMs: number): void {
    while (true) {
      const head = this.waiters.head(durability, resource);
      if (head === undefined) return;
      const token = this.machine.lock(durability, resource, head.owner, head.ttlMs, nowMs);
      if (token === null) {
        this.watchHolder(durability, resource, nowMs);
        return;
      }
      this.waiters.remove(head);
      head.settle(token);
    }
  }

  /** Settles with nil every waiter on the resource whose deadline has passed. */
  private expireWaiters(durability: Durability, resource: string, nowMs: number): void {
    const due = this.waiters.queue(durability, resource).filter((w) => w.deadlineMs <= nowMs);
    for (const waiter of due) {
      this.waiters.remove(waiter);
      waiter.settle(null);
    }
  }

  /** Wakes the queue when the current holder's lease runs out (now > expiresAt). */
  private watchHolder(durability: Durability, resource: string, nowMs: number): void {
    const holder = this.machine.table(durability).lookup(resource, nowMs);
    if (holder !== undefined && holder.expiresAtMs !== NO_EXPIRY) {
      this.wake(holder.expiresAtMs + 1, durability, resource);
    }
  }

  private wake(atMs: number, durability: Durability, resource: string): void {
    this.wakeups.push(atMs, queueKey(durability, resource));
    // Cancelled waiters and re-watched holders leave stale wake-ups behind.
    if (this.wakeups.size > 4 * this.waiters.size + 1024) this.rebuildWakeups();
    this.rearm();
  }

  private rebuildWakeups(): void {
    this.wakeups.clear();
    this.armedAtMs = Infinity;
    const nowMs = this.clock();
    for (const [key, queue] of this.waiters.allQueues()) {
      const durability: Durability = key.charCodeAt(0) === 112 ? 'persistent' : 'ephemeral';
      for (const waiter of queue) this.wakeups.push(waiter.deadlineMs, key);
      const holder = this.machine.table(durability).lookup(key.slice(2), nowMs);
      if (holder === undefined) this.wakeups.push(nowMs, key);
      else if (holder.expiresAtMs !== NO_EXPIRY) this.wakeups.push(holder.expiresAtMs + 1, key);
    }
  }

  private rearm(): void {
    const next = this.wakeups.peekDeadline();
    if (next < this.armedAtMs) {
      this.armedAtMs = next;
      this.scheduleWake(next);
    }
  }
}
