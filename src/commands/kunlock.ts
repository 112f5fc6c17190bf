import { defineCommand } from './spec.js';
import { DURABILITY_ARG, durabilityOf } from './lock-args.js';
import { respond } from './respond.js';

export default defineCommand({
  name: 'kunlock',
  summary: 'Releases a lock held by owner; replies 1 if released, 0 if that owner did not hold it.',
  since: '0.1.0',
  group: 'lock',
  complexity: 'O(1)',
  arity: { min: 3, max: Infinity },
  flags: ['write', 'fast'],
  aclCategories: ['@write', '@fast'],
  keys: { first: 1, last: 1, step: 1 },
  parse: true,
  args: [
    { name: 'resource', type: 'key' },
    { name: 'owner', type: 'string' },
    DURABILITY_ARG,
  ],
  handler(ctx, argv, parsed) {
    const op = { kind: 'unlock', durability: durabilityOf(parsed), resource: argv[1]!, owner: argv[2]! } as const;
    return respond(ctx, ctx.server.serviceFor(op.resource).write(op), (c, released) => c.reply.integer(released === true ? 1 : 0));
  },
});
