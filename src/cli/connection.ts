// The CLI's connection to a raftlock cluster: the first reachable endpoint of the list, failing
// over to the next on connection errors, and retrying -TRYAGAIN (a partition between leaders)
// with jittered backoff, all within one deadline per command.
import { Redis } from 'ioredis';

export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

export const DEFAULT_PORT = 6379;

/** Parses `host:port,host:port,...` (a bare host means port 6379; IPv6 hosts in brackets; an optional redis:// prefix). */
export function parseEndpoints(text: string): Endpoint[] {
  const endpoints: Endpoint[] = [];
  for (const item of text.split(',').map((s) => s.trim()).filter((s) => s.length > 0)) {
    const match = /^(?:redis:\/\/)?(\[[^\]]+\]|[^:/\s[\]]+)(?::(\d+))?\/?$/.exec(item);
    if (match === null) throw new Error(`expected host:port, got '${item}'`);
    const port = match[2] === undefined ? DEFAULT_PORT : Number(match[2]);
    if (!Number.isInteger(port) || port < 1 || port > 65_535) throw new Error(`port out of range in '${item}'`);
    endpoints.push({ host: match[1]!.replace(/^\[|\]$/g, ''), port });
  }
  if (endpoints.length === 0) throw new Error('expected at least one host:port');
  return endpoints;
}

export function formatEndpoint(endpoint: Endpoint): string {
  return endpoint.host.includes(':') ? `[${endpoint.host}]:${endpoint.port}` : `${endpoint.host}:${endpoint.port}`;
}

/** The server answered with an error (NOAUTH, WRONGPASS, ERR ...), or kept answering TRYAGAIN. */
export class ServerError extends Error {}

/** No endpoint could be reached, or none answered in time. */
export class UnreachableError extends Error {}

/** The command was abandoned by abortInFlight() (the shell is shutting down). */
export class AbortedError extends Error {}

export interface ConnectionOptions {
  endpoints: Endpoint[];
  password?: string | undefined;
  /** Time allowed for one command (connecting, failovers and retries included), beyond any WAIT. */
  timeoutMs: number;
  /** Retries of a -TRYAGAIN or -CLUSTERDOWN answer before giving up (default 5). */
  tryAgainRetriesMax?: number;
}

export interface CallResult {
  reply: unknown;
  /** An earlier attempt of this command failed in a way that leaves open whether the server applied it. */
  maybeAppliedBefore: boolean;
}

const CONNECT_TIMEOUT_MS_MAX = 5000;
const BACKOFF_MS_FIRST = 50;
const BACKOFF_MS_MAX = 1000;

class DeadlineError extends Error {}

/** One logical connection; call() picks and re-picks the endpoint. */
export class LockConnection {
  private redis: Redis | null = null;
  private endpointIndex = 0;
  private abortGeneration = 0;

  constructor(private readonly options: ConnectionOptions) {
    if (options.endpoints.length === 0) throw new Error('no endpoints');
  }

  /** The endpoint of the open connection, or null. */
  get endpoint(): Endpoint | null {
    return this.redis === null ? null : this.options.endpoints[this.endpointIndex]!;
  }

  /** Connects (to the first reachable endpoint) unless connected; throws UnreachableError or ServerError. */
  async connect(): Promise<Endpoint> {
    await this.ready(Date.now() + this.options.timeoutMs);
    return this.endpoint!;
  }

  /**
   * Sends one command. extraMs extends the deadline (a KLOCK ... WAIT may take that long). Throws
   * ServerError for an error reply, UnreachableError when no endpoint answers in time, AbortedError
   * after abortInFlight().
   */
  async call(args: string[], extraMs = 0): Promise<CallResult> {
    const deadline = Date.now() + this.options.timeoutMs + extraMs;
    const generation = this.abortGeneration;
    const retriesMax = this.options.tryAgainRetriesMax ?? 5;
    let maybeApplied = false;
    let tryAgains = 0;
    let connectionFailures = 0;
    for (;;) {
      if (generation !== this.abortGeneration) throw new AbortedError('aborted');
      const redis = await this.ready(deadline);
      try {
        const reply = await withDeadline(redis.call(args[0]!, ...args.slice(1)), deadline);
        return { reply, maybeAppliedBefore: maybeApplied };
      } catch (error) {
        if (generation !== this.abortGeneration) throw new AbortedError('aborted');
        const message = (error as Error).message;
        if (error instanceof DeadlineError) {
          // Dropping the connection also takes a KLOCK ... WAIT out of the server's queue.
          const at = formatEndpoint(this.endpoint!);
          this.drop();
          throw new UnreachableError(`no reply from ${at} within ${this.options.timeoutMs + extraMs} ms`);
        }
        if (isReplyError(error)) {
          if (!/^(TRYAGAIN|CLUSTERDOWN)\b/.test(message) || tryAgains >= retriesMax) throw new ServerError(message);
          if (/may have been applied/.test(message)) maybeApplied = true;
          await sleepWithin(backoffMs(tryAgains++), deadline);
          if (Date.now() >= deadline) throw new ServerError(message);
          continue;
        }
        // The connection broke with the command sent or not: the next endpoint gets it again.
        maybeApplied = true;
        this.drop();
        this.endpointIndex = (this.endpointIndex + 1) % this.options.endpoints.length;
        if (++connectionFailures > this.options.endpoints.length) throw new UnreachableError(`connection lost: ${message}`);
      }
    }
  }

  /** Makes a call in progress fail with AbortedError at once (its connection is dropped). */
  abortInFlight(): void {
    this.abortGeneration++;
    this.drop();
  }

  close(): void {
    this.drop();
  }

  private drop(): void {
    this.redis?.disconnect();
    this.redis = null;
  }

  /** The open connection, or a new one to the first endpoint that accepts, starting at the current one. */
  private async ready(deadline: number): Promise<Redis> {
    if (this.redis !== null && this.redis.status === 'ready') return this.redis;
    this.drop();
    const { endpoints } = this.options;
    const failures: string[] = [];
    for (let i = 0; i < endpoints.length; i++) {
      const index = (this.endpointIndex + i) % endpoints.length;
      const endpoint = endpoints[index]!;
      const left = deadline - Date.now();
      if (left <= 0) break;
      try {
        this.redis = await this.open(endpoint, Math.min(left, CONNECT_TIMEOUT_MS_MAX));
        this.endpointIndex = index;
        return this.redis;
      } catch (error) {
        if (isReplyError(error)) throw new ServerError(`${formatEndpoint(endpoint)}: ${(error as Error).message}`);
        failures.push(`${formatEndpoint(endpoint)} (${(error as Error).message})`);
      }
    }
    const tried = failures.length === 0 ? endpoints.map(formatEndpoint).join(', ') + ' (timed out)' : failures.join(', ');
    throw new UnreachableError(`cannot connect to ${tried}`);
  }

  /** Connects and authenticates; rejects with the socket error or the server's AUTH error. */
  private async open(endpoint: Endpoint, timeoutMs: number): Promise<Redis> {
    const redis = new Redis({
      host: endpoint.host,
      port: endpoint.port,
      password: this.options.password,
      protocol: 2,
      stringNumbers: true,
      lazyConnect: true,
      enableOfflineQueue: false,
      enableReadyCheck: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      connectTimeout: timeoutMs,
    });
    // connect() rejects with a generic "Connection is closed."; the cause arrives as an 'error' event.
    let cause: Error | null = null;
    redis.on('error', (error: Error) => (cause ??= error));
    try {
      await redis.connect();
      return redis;
    } catch (error) {
      redis.disconnect();
      throw cause ?? error;
    }
  }
}

function isReplyError(error: unknown): boolean {
  return error instanceof Error && error.name === 'ReplyError';
}

/** Jittered exponential backoff: 50 ms doubling to 1 s, each delay uniform in [d/2, 3d/2). */
function backoffMs(attempt: number): number {
  const base = Math.min(BACKOFF_MS_MAX, BACKOFF_MS_FIRST * 2 ** attempt);
  return base / 2 + Math.random() * base;
}

function sleepWithin(ms: number, deadline: number): Promise<void> {
  const wait = Math.max(0, Math.min(ms, deadline - Date.now()));
  return new Promise((resolve) => setTimeout(resolve, wait));
}

function withDeadline<T>(promise: Promise<T>, deadline: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineError('deadline')), Math.max(0, deadline - Date.now()));
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}
