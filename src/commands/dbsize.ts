import { defineCommand } from './spec.js';
import { respond } from './respond.js';

export default defineCommand({
  name: 'dbsize',
  summary: 'Returns the number of keys (PERSISTENT locks); like Redis, keys that expired but were not reclaimed yet may be counted.',
  since: '1.0.0',
  group: 'server',
  complexity: 'O(1)',
  arity: { min: 1, max: 1 },
  flags: ['readonly', 'fast'],
  aclCategories: ['@keyspace', '@read', '@fast'],
  handler(ctx) {
    const service = ctx.server.service;
    return respond(ctx, service.read('persistent', () => service.machine.dbsize()), (c, n) => c.reply.integer(n));
  },
});
