import { BLOCKING, defineCommand, type CommandContext, type Pending } from './spec.js';
import { DURABILITY_ARG, checkTtl, durabilityOf, replyToken, ttlArg, TTL_MS_MAX } from './lock-args.js';
import { errorReply, respond } from './respond.js';
import type { LockService } from '../lock/service.js';

export default defineCommand({
  name: 'klock',
  summary: 'Acquires a lock with a lease; replies with its fencing token, or nil if another owner holds it. WAIT queues the caller (FIFO) for up to timeout_ms (0: do not wait).',
  since: '0.1.0',
  group: 'lock',
  complexity: 'O(1)',
  arity: { min: 4, max: Infinity },
  flags: ['write', 'denyoom', 'fast', 'blocking'],
  aclCategories: ['@write', '@fast', '@blocking'],
  keys: { first: 1, last: 1, step: 1 },
  parse: true,
  args: [
    { name: 'resource', type: 'key' },
    { name: 'owner', type: 'string' },
    ttlArg('klock'),
    DURABILITY_ARG,
    { name: 'timeout_ms', type: 'integer', token: 'WAIT', optional: true, invalidError: 'ERR timeout is not an integer or out of range' },
  ],
  handler(ctx, argv, parsed) {
    const ttlMs = parsed['ttl_ms'] as number;
    if (!checkTtl(ctx, 'klock', ttlMs)) return;
    const durability = durabilityOf(parsed);
    const timeoutMs = parsed['timeout_ms'] as number | undefined;
    const service = ctx.server.serviceFor(argv[1]!);
    if (timeoutMs === undefined) return respond(ctx, service.lock(durability, argv[1]!, argv[2]!, ttlMs), replyToken);
    if (timeoutMs < 0) return ctx.reply.error('ERR timeout is negative');
    if (timeoutMs > TTL_MS_MAX) return ctx.reply.error('ERR timeout is out of range');
    return wait(ctx, { durability, resource: argv[1]!, owner: argv[2]!, ttlMs, timeoutMs });
  },
});

function wait(ctx: CommandContext, request: Parameters<LockService['lockOrWait']>[0]): void | Pending {
  const service = ctx.server.serviceFor(request.resource);
  let settled: { value: bigint | null | Error } | undefined;
  let finish: (() => void) | undefined;
  const outcome = service.lockOrWait(request, (value) => {
    ctx.client.onClose.delete(leave);
    settled = { value };
    if (finish !== undefined) finish();
  });
  function leave(): void {
    if (outcome.kind === 'queued') service.cancel(outcome.waiter);
  }
  if (outcome.kind === 'done') return respond(ctx, outcome.token, replyToken);
  if (outcome.kind === 'full') {
    const error = outcome.reason === 'resource-full'
      ? `ERR max number of waiters per lock reached (${service.waiters.limits.perResourceMax})`
      : `ERR max number of waiters reached (${service.waiters.limits.totalMax})`;
    return ctx.reply.error(error);
  }
  const write = (): void => {
    const value = settled!.value;
    if (value instanceof Error) ctx.reply.error(errorReply(value));
    else replyToken(ctx, value);
  };
  if (settled !== undefined) return write();
  ctx.client.onClose.add(leave);
  const blocked = new Promise<void>((resolve) => {
    finish = () => {
      write();
      resolve();
    };
  });
  return Object.assign(blocked, { [BLOCKING]: true });
}
