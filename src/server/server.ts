import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { LockService, type Replicator } from '../lock/service.js';
import type { LockOp, LockResult } from '../lock/commands.js';
import { LockStateMachine } from '../lock/machine.js';
import { Replica } from '../cluster/replica.js';
import { SnapshotStore, Wal, nodeFs } from '../storage/index.js';
import { partitionOfKey } from '../cluster/slots.js';
import type { ClientState, CommandSpec, ServerInfo, ServerStats } from '../commands/spec.js';
import { COMMANDS } from '../commands/table.js';
import { RAFTLOCK_VERSION } from '../commands/version.js';
import { Connection, type ConnectionHost } from './connection.js';
import { DEFAULT_CONFIG, type ServerConfig } from './config.js';
import { SILENT, type Logger } from './log.js';

/** How often the bounded active-expiry cycle runs, and how long one may take. */
const EXPIRE_CYCLE_MS = 100;
const EXPIRE_CYCLE_BUDGET_MS = 5;
const EXPIRE_BATCH = 256;

/** Raft's logical clock: one tick, and an election timeout of ten ticks. */
const RAFT_TICK_MS = 100;
const LEADERSHIP_WAIT_MS = 10_000;
/** More missed ticks than this are one long stall: every lease has run out anyway. */
const TICK_CATCH_UP_MAX = 1000;

/** Integer monotonic milliseconds. */
export const monotonicMs = (): number => Math.floor(performance.now());

/**
 * The single-node raftlock server: a RESP listener, its connections, and the
 * partitions of the keyspace, each a lock service on its own Raft group, all
 * sharing one WAL.
 */
export class RaftlockServer implements ConnectionHost {
  readonly info: ServerInfo;
  /** One lock service per partition (Raft group); a key's slot picks its partition. */
  readonly services: readonly LockService[];
  private readonly partitions: Partition[];
  private readonly listener: net.Server;
  private readonly connections = new Set<Connection>();
  private nextClientId = 1;
  private expireTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;
  private wal: Wal | undefined;
  private tickTimer: NodeJS.Timeout | undefined;

  constructor(readonly config: ServerConfig = DEFAULT_CONFIG, readonly log: Logger = SILENT) {
    this.partitions = Array.from({ length: config.partitions }, (_, index) => new Partition(index, config, (p, atMs) => this.scheduleWake(p, atMs)));
    this.services = this.partitions.map((p) => p.service);
    const stats: ServerStats = {
      connectionsReceived: 0, commandsProcessed: 0, rejectedConnections: 0,
      protocolErrors: 0, netInputBytes: 0, netOutputBytes: 0,
    };
    const connections = this.connections;
    this.info = {
      services: this.services,
      serviceFor: (key) => this.services[this.partitionOf(key)]!,
      partitionOf: (key) => this.partitionOf(key),
      clockMs: monotonicMs,
      config,
      stats,
      startedAtWallMs: Date.now(),
      version: RAFTLOCK_VERSION,
      clients: (): Iterable<ClientState> => connections,
      commands: (): readonly CommandSpec[] => COMMANDS,
      blockedClients: () => {
        let n = 0;
        for (const c of connections) if (c.blocked) n += 1;
        return n;
      },
      wallClockMs: () => Date.now(),
      raft: () => this.partitions.map((partition) => {
        const replica = partition.replica;
        if (replica === undefined) return undefined;
        const status = replica.raw.status();
        return {
          role: status.role, term: status.term, leader: replica.leaderId, lastIndex: status.lastIndex,
          commitIndex: status.commit, appliedIndex: replica.appliedIndex, snapshotIndex: replica.snapshotIndex,
        };
      }).filter((r) => r !== undefined),
    };
    this.listener = net.createServer({ noDelay: true }, (socket) => this.accept(socket));
  }

  /**
   * Opens the WAL and the node's Raft group (replaying every durable entry),
   * waits for leadership, then listens. Resolves with the bound port.
   */
  async listen(): Promise<number> {
    await this.openReplica();
    await new Promise<void>((resolve, reject) => {
      this.listener.once('error', reject);
      this.listener.listen(this.config.port, this.config.bind, () => {
        this.listener.off('error', reject);
        resolve();
      });
    });
    this.listener.on('error', (error) => this.log.error('listener error', { error: error.message }));
    this.expireTimer = setInterval(() => this.expireCycle(), EXPIRE_CYCLE_MS);
    this.expireTimer.unref();
    return this.port;
  }

  get port(): number {
    return (this.listener.address() as AddressInfo).port;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Stops accepting, closes every client, stops timers and the replica, closes the WAL. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.expireTimer);
      clearInterval(this.tickTimer);
      for (const partition of this.partitions) clearTimeout(partition.wakeTimer);
      const closed = new Promise<void>((resolve) => this.listener.close(() => resolve()));
      for (const connection of this.connections) connection.close();
      if (this.listener.listening) await closed;
      for (const partition of this.partitions) partition.replica?.stop();
      await this.wal?.close();
    })();
    return this.closing;
  }

  /** The partition a key's slot belongs to. */
  private partitionOf(key: string): number {
    return this.partitions.length === 1 ? 0 : partitionOfKey(key, this.partitions.length);
  }

  /** Opens the WAL and every partition's Raft group from it (one WAL, one fsync, for all of them). */
  private async openReplica(): Promise<void> {
    const { wal, groups, report } = await Wal.open({ fs: nodeFs, dir: join(this.config.dataDir, 'wal') });
    this.wal = wal;
    if (report.truncatedTail !== null) this.log.warn('WAL: truncated a torn tail left by a crash', { ...report.truncatedTail });
    for (const group of groups.keys()) {
      if (group >= this.partitions.length) throw new Error(`the WAL holds partition ${group}, but this node has ${this.partitions.length} partitions`);
    }
    const snapshots = await SnapshotStore.open({ fs: nodeFs, dir: join(this.config.dataDir, 'snap') });
    let entries = 0;
    for (const partition of this.partitions) {
      const replay = groups.get(partition.index);
      entries += replay?.entries.length ?? 0;
      partition.replica = await Replica.open({
        id: this.config.nodeId,
        group: partition.index,
        conf: { voters: [this.config.nodeId], learners: [] },
        wal,
        replay,
        snapshots,
        snapshotPolicy: { minEntries: this.config.snapshotMinEntries },
        machine: partition.service.machine,
        clock: monotonicMs,
        rng: Math.random,
        send: () => undefined,
        onApplied: () => partition.service.afterWrite(),
        onFatal: (error) => {
          this.log.error('replica failed; stopping', { partition: partition.index, error: error.message });
          process.exitCode = 70;
          void this.close();
        },
      });
    }
    const replicas = this.partitions.map((p) => p.replica!);
    this.log.info('restored the lock tables', {
      partitions: replicas.length, snapshotIndexes: replicas.map((r) => r.snapshotIndex), entries, segments: report.segments.length,
    });
    for (const replica of replicas) replica.campaign();
    // Ticks follow elapsed time, not timer callbacks: after a stall (GC, a paused
    // process) the missed ticks are delivered before anything else, so the
    // leader lease, counted in ticks, never outlives real time.
    let tickedAt = monotonicMs();
    this.tickTimer = setInterval(() => {
      const due = Math.floor((monotonicMs() - tickedAt) / RAFT_TICK_MS);
      for (let i = 0; i < Math.min(due, TICK_CATCH_UP_MAX); i++) for (const replica of replicas) replica.tick();
      tickedAt = due > TICK_CATCH_UP_MAX ? monotonicMs() : tickedAt + due * RAFT_TICK_MS;
    }, RAFT_TICK_MS);
    this.tickTimer.unref();
    const deadline = monotonicMs() + LEADERSHIP_WAIT_MS;
    while (!replicas.every((r) => r.isLeader)) {
      if (monotonicMs() > deadline) throw new Error(`no leadership after ${LEADERSHIP_WAIT_MS} ms`);
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  removeConnection(connection: Connection): void {
    this.connections.delete(connection);
  }

  private accept(socket: net.Socket): void {
    const stats = this.info.stats;
    if (this.closing !== undefined) {
      socket.destroy();
      return;
    }
    if (this.connections.size >= this.config.maxclients) {
      stats.rejectedConnections += 1;
      socket.on('error', () => undefined);
      socket.end('-ERR max number of clients reached\r\n');
      return;
    }
    stats.connectionsReceived += 1;
    this.connections.add(new Connection(this.nextClientId++, socket, this));
  }

  private scheduleWake(partition: Partition, atMs: number): void {
    clearTimeout(partition.wakeTimer);
    if (atMs === Infinity || this.closing !== undefined) return;
    const delayMs = Math.max(0, Math.min(atMs - monotonicMs(), 2 ** 31 - 1));
    partition.wakeTimer = setTimeout(() => partition.service.runTimers(), delayMs);
  }

  /**
   * Reclaims expired EPHEMERAL locks in batches for at most
   * EXPIRE_CYCLE_BUDGET_MS; expired PERSISTENT locks are reclaimed through the
   * log, so a tick command is proposed while some are due.
   */
  private expireCycle(): void {
    const start = performance.now();
    for (const { service, replica } of this.partitions) {
      while (service.activeExpire(EXPIRE_BATCH) > 0) {
        if (performance.now() - start > EXPIRE_CYCLE_BUDGET_MS) break;
      }
      if (replica?.isLeader === true && service.machine.persistent.nextExpiryMs() < replica.logNow()) {
        replica.propose({ kind: 'tick' }).catch(() => undefined);
      }
    }
  }
}

/**
 * One partition of the keyspace on this node: its lock service, and the Raft
 * group its PERSISTENT writes and reads go through (the service's replicator).
 */
class Partition implements Replicator {
  readonly service: LockService;
  replica: Replica | undefined;
  wakeTimer: NodeJS.Timeout | undefined;

  constructor(readonly index: number, config: ServerConfig, scheduleWake: (partition: Partition, atMs: number) => void) {
    this.service = new LockService({
      clock: monotonicMs,
      machine: new LockStateMachine({ tombstonesMax: config.tombstonesMax }),
      replicator: this,
      scheduleWake: (atMs) => scheduleWake(this, atMs),
      waiterLimits: { perResourceMax: config.waitersPerLockMax, totalMax: config.waitersMax },
    });
  }

  propose(op: LockOp): Promise<LockResult> {
    return this.leader().propose(op);
  }

  answerNoop(op: LockOp): LockResult | undefined {
    return this.replica?.answerNoop(op);
  }

  read<T>(fn: (logNowMs: number) => T): Promise<T> {
    return this.leader().read(fn);
  }

  logNow(): number {
    return this.replica?.logNow() ?? monotonicMs();
  }

  private leader(): Replica {
    if (this.replica === undefined) throw new Error(`partition ${this.index}: the replica is not open`);
    return this.replica;
  }
}
