import { defineCommand, type CommandContext } from './spec.js';
import type { LockInfo } from '../lock/machine.js';
import { respond } from './respond.js';
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
    const service = ctx.server.serviceFor(argv[1]!);
    const durability = durabilityOf(parsed);
    const info = service.read(durability, (now) => service.machine.info(durability, argv[1]!, now));
    return respond(ctx, info, writeInfo);
  },
});

function writeInfo(ctx: CommandContext, info: LockInfo | null): void {
  if (info === null) return ctx.reply.nullArray();
  ctx.reply.array(3);
  ctx.reply.bulk(info.owner);
  ctx.reply.integer(info.token);
  ctx.reply.integer(info.remainingMs);
}
