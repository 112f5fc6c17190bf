import type { CommandContext } from './spec.js';
import type { Maybe } from '../lock/service.js';

/**
 * Writes a reply for a result that is ready now or once a write commits.
 * Replication failures map to Redis-style errors: no leader (or leadership
 * lost) → TRYAGAIN, which clients retry; an outcome that may or may not have
 * been applied says so rather than answering a false "no".
 */
export function respond<T>(ctx: CommandContext, value: Maybe<T>, write: (ctx: CommandContext, value: T) => void): void | Promise<void> {
  if (!(value instanceof Promise)) return write(ctx, value);
  return value.then((v) => write(ctx, v), (error: unknown) => ctx.reply.error(errorReply(error)));
}

export function errorReply(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  if (code === 'RAFTLOCK_ERR_NOT_LEADER') return 'TRYAGAIN no leader for this partition right now; retry';
  if (code === 'RAFTLOCK_ERR_LOCK_DELAY') return `TRYAGAIN ${(error as Error).message}`;
  if (code === 'RAFTLOCK_ERR_PEER_UNAVAILABLE') {
    return (error as { sent?: boolean }).sent === true
      ? 'TRYAGAIN the partition leader became unreachable; the command may have been applied, retry it'
      : 'TRYAGAIN the partition leader is unreachable right now; retry';
  }
  if (code === 'RAFTLOCK_ERR_BUSY') return `TRYAGAIN server busy: ${(error as Error).message}`;
  if (code === 'RAFTLOCK_ERR_OUTCOME_UNKNOWN') return `TRYAGAIN ${(error as Error).message}; the command may have been applied, retry it`;
  return `ERR ${(error as Error).message ?? String(error)}`;
}
