import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { LockService, type Replicator } from '../lock/service.js';
import { LockStateMachine } from '../lock/machine.js';
import { Replica } from '../cluster/replica.js';
import { SnapshotStore, Wal, nodeFs } from '../storage/index.js';
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
 * The single-node raftlock server: a RESP listener, its connections and the
 * lock service they share.
 */
export class RaftlockServer implements ConnectionHost {
  readonly info: ServerInfo;
  readonly service: LockService;
  private readonly listener: net.Server;
  private readonly connections = new Set<Connection>();
  private nextClientId = 1;
  private wakeTimer: NodeJS.Timeout | undefined;
  private expireTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;
  private replica: Replica | undefined;
  private wal: Wal | undefined;
  private tickTimer: NodeJS.Timeout | undefined;

  constructor(readonly config: ServerConfig = DEFAULT_CONFIG, readonly log: Logger = SILENT) {
    const replicator: Replicator = {
      propose: (op) => this.leaderReplica().propose(op),
      answerNoop: (op) => this.replica?.answerNoop(op),
      read: (fn) => this.leaderReplica().read(fn),
      logNow: () => this.replica?.logNow() ?? monotonicMs(),
    };
    this.service = new LockService({
      clock: monotonicMs,
      machine: new LockStateMachine({ tombstonesMax: config.tombstonesMax }),
      replicator,
      scheduleWake: (atMs) => this.scheduleWake(atMs),
      waiterLimits: { perResourceMax: config.waitersPerLockMax, totalMax: config.waitersMax },
    });
    const stats: ServerStats = {
      connectionsReceived: 0, commandsProcessed: 0, rejectedConnections: 0,
      protocolErrors: 0, netInputBytes: 0, netOutputBytes: 0,
    };
    const connections = this.connections;
    this.info = {
      service: this.service,
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
      raft: () => {
        const replica = this.replica;
        if (replica === undefined) return undefined;
        const status = replica.raw.status();
        return {
          role: status.role, term: status.term, leader: replica.leaderId, lastIndex: status.lastIndex,
          commitIndex: status.commit, appliedIndex: replica.appliedIndex, snapshotIndex: replica.snapshotIndex,
        };
      },
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
      clearTimeout(this.wakeTimer);
      const closed = new Promise<void>((resolve) => this.listener.close(() => resolve()));
      for (const connection of this.connections) connection.close();
      if (this.listener.listening) await closed;
      this.replica?.stop();
      await this.wal?.close();
    })();
    return this.closing;
  }

  private async openReplica(): Promise<void> {
    const { wal, groups, report } = await Wal.open({ fs: nodeFs, dir: join(this.config.dataDir, 'wal') });
    this.wal = wal;
    if (report.truncatedTail !== null) this.log.warn('WAL: truncated a torn tail left by a crash', { ...report.truncatedTail });
    const replay = groups.get(0);
    const snapshots = await SnapshotStore.open({ fs: nodeFs, dir: join(this.config.dataDir, 'snap') });
    const replica = await Replica.open({
      id: this.config.nodeId,
      group: 0,
      conf: { voters: [this.config.nodeId], learners: [] },
      wal,
      replay,
      snapshots,
      snapshotPolicy: { minEntries: this.config.snapshotMinEntries },
      machine: this.service.machine,
      clock: monotonicMs,
      rng: Math.random,
      send: () => undefined,
      onApplied: () => this.service.afterWrite(),
      onFatal: (error) => {
        this.log.error('replica failed; stopping', { error: error.message });
        process.exitCode = 70;
        void this.close();
      },
    });
    this.replica = replica;
    this.log.info('restored the lock table', {
      snapshotIndex: replica.snapshotIndex, entries: replay?.entries.length ?? 0, segments: report.segments.length,
    });
    replica.campaign();
    // Ticks follow elapsed time, not timer callbacks: after a stall (GC, a paused
    // process) the missed ticks are delivered before anything else, so the
    // leader lease, counted in ticks, never outlives real time.
    let tickedAt = monotonicMs();
    this.tickTimer = setInterval(() => {
      const due = Math.floor((monotonicMs() - tickedAt) / RAFT_TICK_MS);
      for (let i = 0; i < Math.min(due, TICK_CATCH_UP_MAX); i++) replica.tick();
      tickedAt = due > TICK_CATCH_UP_MAX ? monotonicMs() : tickedAt + due * RAFT_TICK_MS;
    }, RAFT_TICK_MS);
    this.tickTimer.unref();
    const deadline = monotonicMs() + LEADERSHIP_WAIT_MS;
    while (!replica.isLeader) {
      if (monotonicMs() > deadline) throw new Error(`no leadership after ${LEADERSHIP_WAIT_MS} ms`);
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  private leaderReplica(): Replica {
    if (this.replica === undefined) throw new Error('the replica is not open');
    return this.replica;
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

  private scheduleWake(atMs: number): void {
    clearTimeout(this.wakeTimer);
    if (atMs === Infinity || this.closing !== undefined) return;
    const delayMs = Math.max(0, Math.min(atMs - monotonicMs(), 2 ** 31 - 1));
    this.wakeTimer = setTimeout(() => this.service.runTimers(), delayMs);
  }

  /**
   * Reclaims expired EPHEMERAL locks in batches for at most
   * EXPIRE_CYCLE_BUDGET_MS; expired PERSISTENT locks are reclaimed through the
   * log, so a tick command is proposed while some are due.
   */
  private expireCycle(): void {
    const start = performance.now();
    while (this.service.activeExpire(EXPIRE_BATCH) > 0) {
      if (performance.now() - start > EXPIRE_CYCLE_BUDGET_MS) break;
    }
    const replica = this.replica;
    if (replica?.isLeader === true && this.service.machine.persistent.nextExpiryMs() < replica.logNow()) {
      replica.propose({ kind: 'tick' }).catch(() => undefined);
    }
  }
}
