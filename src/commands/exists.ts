import { defineCommand } from './spec.js';
import { respond } from './respond.js';
import { serviceForKeys } from './partition.js';

export default defineCommand({
  name: 'exists',
  summary: 'Counts how many of the given keys exist (a key given twice counts twice).',
  since: '1.0.0',
  group: 'generic',
  complexity: 'O(N) where N is the number of keys',
  arity: { min: 2, max: Infinity },
  flags: ['readonly', 'fast'],
  aclCategories: ['@keyspace', '@read', '@fast'],
  keys: { first: 1, last: -1, step: 1 },
  args: [{ name: 'key', type: 'key', multiple: true }],
  handler(ctx, argv) {
    const service = serviceForKeys(ctx, argv.slice(1));
    if (service === undefined) return;
    const count = service.read('persistent', (now) => service.machine.exists(argv.slice(1), now));
    return respond(ctx, count, (c, n) => c.reply.integer(n));
  },
});
