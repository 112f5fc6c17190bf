import type { Durability } from './machine.js';

export interface WaiterLimits {
  /** Waiters queued on one resource. */
  perResourceMax: number;
  /** Waiters queued on all resources together. */
  totalMax: number;
}

export const DEFAULT_WAITER_LIMITS: WaiterLimits = { perResourceMax: 1024, totalMax: 65_536 };

export interface Waiter {
  readonly durability: Durability;
  readonly resource: string;
  readonly owner: string;
  readonly ttlMs: number;
  readonly deadlineMs: number;
  /** Called once: the fencing token when granted, null on timeout, an Error when the attempt failed. */
  readonly settle: (token: bigint | null | Error) => void;
  /** Set once the waiter left its queue (granted, timed out or cancelled). */
  done: boolean;
}

export type EnqueueResult = 'queued' | 'resource-full' | 'total-full';

/** FIFO queues of KLOCK ... WAIT callers, one per (durability, resource). */
export class WaitQueues {
  private readonly queues = new Map<string, Waiter[]>();
  private total = 0;

  constructor(readonly limits: WaiterLimits = DEFAULT_WAITER_LIMITS) {
    for (const [name, value] of Object.entries(limits)) {
      if (!Number.isInteger(value) || value < 0) throw new RangeError(`${name} must be a non-negative integer, got ${value}`);
    }
  }

  get size(): number {
    return this.total;
  }

  enqueue(waiter: Waiter): EnqueueResult {
    if (this.total >= this.limits.totalMax) return 'total-full';
    const key = queueKey(waiter.durability, waiter.resource);
    let queue = this.queues.get(key);
    if (queue === undefined) {
      queue = [];
      this.queues.set(key, queue);
    }
    if (queue.length >= this.limits.perResourceMax) return 'resource-full';
    queue.push(waiter);
    this.total += 1;
    return 'queued';
  }

  /** The first waiter still waiting on the resource, if any. */
  head(durability: Durability, resource: string): Waiter | undefined {
    return this.queues.get(queueKey(durability, resource))?.[0];
  }

  /** The waiters on a resource in FIFO order (empty when none). */
  queue(durability: Durability, resource: string): readonly Waiter[] {
    return this.queues.get(queueKey(durability, resource)) ?? NONE;
  }

  /** Every non-empty queue, keyed by queueKey(). */
  allQueues(): IterableIterator<[string, readonly Waiter[]]> {
    return this.queues.entries();
  }

  has(durability: Durability, resource: string): boolean {
    if (this.total === 0) return false;
    return this.queues.has(queueKey(durability, resource));
  }

  /** Removes a waiter wherever it is in its queue (O(queue length), bounded by perResourceMax). */
  remove(waiter: Waiter): void {
    if (waiter.done) return;
    waiter.done = true;
    const key = queueKey(waiter.durability, waiter.resource);
    const queue = this.queues.get(key);
    if (queue === undefined) return;
    const index = queue.indexOf(waiter);
    if (index < 0) return;
    queue.splice(index, 1);
    this.total -= 1;
    if (queue.length === 0) this.queues.delete(key);
  }
}

const NONE: readonly Waiter[] = [];

export function queueKey(durability: Durability, resource: string): string {
  return (durability === 'persistent' ? 'p:' : 'e:') + resource;
}
