import { defineCommand } from './spec.js';

export default defineCommand({
  name: 'quit',
  summary: 'Closes the connection after replying OK.',
  since: '1.0.0',
  group: 'connection',
  complexity: 'O(1)',
  arity: { min: 1, max: Infinity },
  flags: ['noscript', 'loading', 'stale', 'fast', 'no_auth', 'allow_busy'],
  aclCategories: ['@fast', '@connection'],
  handler(ctx) {
    ctx.client.closeAfterReply = true;
    ctx.reply.simple('OK');
  },
});
