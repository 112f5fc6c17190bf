import { defineCommand } from './spec.js';

export default defineCommand({
  name: 'echo',
  summary: 'Returns the message.',
  since: '1.0.0',
  group: 'connection',
  complexity: 'O(1)',
  arity: { min: 2, max: 2 },
  flags: ['fast'],
  aclCategories: ['@fast', '@connection'],
  args: [{ name: 'message', type: 'string' }],
  handler(ctx, argv) {
    ctx.reply.bulk(argv[1]!);
  },
});
