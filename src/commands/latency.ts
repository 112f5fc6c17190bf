import { defineCommand, type CommandContext, type CommandSpec } from './spec.js';
import { helpCommand } from './help.js';
import { highestEquivalent, type Histogram } from '../stats/histogram.js';
import type { CommandStats } from '../stats/command-stats.js';

/** LATENCY HISTOGRAM's first bucket (ns); each next one is twice as wide, as in Redis. */
const FIRST_BUCKET_NS = 1024;

/**
 * A command's cumulative latency distribution as Redis 7 replies it: a map
 * of calls and histogram_usec, the latter mapping each power-of-two bucket's
 * upper bound (µs) to the calls that took at most that long, empty buckets left out.
 */
function writeDistribution(ctx: CommandContext, histogram: Histogram): void {
  const points: [number, number][] = [];
  let level = FIRST_BUCKET_NS;
  let limit = highestEquivalent(level);
  let cumulative = 0;
  let reported = 0;
  for (const bucket of histogram.buckets()) {
    while (bucket.high > limit) {
      if (cumulative > reported) points.push([Math.floor(limit / 1000), (reported = cumulative)]);
      level *= 2;
      limit = highestEquivalent(level);
    }
    cumulative += bucket.count;
  }
  if (cumulative > reported) points.push([Math.floor(limit / 1000), cumulative]);
  ctx.reply.map(2);
  ctx.reply.bulk('calls');
  ctx.reply.integer(histogram.count);
  ctx.reply.bulk('histogram_usec');
  ctx.reply.map(points.length);
  for (const [usec, count] of points) {
    ctx.reply.integer(usec);
    ctx.reply.integer(count);
  }
}

/** The commands LATENCY HISTOGRAM reports: all, or those named (a container brings its subcommands), unknown names skipped. */
function selected(ctx: CommandContext, names: readonly string[]): CommandStats[] {
  const table = ctx.server.commandStats;
  if (names.length === 0) return [...table.all()];
  const chosen: CommandStats[] = [];
  for (const name of names) {
    const spec = findCommand(ctx, name.toLowerCase());
    if (spec === undefined) continue;
    for (const s of [spec, ...(spec.subcommands ?? [])]) {
      const stats = table.of(s);
      if (stats !== undefined) chosen.push(stats);
    }
  }
  return chosen;
}

function findCommand(ctx: CommandContext, name: string): CommandSpec | undefined {
  const [base, subname] = name.split('|', 2);
  const spec = ctx.server.commands().find((c) => c.name === base);
  return subname === undefined ? spec : spec?.subcommands?.find((s) => s.name === name);
}

const DOCTOR = 'raftlock keeps no latency events, so LATEST, HISTORY and GRAPH have no samples. Per-command latency ' +
  'distributions are in LATENCY HISTOGRAM and INFO latencystats, the slowest commands in SLOWLOG GET, and WAL fsync ' +
  'latency in the Prometheus metrics (--metrics-port).\n';

function sub(spec: Pick<CommandSpec, 'name' | 'summary' | 'arity' | 'handler'> & Partial<CommandSpec>): CommandSpec {
  return defineCommand({
    since: '2.8.13',
    group: 'server',
    flags: ['admin', 'noscript', 'loading', 'stale'],
    aclCategories: ['@admin', '@slow', '@dangerous'],
    ...spec,
  });
}

const subcommands: CommandSpec[] = [
  sub({
    name: 'latency|histogram',
    summary: 'Returns the cumulative latency distribution (power-of-two microsecond buckets) of every command that ran, or of the named ones.',
    since: '7.0.0',
    arity: { min: 2, max: Infinity },
    args: [{ name: 'command', type: 'string', optional: true, multiple: true }],
    handler(ctx, argv) {
      const withData = selected(ctx, argv.slice(2)).filter((s) => s.histogram !== null);
      ctx.reply.map(withData.length);
      for (const stats of withData) {
        ctx.reply.bulk(stats.spec.name);
        writeDistribution(ctx, stats.histogram!);
      }
    },
  }),
  sub({
    name: 'latency|latest',
    summary: 'Returns the latest latency event of each kind: always empty (raftlock keeps no latency events).',
    arity: { min: 2, max: 2 },
    handler(ctx) {
      ctx.reply.array(0);
    },
  }),
  sub({
    name: 'latency|history',
    summary: 'Returns the samples of a latency event: always empty (raftlock keeps no latency events).',
    arity: { min: 3, max: 3 },
    args: [{ name: 'event', type: 'string' }],
    handler(ctx) {
      ctx.reply.array(0);
    },
  }),
  sub({
    name: 'latency|graph',
    summary: 'Graphs a latency event: raftlock keeps none, so this answers that there are no samples.',
    arity: { min: 3, max: 3 },
    args: [{ name: 'event', type: 'string' }],
    handler(ctx, argv) {
      ctx.reply.error(`ERR No samples available for event '${argv[2]!}'`);
    },
  }),
  sub({
    name: 'latency|reset',
    summary: 'Resets latency events: there are none, so it answers 0.',
    arity: { min: 2, max: Infinity },
    args: [{ name: 'event', type: 'string', optional: true, multiple: true }],
    handler(ctx) {
      ctx.reply.integer(0);
    },
  }),
  sub({
    name: 'latency|doctor',
    summary: 'Says where raftlock\'s latency data is.',
    arity: { min: 2, max: 2 },
    handler(ctx) {
      ctx.reply.verbatim('txt', DOCTOR);
    },
  }),
];

const container = defineCommand({
  name: 'latency',
  summary: 'Latency diagnostics: HISTOGRAM (per-command latency distributions); the latency-event subcommands have no samples.',
  since: '2.8.13',
  group: 'server',
  arity: { min: 2, max: Infinity },
  aclCategories: ['@slow'],
});

export default defineCommand({ ...container, subcommands: [...subcommands, helpCommand(container, subcommands)] });
