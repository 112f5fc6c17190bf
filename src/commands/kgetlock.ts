import { defineCommand } from './spec.js';
import { DURABILITY_ARG, durabilityOf } from './lock-args.js';

export default defineCommand({
  name: 'kgetlock',
  summary: 'Describes a lock: nil if free, else [owner, fencing_token, remaining_ms] (remaining_ms -1: no expiry).',
  since: '0.1.0',
  group: 'lock',
  complexity: 'O(1)',
  arity: { min: 2, max: Infinity },
  flags: ['readonly', 'fast'],
  aclCategories: ['@read', '@fast'],
  keys: { first: 1, last: 1, step: 1 },
  parse: true,
  args: [
    { name: 'resource', type: 'key' },
    DURABILITY_ARG,
  ],
  handler(ctx, argv, parsed) {
    const service = ctx.server.service;
    const info = service.machine.info(durabilityOf(parsed), argv[1]!, service.now());
    service.afterWrite();
    if (info === null) return ctx.reply.nullArray();
    ctx.reply.array(3);
    ctx.reply.bulk(info.owner);
    ctx.reply.integer(info.token);
    ctx.reply.integer(info.remainingMs);
  },
});
