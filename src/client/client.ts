import { randomUUID } from 'node:crypto';
import type { RedisOptions } from 'ioredis';
import { InvalidArgumentError, NoLeaderError, UnavailableError } from './errors.js';
import { type Durability, type LockBackend, type LockInfo, RaftLock, durabilityWord } from './lock.js';
import { type Endpoint, Router, parseEndpoint } from './router.js';

export interface RaftLockClientOptions {
  /** `host:port` strings (or {host, port}); several for a cluster. Default 127.0.0.1:6379. */
  endpoints?: (string | Endpoint)[] | string;
  password?: string;
  username?: string;
  /** Route each command to its partition's leader (CLUSTER SLOTS). Default: when given several endpoints. */
  routeBySlot?: boolean;
  /** How long one command may take on one endpoint before the next is tried. Default 5000. */
  commandTimeoutMs?: number;
  connectTimeoutMs?: number;
  /**
   * How long a call keeps retrying while the partition has no leader
   * (-TRYAGAIN) or no endpoint answers, when it has no wait of its own. Default 5000.
   */
  retryForMs?: number;
  /** Base delay of the jittered retries. Default 100. */
  retryMs?: number;
  /** More ioredis options for every connection (tls, family...). */
  redisOptions?: RedisOptions;
}

export interface LockOptions {
  /** Lease length in ms (1 … 2^31-1). Default 30000. */
  expiryMs?: number;
  /** Wait up to this long in the server's FIFO queue of waiters when another owner holds it. Default 0. */
  waitMs?: number;
  /** Base delay of the jittered retries on -TRYAGAIN. Default: the client's retryMs. */
  retryMs?: number;
  /** 'persistent' (1, default) or 'ephemeral' (0). */
  durability?: Durability;
  /** Owner id; default a random UUID. Two handles with the same owner share the lock. */
  owner?: string;
  /** Renew the lease at a third of its length while held; `lock.signal` fires if that fails. */
  autoExtend?: boolean;
}

const EXPIRY_MAX = 2 ** 31 - 1;

/**
 * A client of a raftlock server or cluster, on ioredis.
 *
 *   const client = new RaftLockClient(['10.0.0.1:6379', '10.0.0.2:6379']);
 *   await using lock = await client.getOrCreateLock('payments/42', { expiryMs: 10_000 });
 *   if (lock.isAcquired) await charge(order, lock.fencingToken);
 */
export class RaftLockClient {
  private readonly router: Router;
  private readonly commandTimeoutMs: number;
  private readonly retryForMs: number;
  private readonly retryMs: number;
  private readonly live = new Set<RaftLock>();

  constructor(options: RaftLockClientOptions | (string | Endpoint)[] | string = {}) {
    const o: RaftLockClientOptions = typeof options === 'string' || Array.isArray(options) ? { endpoints: options } : options;
    const raw = o.endpoints ?? ['127.0.0.1:6379'];
    const list = typeof raw === 'string' ? raw.split(',') : raw;
    const endpoints = list.map((e) => (typeof e === 'string' ? parseEndpoint(e) : e));
    this.commandTimeoutMs = positive(o.commandTimeoutMs ?? 5000, 'commandTimeoutMs');
    this.retryForMs = nonNegative(o.retryForMs ?? 5000, 'retryForMs');
    this.retryMs = positive(o.retryMs ?? 100, 'retryMs');
    this.router = new Router({
      endpoints,
      routeBySlot: o.routeBySlot ?? endpoints.length > 1,
      connectTimeoutMs: positive(o.connectTimeoutMs ?? 2000, 'connectTimeoutMs'),
      password: o.password,
      username: o.username,
      redisOptions: o.redisOptions,
    });
  }

  /**
   * Tries to acquire `resource`; resolves with a lock whose `isAcquired`
   * says whether it was. With waitMs the request waits in the server's FIFO
   * queue for the holder to release (no polling); a partition without a
   * leader is retried with jittered backoff within the wait (or retryForMs).
   */
  async getOrCreateLock(resource: string, options: LockOptions = {}): Promise<RaftLock> {
    checkResource(resource);
    const expiryMs = options.expiryMs ?? 30_000;
    if (!Number.isInteger(expiryMs) || expiryMs < 1 || expiryMs > EXPIRY_MAX) {
      throw new InvalidArgumentError(`expiryMs must be an integer from 1 to ${EXPIRY_MAX}, got ${expiryMs}`);
    }
    const waitMs = nonNegative(options.waitMs ?? 0, 'waitMs');
    const retryMs = positive(options.retryMs ?? this.retryMs, 'retryMs');
    const owner = options.owner ?? randomUUID();
    const word = durabilityWord(options.durability);
    const deadline = performance.now() + Math.max(waitMs, this.retryForMs);
    const waitUntil = performance.now() + waitMs;
    let sentAt = 0;
    let token: number | null;
    try {
      token = (await this.retrying(deadline, retryMs, () => {
        sentAt = performance.now();
        const left = Math.floor(waitUntil - sentAt);
        const args = ['KLOCK', resource, owner, expiryMs, word, ...(left > 0 ? ['WAIT', left] : [])];
        return this.router.call(resource, args, this.commandTimeoutMs + Math.max(0, left), { blocking: left > 0 });
      })) as number | null;
    } catch (error) {
      // A request cut off may still be granted (it may sit in a leader's log
      // until a quorum is back): keep releasing in the background until the
      // server answers, or the lease would have run out anyway.
      if (!(error instanceof InvalidArgumentError)) {
        void this.retrying(performance.now() + expiryMs, retryMs, () =>
          this.router.call(resource, ['KUNLOCK', resource, owner, word], this.commandTimeoutMs), true).catch(() => undefined);
      }
      throw error;
    }
    const durability = word === 'EPHEMERAL' ? 'ephemeral' : 'persistent';
    const grant = token === null ? null : { token: Number(token), sentAt, expiryMs };
    const lock = new RaftLock(this.backend(), resource, owner, durability, grant, options.autoExtend === true);
    if (lock.isAcquired) this.live.add(lock);
    return lock;
  }

  /** The lock on `resource` as the server sees it now, or null when it is free. */
  getLockInfo(resource: string, options: { durability?: Durability } = {}): Promise<LockInfo | null> {
    checkResource(resource);
    return this.info(resource, options.durability);
  }

  /** Closes every connection. Locks still held stop renewing (their `signal` fires) and run out on the server. */
  async close(): Promise<void> {
    for (const lock of [...this.live]) lock.abandon();
    await this.router.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private backend(): LockBackend {
    return {
      extend: async (resource, owner, expiryMs, durability, timeoutMs) => {
        const reply = await this.retrying(performance.now() + timeoutMs, this.retryMs, () =>
          this.router.call(resource, ['KEXTEND', resource, owner, expiryMs, durabilityWord(durability)], timeoutMs));
        return reply === null ? null : Number(reply);
      },
      unlock: async (resource, owner, durability) => {
        const reply = await this.retrying(performance.now() + this.retryForMs, this.retryMs, () =>
          this.router.call(resource, ['KUNLOCK', resource, owner, durabilityWord(durability)], this.commandTimeoutMs));
        return Number(reply) === 1;
      },
      info: (resource, durability) => this.info(resource, durability),
      forget: (lock) => this.live.delete(lock),
      retryMs: this.retryMs,
      commandTimeoutMs: this.commandTimeoutMs,
    };
  }

  private async info(resource: string, durability: Durability | undefined): Promise<LockInfo | null> {
    const word = durabilityWord(durability);
    const reply = (await this.retrying(performance.now() + this.retryForMs, this.retryMs, () =>
      this.router.call(resource, ['KGETLOCK', resource, word], this.commandTimeoutMs))) as [string, number, number] | null;
    if (reply === null) return null;
    return {
      resource,
      owner: String(reply[0]),
      fencingToken: Number(reply[1]),
      remainingMs: Number(reply[2]),
      durability: word === 'EPHEMERAL' ? 'ephemeral' : 'persistent',
    };
  }

  /** Runs `attempt` until it succeeds, retrying no-leader and unreachable failures with jitter (backing off) until `deadline`. */
  private async retrying(deadline: number, retryMs: number, attempt: () => Promise<unknown>, background = false): Promise<unknown> {
    for (let n = 0; ; n++) {
      try {
        return await attempt();
      } catch (error) {
        const retriable = error instanceof NoLeaderError || error instanceof UnavailableError;
        const delay = Math.min(retryMs * 2 ** Math.min(n, 4), 2000) * (0.5 + Math.random());
        if (!retriable || performance.now() + delay >= deadline) throw error;
        // A background retry does not keep the process alive.
        await new Promise((r) => (background ? setTimeout(r, delay).unref() : setTimeout(r, delay)));
      }
    }
  }
}

function checkResource(resource: string): void {
  if (typeof resource !== 'string' || resource.length === 0) throw new InvalidArgumentError('resource must be a non-empty string');
}

function positive(n: number, name: string): number {
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive number, got ${n}`);
  return n;
}

function nonNegative(n: number, name: string): number {
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`${name} must be zero or more, got ${n}`);
  return n;
}


