import { DeadlineHeap } from './heap.js';
import { LockStateMachine, type Durability } from './machine.js';
import { WaitQueues, queueKey, type Waiter, type WaiterLimits, DEFAULT_WAITER_LIMITS } from './waiters.js';
import { EXPIRE_PER_APPLY, applyCommand, type LockOp, type LockResult } from './commands.js';

/** EPHEMERAL fencing tokens of leader term T start at T x this. */
export const EPHEMERAL_TERM_TOKENS = 2 ** 32;

/** Monotonic milliseconds; injected so tests and the simulator control time. */
export type Clock = () => number;

/** Arms (or re-arms) the single wake-up the service needs at clock time atMs. */
export type WakeScheduler = (atMs: number) => void;

/**
 * Where PERSISTENT writes and reads go: the node's Raft replica. Without one
 * the service applies them in memory (tests, benchmarks of the state machine).
 */
export interface Replicator {
  propose(op: LockOp): Promise<LockResult>;
  /** The result of a write that would change nothing, without the log; undefined if it must be proposed. */
  answerNoop(op: LockOp): LockResult | undefined;
  read<T>(fn: (logNowMs: number) => T): Promise<T>;
  /** The leader's log clock. */
  logNow(): number;
  /**
   * Whether an EPHEMERAL operation whose lease reaches log time untilMs (0:
   * none) may run now: undefined if so, a promise that settles once it may,
   * or a throw when it may not (not the leader, lock-delay after a leader
   * change). See Replica.ephemeralAccess.
   */
  ephemeralAccess(untilMs: number): Promise<void> | undefined;
}

export interface LockServiceOptions {
  clock: Clock;
  machine?: LockStateMachine;
  replicator?: Replicator;
  scheduleWake?: WakeScheduler;
  waiterLimits?: WaiterLimits;
}

/** A result now, or once the write is committed (PERSISTENT writes behind Raft). */
export type Maybe<T> = T | Promise<T>;

export type WaitOutcome =
  | { kind: 'done'; token: Maybe<bigint | null> }
  | { kind: 'queued'; waiter: Waiter }
  | { kind: 'full'; reason: 'resource-full' | 'total-full' };

/**
 * The lock service of one node: routes writes (PERSISTENT through the Raft
 * log, EPHEMERAL to the leader's memory), serves reads, and keeps what lives
 * only on the node serving clients: blocking waiters and their wake-ups.
 * Waiters are served in FIFO order whenever a resource is freed, by unlock or
 * by expiry.
 */
export class LockService {
  readonly machine: LockStateMachine;
  readonly waiters: WaitQueues;
  readonly clock: Clock;
  private readonly replicator: Replicator | undefined;
  private readonly scheduleWake: WakeScheduler;
  /** Deadlines (clock ms) of waiter timeouts and of holders' expiries that waiters wait on. */
  private readonly wakeups = new DeadlineHeap();
  /** Queues whose head has a lock attempt in flight. */
  private readonly serving = new Set<string>();
  private armedAtMs = Infinity;
  /** EPHEMERAL operations waiting for access, in arrival order (null when none). */
  private ephemeralBacklog: Promise<unknown> | null = null;

  constructor(options: LockServiceOptions) {
    this.clock = options.clock;
    this.replicator = options.replicator;
    this.scheduleWake = options.scheduleWake ?? (() => undefined);
    this.machine = options.machine ?? new LockStateMachine();
    this.waiters = new WaitQueues(options.waiterLimits ?? DEFAULT_WAITER_LIMITS);
  }

  /** Log time now: what leases are measured against. */
  now(): number {
    return this.replicator !== undefined ? this.replicator.logNow() : this.clock();
  }

  /**
   * Applies a write: through the replicated log for PERSISTENT data, in
   * memory for EPHEMERAL. A PERSISTENT write that would change nothing is
   * answered from the state when the replica can (Replica.answerNoop),
   * without a log entry, as Redis leaves such a write out of its AOF.
   */
  write(op: LockOp): Maybe<LockResult> {
    if (this.replicator === undefined) {
      const result = applyCommand(this.machine, { logTimeMs: this.now(), op });
      this.afterWrite();
      return result;
    }
    if (isPersistent(op)) {
      const answer = this.replicator.answerNoop(op);
      return answer !== undefined ? answer : this.replicator.propose(op);
    }
    return this.inOrder(this.writeEphemeral, op);
  }

  /**
   * Runs an EPHEMERAL operation, run(arg) (no closure for the common case), now if nothing waits
   * before it, else after the operations that wait: they apply in arrival order.
   */
  private inOrder<A, T>(run: (this: LockService, arg: A) => Maybe<T>, arg: A): Maybe<T> {
    let result: Maybe<T>;
    if (this.ephemeralBacklog === null) {
      try {
        result = run.call(this, arg);
      } catch (error) {
        return Promise.reject(error as Error);
      }
      if (!(result instanceof Promise)) return result;
    } else {
      result = this.ephemeralBacklog.then(() => run.call(this, arg));
    }
    const tail: Promise<unknown> = result.catch(() => undefined);
    this.ephemeralBacklog = tail;
    void tail.then(() => {
      if (this.ephemeralBacklog === tail) this.ephemeralBacklog = null;
    });
    return result;
  }

  /** An EPHEMERAL write once the replica grants access (see Replicator.ephemeralAccess). */
  private writeEphemeral(op: LockOp): Maybe<LockResult> {
    const reach = op.kind === 'lock' || op.kind === 'extend' ? this.now() + op.ttlMs : 0;
    const access = this.replicator!.ephemeralAccess(reach);
    if (access !== undefined) return access.then(() => this.writeEphemeral(op));
    // The leader's memory only. Expired PERSISTENT locks are left to the log,
    // so that every replica reclaims them at the same log time.
    const nowMs = this.now();
    const machine = this.machine;
    let result: LockResult;
    if (op.kind === 'lock') result = machine.lock('ephemeral', op.resource, op.owner, op.ttlMs, nowMs);
    else if (op.kind === 'unlock') result = machine.unlock('ephemeral', op.resource, op.owner, nowMs);
    else if (op.kind === 'extend') result = machine.extend('ephemeral', op.resource, op.owner, op.ttlMs, nowMs);
    else throw new Error(`not an EPHEMERAL write: ${op.kind}`);
    machine.ephemeral.expireDue(nowMs, EXPIRE_PER_APPLY);
    this.afterWrite();
    return result;
  }

  /** Runs a read on state that reflects every acknowledged write (ReadIndex or lease for PERSISTENT). */
  read<T>(durability: Durability, fn: (nowMs: number) => T): Maybe<T> {
    if (this.replicator === undefined) return fn(this.now());
    if (durability === 'persistent') return this.replicator.read(fn);
    return this.inOrder<(nowMs: number) => T, T>(this.readEphemeral, fn);
  }

  private readEphemeral<T>(fn: (nowMs: number) => T): Maybe<T> {
    const access = this.replicator!.ephemeralAccess(0);
    return access === undefined ? fn(this.now()) : access.then(() => this.readEphemeral(fn));
  }

  /**
   * Leadership of the partition moved to or from this node. EPHEMERAL locks
   * live in the leader's memory only: the table starts empty, its tokens
   * from the term in the high bits (term x 2^32) so they keep increasing
   * across leaders. Blocked waiters live with the leader too: they are
   * answered with error (their clients retry).
   */
  leadershipChanged(leader: boolean, term: number, error: Error): void {
    this.machine.resetEphemeral(leader ? term * EPHEMERAL_TERM_TOKENS : 0);
    if (leader) return;
    for (const [, queue] of [...this.waiters.allQueues()]) {
      for (const waiter of [...queue]) {
        this.waiters.remove(waiter);
        waiter.settle(error);
      }
    }
  }

  /** KLOCK without WAIT. While others wait for the resource, only its holder gets a token. */
  lock(durability: Durability, resource: string, owner: string, ttlMs: number): Maybe<bigint | null> {
    if (this.waiters.has(durability, resource)) {
      this.serve(durability, resource);
      const holder = this.machine.info(durability, resource, this.now());
      if (holder?.owner !== owner) return null;
    }
    return this.write({ kind: 'lock', durability, resource, owner, ttlMs }) as Maybe<bigint | null>;
  }

  /**
   * KLOCK ... WAIT: granted at once if possible, otherwise queued (FIFO) until
   * the resource is freed or timeoutMs passes. settle is called exactly once
   * for a queued waiter: a token, null on timeout, or an Error.
   */
  lockOrWait(
    request: { durability: Durability; resource: string; owner: string; ttlMs: number; timeoutMs: number },
    settle: (token: bigint | null | Error) => void,
  ): WaitOutcome {
    const { durability, resource, owner, ttlMs } = request;
    if (request.timeoutMs <= 0) return { kind: 'done', token: this.lock(durability, resource, owner, ttlMs) };
    // Free with nobody waiting: take it directly (a free lock is granted even when the queues are full).
    if (!this.waiters.has(durability, resource) && this.machine.info(durability, resource, this.now()) === null) {
      const token = this.write({ kind: 'lock', durability, resource, owner, ttlMs }) as Maybe<bigint | null>;
      return { kind: 'done', token: token instanceof Promise ? token.then((t) => (t === null ? this.lateWait(request) : t)) : token };
    }
    // The holder asking again gets its token at once, without queueing behind others.
    if (this.machine.info(durability, resource, this.now())?.owner === owner) {
      return { kind: 'done', token: this.write({ kind: 'lock', durability, resource, owner, ttlMs }) as Maybe<bigint | null> };
    }
    const waiter: Waiter = { ...request, deadlineMs: this.clock() + request.timeoutMs, settle, done: false };
    const result = this.waiters.enqueue(waiter);
    if (result !== 'queued') return { kind: 'full', reason: result };
    this.wake(waiter.deadlineMs, durability, resource);
    // May settle the waiter before returning, when the lock is free.
    this.serve(durability, resource);
    return { kind: 'queued', waiter };
  }

  /** A direct attempt lost a race for the lock: wait like any other caller, as WAIT promised. */
  private lateWait(
    request: { durability: Durability; resource: string; owner: string; ttlMs: number; timeoutMs: number },
  ): Promise<bigint | null> {
    return new Promise((resolve, reject) => {
      const outcome = this.lockOrWait(request, (value) => {
        if (value instanceof Error) reject(value);
        else resolve(value);
      });
      if (outcome.kind === 'full') resolve(null);
      else if (outcome.kind === 'done') Promise.resolve(outcome.token).then(resolve, reject);
    });
  }

  /** Drops a waiter whose client went away; it is not settled. */
  cancel(waiter: Waiter): void {
    this.waiters.remove(waiter);
  }

  /** Call after state changes (applied writes): serves waiters of resources that were freed. */
  afterWrite(): void {
    const persistent = this.machine.persistent.drainFreed();
    const ephemeral = this.machine.ephemeral.drainFreed();
    if (this.waiters.size === 0) return;
    for (const resource of persistent) this.serve('persistent', resource);
    for (const resource of ephemeral) this.serve('ephemeral', resource);
  }

  /** Runs due wake-ups: waiter timeouts and expiries of contended locks. */
  runTimers(): void {
    const nowMs = this.clock();
    this.armedAtMs = Infinity;
    while (this.wakeups.peekDeadline() <= nowMs) {
      const key = this.wakeups.peekKey()!;
      this.wakeups.pop();
      const durability: Durability = key.charCodeAt(0) === 112 ? 'persistent' : 'ephemeral';
      this.expireWaiters(durability, key.slice(2), nowMs);
      this.serve(durability, key.slice(2));
    }
    this.afterWrite();
    this.rearm();
  }

  /**
   * Bounded active expiry of locks this node reclaims itself: EPHEMERAL ones
   * always, PERSISTENT ones only without a replicated log (there, expiry is
   * reclaimed as log entries apply). Returns how many locks expired.
   */
  activeExpire(budget: number): number {
    const nowMs = this.now();
    let released = this.machine.ephemeral.expireDue(nowMs, budget);
    if (this.replicator === undefined) released += this.machine.persistent.expireDue(nowMs, budget);
    if (released > 0) this.afterWrite();
    return released;
  }

  /** Grants a free resource to its first waiter; one attempt in flight per queue. */
  private serve(durability: Durability, resource: string): void {
    const key = queueKey(durability, resource);
    if (this.serving.has(key)) return;
    const head = this.waiters.head(durability, resource);
    if (head === undefined) return;
    const attempt = this.write({ kind: 'lock', durability, resource, owner: head.owner, ttlMs: head.ttlMs }) as Maybe<bigint | null>;
    if (!(attempt instanceof Promise)) return this.served(head, attempt);
    this.serving.add(key);
    attempt.then(
      (token) => {
        this.serving.delete(key);
        this.served(head, token);
      },
      (error: Error) => {
        this.serving.delete(key);
        if (!head.done) {
          this.waiters.remove(head);
          head.settle(error);
        }
        this.serve(durability, resource);
      },
    );
  }

  private served(head: Waiter, token: bigint | null): void {
    if (token === null) {
      this.watchHolder(head.durability, head.resource);
      return;
    }
    // A waiter that left meanwhile keeps nothing: its lease simply runs out.
    if (!head.done) {
      this.waiters.remove(head);
      head.settle(token);
    }
    this.serve(head.durability, head.resource);
  }

  /** Settles with nil every waiter on the resource whose deadline has passed. */
  private expireWaiters(durability: Durability, resource: string, nowMs: number): void {
    const due = this.waiters.queue(durability, resource).filter((w) => w.deadlineMs <= nowMs);
    for (const waiter of due) {
      this.waiters.remove(waiter);
      waiter.settle(null);
    }
  }

  /** Wakes the queue when the current holder's lease runs out (log time past expiresAt). */
  private watchHolder(durability: Durability, resource: string): void {
    const logNow = this.now();
    const holder = this.machine.info(durability, resource, logNow);
    if (holder !== null && holder.remainingMs >= 0) {
      this.wake(this.clock() + holder.remainingMs + 1, durability, resource);
    } else if (holder === null) {
      this.wake(this.clock(), durability, resource);
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
      for (const waiter of queue) this.wakeups.push(waiter.deadlineMs, key);
      this.wakeups.push(nowMs, key);
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

function isPersistent(op: LockOp): boolean {
  switch (op.kind) {
    case 'lock':
    case 'unlock':
    case 'extend':
      return op.durability === 'persistent';
    default:
      return true;
  }
}

