import { Command, InvalidArgumentError, Option } from 'commander';
import type { ServerSettings } from '../commands/spec.js';
import type { OwnerRepeats } from '../lock/machine.js';
import type { LogLevel } from './log.js';
import { RAFTLOCK_VERSION } from '../commands/version.js';

export interface ServerConfig extends ServerSettings {
  readonly logLevel: LogLevel | 'silent';
  readonly waitersPerLockMax: number;
  readonly waitersMax: number;
  readonly tombstonesMax: number;
  /** Log entries applied since the last snapshot before the next (at least; see SnapshotPolicy). */
  readonly snapshotMinEntries: number;
  /** Partitions (Raft groups) the keyspace is split into; fixed when the data directory is created. */
  readonly partitions: number;
  /** The founding voters' peer addresses, this node included; undefined for a single node. */
  readonly peers: ReadonlyMap<string, PeerEndpoint> | undefined;
  /** Peer transport port; undefined: this node's --peers entry, else port + 10000. */
  readonly clusterPort: number | undefined;
  /** Shared secret peers authenticate each other with (never sent on the wire). */
  readonly clusterSecret: string | undefined;
  /**
   * A follower that hears no leader for this long (to twice this, at random)
   * starts an election; leaders heartbeat ten times as often, and the leader
   * lease is a little shorter than this.
   */
  readonly electionTimeoutMs: number;
  /** How an owner repeating an acquire or release it already made is answered (see OwnerRepeats). */
  readonly ownerRepeats: OwnerRepeats;
  /** REST API port on --bind; 0: no REST listener. */
  readonly httpPort: number;
  /** Prometheus endpoint (GET /metrics) port on --bind; 0: none. */
  readonly metricsPort: number;
  /** Initial slowlog-log-slower-than (µs; negative: off) and slowlog-max-len; CONFIG SET changes them. */
  readonly slowlogLogSlowerThanUs: number;
  readonly slowlogMaxLen: number;
  /** OpenTelemetry tracing of commands (exported as the OTEL_* environment says); off by default. */
  readonly trace: boolean;
  /** Fraction of commands traced; undefined: OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG, else 1. */
  readonly traceSampleRatio: number | undefined;
  /** Keys in spans: a hash of each (default) or none. */
  readonly traceKeys: 'hash' | 'omit';
}

export interface PeerEndpoint {
  readonly host: string;
  readonly port: number;
}

/** The peer transport port this node listens on. */
export function clusterPortOf(config: ServerConfig): number {
  return config.clusterPort ?? config.peers?.get(config.nodeId)?.port ?? config.port + 10_000;
}

/** Parses n1=host:port,n2=host:port,... (hosts may be [ipv6]). */
export function parsePeers(text: string): Map<string, PeerEndpoint> {
  const peers = new Map<string, PeerEndpoint>();
  for (const item of text.split(',').map((t) => t.trim()).filter((t) => t.length > 0)) {
    const match = /^([^=\s]+)=(\[[^\]]+\]|[^:\s]+):(\d+)$/.exec(item);
    if (match === null) throw new InvalidArgumentError(`expected id=host:port, got '${item}'`);
    const port = Number(match[3]);
    if (port < 1 || port > 65535) throw new InvalidArgumentError(`port out of range in '${item}'`);
    if (peers.has(match[1]!)) throw new InvalidArgumentError(`node '${match[1]}' is listed twice`);
    peers.set(match[1]!, { host: match[2]!.replace(/^\[|\]$/g, ''), port });
  }
  if (peers.size === 0) throw new InvalidArgumentError('expected at least one id=host:port');
  return peers;
}

/** Partitions of a cluster started without --partitions. */
export const CLUSTER_PARTITIONS_DEFAULT = 8;

export const DEFAULT_CONFIG: ServerConfig = {
  port: 6379,
  bind: '127.0.0.1',
  dataDir: './data',
  nodeId: 'n1',
  requirepass: undefined,
  maxclients: 10_000,
  timeoutSeconds: 0,
  maxBulkBytes: 512 * 1024 * 1024,
  maxArgs: 1024 * 1024,
  queryBufferBytesMax: 1024 * 1024 * 1024,
  outputBufferBytesMax: 64 * 1024 * 1024,
  logLevel: 'info',
  waitersPerLockMax: 1024,
  waitersMax: 65_536,
  tombstonesMax: 1_000_000,
  snapshotMinEntries: 10_000,
  partitions: 1,
  peers: undefined,
  clusterPort: undefined,
  clusterSecret: undefined,
  electionTimeoutMs: 500,
  ownerRepeats: 'scripts',
  httpPort: 8083,
  metricsPort: 0,
  slowlogLogSlowerThanUs: 10_000,
  slowlogMaxLen: 128,
  trace: false,
  traceSampleRatio: undefined,
  traceKeys: 'hash',
};

function ratio(text: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1) throw new InvalidArgumentError('expected a number from 0 to 1');
  return n;
}

function integer(min: number, max: number) {
  return (text: string): number => {
    const n = Number(text);
    if (!/^-?\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    }
    return n;
  };
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1000, kb: 1024, m: 1e6, mb: 1024 ** 2, g: 1e9, gb: 1024 ** 3 };

/** Sizes like Redis's config: 512mb, 64kb, 1gb, or plain bytes. */
export function parseBytes(text: string): number {
  const match = /^(\d+)\s*([a-z]*)$/i.exec(text.trim());
  const scale = match === null ? undefined : UNITS[match[2]!.toLowerCase()];
  if (match === null || scale === undefined) throw new InvalidArgumentError(`expected a size such as 1048576, 64kb or 512mb`);
  const n = Number(match[1]) * scale;
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('size out of range');
  return n;
}

function option(flags: string, description: string, env: string): Option {
  return new Option(flags, description).env(`RAFTLOCK_${env}`);
}

/**
 * Parses argv (without node and script) and RAFTLOCK_* environment variables.
 * Throws commander's CommanderError on --help, --version and bad input.
 */
export function parseConfig(argv: readonly string[]): ServerConfig {
  const d = DEFAULT_CONFIG;
  const program = new Command('raftlock-server')
    .description('raftlock: fenced distributed locks over the Redis protocol.\nEvery flag can also be set as RAFTLOCK_<FLAG> (e.g. RAFTLOCK_PORT=6380).')
    .version(RAFTLOCK_VERSION, '-v, --version')
    .addOption(option('--port <port>', 'RESP port', 'PORT').argParser(integer(0, 65535)).default(d.port))
    .addOption(option('--bind <address>', 'listen address', 'BIND').default(d.bind))
    .addOption(option('--data-dir <dir>', 'data directory (node identity and write-ahead log)', 'DATA_DIR').default(d.dataDir))
    .addOption(option('--node-id <id>', 'stable node name', 'NODE_ID').default(d.nodeId))
    .addOption(option('--requirepass <password>', 'require AUTH with this password (user "default")', 'REQUIREPASS'))
    .addOption(option('--maxclients <n>', 'maximum simultaneous clients', 'MAXCLIENTS').argParser(integer(1, 1_000_000)).default(d.maxclients))
    .addOption(option('--timeout <seconds>', 'close clients idle this long (0: never)', 'TIMEOUT').argParser(integer(0, 2 ** 31 - 1)).default(d.timeoutSeconds))
    .addOption(option('--proto-max-bulk-len <size>', 'largest bulk string a client may send', 'PROTO_MAX_BULK_LEN').argParser(parseBytes).default(d.maxBulkBytes, '512mb'))
    .addOption(option('--max-multibulk-len <n>', 'most arguments in one command', 'MAX_MULTIBULK_LEN').argParser(integer(1, 2 ** 31 - 1)).default(d.maxArgs))
    .addOption(option('--client-query-buffer-limit <size>', 'unprocessed input per client before it is closed', 'CLIENT_QUERY_BUFFER_LIMIT').argParser(parseBytes).default(d.queryBufferBytesMax, '1gb'))
    .addOption(option('--client-output-buffer-limit <size>', 'unsent output per client before it is closed', 'CLIENT_OUTPUT_BUFFER_LIMIT').argParser(parseBytes).default(d.outputBufferBytesMax, '64mb'))
    .addOption(option('--max-waiters-per-lock <n>', 'KLOCK ... WAIT callers queued on one lock', 'MAX_WAITERS_PER_LOCK').argParser(integer(0, 1_000_000)).default(d.waitersPerLockMax))
    .addOption(option('--max-waiters <n>', 'KLOCK ... WAIT callers queued in total', 'MAX_WAITERS').argParser(integer(0, 10_000_000)).default(d.waitersMax))
    .addOption(option('--max-remembered-tokens <n>', 'released locks whose fencing token is remembered individually', 'MAX_REMEMBERED_TOKENS').argParser(integer(0, 100_000_000)).default(d.tombstonesMax))
    .addOption(option('--snapshot-min-entries <n>', 'log entries applied before the lock table is snapshotted and the log compacted (more when the table is larger)', 'SNAPSHOT_MIN_ENTRIES').argParser(integer(1, 1_000_000_000)).default(d.snapshotMinEntries))
    .addOption(option('--partitions <n>', 'Raft groups the keyspace is split into by key slot; fixed when the data directory is created (default 1 for a single node, 8 with --peers)', 'PARTITIONS').argParser(integer(1, 1024)).default(d.partitions))
    .addOption(option('--peers <list>', 'founding voters, this node included: n1=host:port,n2=host:port,... (peer transport addresses); none: a single node', 'PEERS').argParser(parsePeers))
    .addOption(option('--cluster-port <port>', 'peer transport port (default: this node\'s --peers entry, else --port + 10000)', 'CLUSTER_PORT').argParser(integer(1, 65535)))
    .addOption(option('--cluster-secret <secret>', 'shared secret peers authenticate each other with (challenge-response; never sent)', 'CLUSTER_SECRET'))
    .addOption(option('--election-timeout-ms <ms>', 'a follower that hears no leader for this long (to twice this) starts an election; raise it on slow networks', 'ELECTION_TIMEOUT_MS').argParser(integer(100, 60_000)).default(d.electionTimeoutMs))
    .addOption(option('--owner-repeats <which>', 'answer an owner repeating an acquire or release it already made as a success, so that a Redlock client given every node of one cluster reaches its quorum: none (Redis\'s replies), scripts (the known lock scripts), all (also SET NX by the holder\'s own value)', 'OWNER_REPEATS').choices(['none', 'scripts', 'all']).default(d.ownerRepeats))
    .addOption(option('--http-port <port>', 'REST API port on --bind (JSON over HTTP); 0: no REST API', 'HTTP_PORT').argParser(integer(0, 65535)).default(d.httpPort))
    .addOption(option('--metrics-port <port>', 'Prometheus metrics (GET /metrics) port on --bind; 0: none', 'METRICS_PORT').argParser(integer(0, 65535)).default(d.metricsPort))
    .addOption(option('--slowlog-log-slower-than <us>', 'SLOWLOG keeps commands that took at least this many microseconds (0: all, negative: none)', 'SLOWLOG_LOG_SLOWER_THAN').argParser(integer(-1, 2 ** 31 - 1)).default(d.slowlogLogSlowerThanUs))
    .addOption(option('--slowlog-max-len <n>', 'SLOWLOG entries kept', 'SLOWLOG_MAX_LEN').argParser(integer(0, 1_000_000)).default(d.slowlogMaxLen))
    .addOption(option('--trace', 'trace commands with OpenTelemetry, exported as OTEL_EXPORTER_OTLP_ENDPOINT and the other OTEL_* variables say', 'TRACE').default(d.trace))
    .addOption(option('--trace-sample-ratio <r>', 'fraction of commands traced, 0 to 1 (default: OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG, else 1)', 'TRACE_SAMPLE_RATIO').argParser(ratio))
    .addOption(option('--trace-keys <how>', 'keys in spans: hash (16 hex digits of SHA-256) or omit', 'TRACE_KEYS').choices(['hash', 'omit']).default(d.traceKeys))
    .addOption(option('--log-level <level>', 'log level', 'LOG_LEVEL').choices(['debug', 'info', 'warn', 'error', 'silent']).default(d.logLevel))
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s), writeOut: (s) => process.stdout.write(s) });
  program.parse([...argv], { from: 'user' });
  const o = program.opts();
  if (o['peers'] !== undefined && !(o['peers'] as Map<string, PeerEndpoint>).has(o['nodeId'])) {
    program.error(`error: option '--peers' must list this node ('${o['nodeId']}', see --node-id)`, { exitCode: 1, code: 'raftlock.peers' });
  }
  return {
    port: o['port'],
    bind: o['bind'],
    dataDir: o['dataDir'],
    nodeId: o['nodeId'],
    requirepass: o['requirepass'],
    maxclients: o['maxclients'],
    timeoutSeconds: o['timeout'],
    maxBulkBytes: o['protoMaxBulkLen'],
    maxArgs: o['maxMultibulkLen'],
    queryBufferBytesMax: o['clientQueryBufferLimit'],
    outputBufferBytesMax: o['clientOutputBufferLimit'],
    waitersPerLockMax: o['maxWaitersPerLock'],
    waitersMax: o['maxWaiters'],
    tombstonesMax: o['maxRememberedTokens'],
    snapshotMinEntries: o['snapshotMinEntries'],
    // A single node defaults to one partition (multi-key commands never meet
    // CROSSSLOT); a cluster to CLUSTER_PARTITIONS_DEFAULT, so that leaders spread.
    partitions: o['peers'] !== undefined && program.getOptionValueSource('partitions') === 'default' ? CLUSTER_PARTITIONS_DEFAULT : o['partitions'],
    logLevel: o['logLevel'],
    peers: o['peers'],
    clusterPort: o['clusterPort'],
    clusterSecret: o['clusterSecret'],
    electionTimeoutMs: o['electionTimeoutMs'],
    ownerRepeats: o['ownerRepeats'],
    httpPort: o['httpPort'],
    metricsPort: o['metricsPort'],
    slowlogLogSlowerThanUs: o['slowlogLogSlowerThan'],
    slowlogMaxLen: o['slowlogMaxLen'],
    trace: o['trace'] === true,
    traceSampleRatio: o['traceSampleRatio'],
    traceKeys: o['traceKeys'],
  };
}
