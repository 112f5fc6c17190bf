import { defineCommand } from './spec.js';

export default defineCommand({
  name: 'dbsize',
  summary: 'Returns the number of keys (live PERSISTENT locks).',
  since: '1.0.0',
  group: 'server',
  complexity: 'O(1)',
  arity: { min: 1, max: 1 },
  flags: ['readonly', 'fast'],
  aclCategories: ['@keyspace', '@read', '@fast'],
  handler(ctx) {
    const service = ctx.server.service;
    ctx.reply.integer(service.machine.dbsize(service.now()));
    service.afterWrite();
  },
});
