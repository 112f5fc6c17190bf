import { defineCommand } from './spec.js';
import { respond } from './respond.js';
import { sumOverPartitions } from './partition.js';

export default defineCommand({
  name: 'dbsize',
  summary: 'Returns the number of keys (PERSISTENT locks); in a cluster, of the partitions this node leads (as a Redis Cluster node counts its slots). Like Redis, keys that expired but were not reclaimed yet may be counted.',
  since: '1.0.0',
  group: 'server',
  complexity: 'O(1)',
  arity: { min: 1, max: 1 },
  flags: ['readonly', 'fast'],
  aclCategories: ['@keyspace', '@read', '@fast'],
  handler(ctx) {
    const size = sumOverPartitions(ctx, (service) => service.read('persistent', () => service.machine.dbsize()));
    return respond(ctx, size, (c, n) => c.reply.integer(n));
  },
});
