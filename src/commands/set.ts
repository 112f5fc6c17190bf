import { defineCommand, type ParsedArgs } from './spec.js';
import type { LockOp } from '../lock/commands.js';
import type { SetExpiry, SetResult } from '../lock/machine.js';
import { respond } from './respond.js';
import { invalidExpire } from './lock-args.js';

const MS_MAX = Number.MAX_SAFE_INTEGER;

export default defineCommand({
  name: 'set',
  summary: 'Sets a key (a PERSISTENT lock owned by the value). SET key owner NX PX ttl acquires the lock with a new fencing token.',
  since: '1.0.0',
  group: 'string',
  complexity: 'O(1)',
  arity: { min: 3, max: Infinity },
  flags: ['write', 'denyoom'],
  aclCategories: ['@write', '@string', '@slow'],
  keys: { first: 1, last: 1, step: 1 },
  parse: true,
  args: [
    { name: 'key', type: 'key' },
    { name: 'value', type: 'string' },
    {
      name: 'condition', type: 'oneof', optional: true, arguments: [
        { name: 'nx', type: 'pure-token', token: 'NX' },
        { name: 'xx', type: 'pure-token', token: 'XX' },
      ],
    },
    { name: 'get', type: 'pure-token', token: 'GET', optional: true },
    {
      name: 'expiration', type: 'oneof', optional: true, arguments: [
        { name: 'seconds', type: 'integer', token: 'EX' },
        { name: 'milliseconds', type: 'integer', token: 'PX' },
        { name: 'unix-time-seconds', type: 'unix-time', token: 'EXAT' },
        { name: 'unix-time-milliseconds', type: 'unix-time', token: 'PXAT' },
        { name: 'keepttl', type: 'pure-token', token: 'KEEPTTL' },
      ],
    },
  ],
  handler(ctx, argv, parsed) {
    const request = setRequest(argv, parsed, () => ctx.server.wallClockMs());
    if (typeof request === 'string') return ctx.reply.error(request);
    const result = ctx.server.serviceFor(argv[1]!).write(request.op);
    return respond(ctx, result, (c, r) => {
      const { written, previous } = r as SetResult;
      if (request.get) c.reply.bulkOrNull(previous);
      else if (written) c.reply.simple('OK');
      else c.reply.nullBulk();
    });
  },
});

/** A SET as a write, and whether the caller asked for the previous value (GET). */
export interface SetRequest {
  op: Extract<LockOp, { kind: 'set' }>;
  get: boolean;
}

/**
 * The write SET argv asks for (argv already checked against SET's grammar),
 * or Redis's error text. wallClockMs is read only for EXAT/PXAT. Shared by
 * the command and by scripts, which call it with the log entry's wall clock.
 */
export function setRequest(argv: readonly string[], parsed: ParsedArgs, wallClockMs: () => number): SetRequest | string {
  const expiry = expiryOf(parsed, wallClockMs);
  if (expiry === undefined) return invalidExpire('set');
  const mode = parsed['condition'] === 'nx' ? 'nx' : parsed['condition'] === 'xx' ? 'xx' : 'always';
  // EXAT/PXAT in the past: Redis writes the key and it is gone at once; a ttl below zero does that.
  const effective: SetExpiry = expiry.kind === 'ttl' && expiry.ttlMs <= 0 ? { kind: 'ttl', ttlMs: -1 } : expiry;
  return { op: { kind: 'set', key: argv[1]!, value: argv[2]!, mode, expiry: effective }, get: parsed['get'] === true };
}

/** The expiry SET asked for, or undefined when out of range. */
function expiryOf(parsed: ParsedArgs, wallClockMs: () => number): SetExpiry | undefined {
  const which = parsed['expiration'];
  if (which === undefined) return { kind: 'none' };
  if (which === 'keepttl') return { kind: 'keep' };
  const amount = parsed[which as string] as number;
  const scale = which === 'seconds' || which === 'unix-time-seconds' ? 1000 : 1;
  if (amount <= 0 || amount * scale > MS_MAX) return undefined;
  const ms = amount * scale;
  if (which === 'seconds' || which === 'milliseconds') return { kind: 'ttl', ttlMs: ms };
  return { kind: 'ttl', ttlMs: ms - wallClockMs() };
}
