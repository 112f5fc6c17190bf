import { defineCommand, type CommandContext, type CommandSpec } from './spec.js';
import { helpCommand } from './help.js';
import { globMatch } from './glob.js';

/** The configuration raftlock reports; clients (redis-benchmark, StackExchange.Redis) probe these. */
function parameters(ctx: CommandContext): [string, string][] {
  const c = ctx.server.config;
  return [
    ['appendonly', 'no'],
    ['bind', c.bind],
    ['client-query-buffer-limit', String(c.queryBufferBytesMax)],
    ['cluster-enabled', 'no'],
    ['databases', '1'],
    ['dir', c.dataDir],
    ['maxclients', String(c.maxclients)],
    ['maxmemory', '0'],
    ['maxmemory-policy', 'noeviction'],
    ['port', String(c.port)],
    ['proto-max-bulk-len', String(c.maxBulkBytes)],
    ['protected-mode', 'no'],
    ['replica-read-only', 'yes'],
    ['save', ''],
    ['slave-read-only', 'yes'],
    ['timeout', String(c.timeoutSeconds)],
  ];
}

const subcommands: CommandSpec[] = [
  defineCommand({
    name: 'config|get',
    summary: 'Returns configuration parameters matching the glob patterns (read-only; raftlock is configured by flags).',
    since: '2.0.0',
    group: 'server',
    arity: { min: 3, max: Infinity },
    flags: ['admin', 'noscript', 'loading', 'stale'],
    aclCategories: ['@admin', '@slow', '@dangerous'],
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
];

const container = defineCommand({
  name: 'config',
  summary: 'Configuration commands: GET.',
  since: '2.0.0',
  group: 'server',
  arity: { min: 2, max: Infinity },
  aclCategories: ['@slow'],
});

export default defineCommand({ ...container, subcommands: [...subcommands, helpCommand(container, subcommands)] });
