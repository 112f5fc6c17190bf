import { RawNode } from '../../raft/rawnode.js';
import { BOOTSTRAP_INDEX, BOOTSTRAP_TERM, MemoryStorage } from '../../raft/storage.js';
import type { ConfState, Entry, Message, NodeId, Ready, Snapshot } from '../../raft/types.js';
import { ErrProposalDropped, ErrReadIndexDropped, ErrSnapshotTemporarilyUnavailable } from '../../raft/errors.js';
import { applyToConf, decodeConfChange, type ConfChange } from '../../raft/confchange.js';
import type { RaftConfig } from '../../raft/config.js';
import type { Wal, GroupReplay, WalRecord, SnapshotStore } from '../storage/index.js';
import { LockSnapshotDecoder, LockSnapshotEncoder, encodeLockSnapshot, restoreLockSnapshot } from '../lock/snapshot.js';
import { applyCommand, commandLogTime, decodeCommand, encodeCommand, noopOutcome, type LockOp, type LockResult } from '../lock/commands.js';
import type { LockStateMachine } from '../lock/machine.js';
import { activeTrace, traceNow, type CommandTrace } from '../trace/trace.js';
import { ProposalQueue } from './proposals.js';

/** The replica is not the leader (or lost leadership before the outcome was known). */
export class NotLeaderError extends Error {
  readonly code = 'RAFTLOCK_ERR_NOT_LEADER';
  override readonly name = 'NotLeaderError';
  constructor(readonly leader: NodeId | null) {
    super(leader === null ? 'no leader' : `not the leader (leader is ${leader})`);
  }
}

/** The replica refused the command for now (too much uncommitted data, a leadership transfer): nothing was written. */
export class BusyError extends Error {
  readonly code = 'RAFTLOCK_ERR_BUSY';
  override readonly name = 'BusyError';
  constructor(detail: string) {
    super(detail);
  }
}

/**
 * EPHEMERAL locks are unavailable for now: this leader is new, and a lock an
 * earlier leader granted may still be held (until the inherited horizon).
 */
export class LockDelayError extends Error {
  readonly code = 'RAFTLOCK_ERR_LOCK_DELAY';
  override readonly name = 'LockDelayError';
  constructor(readonly remainingMs: number) {
    super(`EPHEMERAL locks are unavailable for ${Math.ceil(remainingMs)} ms after a leader change (an earlier leader's locks may still be held)`);
  }
}

/** The command may or may not have been applied (e.g. leadership moved while it was in flight). */
export class OutcomeUnknownError extends Error {
  readonly code = 'RAFTLOCK_ERR_OUTCOME_UNKNOWN';
  override readonly name = 'OutcomeUnknownError';
  constructor(detail: string) {
    super(`outcome unknown: ${detail}`);
  }
}

export interface ReplicaOptions {
  id: NodeId;
  group: number;
  /** Founding membership (used when the WAL holds nothing for this group). */
  conf: ConfState;
  wal: Wal;
  replay: GroupReplay | undefined;
  /**
   * Where snapshots of the lock table are kept. Without a store the replica
   * never compacts its log and cannot install a leader's snapshot.
   */
  snapshots?: SnapshotStore;
  /** When to snapshot and how much log to keep after one (default DEFAULT_SNAPSHOT_POLICY). */
  snapshotPolicy?: Partial<SnapshotPolicy>;
  /** How snapshots are encoded, and a leader's decoded: without, all at once (as in the simulator). */
  snapshotPacing?: SnapshotPacing;
  machine: LockStateMachine;
  /** This node's monotonic clock in ms (injected: the simulator drifts it). */
  clock: () => number;
  rng: () => number;
  send: (messages: Message[]) => void;
  raft?: Partial<Omit<RaftConfig, 'id' | 'storage' | 'rng' | 'applied'>>;
  /** Largest lag of a read's evaluation time behind the log clock (default READ_STALENESS_MS). */
  readStalenessMs?: number;
  /** Called after committed entries were applied (the lock service then serves waiters). */
  onApplied?: () => void;
  /** Where to count commit latency and Ready batch sizes (the server's metrics); none in the simulator. */
  metrics?: ReplicaMetrics;
  /** Called when the WAL fails: the node must stop (it cannot keep promises it can no longer persist). */
  onFatal?: (error: Error) => void;
  /**
   * Called when this replica becomes leader (term: its term) or stops being
   * leader. EPHEMERAL locks and blocked waiters live with the leader only.
   */
  onLeadership?: (leader: boolean, term: number) => void;
  /** Called when the role or the known leader changes (logged; see onLeadership for what it changes). */
  onRoleChange?: (role: string, leader: NodeId | null, term: number) => void;
  /** Called after the membership changed: a membership entry applied, or a leader's snapshot installed. */
  onMembership?: () => void;
  /** Called once a snapshot's file is durable: one taken here, or the leader's being installed. */
  onSnapshot?: (snapshot: SnapshotReport) => void;
  /** How far past the lease asked for a raise of the EPHEMERAL horizon reaches (default HORIZON_SLACK_MS). */
  horizonSlackMs?: number;
}

/**
 * An EPHEMERAL grant may reach at most as far as the horizon committed in the
 * log. When one needs more, the horizon is raised to the grant's expiry plus
 * this much, so that grants that follow rarely wait for the log; and it is
 * raised ahead of need, in the background, once less than half of this is
 * left. A larger value costs a longer wait for EPHEMERAL locks after a leader
 * change (see Replica.ephemeralAccess).
 */
export const HORIZON_SLACK_MS = 1000;

/**
 * A snapshot is taken once the entries applied since the last one reach
 * max(minEntries, tableRatio x the lock table's records): the cost of writing
 * the table is then spread over at least that many entries, and the
 * in-memory log stays in proportion to the table. After a snapshot the log
 * keeps its last trailingEntries entries, so that a follower a little behind
 * is sent entries rather than the whole table.
 */
export interface SnapshotPolicy {
  minEntries: number;
  tableRatio: number;
  trailingEntries: number;
}

/**
 * Encoding a snapshot, or decoding a leader's, in slices, so that a large
 * lock table never holds the event loop (and with it heartbeats: a stall past
 * the election timeout costs the node its leaderships) for the whole of it.
 */
export interface SnapshotPacing {
  /** Records encoded or decoded per slice. */
  sliceRecords: number;
  /** Resolves when the next slice may run: after the I/O and timers waiting now. */
  nextSlice(): Promise<void>;
  /** Resolves, with its release, once this snapshot may start: one encoding at a time on a node. */
  acquire(): Promise<() => void>;
}

export const DEFAULT_SNAPSHOT_POLICY: SnapshotPolicy = { minEntries: 10_000, tableRatio: 0.25, trailingEntries: 1_000 };

/** A snapshot taken of the lock table, or installed from the leader's (index and term: its last entry's). */
export interface SnapshotReport {
  origin: 'taken' | 'installed';
  index: number;
  term: number;
  bytes: number;
  /** Encoding (taken) and writing it until durable. */
  durationMs: number;
}

/**
 * The replica's log storage. Once a snapshot is durable its bytes are
 * dropped from memory (they are as large as the lock table); in the rare
 * case a lagging follower needs them, they are read back from the snapshot's
 * file, in the background (the leader retries meanwhile: the storage says the
 * snapshot is temporarily unavailable). If the file cannot give them, the lock
 * table is encoded again as of the last applied entry, a snapshot at least as new.
 */
class ReplicaStorage extends MemoryStorage {
  private released = false;
  /** The released bytes are being read back. */
  private loading = false;
  /** Reading them back failed: encode the table instead. */
  private reloadFailed = false;

  constructor(
    conf: ConfState,
    private readonly encodeApplied: () => { index: number; conf: ConfState; data: Uint8Array },
    private readonly loadSaved: (index: number) => Promise<Uint8Array | null>,
  ) {
    super(conf);
  }

  override snapshot(): Snapshot {
    if (!this.released) return this.snap;
    if (this.reloadFailed) {
      this.released = false;
      const { index, conf, data } = this.encodeApplied();
      if (index > this.snap.meta.index) return this.createSnapshot(index, conf, data);
      this.snap = { meta: this.snap.meta, data };
      return this.snap;
    }
    if (!this.loading) {
      this.loading = true;
      const meta = this.snap.meta;
      const settle = (data: Uint8Array | null): void => {
        this.loading = false;
        if (this.snap.meta !== meta || !this.released) return; // a newer snapshot came meanwhile
        if (data === null) this.reloadFailed = true;
        else {
          this.snap = { meta, data };
          this.released = false;
        }
      };
      this.loadSaved(meta.index).then(settle, () => settle(null));
    }
    throw new ErrSnapshotTemporarilyUnavailable();
  }

  /** Drops the snapshot's bytes if it is still the one at index. */
  releaseData(index: number): void {
    if (this.snap.meta.index !== index || this.released) return;
    this.snap = { meta: this.snap.meta, data: new Uint8Array(0) };
    this.released = true;
  }

  override createSnapshot(index: number, conf: ConfState, data: Uint8Array): Snapshot {
    this.released = false;
    this.reloadFailed = false;
    return super.createSnapshot(index, conf, data);
  }

  override applySnapshot(snapshot: Snapshot): void {
    this.released = false;
    this.reloadFailed = false;
    super.applySnapshot(snapshot);
  }

  /** The snapshot's index and term without materialising its bytes. */
  get snapshotMeta(): Snapshot['meta'] {
    return this.snap.meta;
  }
}

/** How far behind the log clock a read's evaluation time may be before a tick is committed first. */
export const READ_STALENESS_MS = 10;

/** The replica's own measurements, read by the server's metrics. */
export interface ReplicaMetrics {
  /** Milliseconds, fractional (performance.now()). */
  now(): number;
  /** Propose → committed, in ns, of each write this leader proposed. */
  readonly commitNs: { record(value: number): void };
  /** New log entries per Ready made durable together (one WAL append). */
  readonly batchEntries: { record(value: number): void };
}

interface Pending {
  /** The index and term the entry was appended at. */
  index: number;
  term: number;
  /** When it was proposed (ReplicaMetrics.now()); 0 without metrics. */
  proposedMs: number;
  /** The sampled command that proposed it, if any. */
  trace: CommandTrace | null;
  /** The keys the command writes (counted in Replica.keysInFlight). */
  keys: readonly string[];
  resolve: (result: LockResult) => void;
  reject: (error: Error) => void;
}

interface PendingRead {
  run: () => void;
  reject: (error: Error) => void;
}

/**
 * One node's replica of one Raft group (a partition) running the lock state
 * machine: the Ready loop (persist to the WAL, then send, then apply, then
 * advance), proposals that resolve with their result once applied, and
 * linearizable reads. The same code runs in the server and in the simulator.
 *
 * Log time: every command carries the leader's log clock, which starts at
 * the latest log time in its log when it becomes leader and then follows its
 * own monotonic clock; so log time never goes backwards, and time when there
 * is no leader (or the node is down) does not count against any lease.
 */
export class Replica {
  readonly raw: RawNode;
  private readonly storage: ReplicaStorage;
  /** This leader's proposals not yet applied, in index order. */
  private readonly pending = new ProposalQueue<Pending>((orphan) => this.settle(orphan, new OutcomeUnknownError('the log was rewritten while the command was in flight')));
  /** Pending writes with a trace: while none, the Ready loop does not look for them. */
  private tracedPending = 0;
  /** For each key, how many of the pending commands write it. */
  private readonly keysInFlight = new Map<string, number>();
  private readonly reads = new Map<string, PendingRead>();
  private readonly appliedWaiters: { index: number; run: () => void }[] = [];
  private nextReadId = 0;
  private driving = false;
  private again = false;
  private failed: Error | null = null;
  private leader: NodeId | null = null;
  /** Times this replica learned of a new leader (metrics). */
  private leaderChangesSeen = 0;
  private role = 'follower';
  private applied = 0;
  private readonly policy: SnapshotPolicy;
  /** The local snapshot being written to disk, if any. */
  private snapshotTask: Promise<void> | null = null;
  /** A leader's snapshot is being installed (from its WAL write until the lock table is replaced). */
  private installing = false;
  /** See whenLogHoldsApplied(). */
  private logHoldsApplied: (() => void)[] = [];
  /** Largest log time appended or applied; while leader, no less than any stamp it gave. */
  private lastLogTimeMs = 0;
  /** Log time of the last applied command: the instant reads are evaluated at. */
  private appliedLogTimeMs = 0;
  /** While leader: log time = logBaseMs + (clock() - clockBaseMs). */
  private logBaseMs = 0;
  private clockBaseMs = 0;
  /** The membership as of the last applied entry. */
  private conf: ConfState;
  /**
   * The commit index the WAL held at open, and the membership its committed entries lead to: until
   * they are applied again, `conf` lags behind what this node had already applied before a restart.
   */
  private readonly openCommit: number;
  private readonly openConf: ConfState;
  /** While leader: the index of its term's first entry; earlier entries are all applied once it is. */
  private termStartIndex = Infinity;
  /** While leader: the EPHEMERAL horizon of earlier terms (Infinity until known). */
  private inheritedHorizonMs = Infinity;
  /** A raise of the EPHEMERAL horizon in flight, and how far it reaches. */
  private horizonRaise: { untilMs: number; done: Promise<void> } | null = null;

  /**
   * Opens the replica from what its WAL replayed. A group new to this WAL
   * first records the founding snapshot (index 1, term 1: the initial
   * membership) so that the WAL's log starts where the Raft log does.
   * Otherwise the state is the newest snapshot file plus the log after it.
   */
  static async open(options: ReplicaOptions): Promise<Replica> {
    const { group, replay, wal } = options;
    if (replay === undefined) {
      await wal.append([{ type: 'snapshot', group, index: BOOTSTRAP_INDEX, term: BOOTSTRAP_TERM }]);
      return new Replica(options, undefined);
    }
    const marker = replay.snapshot;
    if (marker === null) throw new Error(`group ${group}: the WAL holds this group's log but no snapshot marker`);
    const file = options.snapshots === undefined ? null : await options.snapshots.load(group);
    if (marker.index === BOOTSTRAP_INDEX && (file === null || file.index === BOOTSTRAP_INDEX)) return new Replica(options, undefined);
    if (file === null || file.index < marker.index) {
      throw new Error(`group ${group}: the WAL's snapshot marker is at index ${marker.index} but the newest snapshot file is at ${file?.index ?? 'none'}`);
    }
    const snapshot: Snapshot = { meta: { index: file.index, term: file.term, conf: file.conf as unknown as ConfState }, data: file.data };
    if (file.index > marker.index) {
      // Saved, but the crash came before its marker was appended: record it
      // now. Like the marker, it keeps the log after it only if the log holds
      // the snapshot's own entry.
      await wal.append([{ type: 'snapshot', group, index: file.index, term: file.term }]);
      const at = replay.entries.find((e) => e.index === file.index);
      if (at === undefined || at.term !== file.term) replay.entries = [];
    }
    replay.entries = replay.entries.filter((e) => e.index > file.index);
    if (replay.hardState !== null && replay.hardState.commit < file.index) replay.hardState = { ...replay.hardState, commit: file.index };
    const replica = new Replica(options, snapshot);
    // What the WAL may drop is not persisted: declare it again.
    replica.compactWal(file.index);
    return replica;
  }

  private constructor(private readonly options: ReplicaOptions, restored: Snapshot | undefined) {
    this.policy = { ...DEFAULT_SNAPSHOT_POLICY, ...options.snapshotPolicy };
    this.storage = new ReplicaStorage(
      options.conf,
      () => ({ index: this.applied, conf: this.conf, data: encodeLockSnapshot(options.machine, this.appliedLogTimeMs) }),
      async (index) => {
        const file = await options.snapshots?.load(options.group);
        return file != null && file.index === index ? file.data : null;
      },
    );
    if (restored !== undefined) {
      this.storage.applySnapshot(restored);
      this.restoreMachine(restored.data);
    }
    const replay = options.replay;
    if (replay !== undefined) {
      this.storage.append(replay.entries);
      if (replay.hardState !== null) this.storage.setHardState(replay.hardState);
      for (const entry of replay.entries) this.noteLogTime(entry);
    }
    this.applied = this.storage.snapshotMeta.index;
    this.conf = this.storage.snapshotMeta.conf;
    this.openCommit = Math.max(this.applied, replay?.hardState?.commit ?? 0);
    let openConf = this.conf;
    for (const entry of replay?.entries ?? []) {
      if (entry.index > this.applied && entry.index <= this.openCommit && entry.type === 'conf') openConf = applyToConf(openConf, decodeConfChange(entry.data));
    }
    this.openConf = openConf;
    this.raw = new RawNode({ ...options.raft, id: options.id, storage: this.storage, rng: options.rng, applied: this.applied });
  }

  get isLeader(): boolean {
    return this.role === 'leader';
  }

  /** Leader with every entry of earlier terms applied: it serves reads and EPHEMERAL locks. */
  get isServing(): boolean {
    return this.isLeader && this.applied >= this.termStartIndex;
  }

    get leaderId(): NodeId | null {
    return this.leader;
  }

  get leaderChanges(): number {
    return this.leaderChangesSeen;
  }

  /** Index of the newest snapshot (taken or installed; 1 is the founding one). */
  get snapshotIndex(): number {
    return this.storage.snapshotMeta.index;
  }

  get appliedIndex(): number {
    return this.applied;
  }

  /** The leader's log clock (meaningful on the leader only). */
  logNow(): number {
    const t = this.logBaseMs + (this.options.clock() - this.clockBaseMs);
    return t > this.lastLogTimeMs ? t : this.lastLogTimeMs;
  }

  tick(): void {
    this.raw.tick();
    this.kick();
  }

  step(message: Message): void {
    this.raw.step(message);
    this.kick();
  }

  /** Starts an election now (a single-member group elects itself at once). */
  campaign(): void {
    this.raw.campaign();
    this.kick();
  }

  /**
   * Replicates a write; resolves with its result once applied here. Rejects
   * with NotLeaderError when it was certainly not appended, or
   * OutcomeUnknownError when it may still commit.
   */
  propose(op: LockOp): Promise<LockResult> {
    if (this.failed !== null) return Promise.reject(this.failed);
    if (!this.isLeader) return Promise.reject(new NotLeaderError(this.leader));
    const logTimeMs = this.logNow();
    let at: { index: number; term: number };
    try {
      at = this.raw.propose(encodeCommand({ logTimeMs, op }));
    } catch (error) {
      if (error instanceof ErrProposalDropped) {
        return Promise.reject(error.reason === 'not-leader' ? new NotLeaderError(this.leader) : new BusyError(error.message));
      }
      throw error;
    }
    this.lastLogTimeMs = logTimeMs;
    const keys = writtenKeys(op);
    for (const key of keys) this.keysInFlight.set(key, (this.keysInFlight.get(key) ?? 0) + 1);
    const trace = activeTrace.current;
    const proposedMs = this.options.metrics?.now() ?? 0;
    if (trace !== null) {
      trace.partition = this.options.group;
      trace.proposedMs = traceNow();
      this.tracedPending += 1;
    }
    const promise = new Promise<LockResult>((resolve, reject) => {
      this.pending.push({ index: at.index, term: at.term, keys, resolve, reject, proposedMs, trace });
    });
    this.kick();
    return promise;
  }

  /**
   * The result of a write that would change nothing (see noopOutcome),
   * answered without the log; undefined when it must be proposed. Only under
   * a valid leader lease with every committed entry applied, so the state
   * read reflects every acknowledged write. The op is evaluated both at the
   * log time reads are evaluated at (that of the last applied command) and
   * at the log clock now, and answered only if both give the same result:
   * without writes to the key in between, only expiry changes its state, so
   * the answer then holds over that whole interval, which starts no earlier
   * than any reply already given and ends no later than the log time of any
   * write proposed after it.
   *
   * Never while a command writing the same key is in flight: then no write
   * to the key can land between this answer and the apply of any command
   * proposed before it (which takes a lower index, and whose log time is at
   * most the clock now). So the answer also holds right after those
   * commands apply, and a client that pipelines a write and then this one
   * sees them in the order it sent them, as its replies come in order.
   */
  answerNoop(op: LockOp): LockResult | undefined {
    if (this.failed !== null || !this.isLeader || !this.raw.leaseValid() || this.applied < this.raw.committedIndex()) return undefined;
    if (this.keysInFlight.size > 0) {
      for (const key of writtenKeys(op)) if (this.keysInFlight.has(key)) return undefined;
    }
    const atApplied = noopOutcome(this.options.machine, op, this.appliedLogTimeMs);
    if (atApplied === undefined) return undefined;
    const atNow = noopOutcome(this.options.machine, op, this.logNow());
    return sameResult(atApplied, atNow) ? atNow : undefined;
  }

  /**
   * Whether an EPHEMERAL operation may run now on this leader's memory.
   * untilMs is the log time the operation's lease would reach (0 for an
   * unlock or a read). Returns undefined when it may run at once, or a
   * promise that settles once it may (the horizon is being raised through the
   * log); throws NotLeaderError or LockDelayError when it may not.
   *
   * The rules: only under a valid leader lease (no other leader can serve
   * the partition), only once every entry of earlier terms is applied, never
   * before the log clock passes the horizon inherited from earlier terms (a
   * lock an earlier leader granted may be held until then), and never a
   * lease beyond the horizon committed in the log. So a new leader stays
   * unavailable for EPHEMERAL locks for at most the longest EPHEMERAL lease
   * an earlier leader granted plus HORIZON_SLACK_MS, counted from its
   * election (its log clock starts at the last log time it holds).
   */
  ephemeralAccess(untilMs: number): Promise<void> | undefined {
    if (this.failed !== null) throw this.failed;
    if (!this.isLeader || !this.raw.leaseValid() || this.applied < this.termStartIndex) throw new NotLeaderError(this.leader);
    const nowMs = this.logNow();
    if (nowMs < this.inheritedHorizonMs) throw new LockDelayError(this.inheritedHorizonMs - nowMs);
    const slackMs = this.options.horizonSlackMs ?? HORIZON_SLACK_MS;
    const horizonMs = this.options.machine.ephemeralHorizonMs;
    if (untilMs <= horizonMs) {
      if (untilMs > horizonMs - slackMs / 2 && this.horizonRaise === null) void this.raiseHorizon(untilMs + slackMs).catch(() => undefined);
      return undefined;
    }
    const raise = this.horizonRaise;
    if (raise !== null && untilMs <= raise.untilMs) return raise.done;
    return this.raiseHorizon(untilMs + slackMs);
  }

  /** Commits a raise of the EPHEMERAL horizon; raises queue behind each other. */
  private raiseHorizon(untilMs: number): Promise<void> {
    const previous = this.horizonRaise;
    const done = (previous === null ? Promise.resolve() : previous.done.catch(() => undefined))
      .then(() => this.propose({ kind: 'horizon', untilMs }))
      .then(() => undefined);
    const raise = { untilMs, done };
    this.horizonRaise = raise;
    const clear = (): void => {
      if (this.horizonRaise === raise) this.horizonRaise = null;
    };
    done.then(clear, clear);
    return done;
  }

  /** Proposes a membership change; resolves once it is applied here. */
  changeMembership(change: ConfChange): Promise<ConfState> {
    if (this.failed !== null) return Promise.reject(this.failed);
    if (!this.isLeader) return Promise.reject(new NotLeaderError(this.leader));
    let at: { index: number; term: number };
    try {
      at = this.raw.proposeConfChange(change);
    } catch (error) {
      if (error instanceof ErrProposalDropped) {
        return Promise.reject(error.reason === 'not-leader' ? new NotLeaderError(this.leader) : new BusyError(error.message));
      }
      return Promise.reject(error as Error);
    }
    const promise = new Promise<LockResult>((resolve, reject) => {
      this.pending.push({ index: at.index, term: at.term, keys: NO_KEYS, resolve, reject, proposedMs: 0, trace: null });
    });
    this.kick();
    return promise.then(() => this.conf);
  }

  /**
   * The membership as of the last entry known committed: the applied one's, or while the entries
   * committed before a restart are applied again, the one they lead to.
   */
  get committedMembership(): ConfState {
    return this.applied >= this.openCommit ? this.conf : this.openConf;
  }

  /** The membership as of the last applied entry. */
  get membership(): ConfState {
    return this.conf;
  }

  /** The log time reads (and answered no-op writes) are evaluated at: that of the last applied command. */
  get appliedLogTime(): number {
    return this.appliedLogTimeMs;
  }

  /**
   * Runs fn once this replica's state reflects every write committed before
   * the call (ReadIndex; or at once under a valid leader lease). fn gets the
   * log time to evaluate leases at: that of the last applied command, so a
   * read never runs ahead of writes already stamped but not yet applied, and
   * a later leader never serves an earlier time. When that time lags the log
   * clock by more than READ_STALENESS_MS (an idle group), a tick command is
   * committed first to bring it forward; a stale time only ever shows a
   * lease as longer, never shorter.
   */
  read<T>(fn: (logNowMs: number) => T): Promise<T> {
    if (this.failed !== null) return Promise.reject(this.failed);
    if (!this.isLeader) return Promise.reject(new NotLeaderError(this.leader));
    if (this.logNow() - this.appliedLogTimeMs > (this.options.readStalenessMs ?? READ_STALENESS_MS)) {
      return this.propose({ kind: 'tick' }).then(() => this.readApplied(fn));
    }
    return this.readApplied(fn);
  }

  private readApplied<T>(fn: (logNowMs: number) => T): Promise<T> {
    if (this.raw.leaseValid() && this.applied >= this.raw.committedIndex()) return Promise.resolve(fn(this.appliedLogTimeMs));
    return new Promise<T>((resolve, reject) => {
      const id = String(this.nextReadId++);
      this.reads.set(id, { run: () => resolve(fn(this.appliedLogTimeMs)), reject });
      try {
        this.raw.readIndex(new TextEncoder().encode(id));
      } catch (error) {
        this.reads.delete(id);
        reject(error instanceof ErrReadIndexDropped ? new NotLeaderError(this.leader) : error);
        return;
      }
      this.kick();
    });
  }

  /** Stops the Ready loop for good (shutdown): pending commands get OutcomeUnknownError. */
  stop(): void {
    this.fail(new Error('replica stopped'), false);
  }

  /** Runs the Ready loop until nothing is left; one loop at a time. */
  private kick(): void {
    if (this.driving) {
      this.again = true;
      return;
    }
    this.driving = true;
    void this.drive().catch((error: Error) => this.fail(error));
  }

  private async drive(): Promise<void> {
    try {
      do {
        this.again = false;
        while (this.failed === null && this.raw.hasReady()) await this.handleReady(this.raw.ready());
      } while (this.again && this.failed === null);
    } finally {
      this.driving = false;
    }
  }

  /**
   * Committed entries are applied first: they are already durable on a
   * quorum (on the leader, in its own WAL), so their clients need not wait
   * for the fsync of the entries that arrived since. Then the new entries and
   * hard state are made durable, and only then are messages sent.
   *
   * Except a leader's (one that leads before and after this Ready, so its
   * term and vote are already durable): its appends and heartbeats leave
   * first, and the followers write while it does (Raft thesis §10.2.1). That
   * is safe because it counts its own copy of an entry only once the write is
   * durable (advance → onPersisted): an entry commits once a majority holds it
   * durably, with or without the leader; and the leader applies an entry only
   * in a later Ready, after its own write of it.
   */
  private async handleReady(rd: Ready): Promise<void> {
    const sendFirst = rd.messages.length > 0 && this.role === 'leader' && rd.snapshot === undefined
      && (rd.softState === undefined || rd.softState.role === 'leader');
    if (sendFirst) this.options.send(rd.messages);
    if (rd.softState !== undefined) this.changeRole(rd.softState.role, rd.softState.leader, rd.entries);
    if (rd.committedEntries.length > 0) {
      this.applyCommitted(rd.committedEntries);
      this.options.onApplied?.();
    }
    const records: WalRecord[] = [];
    if (rd.snapshot !== undefined) {
      // No snapshot of this replica's own starts until the leader's is installed (WAL markers go in index order).
      this.installing = true;
      records.push(await this.installSnapshot(rd.snapshot));
    }
    if (rd.entries.length > 0) records.push({ type: 'entries', group: this.options.group, entries: rd.entries });
    if (rd.hardState !== undefined) records.push({ type: 'hardState', group: this.options.group, hardState: rd.hardState });
    // Entries and the vote are durable before any message that depends on them leaves.
    if (records.length > 0) {
      if (rd.entries.length > 0) this.options.metrics?.batchEntries.record(rd.entries.length);
      const traced = this.tracedPending > 0 ? this.tracesOf(rd.entries) : null;
      if (traced === null) await this.options.wal.append(records);
      else {
        const startMs = traceNow();
        await this.options.wal.append(records);
        const endMs = traceNow();
        for (const trace of traced) {
          trace.persistStartMs = startMs;
          trace.persistEndMs = endMs;
          trace.batchEntries = rd.entries.length;
        }
      }
    }
    if (rd.snapshot !== undefined) {
      // Durable now: the lock table becomes the snapshot's (decoded in slices when paced).
      const pacing = this.options.snapshotPacing;
      if (pacing === undefined) this.restoreMachine(rd.snapshot.data);
      else {
        const decoder = new LockSnapshotDecoder(rd.snapshot.data);
        while (!decoder.step(pacing.sliceRecords)) {
          await pacing.nextSlice();
          if (this.failed !== null) return;
        }
        this.restored(decoder.installInto(this.options.machine).logTimeMs);
      }
      this.applied = rd.snapshot.meta.index;
      this.conf = rd.snapshot.meta.conf;
      this.storage.applySnapshot(rd.snapshot);
      this.storage.releaseData(rd.snapshot.meta.index);
      this.installing = false;
      this.options.onMembership?.();
    }
    this.storage.append(rd.entries);
    if (rd.hardState !== undefined) this.storage.setHardState(rd.hardState);
    for (const entry of rd.entries) this.noteLogTime(entry);
    if (rd.messages.length > 0 && !sendFirst) this.options.send(rd.messages);
    for (const state of rd.readStates) this.serveRead(new TextDecoder().decode(state.ctx), state.index);
    this.raw.advance(rd);
    if (rd.snapshot !== undefined) {
      this.options.onApplied?.();
      this.compactWal(rd.snapshot.meta.index);
    }
    this.runAppliedWaiters();
    this.runLogHoldsApplied();
    this.maybeSnapshot();
  }

  /**
   * A follower takes the leader's snapshot: the file is made durable and the
   * marker returned for this Ready's WAL append (which then drops the log the
   * snapshot covers, or all of it if it conflicts); once that append is
   * durable the lock table is replaced.
   */
  private async installSnapshot(snapshot: Snapshot): Promise<WalRecord> {
    const store = this.options.snapshots;
    if (store === undefined) throw new Error(`group ${this.options.group}: a snapshot arrived but this replica has no snapshot store`);
    // A local snapshot still being written must land first: markers go to the WAL in index order.
    if (this.snapshotTask !== null) await this.snapshotTask;
    const { index, term, conf } = snapshot.meta;
    const startedMs = this.options.clock();
    await store.save({ group: this.options.group, index, term, conf: confJson(conf), data: snapshot.data });
    this.reportSnapshot('installed', snapshot, startedMs);
    return { type: 'snapshot', group: this.options.group, index, term };
  }

  private reportSnapshot(origin: SnapshotReport['origin'], { meta, data }: Snapshot, startedMs: number): void {
    this.options.onSnapshot?.({ origin, index: meta.index, term: meta.term, bytes: data.byteLength, durationMs: this.options.clock() - startedMs });
  }

  private restoreMachine(data: Uint8Array): void {
    this.restored(restoreLockSnapshot(this.options.machine, data).logTimeMs);
  }

  /** The lock table is a snapshot's now, taken at log time logTimeMs. */
  private restored(logTimeMs: number): void {
    if (logTimeMs > this.lastLogTimeMs) this.lastLogTimeMs = logTimeMs;
    if (logTimeMs > this.appliedLogTimeMs) this.appliedLogTimeMs = logTimeMs;
  }

  /**
   * Snapshots the lock table once enough log has been applied since the last
   * snapshot (SnapshotPolicy), compacts the in-memory log at once, and in the
   * background makes the snapshot durable, appends its marker and lets the
   * WAL drop the segments it covers.
   */
  private maybeSnapshot(): void {
    const store = this.options.snapshots;
    if (store === undefined || this.snapshotTask !== null || this.installing || this.failed !== null) return;
    const last = this.storage.snapshotMeta;
    const due = Math.max(this.policy.minEntries, this.policy.tableRatio * this.options.machine.persistent.recordCount);
    if (this.applied - last.index < due) return;
    const pacing = this.options.snapshotPacing;
    const { group } = this.options;
    let snapshot: Snapshot | null = null;
    const startedMs = this.options.clock();
    this.snapshotTask = (async () => {
      let release: (() => void) | null = null;
      try {
        let encoder: LockSnapshotEncoder;
        let index: number;
        let conf: ConfState;
        if (pacing === undefined) {
          ({ index, conf, encoder } = this.snapshotEncoder());
          encoder.step(Infinity);
        } else {
          // One encoding at a time on this node (partitions fill up together), in slices.
          release = await pacing.acquire();
          if (this.failed !== null) return;
          ({ index, conf, encoder } = await new Promise<ReturnType<Replica['snapshotEncoder']>>((resolve) => {
            this.whenLogHoldsApplied(() => resolve(this.snapshotEncoder()));
          }));
          if (this.failed !== null) return;
          while (!encoder.step(pacing.sliceRecords)) {
            await pacing.nextSlice();
            if (this.failed !== null) return;
          }
        }
        // A lagging follower's need may have had a newer one encoded meanwhile (ReplicaStorage.snapshot()).
        if (index <= this.storage.snapshotMeta.index) return;
        snapshot = this.storage.createSnapshot(index, conf, encoder.bytes());
        const keepFrom = index - this.policy.trailingEntries;
        if (keepFrom >= this.storage.firstIndex()) this.storage.compact(keepFrom);
        await store.save({ group, index, term: snapshot.meta.term, conf: confJson(conf), data: snapshot.data });
        this.storage.releaseData(index);
        await this.options.wal.append([{ type: 'snapshot', group, index, term: snapshot.meta.term }]);
        await this.options.wal.compact(group, index);
      } finally {
        release?.();
      }
    })().then(
      () => {
        this.snapshotTask = null;
        if (snapshot !== null) this.reportSnapshot('taken', snapshot, startedMs);
        // Entries applied meanwhile may make the next one due already (an idle group has no Ready to check).
        this.whenLogHoldsApplied(() => this.maybeSnapshot());
      },
      (error: Error) => {
        this.snapshotTask = null;
        this.fail(error);
      },
    );
  }

  /**
   * Runs fn once the log in memory holds every applied entry: at once, or at the end of the Ready
   * being handled (a follower applies committed entries before its WAL write of them returns, and a
   * snapshot's index must be in the log). Also run when the replica stops.
   */
  private whenLogHoldsApplied(fn: () => void): void {
    if (this.failed !== null || this.applied <= this.storage.lastIndex()) fn();
    else this.logHoldsApplied.push(fn);
  }

  private runLogHoldsApplied(): void {
    if (this.logHoldsApplied.length === 0 || (this.failed === null && this.applied > this.storage.lastIndex())) return;
    const waiting = this.logHoldsApplied;
    this.logHoldsApplied = [];
    for (const fn of waiting) fn();
  }

  /** An encoder of the lock table as of the last applied entry, with that entry's index and membership. */
  private snapshotEncoder(): { index: number; conf: ConfState; encoder: LockSnapshotEncoder } {
    return { index: this.applied, conf: this.conf, encoder: new LockSnapshotEncoder(this.options.machine, this.appliedLogTimeMs) };
  }

  private compactWal(index: number): void {
    this.options.wal.compact(this.options.group, index).catch((error: Error) => this.fail(error));
  }

  /** Applies committed entries; committedMs (one clock read per Ready, with metrics) times the writes this leader proposed. */
  private applyCommitted(entries: readonly Entry[]): void {
    const committedMs = this.options.metrics?.now() ?? 0;
    for (const entry of entries) this.apply(entry, committedMs);
  }

  /** The traces of the pending writes among entries (appended by this leader); null if none. */
  private tracesOf(entries: readonly Entry[]): CommandTrace[] | null {
    let traces: CommandTrace[] | null = null;
    for (const entry of entries) {
      const trace = this.pending.peek(entry.index)?.trace;
      if (trace != null) (traces ??= []).push(trace);
    }
    return traces;
  }

  private apply(entry: Entry, committedMs: number): void {
    const waiting = this.pending.take(entry.index);
    const trace = waiting?.trace ?? null;
    if (trace !== null) trace.committedMs = trace.applyStartMs = traceNow();
    let result: LockResult = null;
    if (entry.type === 'normal') {
      const command = decodeCommand(entry.data);
      if (command.logTimeMs > this.lastLogTimeMs) this.lastLogTimeMs = command.logTimeMs;
      if (command.logTimeMs > this.appliedLogTimeMs) this.appliedLogTimeMs = command.logTimeMs;
      result = applyCommand(this.options.machine, command);
    } else if (entry.type === 'conf') {
      this.conf = this.raw.applyConfChange(decodeConfChange(entry.data));
      this.options.onMembership?.();
    }
    if (trace !== null) trace.applyEndMs = traceNow();
    this.applied = entry.index;
    if (entry.index === this.termStartIndex) this.inheritedHorizonMs = this.options.machine.ephemeralHorizonMs;
    if (waiting === undefined) return;
    if (waiting.proposedMs > 0) this.options.metrics?.commitNs.record(Math.round((committedMs - waiting.proposedMs) * 1e6));
    // Another leader's entry took this index: ours can never commit.
    if (waiting.term !== entry.term) this.settle(waiting, new NotLeaderError(this.leader));
    else this.settle(waiting, null, result);
  }

  /** Ends a proposal taken out of pending: it no longer counts as in flight. */
  private settle(proposal: Pending, error: Error | null, result: LockResult = null): void {
    if (proposal.trace !== null) this.tracedPending -= 1;
    for (const key of proposal.keys) {
      const count = this.keysInFlight.get(key)!;
      if (count === 1) this.keysInFlight.delete(key);
      else this.keysInFlight.set(key, count - 1);
    }
    if (error !== null) proposal.reject(error);
    else proposal.resolve(result);
  }

  private serveRead(id: string, index: number): void {
    const read = this.reads.get(id);
    if (read === undefined) return;
    this.reads.delete(id);
    if (this.applied >= index) read.run();
    else this.appliedWaiters.push({ index, run: read.run });
  }

  private runAppliedWaiters(): void {
    if (this.appliedWaiters.length === 0) return;
    const ready = this.appliedWaiters.filter((w) => w.index <= this.applied);
    if (ready.length === 0) return;
    this.appliedWaiters.splice(0, this.appliedWaiters.length, ...this.appliedWaiters.filter((w) => w.index > this.applied));
    for (const waiter of ready) waiter.run();
  }

  private changeRole(role: string, leader: NodeId | null, unstable: readonly Entry[]): void {
    const wasLeader = this.role === 'leader';
    if (leader !== null && leader !== this.leader) this.leaderChangesSeen += 1;
    this.role = role;
    this.leader = leader;
    if (role === 'leader' && !wasLeader) {
      this.lastLogTimeMs = this.logTimeOfLog(unstable);
      this.logBaseMs = this.lastLogTimeMs;
      this.clockBaseMs = this.options.clock();
      // The raft core has appended this term's first entry.
      this.termStartIndex = this.raw.status().lastIndex;
      this.inheritedHorizonMs = Infinity;
      this.options.onLeadership?.(true, this.raw.status().term);
    }
    if (wasLeader && role !== 'leader') {
      this.termStartIndex = Infinity;
      this.inheritedHorizonMs = Infinity;
      this.horizonRaise = null;
      this.options.onLeadership?.(false, this.raw.status().term);
      const error = new OutcomeUnknownError('leadership lost while the command was in flight');
      for (const p of this.pending.drain()) p.reject(error);
      this.tracedPending = 0;
      this.keysInFlight.clear();
      for (const r of this.reads.values()) r.reject(new NotLeaderError(leader));
      this.reads.clear();
    }
    this.options.onRoleChange?.(role, leader, this.raw.status().term);
  }

  /**
   * The largest log time in the log this node holds now: where its log clock
   * starts when it becomes leader. Not the largest it ever saw: stamps of
   * entries it proposed while cut off, later overwritten by another leader's
   * log, would put its clock ahead of the log time every other replica has,
   * so leases granted by that other leader would run out early.
   */
  private logTimeOfLog(unstable: readonly Entry[]): number {
    let t = this.appliedLogTimeMs;
    const last = this.storage.lastIndex();
    if (last > this.applied) {
      for (const entry of this.storage.entries(this.applied + 1, last + 1, Infinity)) {
        if (entry.type === 'normal') t = Math.max(t, commandLogTime(entry.data));
      }
    }
    for (const entry of unstable) if (entry.type === 'normal') t = Math.max(t, commandLogTime(entry.data));
    return t;
  }

  private noteLogTime(entry: Entry): void {
    if (entry.type !== 'normal') return;
    const t = commandLogTime(entry.data);
    if (t > this.lastLogTimeMs) this.lastLogTimeMs = t;
  }

  private fail(error: Error, fatal = true): void {
    if (this.failed !== null) return;
    this.failed = error;
    for (const p of this.pending.drain()) p.reject(new OutcomeUnknownError(error.message));
    this.tracedPending = 0;
    this.keysInFlight.clear();
    for (const r of this.reads.values()) r.reject(error);
    this.reads.clear();
    this.runLogHoldsApplied();
    if (fatal) this.options.onFatal?.(error);
  }
}

const NO_KEYS: readonly string[] = [];

/** The membership as the snapshot file's JSON conf. */
function confJson(conf: ConfState): { voters: string[]; learners: string[] } {
  return { voters: [...conf.voters], learners: [...conf.learners] };
}

function sameResult(a: LockResult | undefined, b: LockResult | undefined): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (!('written' in a) || !('written' in b)) return false;
  return a.written === b.written && a.previous === b.previous;
}

/** The PERSISTENT keys a command may change. */
function writtenKeys(op: LockOp): readonly string[] {
  switch (op.kind) {
    case 'lock':
    case 'unlock':
    case 'extend':
      return [op.resource];
    case 'set':
    case 'expire':
    case 'persist':
      return [op.key];
    case 'del':
    case 'script':
      return op.keys;
    case 'tick':
    case 'horizon':
      return NO_KEYS;
  }
}
