import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { LockService, type Replicator } from '../lock/service.js';
import type { LockOp, LockResult } from '../lock/commands.js';
import { LockStateMachine } from '../lock/machine.js';
import { NotLeaderError, Replica, type SnapshotPacing } from '../cluster/replica.js';
import { SocketlessClient } from './socketless-client.js';
import { PeerTransport, type PeerUnavailableError, type ReplySink, type RequestHandle } from '../cluster/transport.js';
import type { Message } from '../../raft/types.js';
import type { Status } from '../../raft/rawnode.js';
import type { ConfChange } from '../../raft/confchange.js';
import { errorReply } from '../commands/respond.js';
import { ReplyWriter } from '../../resp/encoder.js';
import { dispatch } from '../commands/dispatch.js';
import { Completion, type ClientState, type ClusterView, type CommandContext, type CommandSpec, type Pending, type ServerInfo, type ServerStats } from '../commands/spec.js';
import { SnapshotStore, Wal, nodeFs } from '../storage/index.js';
import { partitionOfKey } from '../cluster/slots.js';
import { COMMANDS } from '../commands/table.js';
import { RAFTLOCK_VERSION } from '../commands/version.js';
import { Connection, type ConnectionHost } from './connection.js';
import { DEFAULT_CONFIG, clusterPortOf, type ServerConfig } from './config.js';
import { DataDirIncarnations } from './datadir.js';
import { SILENT, type Logger } from './log.js';
import { RaftEventLog } from './raft-log.js';
import { RestServer } from './http.js';
import { MetricsServer } from './metrics.js';
import { CommandStatsTable } from '../stats/command-stats.js';
import { Histogram } from '../stats/histogram.js';
import { Slowlog } from '../stats/slowlog.js';
import type { Tracer } from '@opentelemetry/api';
import { activeTrace, parseTraceParent, traceNow, type CommandTrace, type TraceParent, type Tracing } from '../trace/trace.js';
import { startTracing, type TracingRuntime } from '../trace/sdk.js';

/** How often the bounded active-expiry cycle runs, and how long one may take. */
const EXPIRE_CYCLE_MS = 100;
const EXPIRE_CYCLE_BUDGET_MS = 5;
const EXPIRE_BATCH = 256;

/** A follower campaigns after ELECTION_TICKS to twice that many ticks without a leader (--election-timeout-ms). */
const ELECTION_TICKS = 10;
const LEADERSHIP_WAIT_MS = 10_000;
/** More missed ticks than this are one long stall: every lease has run out anyway. */
const TICK_CATCH_UP_MAX = 1000;
/** A command for a partition without a leader waits up to this many election timeouts before -TRYAGAIN. */
const ELECTION_WAIT_TIMEOUTS = 2;
/** How often a leader checks whether a partition's preferred leader should take over. */
const BALANCE_INTERVAL_MS = 1000;
/** Records of a lock table a snapshot encodes before other work runs again (a few ms of work). */
const SNAPSHOT_SLICE_RECORDS = 10_000;
/** A returning node must stay connected this long before leadership moves back to it. */
const BALANCE_SETTLE_MS = 3000;
/** The reply to a forwarded command whose partition changed leader before the answer came. */
const LEADER_MOVED_REPLY = '-TRYAGAIN the partition leader changed while the command was forwarded; it may have been applied, retry it\r\n';
/** Clean shutdown waits at most this long for leadership to move to another node. */
const SHUTDOWN_TRANSFER_MS = 3000;

/** Integer monotonic milliseconds (read on every command: performance is imported, not the global's getter). */
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
  /** The REST API (--http-port); undefined when off. */
  private rest: RestServer | undefined;
  /** The Prometheus endpoint (--metrics-port); undefined when off. */
  private metrics: MetricsServer | undefined;
  /** The WAL's fdatasync durations (ns) and records per batch, for the metrics. */
  readonly walSyncNs = new Histogram();
  readonly walBatchRecords = new Histogram();
  /** Command tracing (--trace); null when off. */
  tracing: Tracing | null = null;
  private tracingRuntime: TracingRuntime | undefined;
  private readonly connections = new Set<Connection>();
  private nextClientId = 1;
  private expireTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;
  private wal: Wal | undefined;
  private tickTimer: NodeJS.Timeout | undefined;
  private balanceTimer: NodeJS.Timeout | undefined;
  private transport: PeerTransport | undefined;
  /** The data directory's incarnation and its peers' (undefined without an identity file: in-process servers). */
  private incarnations: DataDirIncarnations | undefined;
  /** The founding voters, sorted: partition p prefers voters[p mod n] as its leader. */
  private readonly voters: readonly string[];
  /**
   * A client and context that ran a forwarded command which answered at once, kept for the
   * next one (most forwarded commands answer at once: a client and a reply writer less per command).
   */
  private spareRunner: { client: SocketlessClient; ctx: CommandContext } | null = null;
  /** Clients whose forwarded commands are cancelled when they close (see forwardTo). */
  private readonly forwardingClients = new WeakSet<ClientState>();
  private forwardWatchTimer: NodeJS.Timeout | undefined;
  /** Since when each peer's link has been seen up (monotonic ms; checked every BALANCE_INTERVAL_MS). */
  private readonly connectedSince = new Map<string, number>();
  /** Clients whose credentials were refused: logged once each. */
  private readonly refusedClients = new WeakSet<ClientState>();

  constructor(readonly config: ServerConfig = DEFAULT_CONFIG, readonly log: Logger = SILENT) {
    this.partitions = Array.from({ length: config.partitions }, (_, index) => new Partition(index, config, log, (p, atMs) => this.scheduleWake(p, atMs)));
    this.services = this.partitions.map((p) => p.service);
    this.voters = config.peers === undefined ? [config.nodeId] : [...config.peers.keys()].sort();
    const stats: ServerStats = {
      connectionsReceived: 0, commandsProcessed: 0, rejectedConnections: 0,
      protocolErrors: 0, netInputBytes: 0, netOutputBytes: 0, readsProcessed: 0, writesProcessed: 0,
      totalErrorReplies: 0, queryBufferLimitDisconnections: 0, outputBufferLimitDisconnections: 0,
    };
    const connections = this.connections;
    this.info = {
      services: this.services,
      serviceFor: (key) => this.services[this.partitionOf(key)]!,
      partitionOf: (key) => this.partitionOf(key),
      clockMs: monotonicMs,
      config,
      stats,
      commandStats: new CommandStatsTable(COMMANDS),
      slowlog: new Slowlog({ slowerThanUs: config.slowlogLogSlowerThanUs, maxLen: config.slowlogMaxLen }),
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
          role: status.role, term: status.term, leader: replica.leaderId, leaderChanges: replica.leaderChanges, lastIndex: status.lastIndex,
          commitIndex: status.commit, appliedIndex: replica.appliedIndex, snapshotIndex: replica.snapshotIndex,
          logEntries: status.lastIndex - status.firstIndex + 1, voters: replica.membership.voters,
        };
      }).filter((r) => r !== undefined),
      wal: () => this.wal?.stats(),
      clientRefused: (client, reason) => this.clientRefused(client, reason),
      ...(config.peers === undefined ? {} : {
        forward: (partition: number, argv: string[], client: ClientState, out: ReplyWriter) => this.forward(partition, argv, client, out),
        cluster: this.clusterView(),
      }),
    };
    this.listener = net.createServer({ noDelay: true }, (socket) => this.accept(socket));
  }

  /**
   * Opens the WAL and the node's Raft group (replaying every durable entry),
   * waits for leadership, then listens. Resolves with the bound port.
   */
  async listen(): Promise<number> {
    if (this.config.trace && this.tracing === null) await this.startTracing();
    if (this.config.peers !== undefined) await this.startTransport();
    await this.openReplica();
    // Membership as the data directory has it (onMembership covers the changes applied from now on).
    this.forgetRemovedPeers();
    await new Promise<void>((resolve, reject) => {
      this.listener.once('error', reject);
      this.listener.listen(this.config.port, this.config.bind, () => {
        this.listener.off('error', reject);
        resolve();
      });
    });
    this.listener.on('error', (error) => this.log.error('listener error', { error: error.message }));
    if (this.config.httpPort !== 0) await this.listenRest(this.config.httpPort);
    if (this.config.metricsPort !== 0) await this.listenMetrics(this.config.metricsPort);
    this.expireTimer = setInterval(() => this.expireCycle(), EXPIRE_CYCLE_MS);
    this.expireTimer.unref();
    return this.port;
  }

  get port(): number {
    return (this.listener.address() as AddressInfo).port;
  }

  /** The REST API's bound port; undefined when it is off. */
  get httpPort(): number | undefined {
    return this.rest?.port;
  }

  /** Starts the REST API after the RESP listener: its calls run through the same dispatch. */
  private async listenRest(port: number): Promise<void> {
    const rest = new RestServer({
      run: (argv, client, traceparent) => this.runRest(argv, client, traceparent),
      partitionsWithoutLeader: () => this.partitions.filter((p) => this.reachableLeader(p.index) === null).map((p) => p.index),
      partitionCount: this.partitions.length,
      requirepass: this.config.requirepass,
      connectionsMax: this.config.maxclients,
    }, this.log);
    this.rest = rest;
    await rest.listen(port, this.config.bind);
    this.log.info('REST API listening', { bind: this.config.bind, httpPort: rest.port });
  }

  /** The metrics endpoint's bound port; undefined when it is off. */
  get metricsPort(): number | undefined {
    return this.metrics?.port;
  }

  private async listenMetrics(port: number): Promise<void> {
    const metrics = new MetricsServer(this, this.log);
    this.metrics = metrics;
    await metrics.listen(port, this.config.bind);
    this.log.info('metrics listening', { bind: this.config.bind, metricsPort: metrics.port });
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Stops accepting, closes every client, stops timers and the replica, closes the WAL. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.balanceTimer);
      clearInterval(this.forwardWatchTimer);
      await this.handOffLeadership();
      clearInterval(this.expireTimer);
      clearInterval(this.tickTimer);
      for (const partition of this.partitions) clearTimeout(partition.wakeTimer);
      const restClosed = this.rest?.close();
      const metricsClosed = this.metrics?.close();
      const closed = new Promise<void>((resolve) => this.listener.close(() => resolve()));
      for (const connection of this.connections) connection.close();
      if (this.listener.listening) await closed;
      await restClosed;
      await metricsClosed;
      for (const partition of this.partitions) partition.replica?.stop();
      await this.transport?.close();
      await this.wal?.close();
      await this.tracingRuntime?.shutdown().catch((error: Error) => this.log.warn('could not export the last spans', { error: error.message }));
    })();
    return this.closing;
  }

  partitionHistograms(): Iterable<{ partition: number; commitNs: Histogram; batchEntries: Histogram }> {
    return this.partitions.map((p) => ({ partition: p.index, commitNs: p.commitNs, batchEntries: p.batchEntries }));
  }

  /** Starts the OpenTelemetry SDK (--trace); tracer: a test's own, instead of the SDK's. */
  async startTracing(tracer?: Tracer): Promise<void> {
    this.tracingRuntime = await startTracing(this.config, process.env, tracer);
    this.tracing = this.tracingRuntime.tracing;
    this.log.info('tracing commands', {
      sampleRatio: this.tracing.ratio, keys: this.config.traceKeys,
      endpoint: tracer === undefined ? process.env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] ?? process.env['OTEL_EXPORTER_OTLP_ENDPOINT'] ?? 'the OTLP default' : 'in-process',
    });
  }

  /** The partition a key's slot belongs to. */
  private partitionOf(key: string): number {
    return this.partitions.length === 1 ? 0 : partitionOfKey(key, this.partitions.length);
  }

  /** Opens the WAL and every partition's Raft group from it (one WAL, one fsync, for all of them). */
  private async openReplica(): Promise<void> {
    const { wal, groups, report } = await Wal.open({
      fs: nodeFs,
      dir: join(this.config.dataDir, 'wal'),
      onSync: (syncMs, records) => {
        this.walSyncNs.record(syncMs * 1e6);
        this.walBatchRecords.record(records);
      },
    });
    this.wal = wal;
    if (report.truncatedTail !== null) this.log.warn('WAL: truncated a torn tail left by a crash', { ...report.truncatedTail });
    for (const group of groups.keys()) {
      if (group >= this.partitions.length) throw new Error(`the WAL holds partition ${group}, but this node has ${this.partitions.length} partitions`);
    }
    const snapshots = await SnapshotStore.open({ fs: nodeFs, dir: join(this.config.dataDir, 'snap') });
    const snapshotPacing = eventLoopPacing(SNAPSHOT_SLICE_RECORDS);
    let entries = 0;
    for (const partition of this.partitions) {
      const replay = groups.get(partition.index);
      entries += replay?.entries.length ?? 0;
      partition.replica = await Replica.open({
        id: this.config.nodeId,
        group: partition.index,
        conf: { voters: [...this.voters], learners: [] },
        wal,
        replay,
        snapshots,
        snapshotPolicy: { minEntries: this.config.snapshotMinEntries },
        snapshotPacing,
        raft: { electionTicks: ELECTION_TICKS },
        machine: partition.service.machine,
        clock: monotonicMs,
        rng: Math.random,
        send: (messages) => this.send(partition, messages),
        onApplied: () => partition.service.afterWrite(),
        metrics: { now: () => performance.now(), commitNs: partition.commitNs, batchEntries: partition.batchEntries },
        onLeadership: (leader, term) => partition.service.leadershipChanged(leader, term, new NotLeaderError(null)),
        onRoleChange: (role, leader, term) => partition.raftLog.roleChanged(role, leader, term),
        onSnapshot: (report) => partition.raftLog.snapshot(report, partition.replica?.raw.status().term ?? report.term),
        onMembership: () => this.forgetRemovedPeers(),
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
    // Each partition's preferred leader campaigns at once; the others wait for
    // their election timeout. A single node leads everything at once.
    for (const partition of this.partitions) {
      if (this.preferredLeader(partition.index) !== this.config.nodeId) continue;
      partition.raftLog.campaignCause = 'preferred leader at startup';
      partition.replica!.campaign();
    }
    // Ticks follow elapsed time, not timer callbacks: after a stall (GC, a paused
    // process) the missed ticks are delivered before anything else, so the
    // leader lease, counted in ticks, never outlives real time.
    const tickMs = this.config.electionTimeoutMs / ELECTION_TICKS;
    let tickedAt = monotonicMs();
    this.tickTimer = setInterval(() => {
      const due = Math.floor((monotonicMs() - tickedAt) / tickMs);
      for (let i = 0; i < Math.min(due, TICK_CATCH_UP_MAX); i++) for (const replica of replicas) replica.tick();
      tickedAt = due > TICK_CATCH_UP_MAX ? monotonicMs() : tickedAt + due * tickMs;
    }, tickMs);
    this.tickTimer.unref();
    if (this.transport !== undefined) {
      this.balanceTimer = setInterval(() => this.balance(), BALANCE_INTERVAL_MS);
      this.balanceTimer.unref();
      this.forwardWatchTimer = setInterval(() => {
        this.eachForwarded((f) => {
          if (this.reachableLeader(f.partition) !== f.leader) f.abandon();
        });
      }, this.config.electionTimeoutMs / 2);
      this.forwardWatchTimer.unref();
      return;
    }
    const deadline = monotonicMs() + LEADERSHIP_WAIT_MS;
    while (!replicas.every((r) => r.isServing)) {
      if (monotonicMs() > deadline) throw new Error(`no leadership after ${LEADERSHIP_WAIT_MS} ms`);
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  /** Listens on the peer transport port and dials the other voters. */
  private async startTransport(): Promise<void> {
    const peers = this.config.peers!;
    this.incarnations = DataDirIncarnations.open(this.config.dataDir);
    this.transport = new PeerTransport({
      nodeId: this.config.nodeId,
      listen: { host: this.config.bind, port: clusterPortOf(this.config) },
      peers: new Map([...peers].filter(([id]) => id !== this.config.nodeId)),
      secret: this.config.clusterSecret,
      incarnations: this.incarnations,
      logger: this.log,
      meta: { respHost: this.config.bind, respPort: this.config.port },
      onMessages: (_from, batch) => {
        for (const { group, message } of batch) {
          const partition = this.partitions[group];
          if (partition === undefined) continue;
          if (message.type === 'MsgTimeoutNow') partition.raftLog.campaignCause = `leadership transfer from ${message.from}`;
          partition.replica?.step(message);
        }
      },
      onRequest: (from, request, respond) => this.serveForwarded(request.proto, request.argv, respond, from, request.trace),
    });
    await this.transport.start();
  }

  /**
   * A peer that is a member of no partition any more (CLUSTER FORGET) may come back on a new data
   * directory: its remembered incarnation is dropped, and the one it returns with is remembered.
   */
  private forgetRemovedPeers(): void {
    const incarnations = this.incarnations;
    if (incarnations === undefined) return;
    for (const peer of this.voters) {
      if (peer === this.config.nodeId || incarnations.known(peer) === undefined) continue;
      // Committed membership, not applied: entries applied again after a restart (a member removed,
      // then added back) must not make this node forget a member it has now.
      const member = this.partitions.some(({ replica }) => {
        if (replica === undefined) return true;
        const { voters, learners } = replica.committedMembership;
        return voters.includes(peer) || learners.includes(peer);
      });
      if (member) continue;
      incarnations.forget(peer);
      this.log.info('forgot the data directory of a removed peer', { peer });
    }
  }

  private send(partition: Partition, messages: Message[]): void {
    const transport = this.transport;
    if (transport === undefined) return;
    for (const message of messages) {
      const sent = transport.send(message.to, partition.index, message);
      if (message.type === 'MsgSnap') partition.replica?.raw.reportSnapshot(message.to, sent ? 'finish' : 'failure');
      if (!sent) partition.replica?.raw.reportUnreachable(message.to);
    }
  }

  /** The voter partition p prefers as leader: leaders spread evenly over the nodes. */
  private preferredLeader(partition: number): string {
    return this.voters[partition % this.voters.length]!;
  }

  /**
   * Moves leadership of each partition this node leads to its preferred
   * leader once that node has been connected for a while (a node that
   * returns gets its share back); the Raft core hands over only when the
   * transferee's log has caught up.
   */
  private balance(): void {
    if (this.closing !== undefined) return;
    const now = monotonicMs();
    for (const peer of this.voters) {
      if (peer === this.config.nodeId) continue;
      if (!this.transport!.connected(peer)) this.connectedSince.delete(peer);
      else if (!this.connectedSince.has(peer)) this.connectedSince.set(peer, now);
    }
    for (const partition of this.partitions) {
      const replica = partition.replica;
      if (replica === undefined) continue;
      const preferred = this.preferredLeader(partition.index);
      if (preferred === this.config.nodeId) continue;
      const since = this.connectedSince.get(preferred);
      if (since === undefined || now - since < BALANCE_SETTLE_MS) continue;
      const status = replica.raw.status();
      if (status.role !== 'leader' || status.leadTransferee !== null || !caughtUp(status, preferred)) continue;
      this.transferLeadership(partition, preferred, 'the preferred leader is back');
    }
  }

  /**
   * Asks the Raft core to hand leadership to `to`. The role seen by the
   * replica may lag the core's (its Ready loop waits for the WAL), so a
   * refusal (no longer leader) is logged, not thrown.
   */
  private transferLeadership(partition: Partition, to: string, reason: string): void {
    const replica = partition.replica!;
    try {
      const status = replica.raw.status();
      if (status.role !== 'leader') return;
      replica.raw.transferLeader(to);
      partition.raftLog.transferStarted(to, reason, status.term);
    } catch (error) {
      this.log.debug('leadership transfer refused', { partition: partition.index, to, error: (error as Error).message });
    }
  }

  /** Clean shutdown: leadership of every partition this node leads moves to a connected voter first. */
  private async handOffLeadership(): Promise<void> {
    if (this.transport === undefined) return;
    const led = this.partitions.filter((p) => p.replica?.isLeader === true);
    for (const partition of led) {
      const replica = partition.replica!;
      const status = replica.raw.status();
      const candidates = replica.membership.voters.filter((v) => v !== this.config.nodeId && this.transport!.connected(v) && caughtUp(status, v));
      const preferred = this.preferredLeader(partition.index);
      const to = candidates.includes(preferred) ? preferred : candidates[0];
      if (to !== undefined) this.transferLeadership(partition, to, 'shutting down');
    }
    const deadline = monotonicMs() + SHUTDOWN_TRANSFER_MS;
    while (led.some((p) => p.replica!.isLeader) && monotonicMs() < deadline) await new Promise((r) => setTimeout(r, 10));
    const kept = led.filter((p) => p.replica!.isLeader).map((p) => p.index);
    if (led.length > 0) this.log.info('handed off partition leadership', { moved: led.length - kept.length, kept });
  }

  /**
   * Runs argv on the partition's leader when that is another node (one hop
   * over the peer transport), its reply written to out. Without a leader, waits up to
   * ELECTION_WAIT_TIMEOUTS election timeouts for an election; still none: -TRYAGAIN.
   * undefined: this node leads.
   */
  private forward(partition: number, argv: string[], client: ClientState, out: ReplyWriter): Pending | undefined {
    const leader = this.reachableLeader(partition);
    if (leader === this.config.nodeId) return undefined;
    if (leader !== null) return this.forwardTo(leader, partition, argv, client, out);
    return this.leaderElected(partition).then((elected) => {
      if (elected === null) return out.raw('-TRYAGAIN no leader for this partition right now; retry\r\n');
      if (elected !== this.config.nodeId) return this.forwardTo(elected, partition, argv, client, out);
      const ran = this.runHere(argv, client.proto, client);
      return typeof ran === 'string' ? out.raw(ran) : ran.then((reply) => out.raw(reply));
    }).catch((error: unknown) => out.error(errorReply(error)));
  }

  /**
   * Sends argv to the leader of the partition and writes its reply to out, resolving then.
   * While waiting, the partition is watched: once this node sees another
   * leader (or none it can reach), the old one may never answer (a link
   * that black-holes bytes stays open), so the request is given up with
   * -TRYAGAIN, saying the command may have run. When the client closes, its requests are cancelled.
   */
  private forwardTo(leader: string, partition: number, argv: string[], client: ClientState, out: ReplyWriter): Forwarded {
    // Dispatch forwards a traced command synchronously, while its trace is the active one.
    const trace = activeTrace.current;
    if (trace !== null) trace.partition = partition;
    const call = new Forwarded(this.transport!, partition, leader, client, out, trace);
    call.handle = this.transport!.forward(leader, argv, client.proto, call, trace?.startForward(leader));
    if (call.handle !== null && !this.forwardingClients.has(client)) {
      this.forwardingClients.add(client);
      client.onClose.add(() => this.eachForwarded((f) => {
        if (f.client === client) f.cancel();
      }));
    }
    return call;
  }

  /** Calls fn with every forwarded command waiting for its reply (fn may end it). */
  private eachForwarded(fn: (forwarded: Forwarded) => void): void {
    this.transport?.forEachRequest((sink) => {
      if (sink instanceof Forwarded) fn(sink);
    });
  }

  /** The partition's leader if this node can reach it now (a leader behind a broken link counts as none). */
  private reachableLeader(partition: number): string | null {
    const leader = this.partitions[partition]!.replica?.leaderId ?? null;
    if (leader === null || leader === this.config.nodeId) return leader;
    return this.transport!.connected(leader) ? leader : null;
  }

  private async leaderElected(partition: number): Promise<string | null> {
    const deadline = monotonicMs() + ELECTION_WAIT_TIMEOUTS * this.config.electionTimeoutMs;
    for (;;) {
      const leader = this.reachableLeader(partition);
      if (leader !== null || monotonicMs() >= deadline || this.closing !== undefined) return leader;
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /**
   * Runs a command here for another node's client; respond gets the RESP reply. Returns a cancel
   * hook. A command the sender traces (sampled) is traced here too, its span the child of the
   * sender's forward span, whatever this node's own sampling ratio.
   */
  private serveForwarded(proto: 2 | 3, argv: string[], respond: (reply: string) => void, from?: string, parent?: TraceParent): (() => void) | undefined {
    // Not runCommand(): its promise of the reply text would add a reaction to a command that waits for the log.
    const { client, ctx } = this.forwardedRunner(proto);
    const tracing = this.tracing;
    if (tracing !== null && parent !== undefined && (parent.flags & 1) === 1) {
      const trace = tracing.begin(argv, traceNow(), { addr: from }, parent, true);
      const answer = respond;
      respond = (reply) => {
        trace.replyReadyMs = traceNow();
        answer(reply);
        tracing.finish(trace, traceNow());
      };
      activeTrace.current = trace;
    }
    const pending = dispatch(ctx, argv);
    activeTrace.current = null;
    if (pending === undefined) {
      respond(ctx.reply.take());
      // Answered at once and left nothing behind: the next forwarded command may run in it.
      if (client.idle) this.spareRunner = { client, ctx };
      return undefined;
    }
    let done = false;
    const finish = (): void => {
      done = true;
      respond(ctx.reply.take());
    };
    if (pending instanceof Completion) pending.onComplete(finish);
    else pending.then(finish, (error: unknown) => respond(`-ERR ${(error as Error).message.replace(/[\r\n]/g, ' ')}\r\n`));
    return () => {
      if (done) return;
      client.close();
    };
  }

  /**
   * Runs argv for a client without a socket, as this node's own clients' commands run (a keyed
   * command goes to its partition's leader unless client is marked forwarded): the reply now if it
   * answered at once, else once it does.
   */
  private runCommand(argv: string[], client: ClientState, proto: 2 | 3 = client.proto): string | Promise<string> {
    const ctx = this.commandContext(proto, client);
    const pending = dispatch(ctx, argv);
    if (pending === undefined) return ctx.reply.take();
    return pending.then(() => ctx.reply.take());
  }

  /** The client and context a forwarded command runs in: the spare one if there is, set to proto. */
  private forwardedRunner(proto: 2 | 3): { client: SocketlessClient; ctx: CommandContext } {
    const spare = this.spareRunner;
    if (spare === null) {
      const client = new SocketlessClient(proto, 'peer', true);
      return { client, ctx: this.commandContext(proto, client) };
    }
    this.spareRunner = null;
    spare.client.proto = proto;
    spare.ctx.reply.proto = proto;
    spare.ctx.reply.errors = 0;
    return spare;
  }

  private commandContext(proto: 2 | 3, client: ClientState): CommandContext {
    return { reply: new ReplyWriter(proto), client, server: this.info };
  }

  /**
   * runCommand() for a REST call. Traced when this node samples it, or, when the request carries
   * a W3C traceparent header, as that says (its server span then the caller's span's child).
   */
  private runRest(argv: string[], client: ClientState, traceparent?: string): string | Promise<string> {
    const tracing = this.tracing;
    if (tracing === null) return this.runCommand(argv, client);
    const parent = traceparent === undefined ? null : parseTraceParent(traceparent.trim());
    if (!(parent === null ? tracing.sample() : (parent.flags & 1) === 1)) return this.runCommand(argv, client);
    const trace = tracing.begin(argv, traceNow(), {}, parent ?? undefined);
    activeTrace.current = trace;
    let ran: string | Promise<string>;
    try {
      ran = this.runCommand(argv, client);
    } finally {
      activeTrace.current = null;
    }
    const done = (reply: string): string => {
      tracing.finish(trace, traceNow());
      return reply;
    };
    return typeof ran === 'string' ? done(ran) : ran.then(done);
  }

  /** runCommand() on this node, never forwarded again. */
  private runHere(argv: string[], proto: 2 | 3, client: ClientState): string | Promise<string> {
    const forwarded = client.forwarded === true ? client : Object.assign(Object.create(client) as ClientState, { forwarded: true });
    return this.runCommand(argv, forwarded, proto);
  }

  private clusterView(): ClusterView {
    return {
      nodes: () => this.voters,
      leaderOf: (partition) => this.partitions[partition]?.replica?.leaderId ?? null,
      endpointOf: (nodeId) => {
        if (nodeId === this.config.nodeId) return { host: this.config.bind, port: this.port };
        const meta = this.transport?.peerMeta(nodeId);
        if (meta === undefined) return undefined;
        // A node listening on every address is reached where its peers reach it.
        const wildcard = meta.respHost === '0.0.0.0' || meta.respHost === '::';
        return { host: wildcard ? this.config.peers!.get(nodeId)?.host ?? meta.respHost : meta.respHost, port: meta.respPort };
      },
      changeMembership: (change, partitions, here) => this.changeMembership(change, partitions, here),
    };
  }

  /**
   * One membership change per partition, each applied by its leader: here
   * when this node leads, else forwarded (as CLUSTER ADDNODE|FORGET node
   * PARTITION p). A partition where the change is already in place counts as
   * done. Resolves with the first error text, or null.
   */
  private async changeMembership(change: ConfChange, partitions: readonly number[], here: boolean): Promise<string | null> {
    const verb = change.type === 'addVoter' ? 'ADDNODE' : 'FORGET';
    const results = await Promise.all(partitions.map(async (p): Promise<string | null> => {
      const replica = this.partitions[p]!.replica!;
      const leader = here ? this.config.nodeId : this.reachableLeader(p) ?? (await this.leaderElected(p));
      if (leader === null) return `TRYAGAIN partition ${p} has no leader right now; retry`;
      if (leader !== this.config.nodeId) {
        const out = new ReplyWriter(2);
        await this.forwardTo(leader, p, ['CLUSTER', verb, change.node, 'PARTITION', String(p)], new SocketlessClient(2, 'peer', true), out);
        const reply = out.take();
        return reply.startsWith('+') ? null : reply.slice(1).trimEnd();
      }
      const voters = replica.membership.voters;
      if ((change.type === 'addVoter') === voters.includes(change.node)) return null;
      if (change.type === 'removeVoter' && change.node === this.config.nodeId) {
        return `ERR ${change.node} leads partition ${p}: stop it (leadership moves on SIGTERM) or run this once another node leads`;
      }
      try {
        await replica.changeMembership(change);
        this.log.info('membership changed', { partition: p, change: change.type, member: change.node, voters: replica.membership.voters });
        return null;
      } catch (error) {
        return errorText(error as Error);
      }
    }));
    return results.find((r) => r !== null) ?? null;
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
      this.log.warn('client refused', { addr: `${socket.remoteAddress}:${socket.remotePort}`, reason: 'max number of clients reached' });
      socket.on('error', () => undefined);
      socket.end('-ERR max number of clients reached\r\n');
      return;
    }
    stats.connectionsReceived += 1;
    this.connections.add(new Connection(this.nextClientId++, socket, this));
  }

  /** A client retrying a wrong password logs one line (its later refusals at debug). */
  private clientRefused(client: ClientState, reason: string): void {
    const again = this.refusedClients.has(client);
    this.refusedClients.add(client);
    this.log[again ? 'debug' : 'warn']('client refused', { client: client.id, addr: client.addr, reason });
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
  readonly raftLog: RaftEventLog;
  /** Propose → commit (ns) of this node's writes as leader, and new entries per log write. */
  readonly commitNs = new Histogram();
  readonly batchEntries = new Histogram();

  constructor(readonly index: number, config: ServerConfig, log: Logger, scheduleWake: (partition: Partition, atMs: number) => void) {
    this.raftLog = new RaftEventLog({
      log, nodeId: config.nodeId, partition: index, isVoter: () => this.replica?.membership.voters.includes(config.nodeId) ?? true,
    });
    const machine = new LockStateMachine({ tombstonesMax: config.tombstonesMax });
    machine.ownerRepeats = config.ownerRepeats;
    this.service = new LockService({
      clock: monotonicMs,
      machine,
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

  ephemeralAccess(untilMs: number): Promise<void> | undefined {
    return this.leader().ephemeralAccess(untilMs);
  }

  private leader(): Replica {
    if (this.replica === undefined) throw new Error(`partition ${this.index}: the replica is not open`);
    return this.replica;
  }
}

/**
 * A forwarded command waiting for its reply, which it writes to its client's reply writer: given
 * up (-TRYAGAIN) once its partition's leader is no longer the one it went to; cancelled on the
 * leader when its client disconnects. The transport holds it while the request is out.
 */
class Forwarded extends Completion implements ReplySink {
  handle: RequestHandle | null = null;

  constructor(
    private readonly transport: PeerTransport,
    readonly partition: number,
    readonly leader: string,
    readonly client: ClientState,
    private readonly out: ReplyWriter,
    private readonly trace: CommandTrace | null,
  ) {
    super();
  }

  reply(reply: string): void {
    this.trace?.endForward();
    this.out.raw(reply);
    this.complete();
  }

  fail(error: PeerUnavailableError): void {
    this.trace?.endForward(error.message);
    this.out.error(errorReply(error));
    this.complete();
  }

  /** The leader changed: the reply may never come. */
  abandon(): void {
    this.cancel();
    this.trace?.endForward();
    this.out.raw(LEADER_MOVED_REPLY);
    this.complete();
  }

  /** The reply is no longer wanted (its client closed). */
  cancel(): void {
    if (this.handle !== null) this.transport.cancel(this.handle);
  }
}

/** Whether a leader's follower answers it (recently active) and has every committed entry: a good transferee. */
function caughtUp(status: Status, node: string): boolean {
  const progress = status.progress?.[node];
  return progress !== undefined && progress.recentActive && progress.state === 'replicate' && progress.match >= status.commit;
}

/** An error as the text of a RESP error reply. */
function errorText(error: Error): string {
  return errorReply(error).replace(/[\r\n]/g, ' ');
}

/**
 * Snapshots encoded a slice at a time between other work, one partition
 * after another: the partitions of a node fill up at the same pace and fall
 * due together.
 */
export function eventLoopPacing(sliceRecords: number): SnapshotPacing {
  let tail: Promise<void> = Promise.resolve();
  return {
    sliceRecords,
    nextSlice: () => new Promise<void>((resolve) => setImmediate(resolve)),
    acquire: () => {
      let release!: () => void;
      const done = new Promise<void>((resolve) => (release = resolve));
      const turn = tail.then(() => release);
      tail = tail.then(() => done);
      return turn;
    },
  };
}
