import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { LockService } from '../lock/service.js';
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

  constructor(readonly config: ServerConfig = DEFAULT_CONFIG, readonly log: Logger = SILENT) {
    this.service = new LockService({
      clock: monotonicMs,
      scheduleWake: (atMs) => this.scheduleWake(atMs),
      tableLimits: { tombstonesMax: config.tombstonesMax },
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
    };
    this.listener = net.createServer({ noDelay: true }, (socket) => this.accept(socket));
  }

  /** Listens; resolves with the bound port (useful with port 0). */
  async listen(): Promise<number> {
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

  /** Stops accepting, closes every client, stops timers. Idempotent. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      clearInterval(this.expireTimer);
      clearTimeout(this.wakeTimer);
      this.listener.close(() => resolve());
      for (const connection of this.connections) connection.close();
    });
    return this.closing;
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

  /** Reclaims expired locks in batches for at most EXPIRE_CYCLE_BUDGET_MS. */
  private expireCycle(): void {
    const start = performance.now();
    while (this.service.activeExpire(EXPIRE_BATCH) > 0) {
      if (performance.now() - start > EXPIRE_CYCLE_BUDGET_MS) break;
    }
  }
}
