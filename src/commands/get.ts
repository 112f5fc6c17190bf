import { defineCommand } from './spec.js';
import { respond } from './respond.js';

export default defineCommand({
  name: 'get',
  summary: 'Returns the value of a key: the owner of the PERSISTENT lock, or nil.',
  since: '1.0.0',
  group: 'string',
  complexity: 'O(1)',
  arity: { min: 2, max: 2 },
  flags: ['readonly', 'fast'],
  aclCategories: ['@read', '@string', '@fast'],
  keys: { first: 1, last: 1, step: 1 },
  args: [{ name: 'key', type: 'key' }],
  handler(ctx, argv) {
    const service = ctx.server.serviceFor(argv[1]!);
    const value = service.read('persistent', (now) => service.machine.get(argv[1]!, now));
    return respond(ctx, value, (c, v) => c.reply.bulkOrNull(v));
  },
});
