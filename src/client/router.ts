import { Redis, ReplyError, type RedisOptions } from 'ioredis';
import { keySlot } from '../cluster/slots.js';
import { ClientClosedError, InvalidArgumentError, NoLeaderError, ServerError, UnavailableError } from './errors.js';

export interface Endpoint {
  host: string;
  port: number;
}

/** Parses `host:port`, `[v6]:port` or a bare `port` (host 127.0.0.1). */
export function parseEndpoint(text: string): Endpoint {
  const s = text.trim();
  const bracketed = /^\[([^\]]+)\]:(\d+)$/.exec(s);
  const plain = /^([^:]+):(\d+)$/.exec(s);
  const bare = /^(\d+)$/.exec(s);
  const host = bracketed?.[1] ?? plain?.[1] ?? (bare === null ? undefined : '127.0.0.1');
  const port = Number(bracketed?.[2] ?? plain?.[2] ?? bare?.[1]);
  if (host === undefined || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new InvalidArgumentError(`endpoint '${text}' is not host:port`);
  }
  return { host, port };
}

function endpointKey(e: Endpoint): string {
  return e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}

export interface RouterOptions {
  endpoints: Endpoint[];
  /** Route each command to its partition's leader, as CLUSTER SLOTS reports it. */
  routeBySlot: boolean;
  connectTimeoutMs: number;
  password?: string | undefined;
  username?: string | undefined;
  /** More ioredis options for every connection (tls, family...). */
  redisOptions?: RedisOptions | undefined;
}

interface SlotRange {
  first: number;
  last: number;
  node: string;
}

/** A reply the server may give again a moment later: the partition has no leader right now. */
export function isNoLeaderReply(message: string): boolean {
  return message.startsWith('TRYAGAIN') || message.startsWith('CLUSTERDOWN');
}

/**
 * Connections to the endpoints, and which one to ask. Any node of a raftlock
 * cluster answers every command (it forwards to the partition's leader), so
 * routing only saves a hop: with several endpoints the router learns the
 * leaders from CLUSTER SLOTS and sends each command to its key's leader,
 * falling back to the other endpoints when that one cannot be reached.
 */
export class Router {
  private readonly connections = new Map<string, { redis: Redis; ready: Promise<void> }>();
  private slots: SlotRange[] = [];
  private slotsLoadedAt = -Infinity;
  private slotsLoading: Promise<void> | null = null;
  private closed = false;
  /** Connections of blocking commands in flight. */
  private readonly blocking = new Set<Redis>();

  constructor(private readonly options: RouterOptions) {
    if (options.endpoints.length === 0) throw new InvalidArgumentError('at least one endpoint is needed');
  }

  /**
   * Sends one command, trying the key's leader first and then each endpoint
   * until one answers. An error reply is thrown as ServerError, or
   * NoLeaderError for -TRYAGAIN and -CLUSTERDOWN; UnavailableError when no
   * endpoint answered within timeoutMs.
   */
  async call(key: string | null, args: (string | number)[], timeoutMs: number, options: { blocking?: boolean } = {}): Promise<unknown> {
    if (this.closed) throw new ClientClosedError();
    if (this.options.routeBySlot && this.slotsStale()) await this.loadSlots(timeoutMs).catch(() => undefined);
    let lastError: unknown = null;
    for (const node of this.candidates(key)) {
      if (this.closed) throw new ClientClosedError();
      // A blocking command (KLOCK ... WAIT) holds its connection until it is answered: it gets one of its own.
      const own = options.blocking === true ? this.open(node) : null;
      if (own !== null) this.blocking.add(own.redis);
      try {
        const redis = own === null ? await this.connection(node) : (await own.ready, own.redis);
        return await withTimeout(redis.call(String(args[0]), ...args.slice(1).map(String)), timeoutMs, `${node} did not answer ${String(args[0])} within ${timeoutMs} ms`);
      } catch (error) {
        if (error instanceof ServerError) {
          this.drop(node);
          throw error;
        }
        if (error instanceof ReplyError) {
          const message = (error as Error).message;
          if (isNoLeaderReply(message)) {
            this.slotsLoadedAt = -Infinity;
            throw new NoLeaderError(message);
          }
          throw new ServerError(message);
        }
        // Unreachable, or it did not answer in time: forget the connection and the leaders it implied.
        lastError = error;
        if (own === null) this.drop(node);
        this.slotsLoadedAt = -Infinity;
      } finally {
        if (own !== null) {
          this.blocking.delete(own.redis);
          own.redis.disconnect();
        }
      }
    }
    throw new UnavailableError(`no raftlock endpoint answered (${describe(lastError)})`, lastError);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const redis of this.blocking) redis.disconnect();
    const all = [...this.connections.values()];
    this.connections.clear();
    await Promise.all(all.map(async ({ redis }) => {
      try {
        await withTimeout(redis.quit(), 1000, 'quit');
      } catch {
        redis.disconnect();
      }
    }));
  }

  /** The key's leader (when known) and then every endpoint, each once. */
  private candidates(key: string | null): string[] {
    const out: string[] = [];
    if (key !== null && this.slots.length > 0) {
      const slot = keySlot(key);
      const range = this.slots.find((r) => slot >= r.first && slot <= r.last);
      if (range !== undefined) out.push(range.node);
    }
    for (const e of this.options.endpoints) {
      const k = endpointKey(e);
      if (!out.includes(k)) out.push(k);
    }
    return out;
  }

  private slotsStale(): boolean {
    return performance.now() - this.slotsLoadedAt > 30_000;
  }

  /** Refreshes the slot → leader map from the first endpoint that answers CLUSTER SLOTS. */
  private loadSlots(timeoutMs: number): Promise<void> {
    this.slotsLoading ??= (async () => {
      try {
        for (const node of this.candidates(null)) {
          try {
            const redis = await this.connection(node);
            const reply = await withTimeout(redis.call('CLUSTER', 'SLOTS'), timeoutMs, 'CLUSTER SLOTS');
            this.slots = parseSlots(reply);
            this.slotsLoadedAt = performance.now();
            return;
          } catch (error) {
            if (!(error instanceof ReplyError)) this.drop(node);
          }
        }
      } finally {
        this.slotsLoading = null;
      }
    })();
    return this.slotsLoading;
  }

  private async connection(node: string): Promise<Redis> {
    let entry = this.connections.get(node);
    if (entry === undefined) {
      entry = this.open(node);
      const { redis } = entry;
      redis.on('end', () => {
        if (this.connections.get(node)?.redis === redis) this.connections.delete(node);
      });
      this.connections.set(node, entry);
    }
    await entry.ready;
    return entry.redis;
  }

  private open(node: string): { redis: Redis; ready: Promise<void> } {
    const { host, port } = parseEndpoint(node);
    const redis = new Redis({
      ...this.options.redisOptions,
      host,
      port,
      ...(this.options.password === undefined ? {} : { password: this.options.password }),
      ...(this.options.username === undefined ? {} : { username: this.options.username }),
      protocol: 2,
      lazyConnect: true,
      connectTimeout: this.options.connectTimeoutMs,
      // The router retries on other endpoints itself and decides what may be resent.
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      enableReadyCheck: false,
    });
    // A refused AUTH arrives as an error event, and connect() then only says the connection closed.
    let refused: ServerError | null = null;
    redis.on('error', (error: Error) => {
      if (error.name === 'ReplyError' || error.name === 'SimpleError') refused = new ServerError(error.message);
    });
    const ready = redis.connect().catch((error: unknown) => {
      throw refused ?? error;
    });
    return { redis, ready };
  }

  private drop(node: string): void {
    const entry = this.connections.get(node);
    if (entry === undefined) return;
    this.connections.delete(node);
    entry.redis.disconnect();
  }
}

function parseSlots(reply: unknown): SlotRange[] {
  const out: SlotRange[] = [];
  if (!Array.isArray(reply)) return out;
  for (const row of reply) {
    if (!Array.isArray(row) || row.length < 3 || !Array.isArray(row[2])) continue;
    const [first, last, master] = row as [number, number, [string, number]];
    out.push({ first: Number(first), last: Number(last), node: endpointKey({ host: String(master[0]), port: Number(master[1]) }) });
  }
  return out;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(what)), Math.max(1, ms));
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
