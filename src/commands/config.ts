import { defineCommand, type CommandContext, type CommandSpec, type ServerStats } from './spec.js';
import { helpCommand } from './help.js';
import { globMatch } from './glob.js';
import { LATENCY_PERCENTILES } from './info.js';

/** The configuration raftlock reports; clients (redis-benchmark, StackExchange.Redis) probe these. */
function parameters(ctx: CommandContext): [string, string][] {
  const c = ctx.server.config;
  const slowlog = ctx.server.slowlog;
  return [
    ['appendonly', 'no'],
    ['bind', c.bind],
    ['client-query-buffer-limit', String(c.queryBufferBytesMax)],
    ['cluster-enabled', 'no'],
    ['databases', '1'],
    ['dir', c.dataDir],
    ['latency-monitor-threshold', '0'],
    ['latency-tracking', 'yes'],
    ['latency-tracking-info-percentiles', LATENCY_PERCENTILES.join(' ')],
    ['maxclients', String(c.maxclients)],
    ['maxmemory', '0'],
    ['maxmemory-policy', 'noeviction'],
    ['port', String(c.port)],
    ['proto-max-bulk-len', String(c.maxBulkBytes)],
    ['protected-mode', 'no'],
    ['replica-read-only', 'yes'],
    ['save', ''],
    ['slave-read-only', 'yes'],
    ['slowlog-log-slower-than', String(slowlog.slowerThanUs)],
    ['slowlog-max-len', String(slowlog.maxLen)],
    ['timeout', String(c.timeoutSeconds)],
  ];
}

/** The parameters CONFIG SET changes (the others are fixed by the server's flags). */
const SETTABLE: Record<string, { min: number; max: number; apply: (ctx: CommandContext, value: number) => void }> = {
  'slowlog-log-slower-than': { min: -(2 ** 53 - 1), max: 2 ** 53 - 1, apply: (ctx, us) => { ctx.server.slowlog.slowerThanUs = us; } },
  'slowlog-max-len': { min: 0, max: 1_000_000, apply: (ctx, n) => { ctx.server.slowlog.maxLen = n; } },
};

/** The values to set, or Redis's error for the first bad pair; nothing is set unless every pair is valid. */
function parseSettings(ctx: CommandContext, argv: readonly string[]): [(typeof SETTABLE)[string], number][] | string {
  const settings: [(typeof SETTABLE)[string], number][] = [];
  const seen = new Set<string>();
  const known = new Set(parameters(ctx).map(([name]) => name));
  for (let i = 2; i < argv.length; i += 2) {
    const name = argv[i]!.toLowerCase();
    const failed = (why: string): string => `ERR CONFIG SET failed (possibly related to argument '${argv[i]!}') - ${why}`;
    const setting = SETTABLE[name];
    if (setting === undefined) {
      return known.has(name) ? failed("can't set immutable config") : `ERR Unknown option or number of arguments for CONFIG SET - '${argv[i]!}'`;
    }
    if (seen.has(name)) return failed('duplicate parameter');
    seen.add(name);
    const text = argv[i + 1]!;
    const value = Number(text);
    if (!/^-?\d+$/.test(text) || !Number.isSafeInteger(value)) return failed("argument couldn't be parsed into an integer");
    if (value < setting.min || value > setting.max) return failed(`argument must be between ${setting.min} and ${setting.max} inclusive`);
    settings.push([setting, value]);
  }
  return settings;
}

/** CONFIG RESETSTAT: the counters INFO stats and commandstats report (not the slow log, as in Redis). */
function resetStats(ctx: CommandContext): void {
  const stats = ctx.server.stats;
  for (const key of Object.keys(stats) as (keyof ServerStats)[]) stats[key] = 0;
  ctx.server.commandStats.reset();
}

const ADMIN = { flags: ['admin', 'noscript', 'loading', 'stale'], aclCategories: ['@admin', '@slow', '@dangerous'] } as const;

const subcommands: CommandSpec[] = [
  defineCommand({
    name: 'config|get',
    summary: 'Returns configuration parameters matching the glob patterns (most are fixed by the server\'s flags).',
    since: '2.0.0',
    group: 'server',
    arity: { min: 3, max: Infinity },
    ...ADMIN,
    args: [{ name: 'parameter', type: 'string', multiple: true }],
    handler(ctx, argv) {
      const patterns = argv.slice(2).map((p) => p.toLowerCase());
      const matches = parameters(ctx).filter(([name]) => patterns.some((p) => globMatch(p, name)));
      ctx.reply.map(matches.length);
      for (const [name, value] of matches) {
        ctx.reply.bulk(name);
        ctx.reply.bulk(value);
      }
    },
  }),
  defineCommand({
    name: 'config|set',
    summary: 'Sets slowlog-log-slower-than (microseconds; 0 logs every command, negative none) and slowlog-max-len on this node; other parameters are fixed by the server\'s flags.',
    since: '2.0.0',
    group: 'server',
    arity: { min: 4, max: Infinity },
    ...ADMIN,
    args: [{
      name: 'data', type: 'block', multiple: true, arguments: [
        { name: 'parameter', type: 'string' },
        { name: 'value', type: 'string' },
      ],
    }],
    handler(ctx, argv) {
      if (argv.length % 2 !== 0) return ctx.reply.error("ERR wrong number of arguments for 'config|set' command");
      const settings = parseSettings(ctx, argv);
      if (typeof settings === 'string') return ctx.reply.error(settings);
      for (const [setting, value] of settings) setting.apply(ctx, value);
      ctx.reply.simple('OK');
    },
  }),
  defineCommand({
    name: 'config|resetstat',
    summary: 'Resets the statistics INFO stats, commandstats and latencystats report (and the Prometheus counters built on them).',
    since: '2.0.0',
    group: 'server',
    arity: { min: 2, max: 2 },
    ...ADMIN,
    handler(ctx) {
      resetStats(ctx);
      ctx.reply.simple('OK');
    },
  }),
];

const container = defineCommand({
  name: 'config',
  summary: 'Configuration commands: GET, SET, RESETSTAT.',
  since: '2.0.0',
  group: 'server',
  arity: { min: 2, max: Infinity },
  aclCategories: ['@slow'],
});

export default defineCommand({ ...container, subcommands: [...subcommands, helpCommand(container, subcommands)] });
