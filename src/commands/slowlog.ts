import { defineCommand, type CommandSpec } from './spec.js';
import { helpCommand } from './help.js';

const LONG_MAX = 2n ** 63n - 1n;
const DEFAULT_COUNT = 10;

/** SLOWLOG GET's count: -1 for all, else 0 … LONG_MAX (Redis's range); null when invalid. */
function parseCount(text: string): number | null {
  if (text === '-1') return Infinity;
  if (!/^(0|[1-9]\d*)$/.test(text) || BigInt(text) > LONG_MAX) return null;
  return Number(text);
}

function sub(spec: Pick<CommandSpec, 'name' | 'summary' | 'arity' | 'handler'> & Partial<CommandSpec>): CommandSpec {
  return defineCommand({
    since: '2.2.12',
    group: 'server',
    flags: ['admin', 'loading', 'stale'],
    aclCategories: ['@admin', '@slow', '@dangerous'],
    ...spec,
  });
}

const subcommands: CommandSpec[] = [
  sub({
    name: 'slowlog|get',
    summary: 'Returns the newest entries of the slow log (default 10, -1 for all): id, unix time, duration in microseconds, arguments, client address, client name.',
    arity: { min: 2, max: 3 },
    args: [{ name: 'count', type: 'integer', optional: true }],
    handler(ctx, argv) {
      const count = argv.length === 3 ? parseCount(argv[2]!) : DEFAULT_COUNT;
      if (count === null) return ctx.reply.error('ERR count should be greater than or equal to -1');
      const entries = ctx.server.slowlog.newest(count);
      ctx.reply.array(entries.length);
      for (const entry of entries) {
        ctx.reply.array(6);
        ctx.reply.integer(entry.id);
        ctx.reply.integer(entry.timeSeconds);
        ctx.reply.integer(entry.durationUs);
        ctx.reply.array(entry.argv.length);
        for (const arg of entry.argv) ctx.reply.bulk(arg);
        ctx.reply.bulk(entry.addr);
        ctx.reply.bulk(entry.name);
      }
    },
  }),
  sub({
    name: 'slowlog|len',
    summary: 'Returns the number of entries in the slow log.',
    arity: { min: 2, max: 2 },
    handler(ctx) {
      ctx.reply.integer(ctx.server.slowlog.length);
    },
  }),
  sub({
    name: 'slowlog|reset',
    summary: 'Empties the slow log.',
    arity: { min: 2, max: 2 },
    handler(ctx) {
      ctx.server.slowlog.reset();
      ctx.reply.simple('OK');
    },
  }),
];

const container = defineCommand({
  name: 'slowlog',
  summary: 'The slow log: commands that took at least slowlog-log-slower-than microseconds from decoding to reply (GET, LEN, RESET).',
  since: '2.2.12',
  group: 'server',
  arity: { min: 2, max: Infinity },
  aclCategories: ['@slow'],
});

export default defineCommand({ ...container, subcommands: [...subcommands, helpCommand(container, subcommands)] });
