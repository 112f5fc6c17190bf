import type { ArgSpec, CommandContext, ParsedArgs } from './spec.js';
import type { Durability } from '../lock/machine.js';

/** Largest lease accepted by the lock commands: 2^31-1 ms (about 24.8 days). */
export const TTL_MS_MAX = 2 ** 31 - 1;

export const DURABILITY_ARG: ArgSpec = {
  name: 'durability',
  type: 'oneof',
  optional: true,
  arguments: [
    { name: 'persistent', type: 'pure-token', token: 'PERSISTENT' },
    { name: 'ephemeral', type: 'pure-token', token: 'EPHEMERAL' },
  ],
};

export function ttlArg(command: string): ArgSpec {
  return { name: 'ttl_ms', type: 'integer', invalidError: invalidExpire(command) };
}

export function invalidExpire(command: string): string {
  return `ERR invalid expire time in '${command}' command`;
}

export function durabilityOf(parsed: ParsedArgs): Durability {
  return parsed['durability'] === 'ephemeral' ? 'ephemeral' : 'persistent';
}

/** Whether ttl_ms is a lease the lock commands accept (1 … 2^31-1). */
export function validTtl(ttlMs: number): boolean {
  return ttlMs >= 1 && ttlMs <= TTL_MS_MAX;
}

/** Validates ttl_ms (1 … 2^31-1); writes the error and returns false when out of range. */
export function checkTtl(ctx: CommandContext, command: string, ttlMs: number): boolean {
  if (validTtl(ttlMs)) return true;
  ctx.reply.error(invalidExpire(command));
  return false;
}

/** Writes a fencing token, or nil. */
export function replyToken(ctx: CommandContext, token: bigint | null | unknown): void {
  if (token === null) ctx.reply.nullBulk();
  else ctx.reply.integer(token as bigint);
}
