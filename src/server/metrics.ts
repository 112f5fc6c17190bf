import http from 'node:http';
import { boundPort, closeHttp, listenHttp } from './http-listener.js';
import { Counter, Gauge, Registry, type Metric } from 'prom-client';
import type { ServerInfo } from '../commands/spec.js';
import { REFUSALS } from '../stats/command-stats.js';
import type { Histogram } from '../stats/histogram.js';
import type { Logger } from './log.js';

/**
 * The Prometheus endpoint (--metrics-port): GET /metrics in the Prometheus
 * text format. Every metric is read at scrape time from counters the server
 * keeps anyway (INFO's, the command statistics, the WAL's), so serving
 * metrics adds nothing to the path of a command.
 */

/** What the metrics read from the server they belong to. */
export interface MetricsHost {
  readonly info: ServerInfo;
  /** The WAL's fdatasync durations (ns) and data records per batch. */
  readonly walSyncNs: Histogram;
  readonly walBatchRecords: Histogram;
  /** Per partition: propose → commit (ns) of writes this node led, and new entries per log write. */
  partitionHistograms(): Iterable<{ partition: number; commitNs: Histogram; batchEntries: Histogram }>;
}

/** Seconds; the usual Prometheus latency buckets, finer at the low end where raftlock's commands are. */
const COMMAND_SECONDS_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const FSYNC_SECONDS_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
const BATCH_RECORDS_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192];
const NS_PER_SECOND = 1e9;

const HTTP_HEADERS_TIMEOUT_MS = 10_000;
const HTTP_REQUEST_TIMEOUT_MS = 30_000;
/** Scrapers are few; more simultaneous connections than this are dropped. */
const HTTP_CONNECTIONS_MAX = 64;

type Labels = Record<string, string>;
type Samples = Iterable<readonly [Labels, number]>;

/**
 * A Prometheus histogram whose buckets come from one of the server's own
 * log-linear histograms at scrape time, one series per label set. A bucket
 * `le` counts the samples whose histogram bucket lies wholly at or below it,
 * so counts are exact to the histogram's resolution (1/128 of the value).
 *
 * prom-client has no pre-aggregated histogram, but its registry formats any
 * metric by the values its get() returns; this is such a metric, registered
 * with the one cast its typings need.
 */
class ScrapedHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';

  constructor(
    registry: Registry,
    readonly name: string,
    readonly help: string,
    private readonly buckets: readonly number[],
    private readonly series: () => Iterable<{ labels: Labels; histogram: Histogram }>,
    /** Prometheus units per histogram unit (ns → s: 1e-9). */
    private readonly scale: number,
  ) {
    registry.registerMetric(this as unknown as Metric);
  }

  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: ScrapedValue[] }> {
    const values: ScrapedValue[] = [];
    for (const { labels, histogram } of this.series()) {
      const counts = cumulativeCounts(histogram, this.buckets.map((b) => Math.round(b / this.scale)));
      this.buckets.forEach((le, i) => values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le }, value: counts[i]! }));
      values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: '+Inf' }, value: histogram.count });
      values.push({ metricName: `${this.name}_sum`, labels, value: histogram.sum * this.scale });
      values.push({ metricName: `${this.name}_count`, labels, value: histogram.count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

interface ScrapedValue {
  metricName: string;
  labels: Record<string, string | number>;
  value: number;
}

/** For each bound, the samples in buckets whose highest value is at most that bound; one pass. */
function cumulativeCounts(histogram: Histogram, bounds: readonly number[]): number[] {
  const counts = new Array<number>(bounds.length).fill(0);
  let at = 0;
  let total = 0;
  for (const bucket of histogram.buckets()) {
    while (at < bounds.length && bucket.high > bounds[at]!) counts[at++] = total;
    total += bucket.count;
  }
  while (at < bounds.length) counts[at++] = total;
  return counts;
}

function gauge(registry: Registry, name: string, help: string, labelNames: string[], read: () => Samples): void {
  new Gauge({
    name, help, labelNames, registers: [registry],
    collect() {
      this.reset();
      for (const [labels, value] of read()) this.set(labels, value);
    },
  });
}

function counter(registry: Registry, name: string, help: string, labelNames: string[], read: () => Samples): void {
  new Counter({
    name, help, labelNames, registers: [registry],
    collect() {
      this.reset();
      for (const [labels, value] of read()) this.inc(labels, value);
    },
  });
}

/** Every raftlock metric, registered on a registry of its own (several servers may share a process). */
export function createRegistry(host: MetricsHost): Registry {
  const registry = new Registry();
  registerCommandMetrics(registry, host.info);
  registerClientMetrics(registry, host.info);
  registerRaftMetrics(registry, host.info);
  registerLockMetrics(registry, host.info);
  registerWalMetrics(registry, host);
  new ScrapedHistogram(registry, 'raftlock_raft_commit_duration_seconds', 'Propose to commit of the writes this node proposed as leader, by partition', FSYNC_SECONDS_BUCKETS,
    function* () {
      for (const p of host.partitionHistograms()) yield { labels: { partition: String(p.partition) }, histogram: p.commitNs };
    }, 1 / NS_PER_SECOND);
  new ScrapedHistogram(registry, 'raftlock_raft_batch_entries', 'New log entries made durable by one log write (one Ready), by partition', BATCH_RECORDS_BUCKETS,
    function* () {
      for (const p of host.partitionHistograms()) yield { labels: { partition: String(p.partition) }, histogram: p.batchEntries };
    }, 1);
  gauge(registry, 'raftlock_info', 'Constant 1, labelled with the version and node id', ['version', 'node_id'],
    () => [[{ version: host.info.version, node_id: host.info.config.nodeId }, 1]]);
  return registry;
}

function registerCommandMetrics(registry: Registry, info: ServerInfo): void {
  counter(registry, 'raftlock_commands_total', 'Commands from RESP clients by result: ok, error (ran and answered an error) or rejected (refused before running: arity, NOAUTH, syntax)',
    ['command', 'result'], function* () {
      for (const s of info.commandStats.all()) {
        if (s.calls === 0 && s.rejectedCalls === 0) continue;
        yield [{ command: s.spec.name, result: 'ok' }, s.calls - s.failedCalls];
        yield [{ command: s.spec.name, result: 'error' }, s.failedCalls];
        yield [{ command: s.spec.name, result: 'rejected' }, s.rejectedCalls];
      }
    });
  counter(registry, 'raftlock_rejected_commands_total', 'Commands refused before running, by reason (unknown commands included)',
    ['reason'], () => REFUSALS.map((reason) => [{ reason }, info.commandStats.refusals[reason]] as const));
  new ScrapedHistogram(registry, 'raftlock_command_duration_seconds',
    'Time from decoding a command to its reply being ready (time blocked in KLOCK ... WAIT excluded)', COMMAND_SECONDS_BUCKETS, function* () {
    for (const s of info.commandStats.all()) if (s.histogram !== null) yield { labels: { command: s.spec.name }, histogram: s.histogram };
  }, 1 / NS_PER_SECOND);
}

function registerClientMetrics(registry: Registry, info: ServerInfo): void {
  const stats = info.stats;
  gauge(registry, 'raftlock_connected_clients', 'RESP client connections open', [], () => {
    let n = 0;
    for (const _ of info.clients()) n += 1;
    return [[{}, n]];
  });
  gauge(registry, 'raftlock_blocked_clients', 'Clients waiting in KLOCK ... WAIT', [], () => [[{}, info.blockedClients()]]);
  counter(registry, 'raftlock_connections_received_total', 'RESP connections accepted', [], () => [[{}, stats.connectionsReceived]]);
  counter(registry, 'raftlock_rejected_connections_total', 'RESP connections refused, by reason', ['reason'],
    () => [[{ reason: 'maxclients' }, stats.rejectedConnections]]);
  counter(registry, 'raftlock_client_disconnections_total', 'Clients closed by the server, by reason', ['reason'], () => [
    [{ reason: 'protocol_error' }, stats.protocolErrors],
    [{ reason: 'query_buffer_limit' }, stats.queryBufferLimitDisconnections],
    [{ reason: 'output_buffer_limit' }, stats.outputBufferLimitDisconnections],
  ]);
  counter(registry, 'raftlock_net_input_bytes_total', 'Bytes read from RESP clients', [], () => [[{}, stats.netInputBytes]]);
  counter(registry, 'raftlock_net_output_bytes_total', 'Bytes written to RESP clients', [], () => [[{}, stats.netOutputBytes]]);
}

function registerRaftMetrics(registry: Registry, info: ServerInfo): void {
  const each = (read: (g: NonNullable<ReturnType<NonNullable<ServerInfo['raft']>>>[number]) => number) => (): Samples =>
    (info.raft?.() ?? []).map((g, p) => [{ partition: String(p) }, read(g)] as const);
  gauge(registry, 'raftlock_raft_term', 'Current Raft term of each partition on this node', ['partition'], each((g) => g.term));
  gauge(registry, 'raftlock_raft_is_leader', '1 if this node leads the partition, else 0', ['partition'], each((g) => (g.role === 'leader' ? 1 : 0)));
  gauge(registry, 'raftlock_raft_has_leader', '1 if this node knows a leader for the partition, else 0', ['partition'], each((g) => (g.leader === null ? 0 : 1)));
  counter(registry, 'raftlock_raft_leader_changes_total', 'Times this node saw the partition get a new leader', ['partition'], each((g) => g.leaderChanges));
  gauge(registry, 'raftlock_raft_last_index', 'Index of the last entry in this node\'s log', ['partition'], each((g) => g.lastIndex));
  gauge(registry, 'raftlock_raft_commit_index', 'Highest log index known committed', ['partition'], each((g) => g.commitIndex));
  gauge(registry, 'raftlock_raft_applied_index', 'Highest log index applied to the lock table', ['partition'], each((g) => g.appliedIndex));
  gauge(registry, 'raftlock_raft_snapshot_index', 'Index of the newest snapshot', ['partition'], each((g) => g.snapshotIndex));
}

function registerLockMetrics(registry: Registry, info: ServerInfo): void {
  gauge(registry, 'raftlock_locks', 'Locks held, by partition and durability (PERSISTENT ones are replicated to every node; EPHEMERAL ones live on the leader)',
    ['partition', 'durability'], function* () {
      for (const [p, s] of info.services.entries()) {
        yield [{ partition: String(p), durability: 'persistent' }, s.machine.dbsize()];
        yield [{ partition: String(p), durability: 'ephemeral' }, s.machine.ephemeral.liveCount(s.now())];
      }
    });
  gauge(registry, 'raftlock_lock_waiters', 'Clients queued in KLOCK ... WAIT, by partition', ['partition'],
    () => info.services.map((s, p) => [{ partition: String(p) }, s.waiters.size] as const));
  counter(registry, 'raftlock_lock_expirations_total', 'Locks that expired (leases run out), by partition and durability', ['partition', 'durability'], function* () {
    for (const [p, s] of info.services.entries()) {
      yield [{ partition: String(p), durability: 'persistent' }, s.machine.persistent.expiredTotal];
      yield [{ partition: String(p), durability: 'ephemeral' }, s.machine.ephemeral.expiredTotal];
    }
  });
}

function registerWalMetrics(registry: Registry, host: MetricsHost): void {
  const wal = (read: (s: NonNullable<ReturnType<NonNullable<ServerInfo['wal']>>>) => number) => (): Samples => {
    const stats = host.info.wal?.();
    return stats === undefined ? [] : [[{}, read(stats)]];
  };
  counter(registry, 'raftlock_wal_batches_total', 'Write batches made durable (one fdatasync each)', [], wal((s) => s.batches));
  counter(registry, 'raftlock_wal_records_total', 'Records written to the WAL', [], wal((s) => s.records));
  counter(registry, 'raftlock_wal_bytes_total', 'Bytes written to the WAL', [], wal((s) => s.bytes));
  gauge(registry, 'raftlock_wal_segments', 'WAL segment files', [], wal((s) => s.segments));
  gauge(registry, 'raftlock_wal_queued_appends', 'Appends waiting for the WAL writer', [], wal((s) => s.queuedAppends));
  new ScrapedHistogram(registry, 'raftlock_wal_fsync_duration_seconds', 'Duration of the WAL\'s fdatasync, one per batch', FSYNC_SECONDS_BUCKETS, () => [{ labels: {}, histogram: host.walSyncNs }], 1 / NS_PER_SECOND);
  new ScrapedHistogram(registry, 'raftlock_wal_batch_records', 'Records per WAL write batch (group commit)', BATCH_RECORDS_BUCKETS, () => [{ labels: {}, histogram: host.walBatchRecords }], 1);
}

/** The HTTP listener of the metrics endpoint. */
export class MetricsServer {
  private readonly server: http.Server;
  private readonly registry: Registry;

  constructor(host: MetricsHost, private readonly log: Logger) {
    this.registry = createRegistry(host);
    this.server = http.createServer({ headersTimeout: HTTP_HEADERS_TIMEOUT_MS, requestTimeout: HTTP_REQUEST_TIMEOUT_MS }, (req, res) => {
      this.handle(req, res).catch((error: Error) => {
        this.log.error('metrics request failed', { error: error.message });
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end('internal error\n');
      });
    });
    this.server.maxConnections = HTTP_CONNECTIONS_MAX;
  }

  /** Listens on port (0: any free port) at bind; resolves with the bound port. */
  listen(port: number, bind: string): Promise<number> {
    return listenHttp(this.server, port, bind, this.log, 'metrics');
  }

  get port(): number {
    return boundPort(this.server);
  }

  /** Stops accepting and drops every connection, idle or not. */
  close(): Promise<void> {
    return closeHttp(this.server);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') return text(res, 404, 'not found: the metrics are at /metrics\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return text(res, 405, 'use GET\n', { allow: 'GET, HEAD' });
    const body = await this.registry.metrics();
    res.writeHead(200, { 'content-type': this.registry.contentType, 'content-length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  }
}

function text(res: http.ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}
