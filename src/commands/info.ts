import { defineCommand, type CommandContext } from './spec.js';
import { REDIS_COMPAT_VERSION, RAFTLOCK_VERSION } from './version.js';
import type { LockService } from '../lock/service.js';
import { partitionLeaders } from './partition.js';

type Section = (ctx: CommandContext) => [string, string | number][];

/** INFO latencystats percentiles (Redis's default latency-tracking-info-percentiles). */
export const LATENCY_PERCENTILES = [50, 99, 99.9] as const;

function sum(ctx: CommandContext, each: (service: LockService) => number): number {
  let total = 0;
  for (const service of ctx.server.services) total += each(service);
  return total;
}

const sections: Record<string, Section> = {
  server: (ctx) => [
    ['redis_version', REDIS_COMPAT_VERSION],
    ['raftlock_version', RAFTLOCK_VERSION],
    ['redis_mode', 'standalone'],
    ['os', `${process.platform} ${process.arch}`],
    ['arch_bits', process.arch.endsWith('64') ? 64 : 32],
    ['process_id', process.pid],
    ['node_id', ctx.server.config.nodeId],
    ['tcp_port', ctx.server.config.port],
    ['uptime_in_seconds', Math.floor((ctx.server.wallClockMs() - ctx.server.startedAtWallMs) / 1000)],
    ['uptime_in_days', Math.floor((ctx.server.wallClockMs() - ctx.server.startedAtWallMs) / 86_400_000)],
    ['executable', process.argv[1] ?? ''],
  ],
  clients: (ctx) => [
    ['connected_clients', [...ctx.server.clients()].length],
    ['maxclients', ctx.server.config.maxclients],
    ['blocked_clients', ctx.server.blockedClients()],
    ['lock_waiters', sum(ctx, (s) => s.waiters.size)],
  ],
  memory: () => {
    const usage = process.memoryUsage();
    return [
      ['used_memory', usage.heapUsed + usage.external],
      ['used_memory_rss', usage.rss],
      ['maxmemory', 0],
      ['maxmemory_policy', 'noeviction'],
    ];
  },
  persistence: (ctx) => {
    const wal = ctx.server.wal?.();
    return [
      ['loading', 0],
      ['async_loading', 0],
      ['rdb_bgsave_in_progress', 0],
      ['aof_enabled', 0],
      ...(wal === undefined ? [] : [
        ['wal_segments', wal.segments], ['wal_batches', wal.batches], ['wal_records', wal.records], ['wal_bytes', wal.bytes],
      ] as [string, number][]),
    ];
  },
  stats: (ctx) => {
    const stats = ctx.server.stats;
    return [
      ['total_connections_received', stats.connectionsReceived],
      ['total_commands_processed', stats.commandsProcessed],
      ['total_net_input_bytes', stats.netInputBytes],
      ['total_net_output_bytes', stats.netOutputBytes],
      ['rejected_connections', stats.rejectedConnections],
      ['expired_keys', sum(ctx, (s) => s.machine.persistent.expiredTotal + s.machine.ephemeral.expiredTotal)],
      ['total_error_replies', stats.totalErrorReplies],
      ['total_reads_processed', stats.readsProcessed],
      ['total_writes_processed', stats.writesProcessed],
      ['protocol_errors', stats.protocolErrors],
      ['client_query_buffer_limit_disconnections', stats.queryBufferLimitDisconnections],
      ['client_output_buffer_limit_disconnections', stats.outputBufferLimitDisconnections],
    ];
  },
  replication: () => [
    ['role', 'master'],
    ['connected_slaves', 0],
    ['master_repl_offset', 0],
  ],
  cpu: () => {
    const usage = process.cpuUsage();
    return [
      ['used_cpu_sys', (usage.system / 1e6).toFixed(6)],
      ['used_cpu_user', (usage.user / 1e6).toFixed(6)],
    ];
  },
  commandstats: (ctx) => {
    const lines: [string, string][] = [];
    for (const s of ctx.server.commandStats.all()) {
      if (s.calls === 0 && s.rejectedCalls === 0 && s.failedCalls === 0) continue;
      const perCall = s.calls === 0 ? 0 : s.usec / s.calls;
      lines.push([`cmdstat_${s.spec.name}`, `calls=${s.calls},usec=${Math.round(s.usec)},usec_per_call=${perCall.toFixed(2)},` +
        `rejected_calls=${s.rejectedCalls},failed_calls=${s.failedCalls}`]);
    }
    return lines;
  },
  latencystats: (ctx) => {
    const lines: [string, string][] = [];
    for (const s of ctx.server.commandStats.all()) {
      const h = s.histogram;
      if (h === null) continue;
      lines.push([`latency_percentiles_usec_${s.spec.name}`, LATENCY_PERCENTILES.map((p) => `p${p}=${(h.percentile(p) / 1000).toFixed(3)}`).join(',')]);
    }
    return lines;
  },
  raft: (ctx) => {
    const groups = ctx.server.raft?.() ?? [];
    return [
      ['raft_partitions', ctx.server.services.length],
      ...groups.map((g, p): [string, string] => [`partition${p}`,
        `role=${g.role},term=${g.term},leader=${g.leader ?? ''},leader_changes=${g.leaderChanges},` +
        `last_index=${g.lastIndex},commit_index=${g.commitIndex},applied_index=${g.appliedIndex},` +
        `snapshot_index=${g.snapshotIndex},log_entries=${g.logEntries},voters=${g.voters.join('|')}`]),
    ];
  },
  cluster: (ctx) => {
    const self = ctx.server.config.nodeId;
    const leaders = partitionLeaders(ctx);
    return [
      ['cluster_enabled', 1],
      ['cluster_node', self],
      ['cluster_known_nodes', ctx.server.cluster?.nodes().length ?? 1],
      ['cluster_partitions', leaders.length],
      ['cluster_partitions_led', leaders.filter((l) => l === self).length],
      ['cluster_partitions_without_leader', leaders.filter((l) => l === null).length],
      ...leaders.map((leader, p): [string, string] => [`partition${p}`, `leader=${leader ?? ''}`]),
    ];
  },
  keyspace: (ctx) => {
    const keys = sum(ctx, (s) => s.machine.dbsize());
    if (keys === 0) return [];
    return [['db0', `keys=${keys},expires=${sum(ctx, (s) => s.machine.persistent.expiringCount)},avg_ttl=0`]];
  },
  locks: (ctx) => {
    return [
      ['persistent_locks', sum(ctx, (s) => s.machine.dbsize())],
      ['ephemeral_locks', sum(ctx, (s) => s.machine.ephemeral.liveCount(s.now()))],
      ['lock_waiters', sum(ctx, (s) => s.waiters.size)],
      ['remembered_tokens', sum(ctx, (s) => s.machine.persistent.tombstoneCount + s.machine.ephemeral.tombstoneCount)],
    ];
  },
};

const TITLES: Record<string, string> = {
  server: 'Server', clients: 'Clients', memory: 'Memory', persistence: 'Persistence', stats: 'Stats',
  replication: 'Replication', cpu: 'CPU', commandstats: 'Commandstats', latencystats: 'Latencystats',
  raft: 'Raft', cluster: 'Cluster', keyspace: 'Keyspace', locks: 'Locks',
};
const ALL_SECTIONS = Object.keys(sections);
/** As in Redis, these come with INFO all or everything, or by name, not in the default INFO. */
const NOT_DEFAULT = new Set(['commandstats', 'latencystats']);

export default defineCommand({
  name: 'info',
  summary: 'Returns server information and statistics in Redis INFO format.',
  since: '1.0.0',
  group: 'server',
  complexity: 'O(1)',
  arity: { min: 1, max: Infinity },
  flags: ['loading', 'stale'],
  aclCategories: ['@slow', '@dangerous'],
  args: [{ name: 'section', type: 'string', optional: true, multiple: true }],
  handler(ctx, argv) {
    const asked = argv.slice(1).map((s) => s.toLowerCase());
    const all = asked.includes('all') || asked.includes('everything');
    const defaults = asked.length === 0 || asked.includes('default');
    const names = ALL_SECTIONS.filter((s) => all || (defaults && !NOT_DEFAULT.has(s)) || asked.includes(s));
    const blocks = names.map((name) => {
      const lines = sections[name]!(ctx).map(([k, v]) => `${k}:${v}`);
      return [`# ${TITLES[name]}`, ...lines].join('\r\n') + '\r\n';
    });
    ctx.reply.verbatim('txt', blocks.join('\r\n'));
  },
});
