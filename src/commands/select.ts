import { defineCommand } from './spec.js';
import { parseInteger, NOT_AN_INTEGER } from './syntax.js';

export default defineCommand({
  name: 'select',
  summary: 'Selects the database; raftlock has only database 0.',
  since: '1.0.0',
  group: 'connection',
  complexity: 'O(1)',
  arity: { min: 2, max: 2 },
  flags: ['loading', 'stale', 'fast'],
  aclCategories: ['@fast', '@connection'],
  args: [{ name: 'index', type: 'integer' }],
  handler(ctx, argv) {
    const index = parseInteger(argv[1]!);
    if (index === null || index < -2147483648 || index > 2147483647) return ctx.reply.error(NOT_AN_INTEGER);
    if (index !== 0) return ctx.reply.error('ERR DB index is out of range');
    ctx.client.db = 0;
    ctx.reply.simple('OK');
  },
});
