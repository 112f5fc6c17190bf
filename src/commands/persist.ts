import { defineCommand } from './spec.js';
import { respond } from './respond.js';

export default defineCommand({
  name: 'persist',
  summary: "Removes a key's expiry; replies 1 if one was removed.",
  since: '2.2.0',
  group: 'generic',
  complexity: 'O(1)',
  arity: { min: 2, max: 2 },
  flags: ['write', 'fast'],
  aclCategories: ['@keyspace', '@write', '@fast'],
  keys: { first: 1, last: 1, step: 1 },
  args: [{ name: 'key', type: 'key' }],
  handler(ctx, argv) {
    return respond(ctx, ctx.server.serviceFor(argv[1]!).write({ kind: 'persist', key: argv[1]! }), (c, n) => c.reply.integer(n as number));
  },
});
