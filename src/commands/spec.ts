import type { ReplyWriter } from '../../resp/encoder.js';
import type { LockService } from '../lock/service.js';
import type { CommandStatsTable } from '../stats/command-stats.js';
import type { Slowlog } from '../stats/slowlog.js';
import type { WalStats } from '../storage/wal.js';

/** Command flags, as COMMAND INFO reports them. */
export type CommandFlag =
  | 'write' | 'readonly' | 'denyoom' | 'admin' | 'pubsub' | 'noscript' | 'blocking' | 'loading'
  | 'stale' | 'skip_monitor' | 'fast' | 'no_auth' | 'allow_busy' | 'no_mandatory_keys' | 'may_replicate' | 'movablekeys';

export type CommandGroup = 'lock' | 'string' | 'generic' | 'connection' | 'server' | 'cluster' | 'scripting';

/**
 * One argument in Redis's COMMAND DOCS shape. The same description drives the
 * generic syntax check, COMMAND DOCS and docs/commands.md.
 */
export interface ArgSpec {
  readonly name: string;
  readonly type: 'key' | 'string' | 'integer' | 'double' | 'pattern' | 'unix-time' | 'pure-token' | 'oneof' | 'block';
  readonly token?: string;
  readonly optional?: boolean;
  readonly multiple?: boolean;
  readonly arguments?: readonly ArgSpec[];
  readonly displayText?: string;
  /** For integer arguments: the error when the value is not an integer (default: Redis's). */
  readonly invalidError?: string;
  /** For a oneof: the error when two of its members are given (default: syntax error). */
  readonly conflictError?: string;
}

/** Values the generic syntax check extracted, by argument name. */
export type ParsedArgs = Record<string, string | number | boolean | string[]>;

export interface ClientState {
  readonly id: number;
  name: string;
  libName: string;
  libVer: string;
  proto: 2 | 3;
  authenticated: boolean;
  db: number;
  readonly addr: string;
  readonly laddr: string;
  readonly createdAtMs: number;
  lastCommand: string;
  /** Set by QUIT: close the connection once the pending replies are written. */
  closeAfterReply: boolean;
  /** Whether the client waits in KLOCK ... WAIT. */
  blocked: boolean;
  /** Monotonic ms of the last command, for CLIENT LIST idle=. */
  lastActiveMs: number;
  /** Bytes read but not yet executed, and bytes written but not yet sent. */
  bufferSizes(): { query: number; output: number };
  /** Cleanups to run when the connection closes (e.g. leave a wait queue). */
  readonly onClose: Set<() => void>;
  /** A command another node forwarded: it runs here, never forwarded again. */
  readonly forwarded?: boolean;
}

export interface ServerInfo {
  /** The lock service of each partition. */
  readonly services: readonly LockService[];
  /** The lock service of the partition a key's slot belongs to. */
  serviceFor(key: string): LockService;
  partitionOf(key: string): number;
  /** The node's monotonic clock (ms). */
  clockMs(): number;
  readonly config: ServerSettings;
  readonly stats: ServerStats;
  /** Per-command calls, time, refusals, errors and latency histograms (INFO commandstats, LATENCY HISTOGRAM). */
  readonly commandStats: CommandStatsTable;
  readonly slowlog: Slowlog;
  readonly startedAtWallMs: number;
  readonly version: string;
  clients(): Iterable<ClientState>;
  /** Every top-level command, for COMMAND. */
  commands(): readonly CommandSpec[];
  blockedClients(): number;
  /** Wall-clock ms since the epoch (only for EXAT/PXAT, TIME and INFO). */
  wallClockMs(): number;
  /** Each open partition's Raft group (INFO raft). */
  raft?(): RaftInfo[];
  /** The write-ahead log's counters, once it is open (INFO persistence). */
  wal?(): WalStats | undefined;
  /** A client's credentials were refused (logged once per client). */
  clientRefused?(client: ClientState, reason: string): void;
  /**
   * Runs argv on the node leading the partition when that is another node, writing its RESP
   * reply (or an error) to out and resolving then; undefined when it runs here.
   */
  forward?(partition: number, argv: string[], client: ClientState, out: ReplyWriter): Pending | undefined;
  /** The cluster as CLUSTER commands describe it (absent on a single node). */
  readonly cluster?: ClusterView;
}

export interface ClusterView {
  /** Every voter, this node included. */
  nodes(): readonly string[];
  leaderOf(partition: number): string | null;
  /** Where clients reach a node (undefined while unknown). */
  endpointOf(nodeId: string): { host: string; port: number } | undefined;
  /**
   * Adds a node as a voter of (or removes it from) the given partitions, each
   * through its leader. Resolves with null once every change is applied, or
   * with an error text. here: apply only where this node leads (a forwarded
   * change), never forwarding again.
   */
  changeMembership(change: { type: 'addVoter' | 'removeVoter'; node: string }, partitions: readonly number[], here: boolean): Promise<string | null>;
}

export interface RaftInfo {
  role: string;
  term: number;
  leader: string | null;
  /** Times this node saw the partition get a new leader. */
  leaderChanges: number;
  lastIndex: number;
  commitIndex: number;
  appliedIndex: number;
  snapshotIndex: number;
  /** Entries held in the in-memory log (after the last compaction). */
  logEntries: number;
  voters: readonly string[];
}

export interface ServerSettings {
  readonly port: number;
  readonly bind: string;
  readonly requirepass: string | undefined;
  readonly maxclients: number;
  readonly timeoutSeconds: number;
  readonly maxBulkBytes: number;
  readonly maxArgs: number;
  readonly queryBufferBytesMax: number;
  readonly outputBufferBytesMax: number;
  readonly dataDir: string;
  readonly nodeId: string;
}

export interface ServerStats {
  connectionsReceived: number;
  commandsProcessed: number;
  rejectedConnections: number;
  protocolErrors: number;
  netInputBytes: number;
  netOutputBytes: number;
  /** Reads from and writes to client sockets (INFO total_reads_processed, total_writes_processed). */
  readsProcessed: number;
  writesProcessed: number;
  /** Error replies to commands, refused ones included (INFO total_error_replies). */
  totalErrorReplies: number;
  /** Clients closed for sending more than the query buffer limit, or not reading their replies. */
  queryBufferLimitDisconnections: number;
  outputBufferLimitDisconnections: number;
}

export interface CommandContext {
  readonly reply: ReplyWriter;
  readonly client: ClientState;
  readonly server: ServerInfo;
}

/**
 * Marks the promise of a command that blocks its client (KLOCK ... WAIT
 * queued): nothing else from that client runs until it settles, as in Redis.
 * Other promises (writes waiting for the log) let later writes pipeline.
 */
export const BLOCKING: unique symbol = Symbol('blocking');

/**
 * The end of a command that answers later, lighter than a Promise: no microtask, no resolving
 * functions, no derived promise. Whoever completes it calls complete() once its reply is written;
 * the listeners run then, synchronously (at once if it completed already). It never fails. It is
 * also awaitable (then) for callers that want a Promise.
 */
export class Completion implements PromiseLike<void> {
  [BLOCKING]?: boolean;
  private completed = false;
  private listeners: (() => void) | (() => void)[] | null = null;

  /** Runs fn once complete: now if it is already. */
  onComplete(fn: () => void): void {
    if (this.completed) return fn();
    const listeners = this.listeners;
    this.listeners = listeners === null ? fn : typeof listeners === 'function' ? [listeners, fn] : [...listeners, fn];
  }

  protected complete(): void {
    if (this.completed) return;
    this.completed = true;
    const listeners = this.listeners;
    this.listeners = null;
    if (typeof listeners === 'function') listeners();
    else if (listeners !== null) for (const fn of listeners) fn();
  }

  then<A = void, B = never>(onFulfilled?: ((value: void) => A | PromiseLike<A>) | null, onRejected?: ((reason: unknown) => B | PromiseLike<B>) | null): Promise<A | B> {
    return new Promise<void>((resolve) => this.onComplete(resolve)).then(onFulfilled, onRejected);
  }
}

/** What an asynchronous command returns: it settles (completes) after its reply is written. */
export type Pending = Promise<void> | Completion;

/** A handler writes exactly one reply; an asynchronous one returns a promise that settles after writing it. */
export type Handler = (ctx: CommandContext, argv: string[], parsed: ParsedArgs) => void | Pending;

export interface CommandSpec {
  /** Lower-case name; subcommands are named 'container|sub' like Redis. */
  readonly name: string;
  readonly summary: string;
  /** Version of raftlock (or of Redis, for Redis commands) that introduced it. */
  readonly since: string;
  readonly group: CommandGroup;
  readonly complexity?: string;
  /** Argument counts including the command name (and the subcommand name). */
  readonly arity: { readonly min: number; readonly max: number };
  readonly flags: readonly CommandFlag[];
  readonly aclCategories: readonly string[];
  /** Legacy key positions: first, last (negative counts from the end), step; null when no keys. */
  readonly keys: { readonly first: number; readonly last: number; readonly step: number } | null;
  /**
   * Keys counted by an argument instead (EVAL: numkeys at argv[2], then that
   * many keys): argv[index] is the count, the keys follow it. Such a command
   * is routed by its first key, or to partition 0 (the one of slot 0) when
   * it has none.
   */
  readonly keyCount?: { readonly index: number };
  /**
   * The argv to send when the command is forwarded to the partition's
   * leader, when it differs from what the client sent (EVALSHA of a script
   * this node has goes as EVAL, so the leader needs no copy of it).
   */
  readonly forwardAs?: (ctx: CommandContext, argv: string[]) => string[];
  /** Arguments after the name; when `parse` is true they are checked generically before the handler. */
  readonly args: readonly ArgSpec[];
  readonly parse: boolean;
  readonly handler?: Handler;
  readonly subcommands?: readonly CommandSpec[];
}

/** Redis's signed arity: exact count when fixed, minus the minimum when variadic. */
export function redisArity(spec: CommandSpec): number {
  return spec.arity.min === spec.arity.max ? spec.arity.min : -spec.arity.min;
}

/** Declares a command; fills defaults so modules state only what differs. */
export function defineCommand(spec: Partial<CommandSpec> & Pick<CommandSpec, 'name' | 'summary' | 'since' | 'group' | 'arity'>): CommandSpec {
  return {
    flags: [],
    aclCategories: [],
    keys: null,
    args: [],
    parse: false,
    ...spec,
  };
}
