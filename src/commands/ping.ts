import { defineCommand } from './spec.js';

export default defineCommand({
  name: 'ping',
  summary: 'Replies PONG, or echoes the message.',
  since: '1.0.0',
  group: 'connection',
  complexity: 'O(1)',
  arity: { min: 1, max: 2 },
  flags: ['fast'],
  aclCategories: ['@fast', '@connection'],
  args: [{ name: 'message', type: 'string', optional: true }],
  handler(ctx, argv) {
    if (argv.length === 1) ctx.reply.simple('PONG');
    else ctx.reply.bulk(argv[1]!);
  },
});
