import { defineCommand } from './spec.js';
import { DURABILITY_ARG, checkTtl, durabilityOf, replyToken, ttlArg } from './lock-args.js';
import { respond } from './respond.js';

export default defineCommand({
  name: 'kextend',
  summary: "Extends the lease of a lock held by owner to now + ttl_ms; replies with its fencing token, or nil if that owner does not hold it.",
  since: '0.1.0',
  group: 'lock',
  complexity: 'O(1)',
  arity: { min: 4, max: Infinity },
  flags: ['write', 'fast'],
  aclCategories: ['@write', '@fast'],
  keys: { first: 1, last: 1, step: 1 },
  parse: true,
  args: [
    { name: 'resource', type: 'key' },
    { name: 'owner', type: 'string' },
    ttlArg('kextend'),
    DURABILITY_ARG,
  ],
  handler(ctx, argv, parsed) {
    const ttlMs = parsed['ttl_ms'] as number;
    if (!checkTtl(ctx, 'kextend', ttlMs)) return;
    const op = { kind: 'extend', durability: durabilityOf(parsed), resource: argv[1]!, owner: argv[2]!, ttlMs } as const;
    return respond(ctx, ctx.server.serviceFor(op.resource).write(op), replyToken);
  },
});
