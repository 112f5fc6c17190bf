import { defineCommand, type CommandSpec, type ParsedArgs } from './spec.js';
import type { LockOp } from '../lock/commands.js';
import type { ExpireCondition } from '../lock/machine.js';
import { invalidExpire } from './lock-args.js';
import { respond } from './respond.js';

const CONDITION_CONFLICT = 'ERR NX and XX, GT or LT options at the same time are not compatible';

/** EXPIRE (seconds) and PEXPIRE (milliseconds). */
export function expireCommand(name: 'expire' | 'pexpire', unitMs: 1000 | 1, since: string): CommandSpec {
  const unit = unitMs === 1000 ? 'seconds' : 'milliseconds';
  return defineCommand({
    name,
    summary: `Sets a key's time to live in ${unit}; NX, XX, GT and LT set it only under that condition. A ttl <= 0 deletes the key.`,
    since,
    group: 'generic',
    complexity: 'O(1)',
    arity: { min: 3, max: Infinity },
    flags: ['write', 'fast'],
    aclCategories: ['@keyspace', '@write', '@fast'],
    keys: { first: 1, last: 1, step: 1 },
    parse: true,
    args: [
      { name: 'key', type: 'key' },
      { name: unit, type: 'integer' },
      {
        name: 'condition', type: 'oneof', optional: true, conflictError: CONDITION_CONFLICT, arguments: [
          { name: 'nx', type: 'pure-token', token: 'NX' },
          { name: 'xx', type: 'pure-token', token: 'XX' },
          { name: 'gt', type: 'pure-token', token: 'GT' },
          { name: 'lt', type: 'pure-token', token: 'LT' },
        ],
      },
    ],
    handler(ctx, argv, parsed) {
      const op = expireRequest(name, argv, parsed);
      if (typeof op === 'string') return ctx.reply.error(op);
      return respond(ctx, ctx.server.serviceFor(op.key).write(op), (c, n) => c.reply.integer(n as number));
    },
  });
}

/** The write EXPIRE/PEXPIRE argv asks for (already checked against its grammar), or Redis's error text. */
export function expireRequest(name: 'expire' | 'pexpire', argv: readonly string[], parsed: ParsedArgs): Extract<LockOp, { kind: 'expire' }> | string {
  const unit = name === 'expire' ? 'seconds' : 'milliseconds';
  const ttlMs = (parsed[unit] as number) * (name === 'expire' ? 1000 : 1);
  if (!Number.isSafeInteger(ttlMs)) return invalidExpire(name);
  const condition = (parsed['condition'] ?? 'always') as ExpireCondition;
  return { kind: 'expire', key: argv[1]!, ttlMs, condition };
}

/** TTL's reply for a PTTL of ms: seconds rounded like Redis (negative codes unchanged). */
export function ttlSeconds(ms: number): number {
  return ms < 0 ? ms : Math.floor((ms + 500) / 1000);
}

/** TTL (seconds, rounded like Redis) and PTTL (milliseconds). */
export function ttlCommand(name: 'ttl' | 'pttl', since: string): CommandSpec {
  return defineCommand({
    name,
    summary: `Returns a key's remaining time to live in ${name === 'ttl' ? 'seconds' : 'milliseconds'}; -1 without expiry, -2 if missing.`,
    since,
    group: 'generic',
    complexity: 'O(1)',
    arity: { min: 2, max: 2 },
    flags: ['readonly', 'fast'],
    aclCategories: ['@keyspace', '@read', '@fast'],
    keys: { first: 1, last: 1, step: 1 },
    args: [{ name: 'key', type: 'key' }],
    handler(ctx, argv) {
      const service = ctx.server.serviceFor(argv[1]!);
      const ms = service.read('persistent', (now) => service.machine.pttl(argv[1]!, now));
      return respond(ctx, ms, (c, v) => c.reply.integer(name === 'pttl' ? v : ttlSeconds(v)));
    },
  });
}
